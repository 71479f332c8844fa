"""Greedy text generation over a compiled program, and the metadata it needs.

Calling convention of a compiled model (`compiler.architectures.layers`)::

    inputs   tokens [1, M] int64, positions [M] int64, k_cache_0 .. k_cache_{L-1},
             v_cache_0 .. v_cache_{L-1}            (caches: static [kv_heads, max_seq, head_dim])
    outputs  logits [1, M, vocab], then the updated caches in the same order as the inputs

`generate` runs the prefill with M = prompt length, then decodes with M = 1, feeding the
updated caches of each call into the next (so both M buckets of the program run in one
generation).  On CUDA the decode step is captured once as a CUDA graph and replayed
(`runtime_schema.cuda_graph`; ``cuda_graph=False`` runs it node by node), since launching
its few thousand kernels one by one from Python costs far more than their GPU time; the
graph also takes the argmax and advances the position itself, and the host reads the tokens
back every TOKENS_PER_READ steps.  The next token is the argmax of the last position's
logits (greedy); the loop stops after ``max_tokens`` tokens, at the end-of-sequence token,
or when the cache is full.

Program metadata written by `compile_gguf` and read here (all strings):

    ggufc.architecture, ggufc.num_layers, ggufc.max_seq    the model and its cache length
    ggufc.source.name, ggufc.source.size                   the .gguf it was compiled from
    ggufc.pipeline, ggufc.backends                         how it was compiled
    ggufc.tokenizer                                        JSON: {"model": "llama",
                                                           "fields": {...}} (the tokenizer's
                                                           constructor arguments; absent when
                                                           the GGUF tokenizer is unsupported)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from compiler.errors import GgufcError, UnsupportedError

KEY_ARCHITECTURE = "ggufc.architecture"
KEY_NUM_LAYERS = "ggufc.num_layers"
KEY_MAX_SEQ = "ggufc.max_seq"
KEY_SOURCE_NAME = "ggufc.source.name"
KEY_SOURCE_SIZE = "ggufc.source.size"
KEY_PIPELINE = "ggufc.pipeline"
KEY_BACKENDS = "ggufc.backends"
KEY_TOKENIZER = "ggufc.tokenizer"
# the route model of a program compiled with a `ggufc tune` file that has one
# (`codegen.dense_linear.RouteModel.describe`)
KEY_ROUTE_MODEL = "ggufc.route_model"

# Leading program inputs before the caches, and leading outputs before the caches.
TOKENS_INPUT, POSITIONS_INPUT, FIRST_CACHE_INPUT = 0, 1, 2
LOGITS_OUTPUT, FIRST_CACHE_OUTPUT = 0, 1
# Decode steps a CUDA-graph generation replays between reads of its tokens back to the host:
# a read waits for the GPU to drain, and at ~2 ms a step the host's own work per step (~0.3
# ms: input copies, the argmax launch, the read) showed as idle GPU time.
TOKENS_PER_READ = 16


class GenerationError(GgufcError):
    """A program cannot be used for generation (missing metadata, bad prompt)."""


# ---- metadata -------------------------------------------------------------------------------


def model_metadata(
    gguf_file,
    *,
    num_layers: int,
    max_seq: int,
    source: Path,
    pipeline: str,
    backends: Sequence[str],
) -> dict[str, str]:
    """The metadata `compile_gguf` stores for `ggufc run` (see the module doc)."""
    metadata = {
        KEY_ARCHITECTURE: gguf_file.architecture,
        KEY_NUM_LAYERS: str(num_layers),
        KEY_MAX_SEQ: str(max_seq),
        KEY_SOURCE_NAME: Path(source).name,
        KEY_SOURCE_SIZE: str(Path(source).stat().st_size),
        KEY_PIPELINE: pipeline,
        KEY_BACKENDS: ",".join(backends),
    }
    tokenizer_json = tokenizer_to_json(gguf_file)
    if tokenizer_json is not None:
        metadata[KEY_TOKENIZER] = tokenizer_json
    return metadata


def tokenizer_to_json(gguf_file) -> str | None:
    """The GGUF file's tokenizer as JSON, or None when its model is not supported."""
    from compiler.tokenizer import TOKENIZERS, tokenizer_from_gguf

    model = gguf_file.metadata.get("tokenizer.ggml.model")
    if model not in TOKENIZERS:
        return None
    tokenizer = tokenizer_from_gguf(gguf_file)
    fields = {f.name: getattr(tokenizer, f.name) for f in dataclasses.fields(tokenizer)}
    return json.dumps({"model": model, "fields": fields}, ensure_ascii=False)


def tokenizer_from_metadata(metadata: dict[str, str]):
    """The tokenizer stored in a program's metadata."""
    from compiler.tokenizer import TOKENIZERS

    text = metadata.get(KEY_TOKENIZER)
    if text is None:
        raise GenerationError(
            "the program stores no tokenizer (its GGUF tokenizer model is not supported); "
            "pass token ids with --tokens"
        )
    try:
        stored = json.loads(text)
        cls = TOKENIZERS[stored["model"]]
        return cls(**stored["fields"])
    except (ValueError, KeyError, TypeError) as exc:
        raise GenerationError(f"metadata {KEY_TOKENIZER}: not a stored tokenizer ({exc})") from None


def program_metadata(program) -> dict[str, str]:
    return dict(program.metadata)


# ---- generation -----------------------------------------------------------------------------


@dataclass
class Generation:
    """A greedy generation: the prompt, the generated token ids, the prefill logits
    (float32 [prompt_len, vocab]) and the time of the prefill and of the decode steps."""

    prompt_tokens: list[int]
    tokens: list[int]
    prefill_logits: torch.Tensor
    prefill_seconds: float
    decode_seconds: float
    decode_steps: int
    capture_seconds: float = 0.0  # capturing the decode step as a CUDA graph (not in decode)

    @property
    def prefill_tokens_per_second(self) -> float:
        return len(self.prompt_tokens) / self.prefill_seconds if self.prefill_seconds else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        return self.decode_steps / self.decode_seconds if self.decode_seconds else 0.0


def _cache_inputs(program, device) -> list[torch.Tensor]:
    caches = []
    for index in program.inputs[FIRST_CACHE_INPUT:]:
        value = program.values[index]
        info = value.info
        if not info.is_static:
            raise GenerationError(f"cache input {value.name!r} must have a static shape")
        shape = [d.size for d in info.shape]
        caches.append(torch.zeros(shape, dtype=info.dtype.torch_dtype, device=device))
    return caches


def max_sequence(program) -> int:
    """The cache length: dim 1 of the first cache input."""
    if len(program.inputs) <= FIRST_CACHE_INPUT:
        raise GenerationError("the program takes no KV caches; not a compiled language model")
    info = program.values[program.inputs[FIRST_CACHE_INPUT]].info
    return info.shape[1].size


def generate(
    program,
    prompt_tokens: Sequence[int],
    max_tokens: int,
    *,
    device: str = "cpu",
    eos_id: int | None = None,
    step=None,
    cuda_graph: bool = True,
) -> Generation:
    """Greedy generation of up to `max_tokens` tokens after `prompt_tokens`.

    ``program``: a `Program` or `LoadedProgram`; ``step(tokens, positions, caches) ->
    (logits, caches)`` replaces running the program (the eager model, in benchmarks);
    ``cuda_graph``: replay the decode step as a CUDA graph (device "cuda", no ``step``)."""
    from runtime_schema.interpreter import ProgramRunner
    from runtime_schema.loader import LoadedProgram

    plain = program.program if isinstance(program, LoadedProgram) else program
    prompt = [int(t) for t in prompt_tokens]
    if not prompt:
        raise GenerationError("the prompt has no tokens")
    if max_tokens < 0:
        raise GenerationError(f"max_tokens must be >= 0, got {max_tokens}")
    max_seq = max_sequence(plain)
    if len(prompt) > max_seq:
        raise GenerationError(
            f"the prompt has {len(prompt)} tokens; the program was compiled for at most "
            f"{max_seq} (ggufc compile --max-seq)"
        )
    runner = None
    if step is None:
        runner = ProgramRunner(program, device)

        def step(tokens, positions, caches):
            outputs = runner.run([tokens, positions, *caches])
            return outputs[LOGITS_OUTPUT], outputs[FIRST_CACHE_OUTPUT:]

    caches = _cache_inputs(plain, device)
    with torch.no_grad():
        start = time.perf_counter()
        tokens = torch.tensor([prompt], dtype=torch.int64, device=device)
        positions = torch.arange(len(prompt), dtype=torch.int64, device=device)
        logits, caches = step(tokens, positions, caches)
        prefill_logits = logits[0].float().cpu()
        prefill_seconds = time.perf_counter() - start
        generated: list[int] = []
        decode_steps = 0
        next_token = int(prefill_logits[-1].argmax())
        position = len(prompt)
        capture_seconds = 0.0
        captured = None
        if runner is not None and cuda_graph and device == "cuda" and max_tokens > 1:
            start = time.perf_counter()
            captured = _captured_greedy_step(runner, caches, next_token, position)
            capture_seconds = time.perf_counter() - start
        start = time.perf_counter()
        if captured is not None:
            generated, decode_steps = _decode_replayed(
                captured, next_token, position, max_tokens, max_seq, eos_id
            )
        elif max_tokens > 0:
            generated.append(next_token)
            while not _finished(generated, position, max_tokens, max_seq, eos_id):
                tokens = torch.tensor([[generated[-1]]], dtype=torch.int64, device=device)
                positions = torch.tensor([position], dtype=torch.int64, device=device)
                logits, caches = step(tokens, positions, caches)
                decode_steps += 1
                generated.append(int(logits[0, -1].argmax()))
                position += 1
        decode_seconds = time.perf_counter() - start
    return Generation(
        prompt,
        generated,
        prefill_logits,
        prefill_seconds,
        decode_seconds,
        decode_steps,
        capture_seconds,
    )


def _captured_greedy_step(runner, caches, token: int, position: int):
    """The greedy decode step (M = 1) as a CUDA graph: the caches fed back inside it, and its
    epilogue writing the argmax token and the next position into its own inputs, so steps
    replay back to back (`_decode_replayed`).  None (with a warning) when the program cannot
    be captured."""
    import warnings

    from runtime_schema.cuda_graph import CapturedStep, GraphCaptureError

    tokens = torch.tensor([[token]], dtype=torch.int64, device="cuda")
    positions = torch.tensor([position], dtype=torch.int64, device="cuda")
    feedback = {FIRST_CACHE_INPUT + i: FIRST_CACHE_OUTPUT + i for i in range(len(caches))}

    def next_inputs(inputs, outputs):
        inputs[TOKENS_INPUT].copy_(outputs[LOGITS_OUTPUT][0, -1].argmax().view(1, 1))
        inputs[POSITIONS_INPUT].add_(1)

    try:
        return CapturedStep(runner, [tokens, positions, *caches], feedback, next_inputs)
    except GraphCaptureError as exc:
        warnings.warn(f"{exc}; decoding node by node", stacklevel=3)
        return None


def _decode_replayed(
    captured, first_token: int, position: int, max_tokens: int, max_seq: int, eos_id
) -> tuple[list[int], int]:
    """The loop of `generate` on a `_captured_greedy_step`: ``(generated tokens, steps
    replayed)``.  The host reads the tokens back once every TOKENS_PER_READ steps instead of
    once a step (each read waits for the GPU to drain); steps replayed past an end-of-
    sequence token within a read are discarded, so the tokens are those of the step-by-step
    loop."""
    generated = [first_token]
    steps = 0
    token_input = captured.inputs[TOKENS_INPUT].view(1)
    read_back = torch.empty(TOKENS_PER_READ, dtype=torch.int64, device=token_input.device)
    while not _finished(generated, position, max_tokens, max_seq, eos_id):
        count = min(TOKENS_PER_READ, max_tokens - len(generated), max_seq - position)
        for i in range(count):
            captured.replay()
            read_back[i : i + 1].copy_(token_input)
        steps += count
        position += count
        for token in read_back[:count].tolist():
            generated.append(token)
            if token == eos_id:
                break
    return generated, steps


def _finished(generated: list[int], position: int, max_tokens: int, max_seq: int, eos_id) -> bool:
    """Whether generation stops after ``generated`` with the next token due at ``position``:
    the end-of-sequence token, the token budget, or a full cache."""
    return generated[-1] == eos_id or len(generated) >= max_tokens or position >= max_seq


def eos_token_id(metadata: dict[str, str]) -> int | None:
    text = metadata.get(KEY_TOKENIZER)
    if text is None:
        return None
    try:
        return json.loads(text)["fields"].get("eos_id")
    except (ValueError, KeyError, TypeError):
        return None


def parse_token_list(text: str) -> list[int]:
    """``"2,818,5279"`` -> ``[2, 818, 5279]``."""
    try:
        tokens = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise UnsupportedError(
            f"--tokens: expected comma-separated integers, got {text!r}"
        ) from None
    if not tokens:
        raise UnsupportedError("--tokens: no token ids given")
    return tokens


__all__ = [
    "Generation",
    "GenerationError",
    "eos_token_id",
    "generate",
    "max_sequence",
    "model_metadata",
    "parse_token_list",
    "program_metadata",
    "tokenizer_from_metadata",
    "tokenizer_to_json",
]
