"""The real model: `ggufc compile` Gemma 3 270M Q4_K_M, then `ggufc run` it.

Two compiles through the CLI: `--weights external` (a small file that references the .gguf;
its default pipeline leaves out fuse-sibling-linears), re-saved with its weights copied so
both weight modes run; and the default (embedded weights, the whole default pipeline: q/k/v
and gate/up stacked into one linear each where their formats agree).  Expected text: what
llama.cpp and transformers produce greedily.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from compiler.cli import main
from compiler.tuning import FLOAT32_DEFAULT_BUCKETS, KERNELS_BY_THRESHOLD_COUNT
from runtime_schema import load_program, save_program
from runtime_schema.program import CompareOp, IfNode, KernelKind, KernelNode, OpKind

PROMPT = "The capital of France is"
PROMPT_TOKENS = [2, 818, 5279, 529, 7001, 563]
EXPECTED_TEXT = " the capital of the country of France."
MAX_TOKENS = 8
MAX_SEQ = 64  # small caches keep the CPU runs quick
# Per layer: q, k, v, o, gate, up, down; plus the tied output projection.
LINEARS_PER_LAYER = 7
# The linears fuse-sibling-linears stacks where their weights share a format (all read the
# same activation)
SIBLING_GROUPS = (("attn_q", "attn_k", "attn_v"), ("ffn_gate", "ffn_up"))
MAX_LOGIT_DIFFERENCE = 1e-3
HAS_CUDA = torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None


@pytest.fixture(scope="module")
def programs(gemma_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gemma")
    external = folder / "gemma-external.ggufc"
    status = main(
        [
            "compile",
            str(gemma_path),
            "-o",
            str(external),
            "--max-seq",
            str(MAX_SEQ),
            "--weights",
            "external",
            "--no-progress",
        ]
    )
    assert status == 0
    embedded = folder / "gemma-resaved.ggufc"
    save_program(load_program(external).program, embedded, weights="embed")
    default = folder / "gemma.ggufc"
    argv = ["compile", str(gemma_path), "-o", str(default), "--max-seq", str(MAX_SEQ)]
    assert main([*argv, "--no-progress"]) == 0
    return {"external": external, "embedded": embedded, "default": default}


def run_cli(capsys, *args) -> str:
    capsys.readouterr()
    assert main(["run", *map(str, args)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("which", ["embedded", "default"])
def test_prompt_generates_the_reference_text(programs, capsys, which):
    out = run_cli(capsys, programs[which], "--prompt", PROMPT, "--max-tokens", MAX_TOKENS)
    assert out == EXPECTED_TEXT + "\n"


@pytest.mark.parametrize("which", ["external", "default"])
def test_prefill_logits_match_the_eager_model(
    programs, capsys, tmp_path, gemma_path, record_property, which
):
    logits_path = tmp_path / "logits.npy"
    out = run_cli(
        capsys,
        programs[which],
        "--tokens",
        ",".join(map(str, PROMPT_TOKENS)),
        "--max-tokens",
        MAX_TOKENS,
        "--json",
        "--dump-logits",
        logits_path,
    )
    document = json.loads(out)
    assert document["text"] == EXPECTED_TEXT
    assert len(document["tokens"]) == MAX_TOKENS
    program_logits = torch.from_numpy(np.load(logits_path))

    from compiler import open_gguf
    from compiler.architectures import build_model

    model = build_model(open_gguf(gemma_path))
    caches = [torch.zeros(model.cache_shape(MAX_SEQ)) for _ in range(2 * model.num_layers)]
    with torch.no_grad():
        eager = model(torch.tensor([PROMPT_TOKENS]), torch.arange(len(PROMPT_TOKENS)), *caches)[0][
            0
        ]
    assert program_logits.dtype == torch.float32
    assert program_logits.shape == eager.shape == (len(PROMPT_TOKENS), model.config.vocab_size)
    assert torch.equal(program_logits.argmax(-1), eager.argmax(-1))
    difference = (program_logits - eager).abs().max().item()
    record_property("max_abs_logit_difference", difference)
    print(f"max |program - eager| prefill logit difference: {difference:.3g}")
    assert difference <= MAX_LOGIT_DIFFERENCE


def assert_one_kernel_per_bucket(kernels, linears_per_bucket: int) -> None:
    """Each linear has a kernel in each bucket of the default float32 buckets (the model runs
    float32): the matvec up to 16 rows, the matmul above."""
    linear_kinds = [n.kind for n in kernels if n.op == OpKind.LINEAR]
    bucket_kernels = KERNELS_BY_THRESHOLD_COUNT[len(FLOAT32_DEFAULT_BUCKETS)]
    assert bucket_kernels == ("matvec", "matmul")
    assert linear_kinds.count(KernelKind.MATVEC) == linears_per_bucket
    assert linear_kinds.count(KernelKind.MATMUL) == linears_per_bucket
    assert len(linear_kinds) == len(bucket_kernels) * linears_per_bucket


def test_program_has_no_dequantize_and_one_branch_per_bucket(programs, gemma_path):
    from compiler import open_gguf

    program = load_program(programs["external"]).program
    layers = open_gguf(gemma_path).metadata["gemma3.block_count"]
    kernels = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert not [n for n in kernels if n.op == OpKind.DEQUANTIZE]
    assert not [
        n
        for n in program.instructions()
        if not isinstance(n, KernelNode)
        and getattr(n, "op", None) in ("aten::linear", "aten::embedding")
    ]
    assert [n.kind for n in kernels if n.op == OpKind.EMBEDDING] == [KernelKind.EMBEDDING]
    linears_per_bucket = LINEARS_PER_LAYER * layers + 1
    assert_one_kernel_per_bucket(kernels, linears_per_bucket)
    ifs = [n for n in program.instructions() if isinstance(n, IfNode)]
    assert {(n.compare, n.constant) for n in ifs} == {
        (CompareOp.LE, t) for t in FLOAT32_DEFAULT_BUCKETS
    }
    assert all(len(n.sources) == 2 for n in kernels)


def test_default_program_stacks_sibling_linears_of_one_format(programs, gemma_path):
    from compiler import open_gguf

    gguf_file = open_gguf(gemma_path)
    layers = gguf_file.metadata["gemma3.block_count"]
    formats = {name: t.format for name, t in gguf_file.tensors.items()}
    linears_per_bucket = 1  # the output projection
    for i in range(layers):
        merged = sum(
            len(group) - len({formats[f"blk.{i}.{n}.weight"] for n in group})
            for group in SIBLING_GROUPS
        )
        linears_per_bucket += LINEARS_PER_LAYER - merged
    assert linears_per_bucket < LINEARS_PER_LAYER * layers + 1  # this model has some to stack
    program = load_program(programs["default"]).program
    kernels = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert_one_kernel_per_bucket(kernels, linears_per_bucket)


def test_weights_external_and_embedded(programs, gemma_path):
    external = load_program(programs["external"])
    embedded = load_program(programs["embedded"], verify_segment=False)
    assert len(external.external_files) == 1
    assert external.file_size < embedded.file_size // 10
    # the tied embedding / output blob is one constant, read by the embedding and by the
    # output projection of every bucket, and stored once
    program = external.program
    (embedding,) = [
        n for n in program.instructions() if isinstance(n, KernelNode) and n.op == OpKind.EMBEDDING
    ]
    table = embedding.inputs[0]
    vocab = program.values[table].info.shape[0].size
    heads = [
        n
        for n in program.instructions()
        if isinstance(n, KernelNode)
        and n.op == OpKind.LINEAR
        and {a.name: a.value for a in n.args}["n"].value == vocab
    ]
    buckets = len(FLOAT32_DEFAULT_BUCKETS) + 1
    assert len(heads) == buckets and {n.inputs[1] for n in heads} == {table}
    table_bytes = program.values[table].info.shape[1].size * vocab
    assert embedded.file_size < gemma_path.stat().st_size + table_bytes // 2


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs an NVIDIA GPU and CuPy")
def test_prompt_on_cuda(programs, capsys):
    out = run_cli(
        capsys,
        programs["default"],
        "--prompt",
        PROMPT,
        "--max-tokens",
        MAX_TOKENS,
        "--device",
        "cuda",
    )
    assert out == EXPECTED_TEXT + "\n"
