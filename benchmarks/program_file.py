"""Program-file benchmark: what string interning saves, load time, resident memory.

    python benchmarks/program_file.py [--layers 62] [--repeats 5]

On the synthetic layered program (`runtime_schema.synthetic.layered_program`: per layer 7
quantized linears in each of 3 M buckets, sharing one kernel source per (format, kernel
kind, backend) and one header per (format, backend)) it prints markdown tables of:

1. metadata bytes (the flatbuffer: the file minus header and constant segment) written with
   interning and without, and kernel-source bytes stored vs referenced;
2. kernel-source bytes against the number of layers (they must stay flat);
3. load time (`load_program`, with and without the segment CRC) and resident memory
   (anonymous vs file-backed) before and after loading; constants checked to be views of
   the mapped file (zero copy).

Until `codegen` exists the kernel sources are stand-in text of realistic size
(`SOURCE_BYTES`, `HEADER_BYTES`).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from runtime_schema import load_program, save_program
from runtime_schema.reader import read_program_flatbuffer
from runtime_schema.synthetic import HEADER_BYTES, SOURCE_BYTES, layered_program
from runtime_schema.writer import encode_program

KERNEL_SAVING_TARGET = 0.95
LAYER_COUNTS = (1, 8, 31, 62)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {platform.system()} {platform.release()}"
    )


def rss_kib() -> dict[str, int]:
    """RssAnon / RssFile of this process in KiB (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("RssAnon", "RssFile"):
                out[key] = int(line.split()[1])
    return out


def string_figures(program) -> dict:
    interned = encode_program(program)
    plain = encode_program(program, intern_strings=False)
    stats = read_program_flatbuffer(interned.flatbuffer).strings
    return {
        "metadata_interned": len(interned.flatbuffer),
        "metadata_plain": len(plain.flatbuffer),
        "kernel_stored": stats.kernel_stored_bytes,
        "kernel_referenced": stats.kernel_uninterned_bytes,
        "kernel_unique": stats.kernel_unique,
        "kernel_references": stats.kernel_references,
        "strings_unique": stats.unique,
        "strings_references": stats.references,
        "segment": interned.header.segment_size,
    }


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=62)
    parser.add_argument("--repeats", type=int, default=5, help="loads timed (median reported)")
    args = parser.parse_args(argv)

    print(f"# Program file benchmark\n\nMachine: {machine()}\n")
    print(
        f"Synthetic program: {args.layers} layers x 7 linears x 3 M buckets, hidden 256, "
        f"ffn 512, Q4_K attention / Q6_K FFN; stand-in kernel sources of ~{SOURCE_BYTES} B "
        f"and headers of ~{HEADER_BYTES} B per (format, kind, backend).\n"
    )

    program = layered_program(args.layers)
    f = string_figures(program)
    saved_meta = 1 - f["metadata_interned"] / f["metadata_plain"]
    saved_kernel = 1 - f["kernel_stored"] / f["kernel_referenced"]
    print("## Interning\n")
    print(
        table(
            ["figure", "without interning", "with interning", "saved"],
            [
                [
                    "metadata bytes (flatbuffer)",
                    f["metadata_plain"],
                    f["metadata_interned"],
                    f"{saved_meta:.1%}",
                ],
                [
                    "kernel source + header bytes",
                    f["kernel_referenced"],
                    f["kernel_stored"],
                    f"{saved_kernel:.1%}",
                ],
                [
                    "kernel source + header strings",
                    f["kernel_references"],
                    f["kernel_unique"],
                    "",
                ],
                ["all strings", f["strings_references"], f["strings_unique"], ""],
            ],
        )
    )
    verdict = "meets" if saved_kernel >= KERNEL_SAVING_TARGET else "MISSES"
    print(f"\nKernel-source bytes saved: {saved_kernel:.2%} ({verdict} the >= 95% target)\n")

    print("## Kernel-source bytes against layer count\n")
    rows = []
    for layers in LAYER_COUNTS:
        g = string_figures(layered_program(layers, hidden=256, ffn=256, vocab=32))
        rows.append(
            [
                layers,
                g["kernel_references"],
                g["kernel_stored"],
                g["kernel_referenced"],
                g["metadata_interned"],
                g["metadata_plain"],
            ]
        )
    print(
        table(
            [
                "layers",
                "kernel string refs",
                "kernel bytes stored",
                "kernel bytes without interning",
                "metadata bytes",
                "metadata bytes without interning",
            ],
            rows,
        )
    )
    flat = len({r[2] for r in rows}) == 1
    print(
        f"\nKernel bytes stored are {'constant' if flat else 'NOT constant'} in the layer count.\n"
    )

    print("## Load\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.ggufc"
        start = time.perf_counter()
        save_program(program, path)
        save_seconds = time.perf_counter() - start
        size = path.stat().st_size
        timings = {}
        for verify in (True, False):
            samples = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                loaded = load_program(path, verify_segment=verify)
                samples.append(time.perf_counter() - start)
                del loaded
            timings[verify] = statistics.median(samples)
        before = rss_kib()
        loaded = load_program(path, verify_segment=False)
        after = rss_kib()
        views = sum(
            1
            for index, offset, _ in loaded.segment_constants
            if loaded.program.constants[index].data.data_ptr() == loaded.segment_address + offset
        )
        # touching every constant maps its pages: file-backed, not anonymous, memory grows
        checksum = sum(int(c.data.view(torch.uint8).sum()) for c in loaded.program.constants)
        touched = rss_kib()
    print(
        table(
            ["figure", "value"],
            [
                ["file bytes", size],
                ["constant segment bytes", f["segment"]],
                ["save time (s)", f"{save_seconds:.3f}"],
                [
                    f"load time, segment CRC checked (median of {args.repeats}, ms)",
                    f"{timings[True] * 1000:.1f}",
                ],
                [
                    f"load time, segment CRC skipped (median of {args.repeats}, ms)",
                    f"{timings[False] * 1000:.1f}",
                ],
                ["RssAnon growth at load (KiB)", after["RssAnon"] - before["RssAnon"]],
                ["RssFile growth at load (KiB)", after["RssFile"] - before["RssFile"]],
                [
                    "RssAnon growth after reading every constant (KiB)",
                    touched["RssAnon"] - before["RssAnon"],
                ],
                [
                    "RssFile growth after reading every constant (KiB)",
                    touched["RssFile"] - before["RssFile"],
                ],
                [
                    "constants that are views of the mapped file",
                    f"{views} of {len(loaded.segment_constants)} (in segment)",
                ],
            ],
        )
    )
    print(f"\n(byte checksum of all constants: {checksum})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
