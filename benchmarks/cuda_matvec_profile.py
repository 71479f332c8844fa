"""A target for Nsight Compute: a few launches of one CUDA matvec kernel (or of the read floor's
read-only kernel) on one weight shape, so that a profiler reads the counters of one launch that
runs as the benchmarks' do (figures in BENCHMARKS.md and codegen/kernels/cuda/PERFORMANCE.md,
sessions 37-38).

    ncu --clock-control none -k 'regex:ggufc|read_rows' --launch-skip 3 --launch-count 1 \\
        --section SpeedOfLight --section Occupancy --section SchedulerStats \\
        --section WarpStateStats \\
        python benchmarks/cuda_matvec_profile.py Q4_0 4096x14336 [--m 1] [--form FORM]
        [--dtype float16] [--build sm_90a|portable|read-floor]

The kernel is the one the lowering picks for M activation rows (M = 1: the matvec; 2..8:
matvec_batched) or --form, built for the card's architecture-specific target (``sm_90a`` on a
compute capability 9.0 card: the staged kernels' weight groups by tensor map) or its portable one
(``portable``: the same kernels' cp.async copies), or the read floor's kernel
(`cuda_read_floor.py`, ``read-floor``) reading the same bytes.  It runs LAUNCHES times, each on
its own rotated copy of the weights, so the L2 cache (50 MB on an H100, 60 on an H200) never
serves them; skip all but the last with ``--launch-skip``.  The first launch's output
(poisoned with NaN before it) is checked against a float64 reference.  Without a profiler it
prints what it launched and the check's error.  ``--clock-control none`` leaves the card's
clocks as they are, as the device tool's METHOD.md asks; add ``--page source --print-source
sass --section SourceCounters --csv`` for the stall samples of each instruction.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen.cuda_run import CudaKernelRunner
from codegen.cuda_timing import rotated_copies
from codegen.kernels import emitter
from compiler import formats

# the read floor's kernel and launcher (a sibling script)
import cuda_read_floor  # isort: skip

LAUNCHES = 4  # --launch-skip 3 --launch-count 1 profiles the last
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
TOLERANCE = 3e-3  # relative Frobenius error against float64, as the GPU tests' 16-bit bound
BUILDS = ("sm_90a", "portable", "read-floor")


def parse_shape(text: str) -> tuple[int, int]:
    try:
        n, k = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r}: expected NxK, e.g. 4096x14336")
    return n, k


def launch_kernel(fmt: str, n: int, k: int, m: int, dtype: str, form: str | None, build: str):
    """LAUNCHES launches of the picked (or ``form``) kernel; returns its entry and the error of
    the first launch against float64."""
    kind = "matvec" if m == 1 else "matvec_batched"
    geometry = form or emitter.pick_geometry("cuda", fmt, kind, dtype, n, k, m)
    kernel = emitter.emit("cuda", fmt, kind, dtype, geometry)
    runner = CudaKernelRunner(arch_specific=build == "sm_90a")
    generator = torch.Generator().manual_seed(0)
    blocks = formats.random_blocks(fmt, n, k, generator=generator).cuda()
    weights = rotated_copies(blocks)
    torch_dtype = DTYPES[dtype]
    reference = torch.randn(m, k, generator=generator)
    xs = [reference.to(torch_dtype).cuda()] + [
        torch.randn(m, k, device="cuda", dtype=torch_dtype) for _ in weights[1:]
    ]
    outs = [torch.empty(m, n, device="cuda", dtype=torch_dtype) for _ in weights]
    expected = xs[0].cpu().double() @ formats.dequantize(blocks.cpu(), fmt, torch.float64).T
    outs[0].fill_(float("nan"))
    for i in range(LAUNCHES):
        j = i % len(weights)
        runner.linear(kernel, xs[j], weights[j], None, n, k, out=outs[j])
        if i == 0:
            error = float((outs[0].cpu().double() - expected).norm() / expected.norm())
    torch.cuda.synchronize()
    return kernel.entry, error


def launch_read_floor(fmt: str, n: int, k: int) -> str:
    """LAUNCHES launches of the read floor's kernel over the packed bytes of an N x K ``fmt``
    weight, dependent where the device takes them (`cuda_read_floor.ReadLaunches`)."""
    launcher = cuda_read_floor.dependent_launcher()
    reads = cuda_read_floor.ReadLaunches(cuda_read_floor.read_kernel(), launcher, fmt, n, k)
    launch = reads.dependent if launcher is not None else reads.plain
    for i in range(LAUNCHES):
        launch(i % len(reads.copies))
    torch.cuda.synchronize()
    return "read_rows"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("format", choices=sorted(formats.FORMATS))
    parser.add_argument("shape", type=parse_shape, help="N x K of the weight, e.g. 4096x14336")
    parser.add_argument("--m", type=int, default=1, help="activation rows, 1..8 (default 1)")
    parser.add_argument("--form", help="a geometry of the kernel instead of the lowering's pick")
    parser.add_argument("--dtype", default="float16", choices=sorted(DTYPES))
    parser.add_argument("--build", default="sm_90a", choices=BUILDS)
    args = parser.parse_args()
    n, k = args.shape
    if not 1 <= args.m <= emitter.MATVEC_MMA_MAX_M:
        parser.error(f"--m {args.m}: expected 1..{emitter.MATVEC_MMA_MAX_M}")
    if k % formats.FORMATS[args.format].block_weights:
        block = formats.FORMATS[args.format].block_weights
        parser.error(f"{args.format} rows of K = {k}: expected a multiple of {block}")
    kind = "matvec" if args.m == 1 else "matvec_batched"
    if args.form and args.form not in emitter.geometries("cuda", args.format, kind, args.dtype):
        known = ", ".join(emitter.geometries("cuda", args.format, kind, args.dtype))
        parser.error(
            f"--form {args.form}: not a {kind} geometry of {args.format}; expected {known}"
        )
    if not torch.cuda.is_available():
        print("cuda_matvec_profile.py: needs a CUDA device", file=sys.stderr)
        return 2
    where = f"{args.format} {n}x{k}"
    if args.build == "read-floor":
        entry = launch_read_floor(args.format, n, k)
        print(f"{torch.cuda.get_device_name()}: {LAUNCHES} launches of {entry} over {where}")
        return 0
    entry, error = launch_kernel(args.format, n, k, args.m, args.dtype, args.form, args.build)
    print(
        f"{torch.cuda.get_device_name()}: {LAUNCHES} launches of {entry} ({args.build}) on "
        f"{where}, M = {args.m}, {args.dtype}; relative error of the first {error:.1e}"
    )
    if not error < TOLERANCE:
        print(f"cuda_matvec_profile.py: error {error:.2e} over {TOLERANCE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
