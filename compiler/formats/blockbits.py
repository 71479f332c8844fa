"""Bit-level helpers shared by the format modules: f16 fields, nibbles, packed bits, and the
6-bit scale/min packing of the K-quants.

Unpacking works on 64-bit words (SWAR: eight packed bytes per lane), either of a block's quant
bytes copied into an aligned buffer or of a whole aligned run of small blocks read in place,
so that torch's elementwise kernels touch eight times fewer elements than a byte-by-byte
unpack would.  Masks below are per-byte patterns
replicated over the eight bytes of a word; a right shift of a signed int64 only drags sign
bits into the top byte's high bits, which every mask here clears.

K-quant 6-bit scales (12 bytes for 8 sub-blocks, scale ``sc[j]`` and min ``m[j]``)::

    byte 0..3  : sc[0..3] (bits 0-5) | sc[4..7] bits 4-5 (bits 6-7)
    byte 4..7  : m[0..3]  (bits 0-5) | m[4..7]  bits 4-5 (bits 6-7)
    byte 8..11 : sc[4..7] bits 0-3 (low nibble) | m[4..7] bits 0-3 (high nibble)
"""

from __future__ import annotations

import torch

BYTES_PER_WORD = 8
LOW_NIBBLES = 0x0F0F0F0F0F0F0F0F
LOW_BITS = 0x0101010101010101
NIBBLE_BITS = 4
KQUANT_SUB_BLOCKS = 8
KQUANT_SCALE_BYTES = 12
SIX_BIT_WORD = 0x3F3F3F3F  # bits 0-5 of each byte of a 32-bit word
LOW_NIBBLE_WORD = 0x0F0F0F0F
HIGH_PAIR_WORD = 0x30303030  # bits 4-5 of each byte


def f16_fields(blocks: torch.Tensor, offset: int, count: int) -> torch.Tensor:
    """The ``count`` consecutive f16s at byte ``offset`` of each block, as float32 [n, count].

    Every block size and f16 offset of the GGUF formats is even, so a block row can be
    viewed as f16 in place (one strided conversion, no gather of byte pairs)."""
    if blocks.storage_offset() % 2 == 0 and blocks.stride(0) % 2 == 0:
        return blocks.view(torch.float16)[:, offset // 2 : offset // 2 + count].float()
    pairs = blocks[:, offset : offset + 2 * count].contiguous()
    return pairs.view(torch.float16).float()


def f16_field(blocks: torch.Tensor, offset: int) -> torch.Tensor:
    """The f16 at byte ``offset`` of each block, as float32: [n, bb] -> [n]."""
    return f16_fields(blocks, offset, 1).view(-1)


def f16_bytes(values: torch.Tensor) -> torch.Tensor:
    """float32 [...] -> the little-endian bytes of its f16 rounding, uint8 [..., 2]."""
    return values.to(torch.float16).unsqueeze(-1).view(torch.uint8)


def words(blocks: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Bytes ``start:stop`` of each block copied into an aligned buffer, as int64 words."""
    aligned = torch.empty(blocks.shape[0], stop - start, dtype=torch.uint8)
    aligned.copy_(blocks[:, start:stop])
    return aligned.view(torch.int64)


def stream_words(blocks: torch.Tensor) -> torch.Tensor | None:
    """The whole of ``blocks`` [n, bb], read in place as one stream of int64 words, or None
    when it is not contiguous or not a whole number of aligned words.  Small blocks (18 or 22
    bytes) are unpacked faster this way than by first gathering their quant bytes; the scale
    bytes get unpacked too, and are simply not read."""
    if (
        not blocks.is_contiguous()
        or blocks.numel() % BYTES_PER_WORD
        or blocks.storage_offset() % BYTES_PER_WORD
    ):
        return None
    return blocks.view(-1).view(torch.int64)


def low_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """Low nibble of every byte of int64 words, byte for byte."""
    return packed & LOW_NIBBLES


def high_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """High nibble of every byte of int64 words, moved to the low nibble."""
    return (packed >> NIBBLE_BITS).bitwise_and_(LOW_NIBBLES)


def bit_planes_into(packed: torch.Tensor, out: torch.Tensor, position: int) -> None:
    """Bit ``i`` of every byte of ``packed`` (int64 words [..., w]) moved to bit ``position``
    of the same byte of ``out[..., i, :]`` (``out`` int64 [..., 8, w]), for i in 0..7."""
    for bit in range(8):
        torch.bitwise_right_shift(packed, bit, out=out[..., bit, :])
    out.bitwise_and_(LOW_BITS).bitwise_left_shift_(position)


def int32_columns(blocks: torch.Tensor, offset: int, count: int) -> torch.Tensor:
    """The ``count`` 32-bit words at byte ``offset`` of each block, word-major: int32
    [count, n] (one strided gather per word along the blocks, no per-block loop)."""
    n = blocks.shape[0]
    if blocks.storage_offset() % 4 == 0 and blocks.stride(0) % 4 == 0 and offset % 4 == 0:
        as_words = blocks.view(torch.int32)[:, offset // 4 : offset // 4 + count]
    else:
        aligned = torch.empty(n, 4 * count, dtype=torch.uint8)
        aligned.copy_(blocks[:, offset : offset + 4 * count])
        as_words = aligned.view(torch.int32)
    columns = torch.empty(count, n, dtype=torch.int32)
    columns.copy_(as_words.t())
    return columns


def unpack_kquant_scales(blocks: torch.Tensor, offset: int) -> torch.Tensor:
    """The 12 scale bytes at ``offset`` of each block [n, bb] -> uint8 [n, 2, 8] in 0..63:
    ``[:, 0]`` the sub-block scales sc, ``[:, 1]`` the mins m.

    Works on the three 32-bit words (sc low, m low, mixed), four sub-blocks at a time and
    word-major, so that every op runs along the blocks; the arithmetic shifts only drag
    sign bits into bits the masks clear."""
    n = blocks.shape[0]
    low, mins, mixed = int32_columns(blocks, offset, KQUANT_SCALE_BYTES // 4)
    packed = torch.empty(n, 2, 2, dtype=torch.int32)  # [block, sc/m, sub-blocks 0-3/4-7]
    torch.bitwise_and(low, SIX_BIT_WORD, out=packed[:, 0, 0])
    torch.bitwise_and(mins, SIX_BIT_WORD, out=packed[:, 1, 0])
    # sub-blocks 4..7: low 4 bits from `mixed`, high 2 bits from bits 6-7 of bytes 0..7
    torch.bitwise_or(mixed & LOW_NIBBLE_WORD, (low >> 2) & HIGH_PAIR_WORD, out=packed[:, 0, 1])
    torch.bitwise_or(
        (mixed >> 4) & LOW_NIBBLE_WORD, (mins >> 2) & HIGH_PAIR_WORD, out=packed[:, 1, 1]
    )
    return packed.view(torch.uint8).view(n, 2, KQUANT_SUB_BLOCKS)


def pack_kquant_scales(sc: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The packing :func:`unpack_kquant_scales` reads: uint8 [..., 8] twice (values 0..63)
    -> uint8 [..., 12]."""
    out = torch.empty(*sc.shape[:-1], KQUANT_SCALE_BYTES, dtype=torch.uint8)
    out[..., 0:4] = sc[..., :4] | ((sc[..., 4:] >> 4) << 6)
    out[..., 4:8] = m[..., :4] | ((m[..., 4:] >> 4) << 6)
    out[..., 8:12] = (sc[..., 4:] & 0x0F) | ((m[..., 4:] & 0x0F) << 4)
    return out


def pack_nibbles(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Two uint8 tensors of values 0..15 -> one byte each, ``low | high << 4``."""
    return low | (high << NIBBLE_BITS)


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 8*m] of 0/1 -> uint8 [..., m], bit i of byte b = bits[..., 8*b + i]."""
    grouped = bits.reshape(*bits.shape[:-1], -1, 8).to(torch.int32)
    weights = torch.tensor([1 << i for i in range(8)], dtype=torch.int32)
    return (grouped * weights).sum(-1).to(torch.uint8)
