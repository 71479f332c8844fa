"""The routes of a CUDA 16-bit linear with many rows, against the lowering's pick.

    python benchmarks/cuda_matmul_routes.py [--formats Q4_0,Q4_K] [--shapes 4096x14336,...]
        [--m 32,64,128,256,512,1024] [--tuning tuning.json] [--out FILE.md]

For each format, weight shape N x K and row count M (float16 activations): the GGUF matmul
in each of its geometries (`codegen.kernels.emitter.MATMUL_GEOMETRY_TILES`: 128- or 64-row
tiles, K split over a cluster of 2 to 8 blocks, and 256-row tiles split in 2), the dense route (`codegen.dense_linear`:
the dequantize kernel, then cuBLAS through ``torch.nn.functional.linear``, as a program's
aten::linear runs it) and cuBLAS alone on the dequantized weights.  The "lowering" column is
the route the lowering takes at that M (`codegen.dense_linear.matmul_route`: the dense
threshold, then `codegen.kernels.emitter.matmul_geometry_of`), "vs best" its time over the
fastest route
measured, "vs default" the default geometry's time over the lowering's (what the routes gain
against the matmul in one geometry).  The summary counts the cells where the lowering's
route is within 5% of the fastest: the check of both cost models on this card.  With
``--tuning`` (a `ggufc tune` file with a route model) the lowering's route is the one that
model picks, and the summary also scores the built-in H100 model's picks.

Timing as benchmarks/cuda_matmul.py (codegen.cuda_timing: device events, median of batches,
weights rotated past the L2, random inputs); each route's output is checked against a
float32 product of the dequantized weights (float16 rounding: relative error <= 2e-3).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen import dense_linear
from codegen.cuda_run import CudaKernelRunner
from codegen.cuda_timing import rotated_copies, time_launches
from codegen.kernels import FORMAT_NAMES, emit, geometries
from compiler import formats

DEFAULT_SHAPES = "4096x14336,14336x4096,4096x4096,2048x8192,5376x21504"
DEFAULT_M = "32,64,128,256,512,1024"
DENSE = dense_linear.DENSE_ROUTE
NEAR_BEST = 1.05
MAX_ERROR = 2e-3  # float16 output rounding (tests/codegen/test_cuda_kernels.py's bound)


def bench_shape(runner, fmt: str, n: int, k: int, ms: list[int], generator, model) -> list[dict]:
    blocks = formats.random_blocks(fmt, n, k, generator=generator).cuda()
    shared = {
        "weight_copies": rotated_copies(blocks),
        "reference_weights": formats.dequantize(blocks.cpu(), fmt, torch.float32).cuda(),
        "dequantize": emit("cuda", fmt, "dequantize", "float16"),
        "dense_weight": torch.empty(n, k, dtype=torch.float16, device="cuda"),
        "kernels": {
            g: emit("cuda", fmt, "matmul", "float16", g)
            for g in geometries("cuda", fmt, "matmul", "float16")
        },
    }
    rows = []
    for m in ms:
        rows.append(bench_m(runner, fmt, n, k, m, model, **shared))
        print(rows[-1], flush=True)
    return rows


def bench_m(
    runner, fmt, n, k, m, model, weight_copies, reference_weights, dequantize, dense_weight, kernels
):
    """Every route at M = ``m``: their times, cuBLAS's, the lowering's route, the fastest."""
    copies = len(weight_copies)
    xs = [torch.randn(m, k, device="cuda", dtype=torch.float16) for _ in range(2)]
    outs = [torch.empty(m, n, device="cuda", dtype=torch.float16) for _ in range(2)]
    reference = xs[0].float() @ reference_weights.T

    def check(out: torch.Tensor, route: str) -> None:
        error = float((out.float() - reference).norm() / reference.norm())
        if error > MAX_ERROR:
            raise AssertionError(f"{fmt} {n}x{k} M={m} {route}: relative error {error:.2e}")

    def matmul(i: int, kernel) -> torch.Tensor:
        return runner.linear(kernel, xs[i % 2], weight_copies[i], None, n, k, out=outs[i % 2])

    def dense(i: int) -> torch.Tensor:
        return runner.dense_linear(
            dequantize, xs[i % 2], weight_copies[i], None, n, k, dense_weight
        )

    times = {}
    for geometry, kernel in kernels.items():
        outs[0].fill_(float("nan"))
        check(matmul(0, kernel), geometry)
        times[geometry] = time_launches(lambda i, kernel=kernel: matmul(i, kernel), copies)
    check(dense(0), DENSE)
    times[DENSE] = time_launches(dense, copies)
    dense_weight.copy_(reference_weights)
    cublas_us = time_launches(
        lambda i: torch.matmul(xs[i % 2], dense_weight.T, out=outs[i % 2]), copies
    )
    return {
        "format": fmt,
        "shape": f"{n}x{k}",
        "m": m,
        "times": times,
        "cublas_us": cublas_us,
        "route": dense_linear.matmul_route(fmt, "float16", n, k, m, model),
        "h100_route": dense_linear.matmul_route(fmt, "float16", n, k, m),
        "best": min(times, key=times.get),
    }


def markdown(rows: list[dict], card: str, model) -> str:
    routes = list(rows[0]["times"])
    lines = [
        (
            f"Card: {card}; float16 activations; times in us (median); route model: "
            f"{model.describe()}."
        ),
        "",
        "| format | N x K | M | "
        + " | ".join(routes)
        + " | cuBLAS | lowering | vs best | vs default |",
        "|---|---|---|" + "---|" * (len(routes) + 4),
    ]
    for r in rows:
        times = r["times"]
        chosen = times[r["route"]]
        cells = " | ".join(
            f"**{times[g]:.1f}**" if g == r["best"] else f"{times[g]:.1f}" for g in routes
        )
        lines.append(
            f"| {r['format']} | {r['shape']} | {r['m']} | {cells} | {r['cublas_us']:.1f} | "
            f"{r['route']} | {chosen / times[r['best']]:.2f} | "
            f"{times['default'] / chosen:.2f} |"
        )
    ratios = [r["times"][r["route"]] / r["times"][r["best"]] for r in rows]
    gains = [r["times"]["default"] / r["times"][r["route"]] for r in rows]
    near = sum(ratio <= NEAR_BEST for ratio in ratios)
    summary = (
        f"Lowering's route within {NEAR_BEST - 1:.0%} of the fastest in {near} of {len(rows)} "
        f"cells; over the fastest: mean {statistics.mean(ratios):.3f}, worst "
        f"{max(ratios):.2f}; the default geometry's time over the lowering's: mean "
        f"{statistics.mean(gains):.2f}, least {min(gains):.2f}."
    )
    lines += ["", summary]
    if model != dense_linear.H100_ROUTE_MODEL:
        h100 = [r["times"][r["h100_route"]] / r["times"][r["best"]] for r in rows]
        lines.append(
            f"The built-in H100 model's routes: within {NEAR_BEST - 1:.0%} of the fastest in "
            f"{sum(ratio <= NEAR_BEST for ratio in h100)} of {len(rows)} cells; over the "
            f"fastest: mean {statistics.mean(h100):.3f}, worst {max(h100):.2f}."
        )
    return "\n".join(lines)


def parse_shapes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in shape.split("x")) for shape in text.split(",")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default=",".join(FORMAT_NAMES))
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="N x K weights, comma-separated")
    parser.add_argument("--m", default=DEFAULT_M, help="row counts, comma-separated")
    parser.add_argument(
        "--tuning", type=Path, help="a `ggufc tune` file whose route model picks the routes"
    )
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    model = dense_linear.H100_ROUTE_MODEL
    if args.tuning:
        from compiler.tuning import load_tuning

        model = load_tuning(args.tuning).route_model()
        if model is None:
            print(f"cuda_matmul_routes.py: {args.tuning} has no route model", file=sys.stderr)
            return 2
    if not torch.cuda.is_available():
        print("cuda_matmul_routes.py: needs a CUDA device", file=sys.stderr)
        return 2
    runner = CudaKernelRunner()
    generator = torch.Generator().manual_seed(torch.seed())
    ms = [int(m) for m in args.m.split(",")]
    rows = []
    for n, k in parse_shapes(args.shapes):
        for fmt in args.formats.split(","):
            rows += bench_shape(runner, fmt, n, k, ms, generator, model)
            torch.cuda.empty_cache()
    table = markdown(rows, torch.cuda.get_device_name(), model)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
