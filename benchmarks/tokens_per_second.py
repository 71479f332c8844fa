"""Tokens per second of `ggufc run` (a compiled program on the reference interpreter or on
CUDA) and of the eager front-end model, prefill and decode separately, in the same run.

    python benchmarks/tokens_per_second.py [MODEL] [--prompt TEXT] [--max-tokens 16]
        [--max-seq 256] [--device cpu|cuda] [--program FILE.ggufc] [--profile]

On CUDA the program path replays its decode step as a CUDA graph; the table adds the same
program run node by node (no graph), and ``--profile`` prints where the GPU time of the
node-by-node decode goes: ggufc's generated kernels (GGUF linears and embedding, attention,
RMSNorm) against every other op.

MODEL defaults to the bundled Gemma 3 270M.  Without `--program` the model is compiled first
(CPU-only sources when the device is the CPU).  Each path runs the prompt once untimed (page
faults on the mapped weights, allocator warm-up), then timed; prefill = the prompt in one call
(M = prompt length), decode = the following single-token calls.  Both paths must generate the
same tokens; the table says so.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spin-waiting threads on a shared host

import torch
from machine_info import describe_machine

DEFAULT_MODEL = "gemma3-270m"
DEFAULT_PROMPT = "The capital of France is"


def eager_step(model, device):
    def step(tokens, positions, caches):
        outputs = model(tokens, positions, *caches)
        return outputs[0], list(outputs[1:])

    return step


GENERATED_KERNEL_PREFIX = "ggufc_"  # every generated kernel's entry name


def decode_profile(loaded, prompt, steps: int = 16) -> str:
    """GPU time of `steps` node-by-node decode steps by kernel, ggufc's kernels against the rest
    (torch.profiler's CUDA activity, which sees CuPy's launches like torch's).  The program
    is bound to the device and the prompt prefilled before profiling starts.  The KV caches
    are donated, as the CUDA graph's replay donates them: each cache write is an in-place
    ``index_copy_``, not a copy of the whole cache."""
    from torch.profiler import ProfilerActivity, profile

    from compiler.generate import FIRST_CACHE_OUTPUT, _cache_inputs
    from runtime_schema.interpreter import ProgramRunner

    runner = ProgramRunner(loaded, "cuda")
    donated = runner.donatable_inputs()
    caches = _cache_inputs(loaded.program, "cuda")
    tokens = torch.tensor([prompt], device="cuda")
    outputs = runner.run([tokens, torch.arange(len(prompt), device="cuda"), *caches], donated)
    token = torch.tensor([[int(outputs[0][0, -1].argmax())]], device="cuda")
    caches = outputs[FIRST_CACHE_OUTPUT:]
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(steps):
            position = torch.tensor([len(prompt) + i], device="cuda")
            outputs = runner.run([token, position, *caches], donated)
            caches = outputs[FIRST_CACHE_OUTPUT:]
        torch.cuda.synchronize()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        us = getattr(event, "self_device_time_total", 0.0)
        if us > 0:
            totals[event.key] = totals.get(event.key, 0.0) + us
    generated = sum(us for name, us in totals.items() if name.startswith(GENERATED_KERNEL_PREFIX))
    total = sum(totals.values())
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:12]
    lines = [
        (
            f"\nGPU time of {steps} decode steps (node by node): {total / 1e3:.2f} ms, "
            f"{total / steps:.0f} us a step; ggufc kernels {generated / 1e3:.2f} ms "
            f"({100 * generated / total:.1f}%), other ops {(total - generated) / 1e3:.2f} ms "
            f"({100 * (total - generated) / total:.1f}%)"
        ),
        "",
        "| kernel | GPU ms | share |",
        "|---|---:|---:|",
    ]
    for name, us in top:
        lines.append(f"| {name[:70]} | {us / 1e3:.3f} | {100 * us / total:.1f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-seq", type=int, default=256)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--program", help="a compiled .ggufc (else MODEL is compiled)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="CUDA: GPU time of a decode, ggufc's kernels vs the rest",
    )
    args = parser.parse_args()

    from compiler.architectures import build_model
    from compiler.bundled import resolve_model_path
    from compiler.driver import compile_gguf
    from compiler.generate import generate, program_metadata, tokenizer_from_metadata
    from compiler.gguf_file import open_gguf
    from runtime_schema import load_program

    model_path = resolve_model_path(args.model)
    with tempfile.TemporaryDirectory() as folder:
        program_path = Path(args.program) if args.program else Path(folder) / "model.ggufc"
        if not args.program:
            backends = ("cuda",) if args.device == "cuda" else ()
            compile_gguf(model_path, backends=backends, max_seq=args.max_seq, output=program_path)
        loaded = load_program(program_path)
        metadata = program_metadata(loaded.program)
        tokenizer = tokenizer_from_metadata(metadata)
        prompt = tokenizer.encode(args.prompt)
        eos = None  # time exactly max_tokens tokens on both paths

        model = build_model(open_gguf(model_path)).to(args.device)
        paths = [("ggufc run (program)", None, True)]
        if args.device == "cuda":
            paths.append(("ggufc run, no CUDA graph", None, False))
        paths.append(("eager model", eager_step(model, args.device), False))
        runs = {}
        for name, step, graph in paths:
            options = {"device": args.device, "eos_id": eos, "step": step, "cuda_graph": graph}
            generate(loaded, prompt, 2, **options)  # warm-up
            runs[name] = generate(loaded, prompt, args.max_tokens, **options)
        profile = decode_profile(loaded, prompt) if args.profile and args.device == "cuda" else None

    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(
        f"Machine: {describe_machine()}; device: {device}; 1-minute load average: {os.getloadavg()[0]:.2f}"
    )
    print(
        f"Model: {model_path.name}; prompt {len(prompt)} tokens; {args.max_tokens} tokens "
        f"generated; max_seq {args.max_seq}\n"
    )
    print(
        "| path | prefill tok/s | decode tok/s | prefill s | decode s (steps) | graph capture s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, run in runs.items():
        print(
            f"| {name} | {run.prefill_tokens_per_second:.1f} | {run.decode_tokens_per_second:.2f} "
            f"| {run.prefill_seconds:.3f} | {run.decode_seconds:.3f} ({run.decode_steps}) "
            f"| {run.capture_seconds:.2f} |"
        )
    if profile is not None:
        print(profile)
    program_run, eager_run = runs["ggufc run (program)"], runs["eager model"]
    ratio_prefill = program_run.prefill_tokens_per_second / eager_run.prefill_tokens_per_second
    ratio_decode = program_run.decode_tokens_per_second / eager_run.decode_tokens_per_second
    print(
        f"\nprogram / eager: prefill {ratio_prefill:.2f}x, decode {ratio_decode:.2f}x; "
        f"same tokens: {program_run.tokens == eager_run.tokens}; "
        f"text: {tokenizer.decode(program_run.tokens)!r}"
    )


if __name__ == "__main__":
    main()
