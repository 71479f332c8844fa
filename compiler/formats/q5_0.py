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
LEVELS = 32
QH_OFFSET = 2
QS_OFFSET = 6
FIFTH_BIT = 4

# byte value v -> int64 whose byte i is 0x10 when bit i of v is set: spreads one qh byte
# over the eight weights it covers, already in bit position 4
_BIT_SPREAD = sum(
    ((torch.arange(256, dtype=torch.int64) >> bit) & 1) << (8 * bit + FIFTH_BIT) for bit in range(8)
)


def block_scales(blocks: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-block float32 scale data of blocks [n, 22]: (d [n, 1],)."""
    return (blockbits.f16_field(blocks, 0).unsqueeze(1),)


def dequantize_into(
    blocks: torch.Tensor, scales: tuple[torch.Tensor, ...], out: torch.Tensor, scratch: Workspace
) -> None:
    """blocks [n, 22] with their ``block_scales`` -> ``out`` float32 [n, 32]."""
    (d,) = scales
    n = blocks.shape[0]
    stream, values = blockbits.legacy_nibbles(blocks, SPEC.block_bytes, QS_OFFSET, scratch)
    # qh byte k holds the fifth bits of weights 8k..8k+7: spread to one byte each
    qh_bytes = stream.view(torch.uint8).view(-1, SPEC.block_bytes)[:n, QH_OFFSET:QS_OFFSET]
    qh_index = scratch.take("qh index", (n, QS_OFFSET - QH_OFFSET), torch.int64)
    qh_index.copy_(qh_bytes)
    fifth = scratch.take("fifth", (qh_index.numel(),), torch.int64)
    torch.index_select(_BIT_SPREAD, 0, qh_index.view(-1), out=fifth)
    values.view(-1).bitwise_or_(fifth.view(torch.uint8))
    out.copy_(values.view(torch.int8).sub_(ZERO_POINT))
    out.mul_(d)


def dequantize_blocks(blocks: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 [..., nblocks, 22] -> float32 [..., nblocks, 32] (``out``: float32 [N, 32])."""
    flat = blocks.reshape(-1, SPEC.block_bytes)
    out = torch.empty(flat.shape[0], SPEC.block_weights) if out is None else out
    dequantize_into(flat, block_scales(flat), out, Workspace())
    return out.view(*blocks.shape[:-1], SPEC.block_weights)


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
