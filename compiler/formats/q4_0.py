"""Q4_0: 32 weights in 18 bytes (4.5 bits per weight), one f16 scale, no offset.

Layout::

    f16 d          bytes 0..1
    u8  qs[16]     bytes 2..17   low nibble of qs[j] -> weight j, high nibble -> weight j+16

Value: ``y[j] = d * (q[j] - 8)`` with ``q`` in 0..15.  The product of an 11-bit f16
significand and a 4-bit integer is exact in float32, so the result does not depend on the
order of operations.

Quantization (matches ``gguf.quants`` and ggml's ``quantize_row_q4_0_ref``): ``max`` is the
signed weight of largest magnitude (first one on ties), ``d = max / -8``,
``q = min(15, trunc(x / d + 8.5))``, all in float32.
"""

from __future__ import annotations

import torch

from compiler.formats import blockbits
from compiler.formats.spec import Field, FormatSpec
from compiler.formats.workspace import Workspace

SPEC = FormatSpec(
    name="Q4_0",
    block_weights=32,
    block_bytes=18,
    fields=(Field("d", "f16", 1), Field("qs", "u8", 16)),
)
ZERO_POINT = 8
_ZERO_POINT = blockbits.constant(ZERO_POINT, torch.int8)
LEVELS = 16
QS_OFFSET = 2


class _Plan:
    """Scratch views for n blocks."""

    def __init__(self, n: int, scratch: Workspace) -> None:
        self.nibbles = blockbits.LegacyNibbles(n, SPEC.block_bytes, QS_OFFSET, scratch)
        self.signed_quants = self.nibbles.quants.view(torch.int8)
        self.scale = scratch.take("d", (n, 1), torch.float32)


def dequantize_views(
    d: torch.Tensor, blocks: torch.Tensor, out: torch.Tensor, scratch: Workspace
) -> None:
    """d as f16 [n, 1] and blocks [n, 18] -> ``out`` float32 [n, 32]."""
    n = blocks.shape[0]
    plan = scratch.plan((SPEC.name, n), lambda: _Plan(n, scratch))
    plan.scale.copy_(d)
    plan.nibbles.unpack(blocks)
    out.copy_(plan.signed_quants.sub_(_ZERO_POINT))
    out.mul_(plan.scale)


def chunk_views(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d as f16 [n, 1], the blocks): what :func:`dequantize_views` reads, split into
    chunks along dim 0 by the caller."""
    return blockbits.f16_column_view(blocks, 0), blocks


def quantize_blocks(weights: torch.Tensor) -> torch.Tensor:
    """float [..., nblocks, 32] -> uint8 [..., nblocks, 18], bit-identical to gguf-py."""
    x = weights.reshape(-1, SPEC.block_weights).float()
    extreme = x.gather(1, x.abs().argmax(1, keepdim=True))
    d = extreme / -ZERO_POINT
    inverse = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = torch.trunc(x * inverse + (ZERO_POINT + 0.5)).clamp_(0, LEVELS - 1).to(torch.uint8)
    half = SPEC.block_weights // 2
    qs = blockbits.pack_nibbles(q[:, :half], q[:, half:])
    packed = torch.cat([blockbits.f16_bytes(d.squeeze(1)), qs], dim=1)
    return packed.view(*weights.shape[:-1], SPEC.block_bytes)
