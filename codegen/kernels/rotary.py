"""The rotary embedding kernels (``ggufc.rotary``, float32) for Metal and CUDA, specialised by
the head dim: `cuda/rotary.cu` / `metal/rotary.metal`, and with an RMSNorm folded in,
`cuda/rotary_rms_norm.cu` / `metal/rotary_rms_norm.metal`.

``out[r, d] = x[r, d] * cos[m, d] + x[r, (d + D/2) % D] * sin[m, d]`` with ``m = r % M``,
for the R rows of D floats of ``x: [..., M, D]`` (``cos``, ``sin``: ``[M, D]``); normed,
x is first ``rms_norm(x, [D], weight, eps)`` row by row.
Launch: `rotary_grid(R, D, normed)` of blocks (threadgroups) of `ROTARY_THREADS` threads, no
shared memory: plain, a thread an element (grid ``ceil(R * D / ROTARY_THREADS)``); normed, a
warp a row (``ceil(R / ROTARY_NORMED_ROWS_PER_BLOCK)``), each lane holding elements d and
d + D/2 (D a multiple of `NORMED_DIM_MULTIPLE`, at most `NORMED_MAX_DIM`).  Tensors: x,
cos, sin[, weight], out; arguments after them: rows R, tokens M (64-bit integers)[, eps
(float32)].
"""

from __future__ import annotations

from functools import cache

from codegen.kernels.emitter import WARP_SIZE, GeneratedKernel, prelude_kernel, require_backend
from compiler.errors import UnsupportedError

ROTARY_THREADS = 256
MAX_DIM = 1 << 16
ROTARY_NORMED_THREADS = 128
ROTARY_NORMED_ROWS_PER_BLOCK = ROTARY_NORMED_THREADS // WARP_SIZE
# the fused norm's lanes hold a row's pairs (d, d + D/2) in registers: D/2 a multiple of the
# warp, D at most 32 elements a lane
NORMED_DIM_MULTIPLE = 2 * WARP_SIZE
NORMED_MAX_DIM = 32 * WARP_SIZE


def rotary_entry(dim: int, normed: bool = False, weighted: bool = False) -> str:
    norm = ("_rms_norm" if weighted else "_rms_norm_unweighted") if normed else ""
    return f"ggufc_rotary{norm}_d{dim}_f32"


def rotary_threads(normed: bool) -> int:
    return ROTARY_NORMED_THREADS if normed else ROTARY_THREADS


def rotary_grid(rows: int, dim: int, normed: bool = False) -> tuple[int, int, int]:
    """Grid of a launch over ``rows`` rows of ``dim`` (static sizes; the lowering builds the
    same with symbolic ones)."""
    if normed:
        return (-(-rows // ROTARY_NORMED_ROWS_PER_BLOCK), 1, 1)
    return (-(-rows * dim // ROTARY_THREADS), 1, 1)


@cache
def emit_rotary(
    backend: str, dim: int, normed: bool = False, weighted: bool = False
) -> GeneratedKernel:
    """The rotary kernel of ``backend`` for rows of ``dim`` floats (even, 2..MAX_DIM), with an
    RMSNorm first when ``normed`` (times a weight when ``weighted``; dim a multiple of
    NORMED_DIM_MULTIPLE up to NORMED_MAX_DIM); UnsupportedError otherwise or outside BACKENDS."""
    require_backend(backend, "rotary")
    if not 2 <= dim <= MAX_DIM or dim % 2:
        raise UnsupportedError(f"rotary kernel: dim {dim} is not even in 2..{MAX_DIM}")
    if normed and (dim % NORMED_DIM_MULTIPLE or dim > NORMED_MAX_DIM):
        raise UnsupportedError(
            f"rotary kernel with an RMSNorm: dim {dim} is not a multiple of "
            f"{NORMED_DIM_MULTIPLE} up to {NORMED_MAX_DIM}"
        )
    return prelude_kernel(
        backend,
        "rotary_rms_norm" if normed else "rotary",
        rotary_entry(dim, normed, weighted),
        rotary_threads(normed),
        dim=dim,
        weighted=weighted,
    )


__all__ = [
    "NORMED_DIM_MULTIPLE",
    "NORMED_MAX_DIM",
    "ROTARY_NORMED_ROWS_PER_BLOCK",
    "ROTARY_THREADS",
    "emit_rotary",
    "rotary_entry",
    "rotary_grid",
    "rotary_threads",
]
