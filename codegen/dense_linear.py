"""The dense route of a CUDA linear with many rows: dequantize the weights, then cuBLAS.

For large M the GGUF matmul kernel (`cuda/matmul.cu`) pays for its weight copies and decode
on every tile of rows, while dequantizing the whole N x K weight once (the `dequantize`
kernel: the embedding gather over every row, at 93-95% of copy bandwidth on an H100) and
multiplying with cuBLAS in half precision costs one pass over the weights plus the dense
product.  llama.cpp takes the same route for large batches where its int8 MMQ kernels do not
apply.  The lowering (`codegen.lowering`) emits, for a ``matmul`` linear whose rows may
exceed `dense_threshold`::

    IfNode(M <= threshold)
      then: KernelNode matmul                       (the GGUF kernel; IfNodes between its
                                                     geometries where they change with M)
      else: KernelNode dequantize -> w[N, K]        (activation dtype)
            AtenNode aten::linear(x, w, bias)       (cuBLAS on a CUDA device)

(no IfNode when every M the program can have falls on one side).  The dense weight is a
transient buffer of N K 2 bytes, so weights above `DENSE_MAX_WEIGHT_BYTES` of it keep the
matmul; float32 activations keep it too (their matmul runs TF32 tensor cores, cuBLAS's
default float32 product does not).

The threshold comes from a cost model of both routes, calibrated on an NVIDIA H100 80GB HBM3
(sessions 24 and 27; `benchmarks/cuda_matmul_routes.py` measures both routes and the model's
picks, BENCHMARKS.md sessions 24 "the dense route for large M" and 27):

* matmul: `codegen.kernels.emitter.matmul_cost` of the geometry the lowering picks (its
  waves of tiles times each block's share of K: a block's time does not depend on the rows
  its tile holds) times `MATMUL_US_PER_COLUMN`;
* dense: the dequantize pass (packed bytes read, 2 bytes a weight written, at
  `DEQUANTIZE_BYTES_PER_US`) plus cuBLAS's time as a roofline rounded at its ridge: the
  `ROOFLINE_NORM`-norm of its bytes' time (dense weights, activations, output at
  `DENSE_BYTES_PER_US`) and its flops' (2 M N K at `DENSE_FLOPS_PER_US`), plus
  `DENSE_FIXED_US` (within 3% of cuBLAS's measured times, on average, on weights larger
  than the L2).

Between multiples of 64 rows the matmul's estimate is constant and the dense one grows with
M, so the threshold is a multiple of 64 (`dense_threshold`: the one that fits the model
best), and every M above it takes the dense route.

The constants are an H100's.  Another card (or driver, or kernel version) scales the three
terms differently, so a `RouteModel` multiplies each by a factor measured on the card:
`ggufc tune` times the matmul, the dequantize pass and cuBLAS's product at a few M per format
and shape (`compiler.tuning.measure_routes`) and `fit_route_model` takes each factor as the
median of measured / modelled time; `ggufc compile --tuning` hands the fitted model to the
lowering.  Without a tuning file the factors are 1 (`H100_ROUTE_MODEL`).  The factors do not
move the matmul's geometry choice (a common factor of every geometry's cost), only where the
dense route takes over.  The model also carries the card's shared memory a block (an H100's
227 KB built in; `ggufc tune` records the card's): geometries needing more (the 256-row
tile's 220 KB on a 163 KB A100) are left out of the choice.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from codegen.kernels.emitter import (
    H100_SHARED_MEMORY_PER_BLOCK,
    MATMUL_COST_ROW_STEP,
    matmul_cost,
    matmul_geometry_of,
    matmul_geometry_segments,
    takes_matmul_geometries,
)
from compiler.formats import FORMATS

# the route of a matmul linear that dequantizes its weights for cuBLAS (the others: geometries
# of the GGUF matmul, `codegen.kernels.emitter.MATMUL_GEOMETRY_TILES`)
DENSE_ROUTE = "dense"
# activation dtypes the dense route serves (cuBLAS half precision)
DENSE_DTYPES = ("float16", "bfloat16")
# the largest dequantized weight the route allocates (bytes); larger ones keep the matmul
DENSE_MAX_WEIGHT_BYTES = 512 << 20
# microseconds the GGUF matmul spends per unit of `matmul_cost` (a K column of a 64-row tile in
# a wave), by format: the median of measured / modelled time over its geometries but the 256-row
# tile's, 6 formats x 3 shapes x M = 32 .. 2048 on an H100 (session 27, weight groups by tensor
# map; session 24's rates, fitted before it, were 7-26% higher; the same medians on the v36
# kernels moved < 1%); with these rates and the 256-row tile's format factors
# and fixed cost (`MATMUL_WIDE_TILE_FACTOR`, `MATMUL_WAVE_FIXED_COLUMNS_BY_TILE_M`) the
# lowering's route is within 5% of the fastest in 102 of those 108 cells on the v36 kernels
# (`benchmarks/cuda_matmul_routes.py`)
MATMUL_US_PER_COLUMN = {
    "Q4_0": 6.60 / 1024,
    "Q5_0": 7.61 / 1024,
    "Q8_0": 7.85 / 1024,
    "Q4_K": 7.49 / 1024,
    "Q5_K": 8.53 / 1024,
    "Q6_K": 8.68 / 1024,
}
DEQUANTIZE_BYTES_PER_US = 2.8e6  # 2.8 TB/s, read + written
DENSE_BYTES_PER_US = 3.0e6  # cuBLAS's memory-bound rate
DENSE_FLOPS_PER_US = 7.5e8  # cuBLAS's half-precision rate on large products (750 TFLOP/s)
DENSE_FIXED_US = 6.0
ROOFLINE_NORM = 3  # cuBLAS's time ~ the 3-norm of its memory and compute times (3% off, H100)
DENSE_WEIGHT_BYTES = 2  # a float16 / bfloat16 weight
# thresholds are multiples of this (the matmul's cost changes only where M crosses one), up to
# SCAN_MAX_ROWS
ROW_STEP = MATMUL_COST_ROW_STEP
SCAN_MAX_ROWS = 1 << 16


@dataclass(frozen=True)
class RouteModel:
    """Factors on the H100 model's three terms for one card (see the module docstring):
    ``matmul_scales`` (format, factor) pairs, a format not listed taking 1; the dequantize
    pass's and cuBLAS's product's factors; the card's shared memory a block, which rules out
    the matmul geometries that need more (`matmul_geometry_of`); ``device`` names the card in
    messages."""

    matmul_scales: tuple[tuple[str, float], ...] = ()
    dequantize_scale: float = 1.0
    product_scale: float = 1.0
    device: str = "NVIDIA H100 80GB HBM3 (the built-in model)"
    shared_memory_per_block: int = H100_SHARED_MEMORY_PER_BLOCK

    def matmul_scale(self, fmt: str) -> float:
        return dict(self.matmul_scales).get(fmt, 1.0)

    def describe(self) -> str:
        """One line: the card and the factors (a program's metadata keeps it)."""
        scales = ", ".join(f"{fmt} x{scale:g}" for fmt, scale in self.matmul_scales)
        return (
            f"{self.device}: matmul {scales or 'x1'}; dequantize x{self.dequantize_scale:g}; "
            f"cuBLAS x{self.product_scale:g}; {self.shared_memory_per_block // 1024} KB of "
            "shared memory a block"
        )


H100_ROUTE_MODEL = RouteModel()


def matmul_estimate_us(
    fmt: str, n: int, k: int, m: int, model: RouteModel = H100_ROUTE_MODEL
) -> float:
    """The GGUF matmul's modelled time for ``m`` rows of an N x K ``fmt`` weight, in the
    geometry the lowering picks (`codegen.kernels.emitter.matmul_geometry_of`)."""
    geometry = matmul_geometry_of(fmt, n, k, m, model.shared_memory_per_block)
    cost = matmul_cost(fmt, n, k, m, geometry)
    return model.matmul_scale(fmt) * MATMUL_US_PER_COLUMN[fmt] * cost


def dequantize_estimate_us(fmt: str, n: int, k: int, model: RouteModel = H100_ROUTE_MODEL) -> float:
    """The dequantize pass's modelled time: packed bytes read, 2 bytes a weight written."""
    spec = FORMATS[fmt]
    packed = n * (k // spec.block_weights) * spec.block_bytes
    return model.dequantize_scale * (packed + n * k * DENSE_WEIGHT_BYTES) / DEQUANTIZE_BYTES_PER_US


def product_estimate_us(n: int, k: int, m: int, model: RouteModel = H100_ROUTE_MODEL) -> float:
    """cuBLAS's modelled time for ``m`` rows on the dequantized N x K weight."""
    moved = DENSE_WEIGHT_BYTES * (n * k + m * k + m * n)
    memory, compute = moved / DENSE_BYTES_PER_US, 2 * m * n * k / DENSE_FLOPS_PER_US
    # a roofline rounded at its ridge: cuBLAS is slower than both bounds where they are near
    product = (memory**ROOFLINE_NORM + compute**ROOFLINE_NORM) ** (1 / ROOFLINE_NORM)
    return model.product_scale * (product + DENSE_FIXED_US)


def dense_estimate_us(
    fmt: str, n: int, k: int, m: int, model: RouteModel = H100_ROUTE_MODEL
) -> float:
    """The dense route's modelled time: the dequantize pass, then cuBLAS's roofline."""
    return dequantize_estimate_us(fmt, n, k, model) + product_estimate_us(n, k, m, model)


@dataclass(frozen=True)
class RouteSample:
    """Measured microseconds of both routes' parts at one (format, N, K, M)."""

    fmt: str
    n: int
    k: int
    m: int
    matmul_us: float
    dequantize_us: float
    product_us: float


def fit_route_model(
    samples: Iterable[RouteSample],
    device: str,
    shared_memory_per_block: int = H100_SHARED_MEMORY_PER_BLOCK,
) -> RouteModel:
    """The `RouteModel` of a card from its measured samples (the matmul timed in the geometry
    `matmul_geometry_of` picks for the card's ``shared_memory_per_block``): each factor is the
    median over the samples of measured / modelled time (per format for the matmul), so that
    one slow outlier among them moves nothing."""
    samples = list(samples)
    if not samples:
        raise ValueError("fitting a route model needs at least one sample")
    card = RouteModel(shared_memory_per_block=shared_memory_per_block)
    matmul: dict[str, list[float]] = {}
    dequantize, product = [], []
    for s in samples:
        modelled = matmul_estimate_us(s.fmt, s.n, s.k, s.m, card)
        matmul.setdefault(s.fmt, []).append(s.matmul_us / modelled)
        dequantize.append(s.dequantize_us / dequantize_estimate_us(s.fmt, s.n, s.k))
        product.append(s.product_us / product_estimate_us(s.n, s.k, s.m))
    return RouteModel(
        matmul_scales=tuple(
            (fmt, round(statistics.median(ratios), 4)) for fmt, ratios in sorted(matmul.items())
        ),
        dequantize_scale=round(statistics.median(dequantize), 4),
        product_scale=round(statistics.median(product), 4),
        device=device,
        shared_memory_per_block=shared_memory_per_block,
    )


def serves(fmt: str, dtype: str, n: int, k: int) -> bool:
    """Whether the dense route may take an N x K ``fmt`` weight with ``dtype`` activations."""
    return (
        dtype in DENSE_DTYPES
        and fmt in MATMUL_US_PER_COLUMN
        and n * k * DENSE_WEIGHT_BYTES <= DENSE_MAX_WEIGHT_BYTES
    )


@cache
def dense_threshold(fmt: str, n: int, k: int, model: RouteModel = H100_ROUTE_MODEL) -> int:
    """Rows above which an N x K ``fmt`` linear takes the dense route (0: every M).

    A multiple T of ROW_STEP (up to SCAN_MAX_ROWS): the one that minimizes, over the row
    counts in the middle of each step, the sum of each one's modelled time on the route T
    gives it (the matmul up to T, the dense route above) relative to the faster route's;
    the smaller T of equal sums.  Where the matmul is flat in M the dense route can win below
    it as well as above, which one threshold cannot follow: the sum weighs those rows
    against the others."""
    best_total, best = 0.0, 0
    total = 0.0
    for top in range(ROW_STEP, SCAN_MAX_ROWS + 1, ROW_STEP):
        m = top - ROW_STEP // 2
        matmul = matmul_estimate_us(fmt, n, k, m, model)
        dense = dense_estimate_us(fmt, n, k, m, model)
        # the rows of this step move from the dense route to the matmul if T >= top
        total += (matmul - dense) / min(matmul, dense)
        if total < best_total:
            best_total, best = total, top
    return best


def matmul_routes(
    fmt: str, dtype: str, n: int, k: int, low: int, high: int, model: RouteModel = H100_ROUTE_MODEL
):
    """What a CUDA matmul linear of an N x K ``fmt`` weight and ``dtype`` activations runs for
    each M in [low, high], as (last M, route) runs in order: the geometries of
    `codegen.kernels.emitter.matmul_geometry_segments` up to `dense_threshold` (where the
    route `serves` the weight), DENSE_ROUTE above it; None where the CUDA matmul of ``dtype``
    has one geometry (float32) and no dense route."""
    if not takes_matmul_geometries("cuda", dtype):
        return None
    dense_from = high
    if serves(fmt, dtype, n, k):
        dense_from = min(high, dense_threshold(fmt, n, k, model))
    routes = []
    if low <= dense_from:
        routes = matmul_geometry_segments(fmt, n, k, low, dense_from, model.shared_memory_per_block)
    if dense_from < high:
        routes.append((high, DENSE_ROUTE))
    return routes


def matmul_route(
    fmt: str, dtype: str, n: int, k: int, m: int, model: RouteModel = H100_ROUTE_MODEL
) -> str | None:
    """The route of `matmul_routes` at ``m`` rows (None as there)."""
    routes = matmul_routes(fmt, dtype, n, k, m, m, model)
    return None if routes is None else routes[0][1]


__all__ = [
    "DENSE_DTYPES",
    "DENSE_MAX_WEIGHT_BYTES",
    "DENSE_ROUTE",
    "H100_ROUTE_MODEL",
    "RouteModel",
    "RouteSample",
    "dense_estimate_us",
    "dense_threshold",
    "dequantize_estimate_us",
    "fit_route_model",
    "matmul_estimate_us",
    "matmul_route",
    "matmul_routes",
    "product_estimate_us",
    "serves",
]
