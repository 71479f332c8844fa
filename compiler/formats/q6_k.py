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
from compiler.formats.workspace import Workspace

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
HALVES = 2
QUARTERS = 4
QUARTER_WEIGHTS = 32
TWO_LOW_BITS = 0x0303030303030303  # bits 0-1 of every byte
HIGH_BITS_POSITION = 4
# right shifts that bring bits (2t, 2t+1) of a qh byte to bits (0, 1), one row per quarter t
_QUARTER_SHIFTS = (2 * torch.arange(QUARTERS, dtype=torch.int64)).view(-1, 1, 1)


def block_scales(blocks: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-block float32 scale data of blocks [n, 210]: (d*scales [n, 16, 1],)."""
    scale = blocks[:, SCALES_OFFSET:D_OFFSET].view(torch.int8).float()
    return (scale.mul_(blockbits.f16_field(blocks, D_OFFSET).unsqueeze(1)).unsqueeze(2),)


def dequantize_into(
    blocks: torch.Tensor, scales: tuple[torch.Tensor, ...], out: torch.Tensor, scratch: Workspace
) -> None:
    """blocks [n, 210] with their ``block_scales`` -> ``out`` float32 [n, 256]."""
    (scale,) = scales
    n = blocks.shape[0]
    rows = n * HALVES * QUARTERS
    raw = blockbits.words(blocks, 0, SCALES_OFFSET, scratch)  # [n, 24]: ql, then qh
    # nibble planes [low/high, block, half, 32-byte part, word]: quarter t of a half takes
    # the low nibbles of part t for t < 2, the high nibbles of part t - 2 for t >= 2
    planes = scratch.take("planes", (2, n, QH_OFFSET // blockbits.BYTES_PER_WORD), torch.int64)
    blockbits.nibble_planes_into(raw[:, : QH_OFFSET // blockbits.BYTES_PER_WORD], planes)
    q = scratch.take("quants", (rows, blockbits.WORDS_PER_32), torch.int64)
    blockbits.gather_rows(
        planes.view(-1, blockbits.WORDS_PER_32), (2, n, HALVES, 2), (1, 2, 0, 3), q
    )
    # high bits [quarter, block, half, word]: bits 2t, 2t+1 of every qh byte, moved to 4-5
    qh = raw[:, QH_OFFSET // blockbits.BYTES_PER_WORD :].unsqueeze(0)
    high = scratch.take("high", (QUARTERS, n, qh.shape[2]), torch.int64)
    torch.bitwise_right_shift(qh, _QUARTER_SHIFTS, out=high)
    high.bitwise_and_(TWO_LOW_BITS).bitwise_left_shift_(HIGH_BITS_POSITION)
    gathered = scratch.take("high gathered", (rows, blockbits.WORDS_PER_32), torch.int64)
    blockbits.gather_rows(
        high.view(-1, blockbits.WORDS_PER_32), (QUARTERS, n, HALVES), (1, 2, 0), gathered
    )
    values = q.bitwise_or_(gathered).view(torch.int8).view(n, SPEC.block_weights)
    out.copy_(values.sub_(ZERO_POINT))
    out.view(n, SUB_BLOCKS, SUB_BLOCK_WEIGHTS).mul_(scale)


def dequantize_blocks(blocks: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 [..., nblocks, 210] -> float32 [..., nblocks, 256] (``out``: float32 [N, 256])."""
    flat = blocks.reshape(-1, SPEC.block_bytes)
    out = torch.empty(flat.shape[0], SPEC.block_weights) if out is None else out
    dequantize_into(flat, block_scales(flat), out, Workspace())
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
