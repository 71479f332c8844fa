"""Dequantization throughput: ggufc's ``formats.dequantize`` against ``gguf.quants.dequantize``
(the PyPI gguf package) on the same random valid blocks, per format.

Throughput is MB/s of packed blocks read (1 MB = 1e6 bytes), median of ``--runs`` timed runs
of each, in alternating rounds (so both see the same load) with a warm-up run per round.
Prints the machine, a markdown table of wall-clock throughput, and one per CPU-second.
``formats.dequantize`` spreads a call over as many threads as torch may use (``--threads``,
see ``compiler.formats.parallel``); gguf-py runs on one.

    python benchmarks/dequantize_throughput.py [--rows 1024] [--k 4096] [--runs 5] [--threads N]

The script sets OMP_WAIT_POLICY=PASSIVE (unless already set) before importing torch: with
the default policy idle OpenMP workers spin, which on a busy machine steals the core the
measured thread needs.

``--allocator pinned`` (the default) fixes glibc malloc's thresholds for the process before
the benchmark's data is made: from then on blocks up to MMAP_THRESHOLD_BYTES come from the
heap and the heap is not trimmed.  With glibc's adaptive thresholds whether a call's large
temporaries reuse heap pages or take fresh mappings (a page fault each 4 KiB on first touch,
~1 us on this VM) depends on what the process freed before, so the same gguf-py Q8_0 call ran
at 420 MB/s in one process and at 1600 in the next (sessions 19-21).  Pinned, neither side
pays page faults a call; ``--allocator glibc`` leaves the adaptive thresholds.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from gguf import GGMLQuantizationType
from gguf import quants as gguf_quants
from machine_info import cpu_model

from compiler import formats

MEGABYTE = 1e6
# glibc mallopt parameters (malloc.h) and the largest mmap threshold it takes on 64 bits
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 1 << 30


def pin_allocator() -> str:
    """Fixes glibc's mmap and trim thresholds (see the module docstring); what was done."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallopt"):
        return "glibc (no mallopt: thresholds left adaptive)"
    pinned = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and libc.mallopt(
        M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES
    )
    if not pinned:
        return "glibc (mallopt refused: thresholds left adaptive)"
    return f"pinned (mmap threshold {MMAP_THRESHOLD_BYTES >> 20} MiB, no trimming)"


def timings_in_rounds(ours, theirs, runs: int, rounds: int) -> dict[str, dict[str, list]]:
    """Wall and CPU seconds of ``runs`` back-to-back calls of each, in ``rounds`` alternating
    rounds so that both see the same machine load over time; one warm-up call first in each
    round (the other's big allocations in between change what the allocator must map)."""
    timings = {name: {"wall": [], "cpu": []} for name in ("ours", "theirs")}
    for _ in range(rounds):
        for name, run in (("ours", ours), ("theirs", theirs)):
            run()
            for _ in range(runs):
                wall, cpu = time.perf_counter(), time.process_time()
                run()
                timings[name]["wall"].append(time.perf_counter() - wall)
                timings[name]["cpu"].append(time.process_time() - cpu)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--k", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--formats", default=",".join(formats.FORMATS))
    parser.add_argument(
        "--allocator",
        choices=("pinned", "glibc"),
        default="pinned",
        help="fix malloc's thresholds for both sides (default), or leave glibc's adaptive ones",
    )
    args = parser.parse_args()
    allocator = pin_allocator() if args.allocator == "pinned" else "glibc (adaptive thresholds)"
    if args.threads:
        torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    print(
        f"machine: {cpu_model()}, nproc {os.cpu_count()}, torch {torch.__version__} "
        f"threads {torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"load average {os.getloadavg()[0]:.1f}, allocator {allocator}"
    )
    print(
        f"data: {args.rows} x {args.k} weights per format, median of {args.rounds} rounds "
        f"of {args.runs} runs\n"
    )
    wall_rows, cpu_rows = [], []
    for fmt in args.formats.split(","):
        blocks = formats.random_blocks(fmt, args.rows, args.k, generator=generator)
        packed = blocks.numpy()
        qtype = GGMLQuantizationType[fmt]
        with np.errstate(all="ignore"):
            timings = timings_in_rounds(
                lambda b=blocks, f=fmt: formats.dequantize(b, f),
                lambda p=packed, q=qtype: gguf_quants.dequantize(p, q),
                args.runs,
                args.rounds,
            )
        megabytes = blocks.numel() / MEGABYTE
        for rows, clock in ((wall_rows, "wall"), (cpu_rows, "cpu")):
            ours = megabytes / statistics.median(timings["ours"][clock])
            theirs = megabytes / statistics.median(timings["theirs"][clock])
            rows.append(f"| {fmt} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.1f}x |")
    print("| format | ours MB/s | gguf-py MB/s | ratio |")
    print("|---|---:|---:|---:|")
    print("\n".join(wall_rows))
    print("\nper CPU-second of the process (all threads), less sensitive to other load:\n")
    print("| format | ours MB/cpu-s | gguf-py MB/cpu-s | ratio |")
    print("|---|---:|---:|---:|")
    print("\n".join(cpu_rows))


if __name__ == "__main__":
    main()
