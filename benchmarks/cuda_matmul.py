"""Generated GGUF CUDA kernels vs the memory floor and cuBLAS half precision.

    python benchmarks/cuda_matmul.py [--formats Q4_0,Q4_K] [--out results.md]

Per format: M=1 on five weight shapes (N x K), then M=4 (matvec_batched), M=512 and 2048 (matmul)
on 4096 x 14336.  Beside each time:

* floor: bytes the kernel must move (packed weights + activations + output) divided by the
  device-copy bandwidth measured in this run (bytes read + written per second);
* cuBLAS: torch's float16 matmul on the dequantized weights (same shapes);
* portable: for the matmul, the same source compiled for the device's portable target
  (mma.sync; on an H100 the timed kernel is its sm_90a build, which runs wgmma);
* route (M = 512, 2048): what the lowering runs there (`codegen.dense_linear`): the matmul
  kernel, or the dense route (the dequantize kernel into a float16 weight, then cuBLAS
  through ``torch.nn.functional.linear``, as the program's aten::linear runs); the ggufc
  column is that route's time, and both routes' times are in their own columns;
* plain launch: the same kernel launched without programmatic dependent launch.  ggufc's
  kernels are launched dependently where the device allows it (compute capability 9.0+,
  `runtime_schema.cuda_launcher`), as a program runs them: each starts its weight loads
  during the previous kernel's last wave and reads x only after that kernel has finished.
  The ggufc column times back-to-back launches that way (a layer chain), this one without.

Timing: device events around a batch of launches queued behind a device-side sleep, so the
host's launch cost does not show; warm-up first, median of several batches.  Weights and
activations rotate over enough copies that the 50 MB L2 cache cannot serve them; every input
is random (never zeros).  Prints a markdown table naming the card.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen import dense_linear
from codegen.cuda_run import CudaKernelRunner
from codegen.cuda_timing import copy_bandwidth, rotated_copies, time_launches
from codegen.kernels import FORMAT_NAMES, emit, pick_geometry
from compiler import formats

M1_SHAPES = ((4096, 4096), (14336, 4096), (4096, 14336), (5376, 21504), (262144, 640))
BATCH_SHAPE = (4096, 14336)
BATCH_MS = (4, 512, 2048)
KIND_FOR_M = {1: "matvec", 4: "matvec_batched", 512: "matmul", 2048: "matmul"}


def random_blocks_cuda(fmt: str, n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    return formats.random_blocks(fmt, n, k, generator=generator).cuda()


def bench_case(runner, portable_runner, plain_runner, fmt, n, k, m, bandwidth, generator):
    kind = KIND_FOR_M[m]
    # the geometry the lowering would pick for this weight and M
    geometry = pick_geometry("cuda", fmt, kind, "float16", n, k, m)
    kernel = emit("cuda", fmt, kind, "float16", geometry)
    blocks = random_blocks_cuda(fmt, n, k, generator)
    packed = blocks.numel()
    weight_copies = rotated_copies(blocks)
    copies = len(weight_copies)
    xs = [torch.randn(m, k, device="cuda", dtype=torch.float16) for _ in range(copies)]
    outs = [torch.empty(m, n, device="cuda", dtype=torch.float16) for _ in range(copies)]

    def ours(i):
        runner.linear(kernel, xs[i], weight_copies[i], None, n, k, out=outs[i])

    ggufc_us = time_launches(ours, copies)

    def plain(i):
        plain_runner.linear(kernel, xs[i], weight_copies[i], None, n, k, out=outs[i])

    plain_us = time_launches(plain, copies) if runner.dependent_launch else ggufc_us
    portable_us = None
    if kind == "matmul":

        def portable(i):
            portable_runner.linear(kernel, xs[i], weight_copies[i], None, n, k, out=outs[i])

        portable_us = time_launches(portable, copies)
    # correctness of the timed configuration (the full check lives in the GPU tests)
    ref = xs[0].float() @ formats.dequantize(blocks.cpu(), fmt, torch.float32).cuda().T
    error = float((outs[0].float() - ref).norm() / ref.norm())
    route, matmul_us, dense_us = kind, None, None
    if kind == "matmul" and dense_linear.serves(fmt, "float16", n, k):
        dequantize = emit("cuda", fmt, "dequantize", "float16")
        weight = torch.empty(n, k, dtype=torch.float16, device="cuda")

        def dense(i):
            return runner.dense_linear(dequantize, xs[i], weight_copies[i], None, n, k, weight)

        matmul_us, dense_us = ggufc_us, time_launches(dense, copies)
        dense_error = float((dense(0).float() - ref).norm() / ref.norm())
        if dense_linear.matmul_route(fmt, "float16", n, k, m) == dense_linear.DENSE_ROUTE:
            route, ggufc_us, error = dense_linear.DENSE_ROUTE, dense_us, dense_error
    weight_copies.clear()  # free the copies before the dense ones are made

    dense = formats.dequantize(blocks.cpu(), fmt, torch.float16).cuda()
    dense_list = rotated_copies(dense)
    dense_copies = len(dense_list)
    dense_outs = [torch.empty(m, n, device="cuda", dtype=torch.float16) for _ in range(copies)]

    def cublas(i):
        torch.matmul(xs[i % copies], dense_list[i].T, out=dense_outs[i % copies])

    cublas_us = time_launches(cublas, dense_copies)
    dense_list.clear()
    floor_bytes = packed + 2 * (m * k + m * n)
    floor_us = floor_bytes / bandwidth * 1e6
    return {
        "format": fmt,
        "shape": f"{n}x{k}",
        "m": m,
        "kind": route,
        "ggufc_us": ggufc_us,
        "matmul_us": matmul_us,
        "dense_us": dense_us,
        "plain_us": plain_us,
        "portable_us": portable_us,
        "floor_us": floor_us,
        "cublas_us": cublas_us,
        "error": error,
    }


def markdown(rows, card, bandwidth) -> str:
    lines = [
        (
            f"Card: {card}; device copy {bandwidth / 1e9:.0f} GB/s (read + write); "
            "float16 activations; times in us (median)."
        ),
        "",
        (
            "| format | N x K | M | kernel | ggufc | floor | ggufc/floor | cuBLAS f16 "
            "| ggufc/cuBLAS | matmul kernel | dense route | plain launch | portable build "
            "| rel. err |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(value) -> str:
        return "" if value is None else f"{value:.1f}"

    for r in rows:
        lines.append(
            f"| {r['format']} | {r['shape']} | {r['m']} | {r['kind']} | {r['ggufc_us']:.1f} | "
            f"{r['floor_us']:.1f} | {r['ggufc_us'] / r['floor_us']:.2f} | {r['cublas_us']:.1f} | "
            f"{r['ggufc_us'] / r['cublas_us']:.2f} | {cell(r['matmul_us'])} | "
            f"{cell(r['dense_us'])} | {r['plain_us']:.1f} | {cell(r['portable_us'])} | "
            f"{r['error']:.1e} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default=",".join(FORMAT_NAMES))
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    card = torch.cuda.get_device_name()
    runner = CudaKernelRunner()
    portable_runner = CudaKernelRunner(arch_specific=False)
    plain_runner = CudaKernelRunner(dependent_launch=False)
    generator = torch.Generator().manual_seed(torch.seed())
    bandwidth = copy_bandwidth()
    rows = []
    for fmt in args.formats.split(","):
        block_weights = formats.get_format(fmt).block_weights
        cases = [(n, k, 1) for n, k in M1_SHAPES] + [(*BATCH_SHAPE, m) for m in BATCH_MS]
        for n, k, m in cases:
            if k % block_weights:
                continue  # e.g. K=640 is not a whole number of 256-weight K-quant blocks
            row = bench_case(
                runner, portable_runner, plain_runner, fmt, n, k, m, bandwidth, generator
            )
            print(row, flush=True)
            rows.append(row)
            torch.cuda.empty_cache()
    table = markdown(rows, card, bandwidth)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
