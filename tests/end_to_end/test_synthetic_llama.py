"""Synthetic llama / qwen2 GGUF files (every block format, see synthetic_models.py) compile,
and the program generates what the eager front-end model generates."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from synthetic_models import LAYER_FORMATS, write_synthetic_model

from compiler import compile_gguf, open_gguf
from compiler.architectures import build_model
from compiler.cli import main
from compiler.errors import UnsupportedError
from compiler.generate import GenerationError, generate
from runtime_schema import load_program
from runtime_schema.program import KernelNode, OpKind, QuantFormat

MAX_SEQ = 32
MAX_TOKENS = 6
PROMPT = "the capital of France is"
HAS_CUDA = torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None
CUDA_RELATIVE_TOLERANCE = 2e-2


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def compiled(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    gguf_path = write_synthetic_model(folder / "model.gguf", request.param)
    program_path = folder / "model.ggufc"
    result = compile_gguf(gguf_path, max_seq=MAX_SEQ, output=program_path)
    return gguf_path, program_path, result


def eager_step(model):
    def step(tokens, positions, caches):
        outputs = model(tokens, positions, *caches)
        return outputs[0], list(outputs[1:])

    return step


def test_every_format_is_a_kernel(compiled):
    _, program_path, result = compiled
    program = load_program(program_path).program
    kernels = [n for n in program.instructions() if isinstance(n, KernelNode)]
    used = {QuantFormat(n.format).name for n in kernels}
    assert used == {fmt for layer in LAYER_FORMATS for fmt in layer} | {"Q4_K", "Q8_0"}
    assert not [n for n in kernels if n.op == OpKind.DEQUANTIZE]
    assert set(result.stage_seconds) == {"load", "export", "passes", "codegen", "write"}


def test_program_generates_like_the_eager_model(compiled, capsys, tmp_path):
    gguf_path, program_path, _ = compiled
    logits_path = tmp_path / "logits.npy"
    capsys.readouterr()
    assert (
        main(
            [
                "run",
                str(program_path),
                "--prompt",
                PROMPT,
                "--max-tokens",
                str(MAX_TOKENS),
                "--json",
                "--dump-logits",
                str(logits_path),
            ]
        )
        == 0
    )
    document = json.loads(capsys.readouterr().out)

    gguf_file = open_gguf(gguf_path)
    model = build_model(gguf_file)
    from compiler.tokenizer import tokenizer_from_gguf

    tokenizer = tokenizer_from_gguf(gguf_file)
    prompt = tokenizer.encode(PROMPT)
    loaded = load_program(program_path)
    eager = generate(loaded, prompt, MAX_TOKENS, step=eager_step(model), eos_id=tokenizer.eos_id)
    assert document["tokens"] == eager.tokens
    assert document["text"] == tokenizer.decode(eager.tokens)
    program_logits = torch.from_numpy(np.load(logits_path))
    assert program_logits.shape == eager.prefill_logits.shape == (len(prompt), 512)
    assert torch.equal(program_logits.argmax(-1), eager.prefill_logits.argmax(-1))
    torch.testing.assert_close(program_logits, eager.prefill_logits, rtol=1e-5, atol=1e-5)


def test_prompt_longer_than_the_cache_is_refused(compiled):
    _, program_path, _ = compiled
    loaded = load_program(program_path)
    with pytest.raises(GenerationError, match=f"at most {MAX_SEQ}"):
        generate(loaded, [1] * (MAX_SEQ + 1), 1)


def test_max_seq_beyond_the_context_is_refused(compiled):
    gguf_path, _, _ = compiled
    with pytest.raises(UnsupportedError, match="exceeds the model's context length"):
        compile_gguf(gguf_path, max_seq=10_000)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs an NVIDIA GPU and CuPy")
def test_program_on_cuda_matches_cpu(compiled):
    """The generated CUDA kernels (launched by the interpreter) against the CPU reference.
    float32 matmul kernels use TF32 tensor cores (10-bit mantissa): tolerances are relative
    to the logits' scale."""
    _, program_path, _ = compiled
    loaded = load_program(program_path)
    prompt = list(range(3, 3 + 20))  # M = 20: the matmul bucket; decode runs matvec
    cpu = generate(loaded, prompt, MAX_TOKENS)
    cuda = generate(loaded, prompt, MAX_TOKENS, device="cuda")
    scale = cpu.prefill_logits.abs().max().item()
    difference = (cuda.prefill_logits - cpu.prefill_logits).abs().max().item()
    assert difference <= CUDA_RELATIVE_TOLERANCE * scale, (difference, scale)
    short = generate(loaded, prompt[:4], 2, device="cuda")  # M = 4: float32, so the matvec
    reference = generate(loaded, prompt[:4], 2)
    difference = (short.prefill_logits - reference.prefill_logits).abs().max().item()
    assert difference <= CUDA_RELATIVE_TOLERANCE * scale, (difference, scale)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs an NVIDIA GPU and CuPy")
def test_decode_replayed_as_a_cuda_graph_matches_node_by_node(compiled):
    """The decode step captured once and replayed (caches fed back inside the graph) gives
    the tokens of launching every node from Python, step after step."""
    _, program_path, _ = compiled
    loaded = load_program(program_path)
    prompt = list(range(3, 9))
    replayed = generate(loaded, prompt, MAX_TOKENS, device="cuda")
    stepped = generate(loaded, prompt, MAX_TOKENS, device="cuda", cuda_graph=False)
    assert replayed.capture_seconds > 0.0, "the decode step was not captured"
    assert replayed.tokens == stepped.tokens
    assert replayed.decode_steps == stepped.decode_steps == MAX_TOKENS - 1


def test_cli_errors_name_what_is_wrong(compiled, capsys, tmp_path):
    gguf_path, program_path, _ = compiled
    cases = [
        (["run", str(tmp_path / "missing.ggufc"), "--tokens", "1,2"], "missing.ggufc"),
        (["run", str(program_path), "--tokens", "1,x"], "--tokens: expected comma-separated"),
        (["run", str(program_path), "--tokens", ",".join(["5"] * 40)], f"at most {MAX_SEQ}"),
        (["compile", str(gguf_path), "-o", str(tmp_path / "out.bin")], "must end in .ggufc"),
        (["compile", str(tmp_path / "nope.gguf"), "-o", str(tmp_path / "a.ggufc")], "nope.gguf"),
        (
            ["compile", str(gguf_path), "-o", str(tmp_path / "a.ggufc"), "--pipeline", "no-such"],
            "no-such",
        ),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith(f"ggufc {argv[0]}: error:") and message in err, (argv, err)
    assert not (tmp_path / "a.ggufc").exists()
    with pytest.raises(SystemExit):
        main(["compile", str(gguf_path), "--backends", "vulkan"])


def test_compile_instrumentation_flags(compiled, capsys, tmp_path):
    gguf_path, _, _ = compiled
    output, dumps = tmp_path / "cuda-only.ggufc", tmp_path / "dumps"
    argv = [
        "compile",
        str(gguf_path),
        "-o",
        str(output),
        "--max-seq",
        "16",
        "--backends",
        "cuda",
        "--dump-dir",
        str(dumps),
        "--time-passes",
        "--pass-statistics",
        "--no-progress",
    ]
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    for stage in ("load", "export", "passes", "codegen", "write", "total"):
        assert f"  {stage} " in err
    assert "split-dynamic-m" in err  # the timing / statistics reports name the passes
    assert len(list(dumps.iterdir())) >= 5  # one dump per pass of the default pipeline
    program = load_program(output).program
    kernels = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert kernels and all(len(n.sources) == 1 for n in kernels)
    assert dict(program.metadata)["ggufc.backends"] == "cuda"
    assert dict(program.metadata)["ggufc.max_seq"] == "16"


def test_donated_caches_are_updated_in_place_with_the_same_outputs(compiled):
    """The KV caches are the inputs only an index_copy reads, so `ProgramRunner` may update
    them in place (what the CUDA-graph decode does); the outputs stay those of a plain run."""
    from runtime_schema.interpreter import ProgramRunner

    _, program_path, _ = compiled
    program = load_program(program_path).program
    runner = ProgramRunner(program, "cpu")
    donated = runner.donatable_inputs()
    caches = len(program.inputs) - 2
    assert donated == frozenset(range(2, 2 + caches)), "every cache, nothing else"
    generator = torch.Generator().manual_seed(0)
    for m, position in ((3, 0), (1, 3)):  # a prefill, then a decode step
        inputs = [
            torch.randint(0, 100, (1, m), generator=generator),
            torch.arange(position, position + m),
        ]
        for index in program.inputs[2:]:
            shape = [d.size for d in program.values[index].info.shape]
            inputs.append(torch.randn(shape, generator=generator))
        plain = runner.run([t.clone() for t in inputs])
        outputs = runner.run(inputs, donated)
        for j, output in enumerate(outputs[1:], start=2):
            assert output is inputs[j]  # written in place, not copied
        for a, b in zip(outputs, plain, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_run_without_dependent_launch_turns_it_off_for_the_process(compiled, capsys, monkeypatch):
    from runtime_schema.cuda_launcher import DEPENDENT_LAUNCH_ENV

    _, program_path, _ = compiled
    monkeypatch.setenv(DEPENDENT_LAUNCH_ENV, "1")  # restored after the test
    argv = ["run", str(program_path), "--tokens", "1,2", "--max-tokens", "1"]
    assert main([*argv, "--no-dependent-launch"]) == 0
    assert os.environ[DEPENDENT_LAUNCH_ENV] == "0"  # what every CUDA launcher reads
