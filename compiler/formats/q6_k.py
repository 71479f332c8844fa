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

import functools

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
# a block copied into a row of this many bytes: 8 rows of 32 bytes, ql in rows 0-3 (half h,
# part p in row 2h + p), qh in rows 4-5 (half h in row 4 + h), then scales and d
RAW_ROW_BYTES = 256
RAW_ROWS = RAW_ROW_BYTES // QUARTER_WEIGHTS
QL_ROWS = QH_OFFSET // QUARTER_WEIGHTS
# right shifts that bring bits (2t, 2t+1) of a qh byte to bits (0, 1), one row per quarter t
_QUARTER_SHIFTS = (2 * torch.arange(QUARTERS, dtype=torch.int64)).view(-1, 1)
_TWO_LOW_BITS = blockbits.constant(TWO_LOW_BITS)
_HIGH_BITS_POSITION = blockbits.constant(HIGH_BITS_POSITION)
_ZERO_POINT = blockbits.constant(ZERO_POINT, torch.int8)


@functools.lru_cache(maxsize=8)
def _raw_row_order(n: int) -> torch.Tensor:
    """Index of the 32-byte rows of n blocks copied to RAW_ROW_BYTES apart, in the order
    :func:`dequantize_views` unpacks them: the ql rows in (part, block, half) order, then
    the qh rows in (block, half) order."""
    rows = torch.arange(n * RAW_ROWS).view(n, RAW_ROWS)
    ql = rows[:, :QL_ROWS].reshape(n, HALVES, 2).permute(2, 0, 1).reshape(-1)
    qh = rows[:, QL_ROWS : QL_ROWS + HALVES].reshape(-1)
    return torch.cat([ql, qh])


class _Plan:
    """Scratch views for n blocks."""

    def __init__(self, n: int, scratch: Workspace) -> None:
        words_per_row = blockbits.WORDS_PER_32
        raw = scratch.take("raw", (n, RAW_ROW_BYTES), torch.uint8)
        self.raw_blocks = raw[:, : SPEC.block_bytes]
        self.raw_scales = raw[:, SCALES_OFFSET:D_OFFSET].view(torch.int8)
        self.raw_d = blockbits.f16_column_view(raw, D_OFFSET)
        self.raw_rows = raw.view(torch.int64).view(-1, words_per_row)
        self.d = scratch.take("d", (n, 1), torch.float32)
        self.scale = scratch.take("scale", (n, SUB_BLOCKS), torch.float32)
        self.scale_column = self.scale.unsqueeze(2)
        self.raw_order = _raw_row_order(n)
        rows = scratch.take("rows", ((QL_ROWS + HALVES) * n, words_per_row), torch.int64)
        ql_rows, qh_rows = rows.split(QL_ROWS * n)
        self.ql_words = ql_rows.view(-1)
        self.qh_words = qh_rows.view(1, -1)
        self.rows = rows
        # [p, part, block, half] = [t, block, half]
        planes = scratch.take("planes", (2, ql_rows.numel()), torch.int64)
        self.planes = (planes[0], planes[1])
        self.plane_words = planes.view(-1)
        self.plane_rows = planes.view(-1, words_per_row)
        # [t, block, half]: bits 2t, 2t+1 of every qh byte, moved to bits 4-5
        self.high = scratch.take("high", (QUARTERS, qh_rows.numel()), torch.int64)
        self.high_words = self.high.view(-1)
        self.order = blockbits.row_order((QUARTERS, n, HALVES), (1, 2, 0))
        self.quants = scratch.take("quants", (n * HALVES * QUARTERS, words_per_row), torch.int64)
        self.values = self.quants.view(torch.int8).view(n, SPEC.block_weights)


def dequantize_views(blocks: torch.Tensor, out: torch.Tensor, scratch: Workspace) -> None:
    """blocks [n, 210] -> ``out`` float32 [n, 256].

    The blocks are copied once into rows RAW_ROW_BYTES apart (210 bytes are no whole
    number of words), where each block's ql and qh are whole 32-byte rows.  One gather puts
    the ql rows in (part, block, half) order and the qh rows after them, contiguous; the
    nibble planes of the ql rows are then [p, part, block, half], i.e. quarter t = 2p + part
    first, the layout in which the high bits of quarter t come out of the qh rows, so they
    are OR-ed in whole-plane, and one gather of the result puts the quarters in weight
    order."""
    n = blocks.shape[0]
    plan = scratch.plan((SPEC.name, n), lambda: _Plan(n, scratch))
    plan.raw_blocks.copy_(blocks)
    plan.scale.copy_(plan.raw_scales)
    plan.d.copy_(plan.raw_d)
    plan.scale.mul_(plan.d)
    torch.index_select(plan.raw_rows, 0, plan.raw_order, out=plan.rows)
    blockbits.nibble_planes_into(plan.ql_words, plan.planes)
    torch.bitwise_right_shift(plan.qh_words, _QUARTER_SHIFTS, out=plan.high)
    plan.high.bitwise_and_(_TWO_LOW_BITS).bitwise_left_shift_(_HIGH_BITS_POSITION)
    plan.plane_words.bitwise_or_(plan.high_words)
    torch.index_select(plan.plane_rows, 0, plan.order, out=plan.quants)
    out.copy_(plan.values.sub_(_ZERO_POINT))
    out.view(n, SUB_BLOCKS, SUB_BLOCK_WEIGHTS).mul_(plan.scale_column)


def chunk_views(blocks: torch.Tensor) -> tuple[torch.Tensor]:
    """The views of blocks [n, bb] that :func:`dequantize_views` reads, split into chunks
    along dim 0 by the caller."""
    return (blocks,)


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
