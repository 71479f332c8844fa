"""Shared helpers of the format tests: fresh seeds, edge-value blocks, the gguf-py reference.

Every random test draws a fresh seed from os.urandom and names it in its assertion
messages, so a failure can be replayed with ``torch.Generator().manual_seed(seed)``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from gguf import GGMLQuantizationType
from gguf import quants as gguf_quants

from compiler import formats

ALL_FORMATS = tuple(formats.FORMATS)
LEGACY_FORMATS = ("Q4_0", "Q5_0", "Q8_0")
K_FORMATS = ("Q4_K", "Q5_K", "Q6_K")

# f16 bit patterns at the edges of the format: +-0, smallest/largest subnormal, smallest
# normal, one, largest finite
EDGE_F16_BITS = (0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF)
# quant bytes of a block: random, all zero bits, all one bits
FILL_RANDOM, FILL_ZEROS, FILL_ONES = 0, 1, 2


def fresh_seed() -> int:
    return int.from_bytes(os.urandom(8), "little") >> 1


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gguf_dequantize(blocks: torch.Tensor, fmt: str) -> torch.Tensor:
    with np.errstate(all="ignore"):
        ref = gguf_quants.dequantize(blocks.numpy(), GGMLQuantizationType[fmt])
    return torch.from_numpy(np.ascontiguousarray(ref))


def gguf_quantize(weights: torch.Tensor, fmt: str) -> torch.Tensor:
    return torch.from_numpy(gguf_quants.quantize(weights.numpy(), GGMLQuantizationType[fmt]))


def edge_blocks(fmt: str, rows: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """Random valid blocks where each block's f16 scales are edge values with probability
    1/2 and its other bytes are all 0x00 or all 0xFF with probability 1/3 each."""
    spec = formats.get_format(fmt)
    blocks = formats.random_blocks(fmt, rows, k, generator=gen).view(rows, -1, spec.block_bytes)
    nblocks = blocks.shape[1]
    fill = torch.randint(0, 3, (rows, nblocks, 1), generator=gen)
    is_scale = torch.zeros(spec.block_bytes, dtype=torch.bool)
    for field in spec.scale_fields:
        offset = spec.field_offset(field.name)
        is_scale[offset : offset + field.nbytes] = True
    blocks[...] = torch.where((fill == FILL_ZEROS) & ~is_scale, 0, blocks)
    blocks[...] = torch.where((fill == FILL_ONES) & ~is_scale, 0xFF, blocks)
    edges = torch.tensor(EDGE_F16_BITS, dtype=torch.int32)
    for field in spec.scale_fields:
        offset = spec.field_offset(field.name)
        choice = edges[torch.randint(0, len(edges), (rows, nblocks), generator=gen)]
        use_edge = torch.rand(rows, nblocks, generator=gen) < 0.5
        patched = torch.stack([choice & 0xFF, choice >> 8], dim=-1).to(torch.uint8)
        current = blocks[:, :, offset : offset + 2]
        blocks[:, :, offset : offset + 2] = torch.where(use_edge.unsqueeze(-1), patched, current)
    return blocks.view(rows, -1)


def assert_bit_identical(ours: torch.Tensor, ref: torch.Tensor, context: str) -> None:
    assert ours.shape == ref.shape, f"{context}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    assert ours.dtype == ref.dtype, f"{context}: dtype {ours.dtype} != {ref.dtype}"
    bits_ours = ours.contiguous().view(torch.int32)
    bits_ref = ref.contiguous().view(torch.int32)
    mismatch = (bits_ours != bits_ref).nonzero()
    if len(mismatch):
        where = tuple(int(i) for i in mismatch[0])
        raise AssertionError(
            f"{context}: {len(mismatch)} values differ; first at {where}: "
            f"ours {ours[where].item()!r} vs gguf-py {ref[where].item()!r}"
        )
