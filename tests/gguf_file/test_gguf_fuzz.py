"""Fuzz the reader with mutations of a small valid GGUFWriter file.

Whatever the damage (bit flips, truncation, counts and lengths overwritten with huge values),
opening, reading every metadata value, every tensor view and `check()` either work or raise a
GgufcError subclass - never IndexError, struct.error, UnicodeDecodeError, MemoryError - and each
example finishes quickly (no loop or allocation driven by a damaged length).
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pytest
from gguf_file_builders import small_tensors, write_with_gguf_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import open_gguf
from compiler.errors import GgufcError

FUZZ_EXAMPLES = 300
# generous on a loaded CI machine; a parse of this file takes about a millisecond
EXAMPLE_DEADLINE = timedelta(seconds=2)
MAX_BIT_FLIPS = 8
# values written over 4- or 8-byte fields: counts and lengths that cannot fit, or barely can
INFLATED_U64 = (2**63, 2**64 - 1, 2**32, 2**31 - 1, 10**6, 1 << 20)
INFLATED_U32 = (2**32 - 1, 2**31, 5, 64, 0)


@dataclass(frozen=True)
class ValidFile:
    data: bytes = field(repr=False)
    header_end: int


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory) -> ValidFile:
    path = write_with_gguf_writer(
        tmp_path_factory.mktemp("fuzz") / "base.gguf", small_tensors(np.random.default_rng(7))
    )
    with open_gguf(path) as gguf_file:
        return ValidFile(path.read_bytes(), gguf_file.data_offset)


def _exercise(path) -> list[GgufcError]:
    """Open and read everything a caller could read; the GgufcErrors raised on the way."""
    errors: list[GgufcError] = []
    try:
        gguf_file = open_gguf(path)
    except GgufcError as exc:
        return [exc]
    with gguf_file:
        for value in gguf_file.metadata.values():
            if isinstance(value, Sequence) and not isinstance(value, str):
                try:
                    list(value)
                except GgufcError as exc:
                    errors.append(exc)
        for tensor in gguf_file.tensors.values():
            try:
                _ = tensor.data
                tensor.check()
            except GgufcError as exc:
                errors.append(exc)
    return errors


mutation = st.one_of(
    st.tuples(
        st.just("flip"),
        st.lists(st.tuples(st.integers(0), st.integers(0, 7)), min_size=1, max_size=MAX_BIT_FLIPS),
    ),
    st.tuples(st.just("truncate"), st.integers(0)),
    st.tuples(st.just("u64"), st.integers(0), st.sampled_from(INFLATED_U64)),
    st.tuples(st.just("u32"), st.integers(0), st.sampled_from(INFLATED_U32)),
)


def _mutate(data: bytes, header_end: int, change) -> bytes:
    buffer = bytearray(data)
    kind = change[0]
    if not buffer:
        return data
    if kind == "flip":
        for position, bit in change[1]:
            # most flips land in the header, where the parser is; some in the data
            region = min(header_end, len(buffer)) if position % 4 else len(buffer)
            buffer[position % region] ^= 1 << bit
    elif kind == "truncate":
        del buffer[change[1] % len(buffer) :]
    else:
        layout = struct.Struct("<Q" if kind == "u64" else "<I")
        if len(buffer) < layout.size:
            # an earlier truncation left too few bytes to overwrite a field: truncate instead
            return bytes(buffer[:-1])
        position = change[1] % (min(header_end, len(buffer)) - layout.size + 1)
        layout.pack_into(buffer, position, change[2])
    return bytes(buffer)


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=EXAMPLE_DEADLINE,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(changes=st.lists(mutation, min_size=1, max_size=3))
def test_damaged_files_raise_only_ggufc_errors(valid_file, tmp_path, changes):
    data = valid_file.data
    for change in changes:
        data = _mutate(data, valid_file.header_end, change)
    path = tmp_path / f"fuzz{next(_counter)}.gguf"
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        errors = _exercise(path)
    finally:
        path.unlink()
    assert time.perf_counter() - start < EXAMPLE_DEADLINE.total_seconds()
    for error in errors:
        assert str(path) in str(error), str(error)  # every message names the file


_counter = itertools.count()
