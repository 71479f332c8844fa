"""Q4_K: 256 weights in 144 bytes (4.5 bits per weight): a super-block of 8 sub-blocks of 32
weights, each with a 6-bit scale and a 6-bit min.

Layout::

    f16 d           bytes 0..1     super-block scale of the sub-block scales
    f16 dmin        bytes 2..3     super-block scale of the sub-block mins
    u8  scales[12]  bytes 4..15    sc[0..7], m[0..7], 6 bits each (see blockbits)
    u8  qs[128]     bytes 16..143  4 groups of 32 bytes; group g: low nibbles -> sub-block 2g,
                                   high nibbles -> sub-block 2g+1

Value: ``y = (d * sc[s]) * q - (dmin * m[s])`` for weight ``q`` (0..15) of sub-block ``s``.
Both products are exact in float32; the subtraction is the only rounding, as in gguf-py.
"""

from __future__ import annotations

import torch

from compiler.formats import blockbits, kquant
from compiler.formats.spec import Field, FormatSpec
from compiler.formats.workspace import Workspace

SPEC = FormatSpec(
    name="Q4_K",
    block_weights=256,
    block_bytes=144,
    fields=(
        Field("d", "f16", 1),
        Field("dmin", "f16", 1),
        Field("scales", "u8", 12),
        Field("qs", "u8", 128),
    ),
)
SUB_BLOCKS = 8
SUB_BLOCK_WEIGHTS = 32
SCALES_OFFSET = 4
QS_OFFSET = 16
MAX_LEVEL = 15
QS_GROUPS = SUB_BLOCKS // 2  # groups of 32 bytes, each holding two sub-blocks


class _Plan:
    """Scratch views for n blocks."""

    def __init__(self, n: int, scratch: Workspace) -> None:
        words_per_row = blockbits.WORDS_PER_32
        # nibble planes [low/high, block, group, word]: sub-block 2g + p is plane p of group g
        planes = scratch.take("planes", (2, n, QS_GROUPS * words_per_row), torch.int64)
        self.planes = (planes[0], planes[1])
        self.plane_rows = planes.view(-1, words_per_row)
        self.order = blockbits.row_order((2, n, QS_GROUPS), (1, 2, 0))
        self.quants = scratch.take("quants", (n * SUB_BLOCKS, words_per_row), torch.int64)
        self.quant_bytes = self.quants.view(torch.uint8).view(n, SPEC.block_weights)


def dequantize_views(blocks: torch.Tensor, out: torch.Tensor, scratch: Workspace) -> None:
    """blocks [n, 144] -> ``out`` float32 [n, 256]."""
    n = blocks.shape[0]
    plan = scratch.plan((SPEC.name, n), lambda: _Plan(n, scratch))
    scales = kquant.sub_block_scales(blocks, scratch)
    packed = blockbits.block_words(blocks, QS_OFFSET, SPEC.block_bytes, scratch)  # [n, 16]
    blockbits.nibble_planes_into(packed, plan.planes)
    torch.index_select(plan.plane_rows, 0, plan.order, out=plan.quants)
    out.copy_(plan.quant_bytes)
    kquant.scale_and_offset_(out.view(n, SUB_BLOCKS, SUB_BLOCK_WEIGHTS), scales)


def chunk_views(blocks: torch.Tensor) -> tuple[torch.Tensor]:
    """The views of blocks [n, bb] that :func:`dequantize_views` reads, split into chunks
    along dim 0 by the caller."""
    return (blocks,)


def quantize_blocks(weights: torch.Tensor) -> torch.Tensor:
    """float [..., nblocks, 256] -> uint8 [..., nblocks, 144] (see ``kquant``)."""
    x = weights.reshape(-1, SPEC.block_weights).float()
    n = x.shape[0]
    q, d, dmin, scales = kquant.quantize_scale_min(x, MAX_LEVEL, kquant.Q4_K_SEARCH)
    q = q.view(n, SUB_BLOCKS // 2, 2, SUB_BLOCK_WEIGHTS)
    qs = blockbits.pack_nibbles(q[:, :, 0], q[:, :, 1]).view(n, -1)
    packed = torch.cat([blockbits.f16_bytes(d), blockbits.f16_bytes(dmin), scales, qs], dim=1)
    return packed.view(*weights.shape[:-1], SPEC.block_bytes)
