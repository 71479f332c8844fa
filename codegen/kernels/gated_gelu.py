"""The gated GELU kernel (``ggufc.gated_gelu``, float32) for Metal and CUDA: one template per
backend (`cuda/gated_gelu.cu`, `metal/gated_gelu.metal`), specialised by the inner width I
(the gate's and up's last dim) and by where up comes from.

``out[r, j] = gelu_tanh(gate[r, j]) * up[r, j]`` for the R rows of I floats, ``gelu_tanh(g) =
0.5 g (1 + tanh(sqrt(2 / pi) (g + 0.044715 g^3)))`` (aten.gelu's approximate="tanh").
Stacked (one input x [..., 2I]): gate and up are the two halves of each row of x, read in
place (the stacked gate / up projection's output, with no copy of either half); else gate
= x and up are two tensors [..., I].
Launch: grid ``gated_gelu_grid(R, I)`` = ``(ceil(R * I / GATED_GELU_THREADS), 1, 1)`` of
blocks (threadgroups) of `GATED_GELU_THREADS` threads, a thread an output element, no
shared memory.  Tensors: x[, up], out; argument after them: rows R (64-bit integer).

Why a kernel of ggufc's own: torch runs the GELU and the multiply as two elementwise kernels
(Gemma 3 270M: 36 launches a decode step, ~43 us of its ~760).
"""

from __future__ import annotations

from functools import cache

from codegen.kernels.emitter import GeneratedKernel, prelude_kernel, require_backend
from compiler.errors import UnsupportedError

GATED_GELU_THREADS = 256
MAX_INNER = 1 << 20


def gated_gelu_entry(inner: int, stacked: bool) -> str:
    return f"ggufc_gated_gelu{'_stacked' if stacked else ''}_i{inner}_f32"


def gated_gelu_grid(rows: int, inner: int) -> tuple[int, int, int]:
    """Grid of a launch over ``rows`` rows of ``inner`` outputs (static sizes; the lowering
    builds the same with symbolic ones)."""
    return (-(-rows * inner // GATED_GELU_THREADS), 1, 1)


@cache
def emit_gated_gelu(backend: str, inner: int, stacked: bool) -> GeneratedKernel:
    """The gated GELU kernel of ``backend`` for rows of ``inner`` outputs, gate and up the
    halves of one input when ``stacked``; UnsupportedError outside BACKENDS or 1..MAX_INNER."""
    require_backend(backend, "gated GELU")
    if not 1 <= inner <= MAX_INNER:
        raise UnsupportedError(f"gated GELU kernel: inner width {inner} is outside 1..{MAX_INNER}")
    return prelude_kernel(
        backend,
        "gated_gelu",
        gated_gelu_entry(inner, stacked),
        GATED_GELU_THREADS,
        inner=inner,
        stacked=stacked,
    )


__all__ = ["GATED_GELU_THREADS", "emit_gated_gelu", "gated_gelu_entry", "gated_gelu_grid"]
