"""Q5_0: 32 weights in 22 bytes (5.5 bits per weight), one f16 scale, no offset.

Layout::

    f16 d          bytes 0..1
    u8  qh[4]      bytes 2..5    little-endian 32-bit word; bit j is bit 4 of q[j]
    u8  qs[16]     bytes 6..21   low nibble of qs[j] -> q[j] bits 0-3, high nibble -> q[j+16]

Value: ``y[j] = d * (q[j] - 16)`` with ``q`` in 0..31 (exact in float32).

Quantization (matches ``gguf.quants`` / ggml ``quantize_row_q5_0_ref``): ``max`` is the signed
weight of largest magnitude, ``d = max / -16``, ``q = min(31, trunc(x / d + 16.5))``.
"""

from __future__ import annotations

import functools

import torch

from compiler.formats import blockbits
from compiler.formats.spec import Field, FormatSpec
from compiler.formats.workspace import Workspace

SPEC = FormatSpec(
    name="Q5_0",
    block_weights=32,
    block_bytes=22,
    fields=(Field("d", "f16", 1), Field("qh", "u8", 4), Field("qs", "u8", 16)),
)
ZERO_POINT = 16
_ZERO_POINT = blockbits.constant(ZERO_POINT, torch.int8)
LEVELS = 32
QH_OFFSET = 2
QS_OFFSET = 6
FIFTH_BIT = 4

# byte value v -> int64 whose byte i is 0x10 when bit i of v is set: spreads one qh byte
# over the eight weights it covers, already in bit position 4
_BIT_SPREAD = sum(
    ((torch.arange(256, dtype=torch.int64) >> bit) & 1) << (8 * bit + FIFTH_BIT) for bit in range(8)
)


@functools.lru_cache(maxsize=8)
def _qh_units(n: int) -> torch.Tensor:
    """Positions, in the int16 units of the blocks' word stream, of the two units holding
    each of n blocks' qh field (22-byte blocks and an offset of 2 keep it 2-byte aligned)."""
    first = QH_OFFSET // 2
    units = torch.arange(n).view(n, 1) * (SPEC.block_bytes // 2) + torch.arange(first, first + 2)
    return units.view(-1)


class _Plan:
    """Scratch views for n blocks."""

    def __init__(self, n: int, scratch: Workspace) -> None:
        self.nibbles = blockbits.LegacyNibbles(n, SPEC.block_bytes, QS_OFFSET, scratch)
        self.quants = self.nibbles.quants.view(-1)
        self.signed_quants = self.nibbles.quants.view(torch.int8)
        self.qh_units = _qh_units(n)
        self.qh = scratch.take("qh", (2 * n,), torch.int16)
        self.qh_bytes = self.qh.view(torch.uint8)
        self.qh_index = scratch.take("qh index", (4 * n,), torch.int32)
        self.fifth = scratch.take("fifth", (4 * n,), torch.int64)
        self.fifth_bytes = self.fifth.view(torch.uint8)
        self.scale = scratch.take("d", (n, 1), torch.float32)


def dequantize_views(
    d: torch.Tensor, blocks: torch.Tensor, out: torch.Tensor, scratch: Workspace
) -> None:
    """d as f16 [n, 1] and blocks [n, 22] -> ``out`` float32 [n, 32]."""
    n = blocks.shape[0]
    plan = scratch.plan((SPEC.name, n), lambda: _Plan(n, scratch))
    plan.scale.copy_(d)
    stream, _ = plan.nibbles.unpack(blocks)
    # qh byte k holds the fifth bits of weights 8k..8k+7, spread to one byte each by a table
    # look-up; the bytes are fetched as int16 pairs from the stream (a strided copy of 4
    # bytes per block into the int32 index would take 2-3x longer)
    torch.index_select(stream.view(torch.int16), 0, plan.qh_units, out=plan.qh)
    plan.qh_index.copy_(plan.qh_bytes)
    torch.index_select(_BIT_SPREAD, 0, plan.qh_index, out=plan.fifth)
    plan.quants.bitwise_or_(plan.fifth_bytes)
    out.copy_(plan.signed_quants.sub_(_ZERO_POINT))
    out.mul_(plan.scale)


def chunk_views(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d as f16 [n, 1], the blocks): what :func:`dequantize_views` reads, split into
    chunks along dim 0 by the caller."""
    return blockbits.f16_column_view(blocks, 0), blocks


def quantize_blocks(weights: torch.Tensor) -> torch.Tensor:
    """float [..., nblocks, 32] -> uint8 [..., nblocks, 22], bit-identical to gguf-py."""
    x = weights.reshape(-1, SPEC.block_weights).float()
    extreme = x.gather(1, x.abs().argmax(1, keepdim=True))
    d = extreme / -ZERO_POINT
    inverse = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = torch.trunc(x * inverse + (ZERO_POINT + 0.5)).clamp_(0, LEVELS - 1).to(torch.uint8)
    half = SPEC.block_weights // 2
    qs = blockbits.pack_nibbles(q[:, :half] & 0x0F, q[:, half:] & 0x0F)
    qh = blockbits.pack_bits(q >> FIFTH_BIT)
    packed = torch.cat([blockbits.f16_bytes(d.squeeze(1)), qh, qs], dim=1)
    return packed.view(*weights.shape[:-1], SPEC.block_bytes)
