"""Q8_0: 32 weights in 34 bytes (8.5 bits per weight), one f16 scale.

Layout::

    f16 d          bytes 0..1
    i8  qs[32]     bytes 2..33   qs[j] -> weight j

Value: ``y[j] = d * qs[j]`` (exact in float32).

Quantization (matches ``gguf.quants`` / ggml ``quantize_row_q8_0_ref``):
``d = max|x| / 127``, ``qs = round_half_away_from_zero(x / d)``, in float32.
"""

from __future__ import annotations

import torch

from compiler.formats import blockbits
from compiler.formats.spec import Field, FormatSpec
from compiler.formats.workspace import Workspace

SPEC = FormatSpec(
    name="Q8_0",
    block_weights=32,
    block_bytes=34,
    fields=(Field("d", "f16", 1), Field("qs", "i8", 32)),
)
QS_OFFSET = 2
MAX_LEVEL = 127


def chunk_views(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d as f16 [n, 1], the quants as int8 [n, 32]) of blocks [n, 34]: what
    :func:`dequantize_views` reads, split into chunks along dim 0 by the caller."""
    return blockbits.f16_column_view(blocks, 0), blocks.view(torch.int8)[:, QS_OFFSET:]


def dequantize_views(
    d: torch.Tensor, quants: torch.Tensor, out: torch.Tensor, scratch: Workspace
) -> None:
    """The :func:`chunk_views` of n blocks -> ``out`` float32 [n, 32].

    Three ops: the quants converted to float straight into ``out`` (one pass over the
    34-byte rows), the n scales to float32 (into scratch), and ``out`` scaled in place.
    Every operand of the multiply is then float32, which torch's vectorized loop needs (a
    multiply mixing dtypes, int8 quants or f16 scales, converts element by element and
    takes 1.3-3x as long), and ``out`` is written twice but read only once."""
    n = out.shape[0]
    scales = scratch.plan((SPEC.name, n), lambda: scratch.take("scales", (n, 1), torch.float32))
    out.copy_(quants)
    scales.copy_(d)
    out.mul_(scales)


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    # the floor-based formula of gguf-py, kept operation for operation: a plain x + 0.5
    # would round 0.49999997 up
    magnitude = x.abs()
    floored = magnitude.floor()
    return x.sign() * (floored + (2 * (magnitude - floored)).floor())


def quantize_blocks(weights: torch.Tensor) -> torch.Tensor:
    """float [..., nblocks, 32] -> uint8 [..., nblocks, 34], bit-identical to gguf-py."""
    x = weights.reshape(-1, SPEC.block_weights).float()
    d = x.abs().amax(1, keepdim=True) / MAX_LEVEL
    inverse = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    qs = _round_half_away(x * inverse).to(torch.int8).view(torch.uint8)
    packed = torch.cat([blockbits.f16_bytes(d.squeeze(1)), qs], dim=1)
    return packed.view(*weights.shape[:-1], SPEC.block_bytes)
