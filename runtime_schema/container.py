"""The `.ggufc` container: a fixed header, the flatbuffer, the constant segment.

Layout (all integers little-endian)::

    offset  size  field
    0       8     magic              b"GGUFCPRG"
    8       4     format_version     FORMAT_VERSION (u32)
    12      4     header_size        HEADER_SIZE = 64 (u32)
    16      8     flatbuffer_offset  = header_size (u64)
    24      8     flatbuffer_size    (u64)
    32      8     segment_offset     flatbuffer end rounded up to SEGMENT_ALIGNMENT (u64)
    40      8     segment_size       (u64)
    48      4     flatbuffer_crc32   zlib.crc32 of the flatbuffer bytes (u32)
    52      4     segment_crc32      zlib.crc32 of the segment bytes (u32)
    56      8     reserved           zero
    64      ...   flatbuffer (root table `Program`, file identifier "GGPF")
    ...     ...   zero padding up to segment_offset
    segment_offset  segment_size  constant segment

The file ends exactly at ``segment_offset + segment_size``.  Every constant in the segment
starts at a multiple of `SEGMENT_ALIGNMENT` from the segment start (so at a 64-byte aligned
address of a page-aligned mapping); the gaps are zero.  Identical constants (same bytes) are
stored once.  The two CRCs cover everything after the header except the padding, so damage
anywhere is caught before a single table is read; the loader still bounds every read of the
flatbuffer, because a file can be valid by CRC and still be made up.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from compiler.errors import ProgramFormatError

MAGIC = b"GGUFCPRG"
FORMAT_VERSION = 1
HEADER_SIZE = 64
SEGMENT_ALIGNMENT = 64
FLATBUFFER_IDENTIFIER = b"GGPF"
# magic, format_version, header_size, fb offset, fb size, seg offset, seg size, crc, crc, pad
_HEADER_STRUCT = struct.Struct("<8sIIQQQQII8x")
assert _HEADER_STRUCT.size == HEADER_SIZE


def align_up(n: int, alignment: int = SEGMENT_ALIGNMENT) -> int:
    return (n + alignment - 1) // alignment * alignment


def crc32(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


@dataclass(frozen=True)
class Header:
    format_version: int
    flatbuffer_offset: int
    flatbuffer_size: int
    segment_offset: int
    segment_size: int
    flatbuffer_crc32: int
    segment_crc32: int

    @property
    def file_size(self) -> int:
        return self.segment_offset + self.segment_size

    def pack(self) -> bytes:
        return _HEADER_STRUCT.pack(
            MAGIC,
            self.format_version,
            HEADER_SIZE,
            self.flatbuffer_offset,
            self.flatbuffer_size,
            self.segment_offset,
            self.segment_size,
            self.flatbuffer_crc32,
            self.segment_crc32,
        )

    @classmethod
    def for_sizes(cls, flatbuffer: bytes, segment_size: int, segment_crc: int) -> Header:
        return cls(
            format_version=FORMAT_VERSION,
            flatbuffer_offset=HEADER_SIZE,
            flatbuffer_size=len(flatbuffer),
            segment_offset=align_up(HEADER_SIZE + len(flatbuffer)),
            segment_size=segment_size,
            flatbuffer_crc32=crc32(flatbuffer),
            segment_crc32=segment_crc,
        )


def parse_header(data, file_size: int, where: str = "program file") -> Header:
    """Read and check the header of a file of `file_size` bytes whose start is `data`."""
    if file_size < HEADER_SIZE or len(data) < HEADER_SIZE:
        raise ProgramFormatError(
            f"{where}: {file_size} bytes is shorter than the {HEADER_SIZE}-byte header"
        )
    (magic, version, header_size, fb_offset, fb_size, seg_offset, seg_size, fb_crc, seg_crc) = (
        _HEADER_STRUCT.unpack_from(data, 0)
    )
    if magic != MAGIC:
        raise ProgramFormatError(f"{where}: header.magic is {magic!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise ProgramFormatError(
            f"{where}: header.format_version is {version}, this reader knows {FORMAT_VERSION}"
        )
    if header_size != HEADER_SIZE:
        raise ProgramFormatError(
            f"{where}: header.header_size is {header_size}, expected {HEADER_SIZE}"
        )
    if fb_offset != HEADER_SIZE:
        raise ProgramFormatError(
            f"{where}: header.flatbuffer_offset is {fb_offset}, expected {HEADER_SIZE}"
        )
    if seg_offset != align_up(fb_offset + fb_size):
        raise ProgramFormatError(
            f"{where}: header.segment_offset is {seg_offset}, expected the flatbuffer end "
            f"{fb_offset + fb_size} rounded up to {SEGMENT_ALIGNMENT}"
        )
    if seg_offset + seg_size != file_size:
        raise ProgramFormatError(
            f"{where}: header says the file is {seg_offset + seg_size} bytes "
            f"(segment_offset {seg_offset} + segment_size {seg_size}), it is {file_size}"
        )
    return Header(version, fb_offset, fb_size, seg_offset, seg_size, fb_crc, seg_crc)
