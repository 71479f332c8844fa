"""The fused attention kernel (``ggufc.attention``) for Metal and CUDA: one template per backend
(`cuda/attention.cu`, `metal/attention.metal`), specialised by head dim and value dim.

Launch: grid ``attention_grid(R, B)`` = ``(ATTENTION_SPLITS, R, B)`` of blocks (threadgroups) of
`ATTENTION_THREADS` threads; ``attention_shared_bytes(S, Dv)`` bytes of dynamic shared
(threadgroup) memory.  On CUDA from sm_90 the `ATTENTION_SPLITS` blocks of a query row form a
thread block cluster and split its keys (flash decoding), meeting in distributed shared memory;
before sm_90, and on Metal (no clusters), the first block of a row takes every key and the
others return.  Kernel arguments after the tensors (q, k, v, visible, out): rows R, tokens M,
keys S (64-bit integers), scale (float32).  float32 only.
"""

from __future__ import annotations

from functools import cache

from codegen.kernels.emitter import (
    SYNTAX,
    WARP_SIZE,
    GeneratedKernel,
    render_template,
    require_backend,
)
from compiler.errors import UnsupportedError

ATTENTION_THREADS = 256
# Blocks of a CUDA thread block cluster that split a query row's keys: 8 is the largest
# cluster every sm_90 device launches without opting in.  A decode step of Gemma 3 270M (4
# query rows) then runs on 32 SMs instead of 4.
ATTENTION_SPLITS = 8
# Keys a warp scores (and weighs values of) at once: their loads are in flight together.
ATTENTION_KEY_BATCH = 4
# Query rows (R = groups x tokens) up to which a CUDA run takes the kernel; beyond, the
# runtime runs the reference ops on the device (cuBLAS): a block per row rereads the keys it
# sees, which a long prefill (R in the thousands) would pay for thousands of times, while a
# decode step has R = query heads.  The program carries it (KernelNode template argument
# ``kernel_max_rows``).  Not tuned yet: R = 64 is 16 tokens of 4 query heads a key head.
ATTENTION_KERNEL_MAX_ROWS = 64
FLOAT_BYTES = 4
# Head and value dims a kernel is made for (the dot product keeps HEAD_DIM / 32 values of q
# a lane in registers).
MAX_HEAD_DIM = 512


def attention_shared_bytes(keys: int, value_dim: int) -> int:
    """Dynamic shared memory of a launch over ``keys`` keys with values of ``value_dim`` dims:
    a float score a key (a block without clusters takes every key), then a warp's sums of
    values for each warp."""
    warps = ATTENTION_THREADS // WARP_SIZE
    return (keys + warps * value_dim) * FLOAT_BYTES


def attention_grid(rows, heads) -> tuple:
    """Grid of a launch over ``rows`` query rows (R) of ``heads`` key heads (B): the blocks of a
    row's cluster along x."""
    return (ATTENTION_SPLITS, rows, heads)


def attention_entry(head_dim: int, value_dim: int) -> str:
    return f"ggufc_attention_d{head_dim}_v{value_dim}_f32"


@cache
def emit_attention(backend: str, head_dim: int, value_dim: int) -> GeneratedKernel:
    """The attention kernel of ``backend`` for queries and keys of ``head_dim`` dims and values
    of ``value_dim``; UnsupportedError outside BACKENDS or 1..MAX_HEAD_DIM."""
    require_backend(backend, "attention")
    for what, dim in (("head dim", head_dim), ("value dim", value_dim)):
        if not 1 <= dim <= MAX_HEAD_DIM:
            raise UnsupportedError(f"attention kernel: {what} {dim} is outside 1..{MAX_HEAD_DIM}")
    entry = attention_entry(head_dim, value_dim)
    syntax = SYNTAX[backend]
    return GeneratedKernel(
        backend=backend,
        entry=entry,
        header="\n".join(
            render_template(f"{backend}/{part}{syntax.header_suffix}")
            for part in ("prelude", "attention_reduce")
        ),
        source=render_template(
            f"{backend}/attention{syntax.source_suffix}",
            entry=entry,
            threads=ATTENTION_THREADS,
            splits=ATTENTION_SPLITS,
            key_batch=ATTENTION_KEY_BATCH,
            head_dim=head_dim,
            value_dim=value_dim,
        ),
        threads=ATTENTION_THREADS,
    )


__all__ = [
    "ATTENTION_KERNEL_MAX_ROWS",
    "ATTENTION_SPLITS",
    "ATTENTION_THREADS",
    "attention_entry",
    "attention_grid",
    "attention_shared_bytes",
    "emit_attention",
]
