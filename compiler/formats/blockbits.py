"""Bit-level helpers shared by the format modules: f16 fields, nibbles, packed bits, row
gathers, and the 6-bit scale/min packing of the K-quants.

Unpacking works on 64-bit words (SWAR: eight packed bytes per lane), either of a block's quant
bytes (read in place when blocks are 8-byte aligned, else copied into an aligned buffer) or of
a whole aligned run of small blocks, so that torch's elementwise kernels touch eight times
fewer elements than a byte-by-byte unpack would.  Each op runs over a whole plane (all low
nibbles, all high nibbles, all bit-s planes ...), contiguous, and one ``index_select`` of
32-byte rows then puts the planes' rows in weight order: a torch op whose loop is 3-D or
more (what writing each nibble straight to its place would take) costs ~40 ns per block.
Masks below are per-byte patterns replicated over the eight bytes of a word; a right shift
of a signed int64 only drags sign bits into the top byte's high bits, which every mask here
clears.

K-quant 6-bit scales (12 bytes for 8 sub-blocks, scale ``sc[j]`` and min ``m[j]``)::

    byte 0..3  : sc[0..3] (bits 0-5) | sc[4..7] bits 4-5 (bits 6-7)
    byte 4..7  : m[0..3]  (bits 0-5) | m[4..7]  bits 4-5 (bits 6-7)
    byte 8..11 : sc[4..7] bits 0-3 (low nibble) | m[4..7] bits 0-3 (high nibble)
"""

from __future__ import annotations

import functools

import torch

from compiler.formats.workspace import Workspace

BYTES_PER_WORD = 8
WORDS_PER_32 = 32 // BYTES_PER_WORD  # words holding 32 one-byte quants (one gathered row)
LOW_NIBBLES = 0x0F0F0F0F0F0F0F0F
LOW_BITS = 0x0101010101010101
NIBBLE_BITS = 4
KQUANT_SUB_BLOCKS = 8
KQUANT_SCALE_BYTES = 12
SIX_BIT_WORD = 0x3F3F3F3F  # bits 0-5 of each byte of a 32-bit word
LOW_NIBBLE_WORD = 0x0F0F0F0F
HIGH_PAIR_WORD = 0x30303030  # bits 4-5 of each byte
# shifts of the mixed scale word that bring sc[4..7] (low nibbles) and m[4..7] (high nibbles)
# to the low nibbles
_SC_M_NIBBLE_SHIFTS = torch.tensor([[0], [NIBBLE_BITS]], dtype=torch.int32)


def constant(value: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """``value`` as a 0-dim tensor, for the operand of an op run once per chunk: torch wraps
    a Python number in a fresh tensor at every call, which costs ~3 us, as much as the op
    itself on a chunk's few KiB of packed words."""
    return torch.tensor(value, dtype=dtype)


LOW_NIBBLES_MASK = constant(LOW_NIBBLES)
LOW_BITS_MASK = constant(LOW_BITS)
NIBBLE_SHIFT = constant(NIBBLE_BITS)
_SIX_BITS = constant(SIX_BIT_WORD, torch.int32)
_LOW_NIBBLE_WORD = constant(LOW_NIBBLE_WORD, torch.int32)
_HIGH_PAIRS = constant(HIGH_PAIR_WORD, torch.int32)
_TWO = constant(2, torch.int32)


def f16_column_view(blocks: torch.Tensor, offset: int) -> torch.Tensor:
    """The f16 at byte ``offset`` of each block, as f16 [n, 1]: a view of ``blocks`` when
    they are 2-byte aligned (every block size and f16 offset of the GGUF formats is even),
    else a copy."""
    if blocks.storage_offset() % 2 == 0 and blocks.stride(0) % 2 == 0:
        return blocks.view(torch.float16)[:, offset // 2 : offset // 2 + 1]
    return blocks[:, offset : offset + 2].contiguous().view(torch.float16)


def f16_bytes(values: torch.Tensor) -> torch.Tensor:
    """float32 [...] -> the little-endian bytes of its f16 rounding, uint8 [..., 2]."""
    return values.to(torch.float16).unsqueeze(-1).view(torch.uint8)


def words(
    blocks: torch.Tensor, start: int, stop: int, scratch: Workspace | None = None
) -> torch.Tensor:
    """Bytes ``start:stop`` of each block copied into an aligned buffer (from ``scratch``
    when given), as contiguous int64 words [n, (stop - start) / 8]."""
    shape = (blocks.shape[0], stop - start)
    if scratch is None:
        aligned = torch.empty(shape, dtype=torch.uint8)
    else:
        aligned = scratch.take(f"bytes {start}:{stop}", shape, torch.uint8)
    aligned.copy_(blocks[:, start:stop])
    return aligned.view(torch.int64)


def block_words(
    blocks: torch.Tensor, start: int, stop: int, scratch: Workspace | None = None
) -> torch.Tensor:
    """Bytes ``start:stop`` of each block as int64 words [n, (stop - start) / 8]: read in
    place when every block starts on an 8-byte boundary (144- and 176-byte blocks of an
    aligned tensor), else copied by :func:`words`."""
    if (
        blocks.stride(1) == 1
        and blocks.shape[1] % BYTES_PER_WORD == 0
        and blocks.stride(0) % BYTES_PER_WORD == 0
        and blocks.storage_offset() % BYTES_PER_WORD == 0
        and start % BYTES_PER_WORD == 0
        and stop % BYTES_PER_WORD == 0
    ):
        return blocks.view(torch.int64)[:, start // BYTES_PER_WORD : stop // BYTES_PER_WORD]
    return words(blocks, start, stop, scratch)


def stream_words(blocks: torch.Tensor, padded: int, scratch: Workspace) -> torch.Tensor:
    """Blocks [n, bb] as one stream of int64 words covering ``padded`` >= n blocks (padded *
    bb a multiple of 8): read in place when ``blocks`` is contiguous, aligned and n ==
    padded, else copied into a ``scratch`` buffer whose tail bytes (past n blocks) are
    left uninitialized.  Small blocks (18 or 22 bytes) are unpacked faster this way than by
    first gathering their quant bytes; the scale bytes get unpacked too, and are not read."""
    n, block_bytes = blocks.shape
    if (
        n == padded
        and blocks.is_contiguous()
        and blocks.storage_offset() % BYTES_PER_WORD == 0
        and (n * block_bytes) % BYTES_PER_WORD == 0
    ):
        return blocks.view(-1).view(torch.int64)
    stream = scratch.take("stream", (padded * block_bytes,), torch.uint8)
    stream[: n * block_bytes].view(n, block_bytes).copy_(blocks)
    return stream.view(torch.int64)


# a few entries per format suffice (full chunks and the last partial chunk of recent calls)
@functools.lru_cache(maxsize=16)
def row_order(sizes: tuple[int, ...], order: tuple[int, ...]) -> torch.Tensor:
    """Index for ``index_select`` along dim 0 that rearranges the rows of a tensor laid out
    as ``sizes`` (rows numbered in that row-major order) into ``permute(order)`` order.

    The formats store a block's quants in an order of their own (low nibbles of a group of
    bytes, then its high nibbles, ...); the unpacking works on whole planes of such rows, and
    one row gather (a memcpy per row) puts them in weight order.  A permuting copy would do
    the same with one strided loop per block, several times slower in torch."""
    count = 1
    for size in sizes:
        count *= size
    return torch.arange(count).view(sizes).permute(order).reshape(-1)


def gather_rows(
    rows: torch.Tensor, sizes: tuple[int, ...], order: tuple[int, ...], out: torch.Tensor
) -> torch.Tensor:
    """``rows`` [R, w] (R rows numbered in ``sizes`` order) rearranged into ``order``,
    written to ``out`` [R, w]."""
    return torch.index_select(rows, 0, row_order(sizes, order), out=out)


def nibble_planes_into(
    packed: torch.Tensor, planes: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
) -> None:
    """Low nibbles of the bytes of int64 words ``packed`` [...] into ``planes[0]``, high
    nibbles (moved down) into ``planes[1]``, byte for byte (``planes`` int64 [2, ...], or
    its two halves)."""
    low, high = planes
    torch.bitwise_and(packed, LOW_NIBBLES_MASK, out=low)
    torch.bitwise_right_shift(packed, NIBBLE_SHIFT, out=high)
    high.bitwise_and_(LOW_NIBBLES_MASK)


class KQuantScaleUnpacker:
    """Scratch views that unpack the packed K-quant scales of n blocks: fill ``columns``
    (int32 [4, n], word-major: d|dmin, then the three scale words), call :meth:`unpack`,
    read ``levels`` (uint8 [2, n, 8] in 0..63: ``[0]`` the sub-block scales sc, ``[1]`` the
    mins m).

    Works on whole words, four sub-blocks at a time, sc and m side by side, every op along
    the blocks; the arithmetic shifts only drag sign bits into bits the masks clear."""

    def __init__(self, n: int, scratch: Workspace) -> None:
        self.columns = scratch.take("scale columns", (4, n), torch.int32)
        self._low_words = self.columns[1:3]  # sc and m, bits 0-5 of sub-blocks 0..3
        self._mixed_word = self.columns[3:4]  # low 4 bits of sub-blocks 4..7
        # [sc/m, block, sub-blocks 0-3/4-7]
        levels = scratch.take("scale levels", (2, n, 2), torch.int32)
        self._first_four = levels[:, :, 0]
        self._last_four = levels[:, :, 1]
        self.levels = levels.view(torch.uint8).view(2, n, KQUANT_SUB_BLOCKS)
        self._mixed = scratch.take("scale mixed", (2, n), torch.int32)
        self._high_pairs = scratch.take("scale high pairs", (2, n), torch.int32)

    def unpack(self) -> torch.Tensor:
        torch.bitwise_and(self._low_words, _SIX_BITS, out=self._first_four)
        # sub-blocks 4..7: low 4 bits from the mixed word (sc: its low nibbles, m: its high
        # nibbles), high 2 bits from bits 6-7 of the low words
        torch.bitwise_right_shift(self._mixed_word, _SC_M_NIBBLE_SHIFTS, out=self._mixed)
        self._mixed.bitwise_and_(_LOW_NIBBLE_WORD)
        torch.bitwise_right_shift(self._low_words, _TWO, out=self._high_pairs)
        self._high_pairs.bitwise_and_(_HIGH_PAIRS)
        torch.bitwise_or(self._mixed, self._high_pairs, out=self._last_four)
        return self.levels


def unpack_kquant_scale_words(packed: torch.Tensor) -> torch.Tensor:
    """The three 32-bit words of packed K-quant scales, word-major (int32 [3, n]: sc low
    bits, m low bits, mixed) -> uint8 [2, n, 8] in 0..63 (see :class:`KQuantScaleUnpacker`)."""
    unpacker = KQuantScaleUnpacker(packed.shape[1], Workspace())
    unpacker.columns[1:].copy_(packed)
    return unpacker.unpack()


def int32_columns(words: torch.Tensor) -> torch.Tensor:
    """int32 [n, c] -> the same values word-major, contiguous int32 [c, n] (ops on its rows
    then run along the blocks, in one loop each)."""
    columns = torch.empty(words.shape[1], words.shape[0], dtype=torch.int32)
    columns.copy_(words.t())
    return columns


def pack_kquant_scales(sc: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The packing :func:`unpack_kquant_scale_words` reads: uint8 [..., 8] twice (values 0..63)
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


# Legacy 32-weight blocks (Q4_0, Q5_0): this many blocks fill whole 8-byte words
# (4 * 18 = 9 words, 4 * 22 = 11 words).
LEGACY_BLOCKS_PER_WORD_RUN = 4
QS_BYTES_PER_LEGACY_BLOCK = 16


class LegacyNibbles:
    """Scratch views that unpack the 4-bit quants of n legacy blocks of ``block_bytes``
    bytes whose 16 ``qs`` bytes start at ``qs_offset`` (low nibble -> weight j, high nibble
    -> weight j + 16): :meth:`unpack` gives them as uint8 [n, 32] in weight order.

    The blocks are unpacked as one stream of words (read in place when aligned, else
    copied), scale bytes included; plane p of block b then holds weights 16p..16p+15 at
    the qs bytes, and one row gather interleaves the two planes."""

    def __init__(self, n: int, block_bytes: int, qs_offset: int, scratch: Workspace) -> None:
        self._n = n
        self._padded = -(-n // LEGACY_BLOCKS_PER_WORD_RUN) * LEGACY_BLOCKS_PER_WORD_RUN
        words = self._padded * block_bytes // BYTES_PER_WORD
        planes = scratch.take("planes", (2, words), torch.int64)
        self._planes = (planes[0], planes[1])
        self._rows = planes.view(torch.uint8).view(2 * self._padded, block_bytes)[:, qs_offset:]
        half = QS_BYTES_PER_LEGACY_BLOCK
        quants = scratch.take("quants", (2 * self._padded, half), torch.uint8)
        self._quants = quants
        self.quants = quants[: 2 * n].view(n, 2 * half)
        self._order = row_order((2, self._padded), (1, 0))
        self._scratch = scratch

    def unpack(self, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stream, quants): the padded word stream of ``blocks`` (for reading other
        fields) and their uint8 [n, 32] quants (in this unpacker's scratch)."""
        stream = stream_words(blocks, self._padded, self._scratch)
        nibble_planes_into(stream, self._planes)
        torch.index_select(self._rows, 0, self._order, out=self._quants)
        return stream, self.quants
