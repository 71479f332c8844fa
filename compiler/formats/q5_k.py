"""Q5_K: 256 weights in 176 bytes (5.5 bits per weight): as Q4_K with a fifth bit per weight.

Layout::

    f16 d           bytes 0..1
    f16 dmin        bytes 2..3
    u8  scales[12]  bytes 4..15    sc[0..7], m[0..7], 6 bits each (see blockbits)
    u8  qh[32]      bytes 16..47   bit s of qh[l] is bit 4 of weight l of sub-block s
    u8  qs[128]     bytes 48..175  low 4 bits, arranged as in Q4_K

Value: ``y = (d * sc[s]) * q - (dmin * m[s])`` with ``q`` in 0..31; only the subtraction
rounds, as in gguf-py.
"""

from __future__ import annotations

import torch

from compiler.formats import blockbits, kquant
from compiler.formats.spec import Field, FormatSpec
from compiler.formats.workspace import Workspace

SPEC = FormatSpec(
    name="Q5_K",
    block_weights=256,
    block_bytes=176,
    fields=(
        Field("d", "f16", 1),
        Field("dmin", "f16", 1),
        Field("scales", "u8", 12),
        Field("qh", "u8", 32),
        Field("qs", "u8", 128),
    ),
)
SUB_BLOCKS = 8
SUB_BLOCK_WEIGHTS = 32
SCALES_OFFSET = 4
QH_OFFSET = 16
QS_OFFSET = 48
MAX_LEVEL = 31
FIFTH_BIT = 4
QS_GROUPS = SUB_BLOCKS // 2  # groups of 32 bytes, each holding two sub-blocks
_SUB_BLOCK_SHIFTS = torch.arange(SUB_BLOCKS, dtype=torch.int64).view(-1, 1)
_FIFTH_BIT = blockbits.constant(FIFTH_BIT)


class _Plan:
    """Scratch views for n blocks."""

    def __init__(self, n: int, scratch: Workspace) -> None:
        words_per_row = blockbits.WORDS_PER_32
        rows = n * SUB_BLOCKS
        # nibble planes [low/high, block, group, word]: sub-block 2g + p is plane p of group g
        planes = scratch.take("planes", (2, n, QS_GROUPS * words_per_row), torch.int64)
        self.planes = (planes[0], planes[1])
        self.plane_rows = planes.view(-1, words_per_row)
        self.order = blockbits.row_order((2, n, QS_GROUPS), (1, 2, 0))
        self.quants = scratch.take("quants", (rows, words_per_row), torch.int64)
        self.quant_bytes = self.quants.view(torch.uint8).view(n, SPEC.block_weights)
        # fifth bits [sub-block, block, word]: bit s of every qh byte, moved to bit 4
        self.fifth = scratch.take("fifth", (SUB_BLOCKS, n * words_per_row), torch.int64)
        self.fifth_rows = self.fifth.view(-1, words_per_row)
        self.fifth_order = blockbits.row_order((SUB_BLOCKS, n), (1, 0))
        self.fifth_gathered = scratch.take("fifth gathered", (rows, words_per_row), torch.int64)


def dequantize_views(blocks: torch.Tensor, out: torch.Tensor, scratch: Workspace) -> None:
    """blocks [n, 176] -> ``out`` float32 [n, 256]."""
    n = blocks.shape[0]
    plan = scratch.plan((SPEC.name, n), lambda: _Plan(n, scratch))
    scales = kquant.sub_block_scales(blocks, scratch)
    packed = blockbits.block_words(blocks, QS_OFFSET, SPEC.block_bytes, scratch)  # [n, 16]
    blockbits.nibble_planes_into(packed, plan.planes)
    torch.index_select(plan.plane_rows, 0, plan.order, out=plan.quants)
    qh = blockbits.words(blocks, QH_OFFSET, QS_OFFSET, scratch)  # contiguous [n, 4]
    torch.bitwise_right_shift(qh.view(1, -1), _SUB_BLOCK_SHIFTS, out=plan.fifth)
    plan.fifth.bitwise_and_(blockbits.LOW_BITS_MASK).bitwise_left_shift_(_FIFTH_BIT)
    torch.index_select(plan.fifth_rows, 0, plan.fifth_order, out=plan.fifth_gathered)
    plan.quants.bitwise_or_(plan.fifth_gathered)
    out.copy_(plan.quant_bytes)
    kquant.scale_and_offset_(out.view(n, SUB_BLOCKS, SUB_BLOCK_WEIGHTS), scales)


def chunk_views(blocks: torch.Tensor) -> tuple[torch.Tensor]:
    """The views of blocks [n, bb] that :func:`dequantize_views` reads, split into chunks
    along dim 0 by the caller."""
    return (blocks,)


def quantize_blocks(weights: torch.Tensor) -> torch.Tensor:
    """float [..., nblocks, 256] -> uint8 [..., nblocks, 176] (see ``kquant``)."""
    x = weights.reshape(-1, SPEC.block_weights).float()
    n = x.shape[0]
    q, d, dmin, scales = kquant.quantize_scale_min(x, MAX_LEVEL, kquant.Q5_K_SEARCH)
    qh = blockbits.pack_bits(
        (q >> FIFTH_BIT).view(n, SUB_BLOCKS, SUB_BLOCK_WEIGHTS).transpose(1, 2).reshape(n, -1)
    )
    low = (q & 0x0F).view(n, SUB_BLOCKS // 2, 2, SUB_BLOCK_WEIGHTS)
    qs = blockbits.pack_nibbles(low[:, :, 0], low[:, :, 1]).view(n, -1)
    packed = torch.cat([blockbits.f16_bytes(d), blockbits.f16_bytes(dmin), scales, qh, qs], dim=1)
    return packed.view(*weights.shape[:-1], SPEC.block_bytes)
