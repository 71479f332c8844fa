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


def block_scales(blocks: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-block float32 scale data of blocks [n, 34]: (d [n, 1],)."""
    return (blockbits.f16_field(blocks, 0).unsqueeze(1),)


def dequantize_into(
    blocks: torch.Tensor, scales: tuple[torch.Tensor, ...], out: torch.Tensor, scratch: Workspace
) -> None:
    """blocks [n, 34] with their ``block_scales`` -> ``out`` float32 [n, 32]."""
    (d,) = scales
    out.copy_(blocks[:, QS_OFFSET:].view(torch.int8))
    out.mul_(d)


def dequantize_blocks(blocks: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 [..., nblocks, 34] -> float32 [..., nblocks, 32] (``out``: float32 [N, 32])."""
    flat = blocks.reshape(-1, SPEC.block_bytes)
    out = torch.empty(flat.shape[0], SPEC.block_weights) if out is None else out
    dequantize_into(flat, block_scales(flat), out, Workspace())
    return out.view(*blocks.shape[:-1], SPEC.block_weights)


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
