"""The matvec_batched kernels (M = 2..8 activation rows, each weight block read once for all of
them) against the M = 1 memory floor (issue 8: <= 1.4x).

    python benchmarks/cuda_matvec_batched.py [--formats Q4_0,Q8_0] [--ms 2,4,8]
        [--shapes 4096x14336,14336x4096] [--dtype float16] [--out FILE.md]
        [--warps W --min-blocks B]

Each shape and M runs the kernel in the geometry lowering picks (`pick_geometry` with that M:
every format with 16-bit activations the mma matvec up to 8 rows, above that the
split-K matmul for the formats that have it, else the tensor-core batched matvec), and as the baseline,
in the same run, the kernel lowering would pick without the mma geometry (the split-K matmul)
where that differs, else the default one where the pick is not the default; for the other
forms of the staged mma matvec (mma_wide: 32 weight rows a block; mma_two_warps ..
mma_six_warps: 2, 4, 5 or 6 warps a block) its 16-row form of 8 warps (mma), and for the staged forms of Q4_K / Q5_K their loaded
form (mma_loaded), which itself runs against "mma".

Floor: the packed weight bytes divided by the device-copy bandwidth measured in this run
(bytes read + written per second), as benchmarks/cuda_matmul.py's M = 1 floor.  Timing as
there (codegen.cuda_timing): device events, median of batches, weights rotated past the 50 MB
L2, random inputs.  Each format's kernel is first checked against a float64 reference on a
ragged shape (outputs poisoned with NaN before the launch); the relative error is printed.

``--warps`` and ``--min-blocks`` override the tensor-core kernel's warps a block and blocks
an SM (`TENSOR_CORE_MATVEC_WARPS`, `TENSOR_CORE_MATVEC_MIN_BLOCKS_PER_SM` in
codegen/kernels/emitter.py), to compare settings; run each setting in a process of its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen.cuda_run import CudaKernelRunner
from codegen.cuda_timing import copy_bandwidth, rotated_copies, time_launches
from codegen.kernels import FORMAT_NAMES, emitter
from compiler import formats
from compiler.cli.tune_cmd import parse_shapes

TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
CHECK_SHAPE = (131, 2048)  # ragged N: the last block of weight rows is partly empty


def check(runner, kernel, fmt: str, m: int, dtype: torch.dtype, generator) -> float:
    """Relative error of the kernel against a float64 reference at CHECK_SHAPE."""
    n, k = CHECK_SHAPE
    blocks = formats.random_blocks(fmt, n, k, generator=generator)
    x = torch.randn(m, k, generator=generator).to(dtype)
    ref = x.double() @ formats.dequantize(blocks, fmt, torch.float64).T
    out = torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
    runner.linear(kernel, x.cuda(), blocks.cuda(), None, n, k, out=out)
    return float((out.cpu().double() - ref).norm() / ref.norm())


def mma_baseline(fmt: str, geometry: str, dtype: str, otherwise: str) -> str:
    """The baseline of an mma matvec geometry: the K-quants' loaded form where the format has
    one and the pick is a staged form, else the staged 16-row form of 8 warps ("mma"); for
    "mma" itself of the other formats ``otherwise``."""
    loaded = emitter.MATVEC_MMA_LOADED
    if geometry != loaded and loaded in emitter.geometries("cuda", fmt, "matvec_batched", dtype):
        return loaded
    return "mma" if geometry != "mma" else otherwise


def time_kernel(runner, kernel, fmt, n, k, m, dtype, generator) -> tuple[float, int]:
    """(microseconds a launch, packed weight bytes)."""
    blocks = formats.random_blocks(fmt, n, k, generator=generator).cuda()
    copies = rotated_copies(blocks)
    xs = [torch.randn(m, k, device="cuda", dtype=dtype) for _ in copies]
    outs = [torch.empty(m, n, device="cuda", dtype=dtype) for _ in copies]
    us = time_launches(
        lambda i: runner.linear(kernel, xs[i], copies[i], None, n, k, out=outs[i]), len(copies)
    )
    return us, blocks.numel()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default=",".join(FORMAT_NAMES))
    parser.add_argument("--ms", default="2,4,8", help="activation rows, comma-separated")
    parser.add_argument(
        "--shapes",
        type=parse_shapes,
        default=((4096, 14336), (14336, 4096)),
        help="N x K, comma-separated (default: 4096x14336,14336x4096)",
    )
    parser.add_argument("--dtype", default="float16", choices=sorted(TORCH_DTYPES))
    parser.add_argument("--warps", type=int, help="override the tensor-core kernel's warps a block")
    parser.add_argument("--min-blocks", type=int, help="override its blocks an SM")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("cuda_matvec_batched.py: needs a CUDA device", file=sys.stderr)
        return 2
    if args.warps:
        emitter.TENSOR_CORE_MATVEC_WARPS = args.warps
    if args.min_blocks:
        emitter.TENSOR_CORE_MATVEC_MIN_BLOCKS_PER_SM = args.min_blocks
    emitter.emit.cache_clear()
    dtype = TORCH_DTYPES[args.dtype]
    ms = [int(m) for m in args.ms.split(",")]
    runner = CudaKernelRunner()
    generator = torch.Generator().manual_seed(0)
    bandwidth = copy_bandwidth()
    lines = [
        (
            f"Card: {torch.cuda.get_device_name()}; device copy {bandwidth / 1e9:.0f} GB/s; "
            f"{args.dtype}; tensor-core kernel: {emitter.TENSOR_CORE_MATVEC_WARPS} warps a block, "
            f"{emitter.TENSOR_CORE_MATVEC_MIN_BLOCKS_PER_SM} blocks an SM."
        ),
        "",
        (
            "| format | N x K | geometry | M | us | M = 1 floor | us / floor "
            "| baseline geometry | baseline us | rel. err (131x2048) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fmt in args.formats.split(","):
        for n, k in args.shapes:
            # the pick for any M: what a shape without the mma geometry runs
            any_m = emitter.pick_geometry("cuda", fmt, "matvec_batched", args.dtype, n, k)
            for m in ms:
                geometry = emitter.pick_geometry("cuda", fmt, "matvec_batched", args.dtype, n, k, m)
                kernel = emitter.emit("cuda", fmt, "matvec_batched", args.dtype, geometry)
                error = check(runner, kernel, fmt, m, dtype, generator)
                us, packed = time_kernel(runner, kernel, fmt, n, k, m, dtype, generator)
                floor = packed / bandwidth * 1e6
                base_geometry, base_us = "-", "-"
                if geometry != emitter.DEFAULT_GEOMETRY:
                    base_geometry = any_m if any_m != geometry else emitter.DEFAULT_GEOMETRY
                    if geometry in emitter.MATVEC_MMA_GEOMETRIES:
                        base_geometry = mma_baseline(fmt, geometry, args.dtype, base_geometry)
                    baseline = emitter.emit(
                        "cuda", fmt, "matvec_batched", args.dtype, base_geometry
                    )
                    base_us = (
                        f"{time_kernel(runner, baseline, fmt, n, k, m, dtype, generator)[0]:.1f}"
                    )
                lines.append(
                    f"| {fmt} | {n}x{k} | {geometry} | {m} | {us:.1f} | {floor:.1f} "
                    f"| {us / floor:.2f} | {base_geometry} | {base_us} | {error:.1e} |"
                )
            torch.cuda.empty_cache()
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
