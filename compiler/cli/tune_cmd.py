"""`ggufc tune [--device cuda] [--out tuning.json] [...]`: choose split-dynamic-m's M buckets.

Times the generated matvec, matvec_batched and matmul kernels of each format over M on this
machine's GPU, chooses where one overtakes the next, prints a table of the choices and writes
them (with every timing) to a JSON file for `ggufc compile --tuning`.  A progress bar goes to
stderr.  See `compiler.tuning` for what is measured and how the thresholds are chosen.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_OUT = "tuning.json"
# Defaults repeated from compiler.tuning so `ggufc --help` does not import torch; a test
# keeps them in step.
DEFAULT_SHAPES_TEXT = "4096x4096,14336x4096,4096x14336"
DEFAULT_M_MAX = 64
M_MAX_LIMIT = 256


def _formats(text: str) -> tuple[str, ...]:
    from codegen.kernels.emitter import FORMAT_NAMES

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in FORMAT_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(unknown) or '(none)'}; choose from "
            f"{', '.join(FORMAT_NAMES)}"
        )
    return names


def parse_shapes(text: str) -> tuple[tuple[int, int], ...]:
    """``NxK,NxK,...`` -> ((N, K), ...); argparse.ArgumentTypeError naming a bad item."""
    shapes = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
            raise argparse.ArgumentTypeError(
                f"shape {item.strip()!r}: expected NxK with positive integers, e.g. 4096x14336"
            )
        shapes.append((int(parts[0]), int(parts[1])))
    return tuple(shapes)


def _m_max(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= M_MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"expected an integer in 1..{M_MAX_LIMIT}, got {text!r}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "tune",
        help="time the CUDA kernels over M and choose split-dynamic-m's buckets",
        description="Time the generated matvec, matvec_batched and matmul kernels of each "
        "format at M = 1..16, 24, 32, 48, 64, ... rows on this machine's GPU, choose the M "
        "thresholds where one kernel overtakes the next, print them and write them (with "
        "every timing) to a JSON file for `ggufc compile --tuning`.  With 16-bit activations "
        "it also times a matmul's two routes (the GGUF matmul; dequantize, then cuBLAS) at M "
        "= 64..1024 and fits the lowering's route model to this card, which picks where the "
        "dense route takes over per format and weight shape, and records the card's shared "
        "memory a block, so that the lowering leaves out geometries needing more (the "
        "256-row matmul tile's ~200-220 KB and Q8_0's wide batched matvec's 164 KB on an "
        "A100's 163 KB); every kernel is timed in the geometries the card holds.  Takes a "
        "few minutes with the "
        "defaults.  Needs an NVIDIA GPU and CuPy (pip install 'ggufc[cuda]').",
    )
    parser.add_argument(
        "--device",
        choices=("cuda",),
        default="cuda",
        help="the device whose kernels are timed: cuda only (the default); --device cpu is "
        "not meaningful, as the CPU reference interpreter has no kernels to choose between",
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="FILE.json",
        help=f"the tuning file to write, replaced atomically (default: {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--formats",
        type=_formats,
        default=None,
        metavar="LIST",
        help="formats to time, comma-separated (default: every format with kernels)",
    )
    parser.add_argument(
        "--shapes",
        type=parse_shapes,
        default=None,
        metavar="NxK,...",
        help=f"weight shapes (rows x columns) to time, comma-separated; each format's choice "
        f"weighs them alike (default: {DEFAULT_SHAPES_TEXT})",
    )
    parser.add_argument(
        "--m-max",
        type=_m_max,
        default=DEFAULT_M_MAX,
        metavar="N",
        help=f"largest M to time, at most {M_MAX_LIMIT}; thresholds are chosen among the timed "
        f"M and matmul serves every M above the last one (default: {DEFAULT_M_MAX})",
    )
    parser.add_argument(
        "--dtype",
        choices=("float16", "bfloat16", "float32"),
        default="float16",
        help="activation dtype of the timed kernels; the file sets the buckets of linears "
        "with these activations (float32 ones have their own, split-dynamic-m's "
        "float32-buckets=) (default: float16)",
    )
    parser.add_argument(
        "--no-routes",
        action="store_true",
        help="time the bucket kernels only: no route model in the file (compile then keeps "
        "the built-in H100 one)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from compiler.tuning import DEFAULT_SHAPES, TuningError, summary_table, tune

    out = Path(args.out)
    # fail before minutes of measuring, not after
    if not out.parent.is_dir():
        raise TuningError(f"{out}: the folder {out.parent} does not exist")
    if out.is_dir():
        raise TuningError(f"{out}: is a folder; --out names the tuning file to write")
    tuning = tune(
        formats=args.formats,
        shapes=DEFAULT_SHAPES if args.shapes is None else args.shapes,
        m_max=args.m_max,
        dtype=args.dtype,
        progress=not args.no_progress,
        routes=not args.no_routes,
    )
    try:
        tuning.save(out)
    except OSError as exc:
        raise TuningError(f"{out}: cannot write the tuning file: {exc.strerror}") from None
    sys.stdout.write(summary_table(tuning) + "\n")
    sys.stderr.write(f"wrote {out}\n")
    return 0
