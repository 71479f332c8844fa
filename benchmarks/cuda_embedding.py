"""Embedding gather (issue 8: >= 80% of copy bandwidth on the rows read), per format.

    python benchmarks/cuda_embedding.py [--formats Q8_0,Q6_K] [--rows 32768] [--out FILE.md]

A vocabulary-sized table (262144 x 640 for the 32-weight formats, 262144 x 768 for the
K-quants, whose blocks are 256 weights) gathers ``--rows`` random token rows into float16.
Bandwidth = (packed bytes of the rows read + float16 bytes written) / time, against two
device-to-device copies measured in the same run (bytes read + written per second): one of
1 GiB (the copy bandwidth, as the memory floor of benchmarks/cuda_matmul.py), and one that
moves as many bytes as the gather (half read, half written), which pays the same fixed cost
of a launch of that size (filling and draining the memory pipeline: a 42 MiB copy reaches
~90% of the 1 GiB copy's rate on an H100).  Timing as in benchmarks/cuda_matmul.py
(codegen.cuda_timing): device events, median of batches, tables rotated past the 50 MB L2,
random rows (never zeros).  The output is checked against the format's dequantize.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen.cuda_run import CudaKernelRunner
from codegen.cuda_timing import copy_bandwidth, rotated_copies, time_launches
from codegen.kernels import FORMAT_NAMES, emit
from compiler import formats

VOCAB = 262144
WIDTH = {"Q4_K": 768, "Q5_K": 768, "Q6_K": 768}  # K-quant blocks hold 256 weights
DEFAULT_WIDTH = 640


def bench(runner, fmt: str, rows: int, generator: torch.Generator) -> dict:
    k = WIDTH.get(fmt, DEFAULT_WIDTH)
    kernel = emit("cuda", fmt, "embedding", "float16")
    table = formats.random_blocks(fmt, VOCAB, k, generator=generator).cuda()
    tables = rotated_copies(table)
    copies = len(tables)
    indices = [torch.randint(0, VOCAB, (rows,), generator=generator).cuda() for _ in range(copies)]
    outs = [torch.empty(rows, k, dtype=torch.float16, device="cuda") for _ in range(copies)]
    us = time_launches(
        lambda i: runner.embedding(kernel, tables[i], indices[i], VOCAB, k, out=outs[i]), copies
    )
    moved = rows * (table.shape[1] + 2 * k)  # packed rows read + float16 values written
    half = moved // 2
    sources = [
        torch.randint(0, 255, (half,), dtype=torch.uint8, device="cuda") for _ in range(copies)
    ]
    targets = [torch.empty_like(source) for source in sources]
    copy_us = time_launches(lambda i: targets[i].copy_(sources[i]), copies)
    picked = indices[0].cpu()
    ref = formats.dequantize(table[picked].cpu(), fmt, torch.float32)
    error = float((outs[0].float().cpu() - ref).norm() / ref.norm())
    return {"format": fmt, "k": k, "us": us, "copy_us": copy_us, "bytes": moved, "error": error}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default=",".join(FORMAT_NAMES))
    parser.add_argument("--rows", type=int, default=32768, help="token rows gathered per call")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("cuda_embedding.py: needs a CUDA device", file=sys.stderr)
        return 2
    runner = CudaKernelRunner()
    generator = torch.Generator().manual_seed(0)
    bandwidth = copy_bandwidth()
    lines = [
        (
            f"Card: {torch.cuda.get_device_name()}; device copy {bandwidth / 1e9:.0f} GB/s "
            f"(read + write); {args.rows} random rows of a {VOCAB}-row table, float16 out."
        ),
        "",
        (
            "| format | K | us | GB/s (rows read + written) | share of copy bandwidth "
            "| copy of the same bytes, us | share of its rate | rel. err |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for fmt in args.formats.split(","):
        r = bench(runner, fmt, args.rows, generator)
        gbs = r["bytes"] / (r["us"] * 1e-6)
        lines.append(
            f"| {fmt} | {r['k']} | {r['us']:.1f} | {gbs / 1e9:.0f} | {100 * gbs / bandwidth:.0f}% "
            f"| {r['copy_us']:.1f} | {100 * r['copy_us'] / r['us']:.0f}% | {r['error']:.1e} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
