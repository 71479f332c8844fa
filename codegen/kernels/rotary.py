"""The rotary embedding kernel (``ggufc.rotary``, float32) for Metal and CUDA: one template
per backend (`cuda/rotary.cu`, `metal/rotary.metal`), specialised by the head dim.

``out[r, d] = x[r, d] * cos[m, d] + x[r, (d + D/2) % D] * sin[m, d]`` with ``m = r % M``,
for the R rows of D floats of ``x: [..., M, D]`` (``cos``, ``sin``: ``[M, D]``).
Launch: a thread an element, grid ``rotary_grid(R)`` = ``(ceil(R * D / ROTARY_THREADS), 1,
1)`` of blocks (threadgroups) of `ROTARY_THREADS` threads; no shared memory.  Tensors: x,
cos, sin, out; arguments after them: rows R, tokens M (64-bit integers).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from codegen.kernels.emitter import BACKENDS, SYNTAX, render_template
from compiler.errors import UnsupportedError

ROTARY_THREADS = 256
MAX_DIM = 1 << 16


@dataclass(frozen=True)
class RotaryKernelSource:
    """One generated rotary kernel: compile ``header + "\\n" + source``, call ``entry``."""

    backend: str
    dim: int
    entry: str
    header: str
    source: str
    threads: int = ROTARY_THREADS

    @property
    def text(self) -> str:
        return self.header + "\n" + self.source


def rotary_entry(dim: int) -> str:
    return f"ggufc_rotary_d{dim}_f32"


def rotary_grid(rows: int, dim: int) -> tuple[int, int, int]:
    """Grid of a launch over ``rows`` rows of ``dim`` (static sizes; the lowering builds the
    same with symbolic ones)."""
    return (-(-rows * dim // ROTARY_THREADS), 1, 1)


@cache
def emit_rotary(backend: str, dim: int) -> RotaryKernelSource:
    """The rotary kernel of ``backend`` for rows of ``dim`` floats (even, 2..MAX_DIM);
    UnsupportedError otherwise or outside BACKENDS."""
    if backend not in BACKENDS:
        raise UnsupportedError(
            f"no rotary kernel for backend {backend!r}; supported: {', '.join(BACKENDS)}"
        )
    if not 2 <= dim <= MAX_DIM or dim % 2:
        raise UnsupportedError(f"rotary kernel: dim {dim} is not even in 2..{MAX_DIM}")
    entry = rotary_entry(dim)
    syntax = SYNTAX[backend]
    return RotaryKernelSource(
        backend=backend,
        dim=dim,
        entry=entry,
        header=render_template(f"{backend}/prelude{syntax.header_suffix}"),
        source=render_template(
            f"{backend}/rotary{syntax.source_suffix}",
            entry=entry,
            threads=ROTARY_THREADS,
            dim=dim,
        ),
    )


__all__ = ["ROTARY_THREADS", "RotaryKernelSource", "emit_rotary", "rotary_entry", "rotary_grid"]
