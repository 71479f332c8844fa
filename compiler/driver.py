"""`compile_gguf`: a `.gguf` model in, a runtime `Program` (and a `.ggufc` file) out.

Stages, each timed (`CompileResult.stage_seconds`) and shown on one progress bar:

    load     open_gguf(path) + the architecture's front end (packed GGUF weights, no copies)
    export   torch.export with M (tokens) dynamic in [1, max_seq] -> GraphProgram
    passes   the pass pipeline (`passes.default_pipeline()` unless `pipeline` is given, less
             fuse-sibling-linears with external weights; with `tuning`, split-dynamic-m gets
             the tuned buckets, see `compiler.tuning`)
    codegen  `codegen.lower`: KernelNodes with Metal / CUDA sources, IfNodes, SymNodes
    write    `save_program(output, weights=...)` (only when `output` is given)

What the program file carries for `ggufc run` (metadata, see `compiler.generate`): the
architecture, layer count, max_seq, the tokenizer (JSON of the GGUF vocabulary, so the file
runs without the `.gguf`), the source file's name and size, the pipeline and the backends.
Inputs are ``tokens [1, M] int64, positions [M] int64, k_cache_0.., v_cache_0..`` and outputs
``logits [1, M, vocab], new k caches.., new v caches..`` (`compiler.architectures.layers`).

Every constant that is a GGUF tensor's bytes (matched by address: the front ends keep
zero-copy views of the mapped file) records its slice of the `.gguf`, so
``weights="external"`` writes a small program that references the model file.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from compiler.errors import UnsupportedError

STAGES = ("load", "export", "passes", "codegen", "write")
WEIGHT_MODES = ("embed", "external")
# the default pipeline's pass whose constants are not slices of the .gguf
EMBEDS_NEW_WEIGHTS = "fuse-sibling-linears"
# Default KV-cache length: long enough for chat-sized prompts, small enough that the caches
# (2 x layers x kv_heads x max_seq x head_dim floats) and full-cache attention stay cheap.
DEFAULT_MAX_SEQ = 1024


@dataclass
class CompileResult:
    """What `compile_gguf` produced: the program, the graph it was lowered from, the time of
    each stage in seconds (in `STAGES` order), and the file written (None if none)."""

    program: object
    graph_program: object
    stage_seconds: dict[str, float] = field(default_factory=dict)
    output: Path | None = None

    @property
    def total_seconds(self) -> float:
        return sum(self.stage_seconds.values())


class _Stages:
    """Times stages and advances the progress bar."""

    def __init__(self, progress: bool, stream):
        from tqdm import tqdm

        self.seconds: dict[str, float] = {}
        self.bar = tqdm(
            total=len(STAGES), disable=not progress, file=stream, unit="stage", leave=True
        )

    def run(self, name: str, fn, *args, **kwargs):
        self.bar.set_description(f"ggufc compile: {name}")
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = time.perf_counter() - start
            self.bar.update(1)

    def skip(self, name: str) -> None:
        self.seconds[name] = 0.0
        self.bar.update(1)

    def close(self) -> None:
        self.bar.set_description("ggufc compile: done")
        self.bar.close()


def compile_gguf(
    path,
    backends: Sequence[str] = ("metal", "cuda"),
    pipeline=None,
    max_seq: int | None = None,
    weights: str = "embed",
    output=None,
    dump_dir=None,
    time_passes: bool = False,
    pass_statistics: bool = False,
    progress: bool = False,
    stream=None,
    tuning=None,
) -> CompileResult:
    """Compile the model at `path` (a `.gguf` file or a bundled model name).

    ``pipeline``: pass pipeline text, a `Pipeline`, or None for the default pipeline.
    ``max_seq``: KV-cache length and the largest token count per call (default
    `DEFAULT_MAX_SEQ`, capped at the model's context length).  ``dump_dir``,
    ``time_passes``, ``pass_statistics``: the pass manager's instrumentation (reports go to
    ``stream``, default stderr).  ``progress``: show a progress bar over the stages.
    ``tuning``: a `compiler.tuning.Tuning` or the path of a `ggufc tune` file; its thresholds
    for the model's dominant linear-weight format become split-dynamic-m's buckets for the
    file's activation dtype (``buckets`` or ``float32-buckets``; a pipeline that sets that
    option itself, or has no split-dynamic-m, is refused, as is a file tuned for a dtype no
    linear of the model runs); its route model, if it has one, picks where a 16-bit CUDA
    matmul takes the dense route (`codegen.dense_linear.RouteModel`)."""
    from compiler.bundled import resolve_model_path

    if weights not in WEIGHT_MODES:
        raise UnsupportedError(f"weights must be one of {WEIGHT_MODES}, got {weights!r}")
    from passes import default_pipeline
    from passes.pipeline import Pipeline

    stream = sys.stderr if stream is None else stream
    model_path = resolve_model_path(path)
    # bad pipeline text fails now, not after a long export
    if pipeline is None:
        pipeline = default_pipeline()
        if weights == "external":
            # fuse-sibling-linears stacks weights into constants the .gguf does not hold,
            # which an external-weights program would have to embed
            pipeline = Pipeline(tuple(p for p in pipeline if p.name != EMBEDS_NEW_WEIGHTS))
    else:
        pipeline = Pipeline.of(pipeline)
    if tuning is not None:
        from compiler.tuning import as_tuning, check_pipeline_takes_tuning

        tuning, tuning_source = as_tuning(tuning)
        check_pipeline_takes_tuning(pipeline, tuning_source, tuning.dtype)
    stages = _Stages(progress, stream)
    try:
        gguf_file, model = stages.run("load", _load, model_path)
        max_seq = _max_seq(model, max_seq, model_path)
        graph_program = stages.run("export", _export, model, max_seq)
        if tuning is not None:
            pipeline = _apply_tuning(pipeline, tuning, tuning_source, graph_program)
        pipeline = stages.run(
            "passes",
            _run_passes,
            graph_program,
            pipeline,
            dump_dir=dump_dir,
            time_passes=time_passes,
            pass_statistics=pass_statistics,
            stream=stream,
        )
        metadata = _program_metadata(gguf_file, model, model_path, max_seq, pipeline, backends)
        route_model = None if tuning is None else tuning.route_model()
        if route_model is not None and "cuda" in backends:
            from compiler.generate import KEY_ROUTE_MODEL

            metadata[KEY_ROUTE_MODEL] = route_model.describe()
        program = stages.run(
            "codegen", _lower, graph_program, gguf_file, model_path, backends, metadata, route_model
        )
        written = None
        if output is not None:
            written = stages.run("write", _write, program, output, weights)
        else:
            stages.skip("write")
    finally:
        stages.close()
    return CompileResult(program, graph_program, dict(stages.seconds), written)


# ---- stages ---------------------------------------------------------------------------------


def _load(model_path: Path):
    from compiler.architectures import build_model
    from compiler.gguf_file import open_gguf

    gguf_file = open_gguf(model_path)
    return gguf_file, build_model(gguf_file)


def _max_seq(model, max_seq: int | None, model_path: Path) -> int:
    context = getattr(getattr(model, "config", None), "context_length", None)
    if max_seq is None:
        max_seq = DEFAULT_MAX_SEQ if context is None else min(DEFAULT_MAX_SEQ, context)
    if not isinstance(max_seq, int) or max_seq < 2:
        raise UnsupportedError(f"{model_path}: max_seq must be an integer >= 2, got {max_seq!r}")
    if context is not None and max_seq > context:
        raise UnsupportedError(
            f"{model_path}: max_seq {max_seq} exceeds the model's context length {context}"
        )
    return max_seq


def _export(model, max_seq: int):
    from compiler.export import export_model

    return export_model(model, max_seq)


def _apply_tuning(pipeline, tuning, source: str, graph_program):
    from compiler.tuning import check_tuning_fits, linear_weight_bytes, tuned_pipeline

    check_tuning_fits(tuning, source, graph_program)
    thresholds = tuning.thresholds_for(linear_weight_bytes(graph_program))
    return tuned_pipeline(pipeline, thresholds, source, tuning.dtype)


def _run_passes(graph_program, pipeline, *, dump_dir, time_passes, pass_statistics, stream):
    from passes import PassManager

    manager = PassManager(
        pipeline,
        dump_dir=dump_dir,
        time_passes=time_passes,
        pass_statistics=pass_statistics,
        stream=stream,
    )
    manager.run(graph_program)
    return manager.pipeline


def _lower(graph_program, gguf_file, model_path: Path, backends, metadata, route_model=None):
    from codegen import lower

    sources = constant_sources(graph_program, gguf_file, model_path)
    return lower(
        graph_program,
        backends,
        constant_sources=sources,
        metadata=metadata,
        route_model=route_model,
    )


def _write(program, output, weights: str) -> Path:
    from runtime_schema import save_program

    output = Path(output)
    save_program(program, output, weights=weights)
    return output


# ---- helpers --------------------------------------------------------------------------------


def constant_sources(graph_program, gguf_file, model_path: Path) -> dict:
    """Constant name -> `GgufSlice` for every constant of the graph (branch subgraphs
    included) whose bytes are exactly a GGUF tensor's bytes in the mapped file."""
    import torch

    from runtime_schema.program import GgufSlice

    by_address: dict[tuple[int, int], object] = {}
    for tensor in gguf_file.tensors.values():
        if not tensor.supported or tensor.nbytes == 0:
            continue
        data = tensor.data
        by_address[(data.data_ptr(), tensor.nbytes)] = tensor
    path = str(Path(model_path).resolve())
    sources: dict[str, GgufSlice] = {}

    def visit(module: torch.fx.GraphModule) -> None:
        for node in module.graph.nodes:
            if node.op != "get_attr":
                continue
            obj = module
            for part in str(node.target).split("."):
                obj = getattr(obj, part, None)
            if isinstance(obj, torch.fx.GraphModule):
                visit(obj)
            elif isinstance(obj, torch.Tensor) and obj.is_contiguous():
                nbytes = obj.numel() * obj.element_size()
                tensor = by_address.get((obj.data_ptr(), nbytes))
                if tensor is not None:
                    sources[str(node.target)] = GgufSlice(path, tensor.offset, nbytes)

    visit(graph_program.graph_module)
    return sources


def _program_metadata(gguf_file, model, model_path: Path, max_seq, pipeline, backends) -> dict:
    from compiler.generate import model_metadata

    return model_metadata(
        gguf_file,
        num_layers=model.num_layers,
        max_seq=max_seq,
        source=model_path,
        pipeline=str(pipeline),
        backends=tuple(backends),
    )


__all__ = ["DEFAULT_MAX_SEQ", "STAGES", "CompileResult", "compile_gguf", "constant_sources"]
