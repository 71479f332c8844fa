"""Time to open a GGUF file: ggufc's `open_gguf` against `gguf.GGUFReader`.

"Open" is what a front end needs before touching weights: parse the header, list every tensor
(name, format, shape, offset) and read the scalar metadata.  Each run is a fresh open of the same
file in this process (the page cache is warm after the first, for both readers alike).

    python benchmarks/gguf_open.py [FILE_OR_BUNDLED_NAME] [--runs N] [--reference-runs M]

Prints a markdown table (median and min seconds per open, and the ratio of medians), with the
machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

from machine_info import describe_machine

DEFAULT_MODEL = "gemma3-270m"
DEFAULT_RUNS = 21
DEFAULT_REFERENCE_RUNS = 3


def open_with_ggufc(path: str) -> tuple[int, int]:
    from compiler import open_gguf

    with open_gguf(path) as gguf_file:
        tensors = [(t.name, t.format, t.shape, t.offset) for t in gguf_file.tensors.values()]
        scalars = {
            k: v for k, v in gguf_file.metadata.items() if isinstance(v, (int, float, str, bool))
        }
    return len(tensors), len(scalars)


def open_with_gguf_reader(path: str) -> tuple[int, int]:
    import gguf

    reader = gguf.GGUFReader(path)
    tensors = [(t.name, t.tensor_type.name, tuple(t.shape), t.data_offset) for t in reader.tensors]
    scalars = {k: f.contents() for k, f in reader.fields.items() if len(f.data) == 1}
    return len(tensors), len(scalars)


def time_runs(open_file: Callable[[str], tuple[int, int]], path: str, runs: int) -> list[float]:
    open_file(path)  # warm-up: imports and page cache
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        open_file(path)
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--reference-runs", type=int, default=DEFAULT_REFERENCE_RUNS)
    args = parser.parse_args(argv)

    from importlib.metadata import version

    from compiler.bundled import resolve_model_path

    path = str(resolve_model_path(args.model))
    ours = time_runs(open_with_ggufc, path, args.runs)
    reference = time_runs(open_with_gguf_reader, path, args.reference_runs)
    assert open_with_ggufc(path)[0] == open_with_gguf_reader(path)[0]

    ratio = statistics.median(reference) / statistics.median(ours)
    print(f"GGUF open time: `{os.path.basename(path)}` ({os.path.getsize(path):,} bytes)\n")
    print(f"machine: {describe_machine()}; gguf {version('gguf')}, numpy {version('numpy')}\n")
    print("| reader | runs | median (s) | min (s) |")
    print("|---|---:|---:|---:|")
    print(f"| ggufc `open_gguf` | {len(ours)} | {statistics.median(ours):.4f} | {min(ours):.4f} |")
    print(
        f"| `gguf.GGUFReader` | {len(reference)} | {statistics.median(reference):.3f} "
        f"| {min(reference):.3f} |"
    )
    print(f"\nspeed-up (ratio of medians): **{ratio:.0f}x**")
    return 0


if __name__ == "__main__":
    sys.exit(main())
