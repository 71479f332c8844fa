"""Compile time of a GGUF model by stage (load, export, passes, codegen, write).

    python benchmarks/compile_time.py [MODEL] [--max-seq 1024] [--weights embed]

MODEL defaults to the bundled Gemma 3 270M Q4_K_M.  One `compile_gguf` run, timed by the
driver's stages, then the export stage once more split into its two parts (`torch.export`
tracing, and unlifting into a GraphProgram), since export dominates.  Prints markdown tables
with the machine named and the load average at the start (the figures move with it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spin-waiting threads on a shared host

import torch
from machine_info import describe_machine

from compiler.driver import DEFAULT_MAX_SEQ, compile_gguf

DEFAULT_MODEL = "gemma3-270m"
TARGET_SECONDS = 30.0


def export_split(model_path: Path, max_seq: int) -> dict[str, float]:
    from compiler.architectures import build_model
    from compiler.export import EXAMPLE_TOKENS, dynamic_shapes, example_inputs
    from compiler.gguf_file import open_gguf
    from compiler.ir.program import GraphProgram

    model = build_model(open_gguf(model_path))
    inputs = example_inputs(model, max_seq, EXAMPLE_TOKENS)
    shapes = dynamic_shapes(inputs, max_seq)
    start = time.perf_counter()
    with torch.no_grad():
        exported = torch.export.export(model, inputs, dynamic_shapes=shapes)
    traced = time.perf_counter()
    GraphProgram.from_exported(exported)
    done = time.perf_counter()
    return {"torch.export.export": traced - start, "GraphProgram.from_exported": done - traced}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    parser.add_argument("--max-seq", type=int, default=DEFAULT_MAX_SEQ)
    parser.add_argument("--weights", choices=("embed", "external"), default="embed")
    args = parser.parse_args()

    from compiler.bundled import resolve_model_path

    model_path = resolve_model_path(args.model)
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "model.ggufc"
        result = compile_gguf(model_path, max_seq=args.max_seq, weights=args.weights, output=output)
        size = output.stat().st_size
    split = export_split(model_path, args.max_seq)

    print(f"Machine: {describe_machine()}; 1-minute load average at start: {load_average:.2f}")
    print(
        f"Model: {model_path.name}, max_seq {args.max_seq}, weights {args.weights}, "
        f"program {size / 2**20:.1f} MiB\n"
    )
    print("| stage | seconds | share |")
    print("|---|---:|---:|")
    total = result.total_seconds
    for stage, seconds in result.stage_seconds.items():
        print(f"| {stage} | {seconds:.2f} | {seconds / total:.0%} |")
    verdict = "within" if total < TARGET_SECONDS else "over"
    print(f"| **total** | **{total:.2f}** | {verdict} the {TARGET_SECONDS:.0f} s target |\n")
    print("| export, split (second run) | seconds |")
    print("|---|---:|")
    for part, seconds in split.items():
        print(f"| {part} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
