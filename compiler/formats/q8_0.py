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
    """(d as f16 [n, 1], the block bytes as int8 [n, 34]) of blocks [n, 34]: what
    :func:`dequantize_views` reads, split into chunks along dim 0 by the caller."""
    return blockbits.f16_column_view(blocks, 0), blocks.view(torch.int8)


def dequantize_views(
    d: torch.Tensor, block_bytes: torch.Tensor, out: torch.Tensor, scratch: Workspace
) -> None:
    """The :func:`chunk_views` of n blocks -> ``out`` float32 [n, 32].

    Two ops: every byte of the blocks, d's included, is converted to float in one
    contiguous pass (into scratch), and the multiply reads the quants from there and d as
    f16 (torch converts the n scales to float itself, exactly) and writes ``out`` once.  An
    int8 -> float copy from the 34-byte rows straight into ``out`` would loop row by row, as
    the multiply must, and the multiply would then read ``out`` back; a separate op for d
    costs a call (~5-10 us with the GIL shared between threads) per chunk."""
    n = out.shape[0]
    values, quant_values = scratch.plan((SPEC.name, n), lambda: _plan(n, scratch))
    values.copy_(block_bytes)
    torch.mul(quant_values, d, out=out)


def _plan(n: int, scratch: Workspace) -> tuple[torch.Tensor, torch.Tensor]:
    """Scratch views for n blocks: the block bytes as float [n, 34] and their quants
    [n, 32]."""
    values = scratch.take("block bytes as float", (n, SPEC.block_bytes), torch.float32)
    return values, values[:, QS_OFFSET:]


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
