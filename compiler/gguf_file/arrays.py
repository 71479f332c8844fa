"""Lazy metadata arrays: long GGUF arrays decoded element by element on access.

A tokenizer stores 262,144 token strings, scores and types; decoding them all at open would cost
more than the rest of the file.  At open the reader only records where each string starts
(one u64 length scan), so `len()` is known and indexing is O(1):

    string array:  offsets[i] -> u64 length n_i, then n_i UTF-8 bytes
    scalar array:  start + i * itemsize -> one little-endian scalar

Both are read-only `Sequence`s; `list(arr)` materializes, `arr == [..]` compares element-wise.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

from compiler.errors import GgufFileError
from compiler.gguf_file.layout import BOOL_CODE, STRING_LENGTH_BYTES, U64, ValueType
from compiler.gguf_file.mapped import MappedFile


class LazyArray(Sequence):
    """Base of the lazy arrays: element type name, length, comparison, summary repr."""

    def __init__(self, source: MappedFile, key: str, element_type: ValueType, count: int) -> None:
        self._source = source
        self.key = key
        self.element_type = element_type.name
        self._count = count

    def __len__(self) -> int:
        return self._count

    def _index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"{self.key}: indices must be integers or slices, not {type(index)}")
        position = int(index) + self._count if index < 0 else int(index)
        if not 0 <= position < self._count:
            raise IndexError(f"{self.key}: index {index} out of range for length {self._count}")
        return position

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(other) == self._count and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # compares by content, like list

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r}: {self.element_type}[{self._count}]>"


class LazyStringArray(LazyArray):
    """GGUF array of strings; `offsets[i]` is the file offset of string i's length prefix."""

    def __init__(
        self, source: MappedFile, key: str, element_type: ValueType, offsets: array
    ) -> None:
        super().__init__(source, key, element_type, len(offsets))
        self._offsets = offsets

    def _decode(self, buffer: Any, position: int) -> str:
        start = self._offsets[position]
        (length,) = U64.unpack_from(buffer, start)
        start += STRING_LENGTH_BYTES
        try:
            return str(buffer[start : start + length], "utf-8")
        except UnicodeDecodeError as exc:
            raise GgufFileError(
                f"{self._source.path}: metadata {self.key!r}[{position}] is not valid UTF-8 "
                f"(byte {exc.start} of the string at offset {start})"
            ) from None

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index):
        buffer = self._source.buffer
        if isinstance(index, slice):
            return [self._decode(buffer, i) for i in range(*index.indices(self._count))]
        return self._decode(buffer, self._index(index))

    def __iter__(self) -> Iterator[str]:
        buffer = self._source.buffer
        for position in range(self._count):
            yield self._decode(buffer, position)


class LazyScalarArray(LazyArray):
    """GGUF array of one scalar type, read in place: element i at `start + i * itemsize`."""

    def __init__(
        self, source: MappedFile, key: str, element_type: ValueType, start: int, count: int
    ) -> None:
        super().__init__(source, key, element_type, count)
        assert element_type.struct is not None and element_type.numpy_dtype is not None
        self._struct = element_type.struct
        self._dtype = np.dtype(element_type.numpy_dtype)
        self._is_bool = element_type.code == BOOL_CODE
        self._start = start

    def numpy(self) -> np.ndarray:
        """A read-only numpy copy of the whole array (bool arrays as `!= 0`)."""
        values = np.frombuffer(
            self._source.buffer, dtype=self._dtype, count=self._count, offset=self._start
        )
        # copy, so that no view pins the map after the caller is done with the file
        return (values != 0) if self._is_bool else values.copy()

    def _scalar(self, position: int) -> Any:
        (value,) = self._struct.unpack_from(
            self._source.buffer, self._start + position * self._struct.size
        )
        return bool(value) if self._is_bool else value

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.numpy()[index].tolist()
        return self._scalar(self._index(index))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.numpy().tolist())
