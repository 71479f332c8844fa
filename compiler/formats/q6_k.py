"""Q6_K: 256 weights in 210 bytes (6.5625 bits per weight): 16 sub-blocks of 16 weights, each
with a signed 8-bit scale, under one f16 super-block scale.

Layout::

    u8  ql[128]     bytes 0..127    low 4 bits; two halves of 64 bytes
    u8  qh[64]      bytes 128..191  high 2 bits; two halves of 32 bytes
    i8  scales[16]  bytes 192..207  one per sub-block of 16 weights
    f16 d           bytes 208..209

Weight ``128*h + 32*t + l`` (half h, quarter t in 0..3, l in 0..31) is::

    q = nibble | ((qh[32*h + l] >> 2*t) & 3) << 4
    nibble = low nibble of ql[64*h + l + 32*(t % 2)] for t < 2, high nibble for t >= 2

Value: ``y = (d * scales[s]) * (q - 32)`` for sub-block ``s = index // 16``.  Both products
are exact in float32 (at most 11 + 7 + 5 = 23 significant bits: |scale| <= 128 and
|q - 32| <= 32, where the powers of two add none), so any operation order gives gguf-py's
bits.
"""

from __future__ import annotations

import torch

from compiler.formats import blockbits, kquant
from compiler.formats.spec import Field, FormatSpec

SPEC = FormatSpec(
    name="Q6_K",
    block_weights=256,
    block_bytes=210,
    fields=(
        Field("ql", "u8", 128),
        Field("qh", "u8", 64),
        Field("scales", "i8", 16),
        Field("d", "f16", 1),
    ),
)
SUB_BLOCKS = 16
SUB_BLOCK_WEIGHTS = 16
QH_OFFSET = 128
SCALES_OFFSET = 192
D_OFFSET = 208
ZERO_POINT = 32
QUARTERS = 4
QUARTER_WEIGHTS = 32
WORDS_PER_QUARTER = QUARTER_WEIGHTS // blockbits.BYTES_PER_WORD
HIGH_BITS_MASK = 0x3030303030303030  # bits 4-5 of every byte
# shift that moves bits (2t, 2t+1) of a qh byte to bits (4, 5); negative = right shift
HIGH_BITS_SHIFTS = (4, 2, 0, -2)


def block_scales(blocks: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-block float32 scale data of blocks [n, 210]: (d*scales [n, 16, 1],)."""
    scale = blocks[:, SCALES_OFFSET:D_OFFSET].view(torch.int8).float()
    return (scale.mul_(blockbits.f16_field(blocks, D_OFFSET).unsqueeze(1)).unsqueeze(2),)


def dequantize_into(
    blocks: torch.Tensor, scales: tuple[torch.Tensor, ...], out: torch.Tensor
) -> None:
    """blocks [n, 210] with their ``block_scales`` -> ``out`` float32 [n, 256]."""
    (scale,) = scales
    n = blocks.shape[0]
    low = blockbits.words(blocks, 0, QH_OFFSET).view(n, 2, 2, -1)  # [half, quarter, word]
    qh = blockbits.words(blocks, QH_OFFSET, SCALES_OFFSET).view(n, 2, 1, -1)
    high = torch.empty(n, 2, QUARTERS, WORDS_PER_QUARTER, dtype=torch.int64)
    for quarter, shift in enumerate(HIGH_BITS_SHIFTS):
        if shift >= 0:
            torch.bitwise_left_shift(qh, shift, out=high[:, :, quarter : quarter + 1])
        else:
            torch.bitwise_right_shift(qh, -shift, out=high[:, :, quarter : quarter + 1])
    high.bitwise_and_(HIGH_BITS_MASK)
    quarters = out.view(n, 2, QUARTERS, QUARTER_WEIGHTS)
    for part, nibbles in enumerate((blockbits.low_nibbles(low), blockbits.high_nibbles(low))):
        q = nibbles.bitwise_or_(high[:, :, 2 * part : 2 * part + 2]).view(torch.int8)
        quarters[:, :, 2 * part : 2 * part + 2].copy_(q.sub_(ZERO_POINT).view(n, 2, 2, -1))
    out.view(n, SUB_BLOCKS, SUB_BLOCK_WEIGHTS).mul_(scale)


def dequantize_blocks(blocks: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 [..., nblocks, 210] -> float32 [..., nblocks, 256] (``out``: float32 [N, 256])."""
    flat = blocks.reshape(-1, SPEC.block_bytes)
    out = torch.empty(flat.shape[0], SPEC.block_weights) if out is None else out
    dequantize_into(flat, block_scales(flat), out)
    return out.view(*blocks.shape[:-1], SPEC.block_weights)


def quantize_blocks(weights: torch.Tensor) -> torch.Tensor:
    """float [..., nblocks, 256] -> uint8 [..., nblocks, 210] (see ``kquant``)."""
    x = weights.reshape(-1, SPEC.block_weights).float()
    n = x.shape[0]
    q, d, scales = kquant.quantize_symmetric(x)
    q = q.view(n, 2, QUARTERS, QUARTER_WEIGHTS)  # 0..63 per weight
    nibbles = (q & 0x0F).view(n, 2, 2, 2, QUARTER_WEIGHTS)  # [half, high nibble?, 32-byte part, l]
    ql = blockbits.pack_nibbles(nibbles[:, :, 0], nibbles[:, :, 1]).view(n, -1)
    top = (q >> 4).to(torch.uint8)
    qh = top[:, :, 0] | (top[:, :, 1] << 2) | (top[:, :, 2] << 4) | (top[:, :, 3] << 6)
    packed = torch.cat(
        [ql, qh.view(n, -1), scales.view(torch.uint8), blockbits.f16_bytes(d)], dim=1
    )
    return packed.view(*weights.shape[:-1], SPEC.block_bytes)
