"""Parse the header of a GGUF file (magic, version, metadata, tensor infos) over its mmap.

Layout: see `compiler.gguf_file.layout`.  This module checks the syntax only - every read is
bounds-checked against the bytes left in the file *before* anything is allocated, so a damaged
length or count fails at once with a message naming the file, the entry and what was expected,
never with an IndexError, a huge allocation or a long loop.  The meaning of tensor infos
(types, shapes, data bounds) is checked by `compiler.gguf_file.reader`.

Cost: O(number of entries) struct reads, plus one Python step per string of a long string array
(its length prefix), whose bytes are decoded later on access (`arrays.LazyStringArray`).
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from typing import Any, NoReturn

from compiler.errors import GgufFileError, UnsupportedError
from compiler.gguf_file.arrays import LazyScalarArray, LazyStringArray
from compiler.gguf_file.layout import (
    ALIGNMENT_KEY,
    ARRAY_CODE,
    ARRAY_HEADER_BYTES,
    BOOL_CODE,
    COUNTS_STRUCT,
    DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    HEADER_FIXED_BYTES,
    KV_MIN_BYTES,
    MAGIC_STRUCT,
    MAX_ARRAY_NESTING,
    MAX_DIMS,
    SHORT_ARRAY_MAX_LEN,
    STRING_CODE,
    STRING_LENGTH_BYTES,
    SUPPORTED_VERSIONS,
    TENSOR_INFO_MIN_BYTES,
    U32,
    U64,
    VALUE_TYPES,
    ValueType,
)
from compiler.gguf_file.mapped import MappedFile

# A version whose low 16 bits are zero is a byte-swapped small number: a big-endian file.
_BYTE_SWAP_HINT_MASK = 0xFFFF


@dataclass(frozen=True)
class TensorInfo:
    """One tensor record of the header, as stored (ne in ggml order, offset in the data)."""

    index: int
    name: str
    ne: tuple[int, ...]
    type_code: int
    relative_offset: int


@dataclass(frozen=True)
class Header:
    version: int
    metadata: dict[str, Any]
    # key -> "uint32", "string", "array[string]", ... (for inspect and for writers' round trips)
    value_types: dict[str, str]
    tensor_infos: tuple[TensorInfo, ...]
    alignment: int
    # absolute file offset of the data section (header end rounded up to `alignment`)
    data_offset: int


def _value_type_list() -> str:
    return ", ".join(f"{code} ({vt.name})" for code, vt in VALUE_TYPES.items())


class _HeaderParser:
    """A cursor over the mapped bytes; each read names what it reads for error messages."""

    def __init__(self, source: MappedFile) -> None:
        self.source = source
        self.path = source.path
        self.buffer = source.buffer
        self.size = source.size
        self.position = 0

    # -- primitive reads --------------------------------------------------------------------

    def _truncated(self, what: str, needed: int) -> NoReturn:
        remaining = self.size - self.position
        raise GgufFileError(
            f"{self.path}: file truncated: {what} needs {needed} bytes at offset "
            f"{self.position}, but only {max(remaining, 0)} remain (file size {self.size})"
        )

    def _need(self, needed: int, what: str) -> None:
        if needed > self.size - self.position:
            self._truncated(what, needed)

    def _u32(self, what: str) -> int:
        self._need(U32.size, what)
        (value,) = U32.unpack_from(self.buffer, self.position)
        self.position += U32.size
        return value

    def _u64(self, what: str) -> int:
        self._need(U64.size, what)
        (value,) = U64.unpack_from(self.buffer, self.position)
        self.position += U64.size
        return value

    def _string(self, what: str) -> str:
        length = self._u64(f"the length of {what}")
        self._need(length, what)
        start = self.position
        self.position += length
        try:
            return str(self.buffer[start : start + length], "utf-8")
        except UnicodeDecodeError as exc:
            raise GgufFileError(
                f"{self.path}: {what} at offset {start} is not valid UTF-8 "
                f"(bad byte at {start + exc.start})"
            ) from None

    def _check_count(self, count: int, min_bytes: int, what: str) -> None:
        """Refuse a count whose smallest possible encoding cannot fit in the rest of the file."""
        remaining = self.size - self.position
        if count * min_bytes > remaining:
            raise GgufFileError(
                f"{self.path}: {what} is {count}, but {count} entries of at least {min_bytes} "
                f"bytes cannot fit in the {remaining} bytes left after offset {self.position} "
                f"(damaged or truncated file)"
            )

    # -- values -----------------------------------------------------------------------------

    def _value_type(self, code: int, key: str) -> ValueType:
        value_type = VALUE_TYPES.get(code)
        if value_type is None:
            raise GgufFileError(
                f"{self.path}: metadata {key!r} has unknown value type code {code} "
                f"(expected one of {_value_type_list()})"
            )
        return value_type

    def _scalar(self, value_type: ValueType, key: str) -> Any:
        layout = value_type.struct
        assert layout is not None
        self._need(layout.size, f"the {value_type.name} value of metadata {key!r}")
        (value,) = layout.unpack_from(self.buffer, self.position)
        self.position += layout.size
        if value_type.code == BOOL_CODE:
            if value not in (0, 1):
                raise GgufFileError(
                    f"{self.path}: metadata {key!r}: bool byte is {value}, expected 0 or 1"
                )
            return bool(value)
        return value

    def _value(self, value_type: ValueType, key: str, depth: int) -> tuple[Any, str]:
        """Read one value; returns it and its type's name ("array[string]" for arrays)."""
        if value_type.code == STRING_CODE:
            return self._string(f"the string value of metadata {key!r}"), value_type.name
        if value_type.code == ARRAY_CODE:
            return self._array(key, depth)
        return self._scalar(value_type, key), value_type.name

    def _array(self, key: str, depth: int) -> tuple[Any, str]:
        if depth >= MAX_ARRAY_NESTING:
            raise GgufFileError(
                f"{self.path}: metadata {key!r}: arrays nested more than {MAX_ARRAY_NESTING} "
                f"deep (damaged file?)"
            )
        self._need(ARRAY_HEADER_BYTES, f"the array header of metadata {key!r}")
        element_type = self._value_type(self._u32("array element type"), key)
        count = self._u64(f"the array length of metadata {key!r}")
        self._check_count(count, element_type.min_bytes, f"the array length of metadata {key!r}")
        if element_type.code == ARRAY_CODE:
            elements = [self._array(key, depth + 1) for _ in range(count)]
            inner = elements[0][1] if elements else "array"
            return tuple(value for value, _ in elements), f"array[{inner}]"
        type_name = f"array[{element_type.name}]"
        if element_type.code == STRING_CODE:
            if count <= SHORT_ARRAY_MAX_LEN:
                what = f"an element of metadata {key!r}"
                return tuple(self._string(what) for _ in range(count)), type_name
            return self._lazy_strings(key, element_type, count), type_name
        layout = element_type.struct
        assert layout is not None
        nbytes = count * layout.size
        self._need(nbytes, f"the {count} elements of metadata {key!r}")
        start = self.position
        self.position += nbytes
        if count > SHORT_ARRAY_MAX_LEN:
            return LazyScalarArray(self.source, key, element_type, start, count), type_name
        # "<I" -> "<5I": all elements in one unpack
        values = struct.unpack_from(f"<{count}{layout.format[-1]}", self.buffer, start)
        if element_type.code == BOOL_CODE:
            values = tuple(bool(v) for v in values)
        return values, type_name

    def _lazy_strings(self, key: str, element_type: ValueType, count: int) -> LazyStringArray:
        """Record each string's offset by hopping over its length prefix; decode nothing."""
        # Grown as strings are found, not sized by `count`: a damaged count in a large file
        # then fails after a few hops instead of first allocating memory in proportion to it.
        offsets = array("Q")
        append = offsets.append
        buffer, size, unpack = self.buffer, self.size, U64.unpack_from
        position = self.position
        for i in range(count):
            if position + STRING_LENGTH_BYTES > size:
                self.position = position
                self._truncated(f"string {i} of {count} of metadata {key!r}", STRING_LENGTH_BYTES)
            append(position)
            position += STRING_LENGTH_BYTES + unpack(buffer, position)[0]
        if position > size:
            self.position = offsets[count - 1]
            self._truncated(f"the last string of metadata {key!r}", position - self.position)
        self.position = position
        return LazyStringArray(self.source, key, element_type, offsets)

    # -- sections ---------------------------------------------------------------------------

    def _preamble(self) -> tuple[int, int, int]:
        self._need(MAGIC_STRUCT.size, "the GGUF magic")
        (magic,) = MAGIC_STRUCT.unpack_from(self.buffer, 0)
        if magic != GGUF_MAGIC:
            raise GgufFileError(
                f"{self.path}: not a GGUF file: starts with {magic!r}, expected {GGUF_MAGIC!r}"
            )
        self.position = MAGIC_STRUCT.size
        version = self._u32("the GGUF version")
        if version not in SUPPORTED_VERSIONS:
            hint = (
                " (this looks like a big-endian file; only little-endian GGUF is read)"
                if version & _BYTE_SWAP_HINT_MASK == 0
                else ""
            )
            raise UnsupportedError(
                f"{self.path}: GGUF version {version} is not supported{hint}; ggufc reads "
                f"versions {' and '.join(map(str, SUPPORTED_VERSIONS))}"
            )
        self._need(COUNTS_STRUCT.size, "the tensor and metadata counts")
        tensor_count, kv_count = COUNTS_STRUCT.unpack_from(self.buffer, self.position)
        self.position += COUNTS_STRUCT.size
        assert self.position == HEADER_FIXED_BYTES
        return version, tensor_count, kv_count

    def _metadata(self, kv_count: int) -> tuple[dict[str, Any], dict[str, str]]:
        self._check_count(kv_count, KV_MIN_BYTES, "the metadata count (kv_count)")
        metadata: dict[str, Any] = {}
        value_types: dict[str, str] = {}
        for index in range(kv_count):
            key = self._string(f"the key of metadata entry {index} of {kv_count}")
            if key in metadata:
                raise GgufFileError(f"{self.path}: metadata key {key!r} appears twice")
            value_type = self._value_type(self._u32(f"the value type of metadata {key!r}"), key)
            metadata[key], value_types[key] = self._value(value_type, key, depth=0)
        return metadata, value_types

    def _tensor_infos(self, tensor_count: int) -> tuple[TensorInfo, ...]:
        self._check_count(tensor_count, TENSOR_INFO_MIN_BYTES, "the tensor count")
        infos: list[TensorInfo] = []
        seen: set[str] = set()
        for index in range(tensor_count):
            name = self._string(f"the name of tensor {index} of {tensor_count}")
            if name in seen:
                raise GgufFileError(
                    f"{self.path}: tensor {name!r} appears twice (tensor {index}); "
                    f"tensor names must be unique"
                )
            seen.add(name)
            n_dims = self._u32(f"n_dims of tensor {name!r}")
            if n_dims > MAX_DIMS:
                raise GgufFileError(
                    f"{self.path}: tensor {name!r} has n_dims = {n_dims}, expected 0 to {MAX_DIMS}"
                )
            ne = tuple(self._u64(f"dimension {d} of tensor {name!r}") for d in range(n_dims))
            type_code = self._u32(f"the type of tensor {name!r}")
            offset = self._u64(f"the data offset of tensor {name!r}")
            infos.append(TensorInfo(index, name, ne, type_code, offset))
        return tuple(infos)

    def _alignment(self, metadata: dict[str, Any], value_types: dict[str, str]) -> int:
        if ALIGNMENT_KEY not in metadata:
            return DEFAULT_ALIGNMENT
        alignment = metadata[ALIGNMENT_KEY]
        if value_types[ALIGNMENT_KEY] != "uint32" or alignment <= 0 or alignment & (alignment - 1):
            raise GgufFileError(
                f"{self.path}: {ALIGNMENT_KEY} is {alignment!r} "
                f"({value_types[ALIGNMENT_KEY]}), expected a uint32 power of two"
            )
        return alignment

    def parse(self) -> Header:
        version, tensor_count, kv_count = self._preamble()
        metadata, value_types = self._metadata(kv_count)
        tensor_infos = self._tensor_infos(tensor_count)
        alignment = self._alignment(metadata, value_types)
        data_offset = -(-self.position // alignment) * alignment
        return Header(version, metadata, value_types, tensor_infos, alignment, data_offset)


def parse_header(source: MappedFile) -> Header:
    """The header of the mapped file; raises GgufFileError / UnsupportedError when damaged."""
    return _HeaderParser(source).parse()
