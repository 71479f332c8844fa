"""The RMSNorm kernel (``aten.rms_norm`` and ``ggufc.rms_norm_add`` of float32 over the last
dim) for Metal and CUDA: one template per backend (`cuda/rms_norm.cu`, `metal/rms_norm.metal`),
specialised by the normalized dim, by whether a weight multiplies the result and by whether
a residual is added to it.

``out[r, :] = [residual[r, :] +] x[r, :] * rsqrt(mean_i x[r, i]^2 + eps) * w`` for each row r
of ``dim`` floats, and for ``ggufc.rms_norm_add_norm`` also ``normed[r, :]``, the norm of
``out[r, :]`` with its own weight and eps.  Launch: grid ``rms_norm_grid(R)`` = ``(ceil(R / RMS_NORM_ROWS_PER_BLOCK),
1, 1)`` of blocks (threadgroups) of `RMS_NORM_THREADS` threads, a warp (simdgroup) a row; no
shared memory.  Tensors: x, [weight,] [residual,] [next_weight,] out[, normed]; arguments after
them: rows R (64-bit integer), eps (float32)[, next_eps (float32)].

Why a kernel of ggufc's own: a decode step of Gemma 3 270M runs 109 norms of one to four
rows, and torch's fused layer-norm kernel spends ~2.4 us on each (H100), 22% of the step;
a warp a row needs no block barrier or shared memory.
"""

from __future__ import annotations

from functools import cache

from codegen.kernels.emitter import WARP_SIZE, GeneratedKernel, prelude_kernel, require_backend
from compiler.errors import UnsupportedError

RMS_NORM_THREADS = 128
RMS_NORM_ROWS_PER_BLOCK = RMS_NORM_THREADS // WARP_SIZE  # a warp a row
# A lane keeps its elements (and the weight's) in registers up to this many a lane (dims up to
# 1,024); wider rows are read twice (the second time from L1).
RMS_NORM_MAX_KEPT_STEPS = 32
MAX_DIM = 1 << 16


def rms_norm_entry(
    dim: int, weighted: bool, residual: bool = False, next_norm: bool = False
) -> str:
    added = "_add_norm" if next_norm else "_add" if residual else ""
    return f"ggufc_rms_norm{added}_d{dim}{'' if weighted else '_unweighted'}_f32"


def rms_norm_grid(rows: int) -> tuple[int, int, int]:
    """Grid of a launch over ``rows`` rows (static sizes; the lowering builds the same with
    symbolic ones)."""
    return (-(-rows // RMS_NORM_ROWS_PER_BLOCK), 1, 1)


@cache
def emit_rms_norm(
    backend: str, dim: int, weighted: bool, residual: bool = False, next_norm: bool = False
) -> GeneratedKernel:
    """The RMSNorm kernel of ``backend`` over rows of ``dim`` floats, times a weight of
    ``dim`` floats when ``weighted``, plus a residual row when ``residual``; with
    ``next_norm`` (weighted and residual too) it also writes the weighted norm of that sum
    (ggufc.rms_norm_add_norm).  UnsupportedError outside BACKENDS or 1..MAX_DIM, or for a
    next norm without a weight and a residual."""
    require_backend(backend, "RMSNorm")
    if not 1 <= dim <= MAX_DIM:
        raise UnsupportedError(f"RMSNorm kernel: dim {dim} is outside 1..{MAX_DIM}")
    if next_norm and not (weighted and residual):
        raise UnsupportedError("RMSNorm kernel: a next norm needs the weight and the residual")
    return prelude_kernel(
        backend,
        "rms_norm",
        rms_norm_entry(dim, weighted, residual, next_norm),
        RMS_NORM_THREADS,
        dim=dim,
        weighted=weighted,
        residual=residual,
        next_norm=next_norm,
        max_kept_steps=RMS_NORM_MAX_KEPT_STEPS,
    )


__all__ = [
    "RMS_NORM_ROWS_PER_BLOCK",
    "RMS_NORM_THREADS",
    "emit_rms_norm",
    "rms_norm_entry",
    "rms_norm_grid",
]
