"""Damaged files: each raises a GgufcError subclass naming the file, the entry and what was expected."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from gguf_file_builders import (
    VALUE_TYPE,
    assemble,
    f32_tensor_file,
    gguf_string,
    raw_kv,
    scalar_kv,
    small_tensors,
    string_array_kv,
    string_kv,
    tensor_info,
    write_with_gguf_writer,
)

from compiler import formats, open_gguf
from compiler.errors import FormatError, GgufcError, GgufFileError, UnsupportedError
from compiler.gguf_file.layout import HEADER_FIXED_BYTES, MAX_DIMS, SHORT_ARRAY_MAX_LEN

ARCH = string_kv("general.architecture", "testarch")
HUGE = 2**63
# An f16 +inf and NaN: all exponent bits set.
F16_INF = 0x7C00
F16_NAN = 0x7E00
# the truncation test of a GGUFWriter file opens about this many prefixes of its header and of
# its data (every byte of a smaller file is covered by test_truncated_at_every_byte)
HEADER_PREFIX_STEPS = 400
DATA_PREFIX_STEPS = 50


def _write(tmp_path, data: bytes, name: str = "bad.gguf"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _open_error(tmp_path, data: bytes, error=GgufFileError) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(error) as info:
        open_gguf(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_truncated_at_every_byte(tmp_path):
    """Every prefix of a valid file fails cleanly, in the header or as data past the end."""
    full = f32_tensor_file(name="w", values=8)
    unpadded_header = assemble([ARCH], [tensor_info("w", (8,), "F32", 0)], alignment=1)
    path = tmp_path / "prefix.gguf"
    for length in range(len(full)):
        path.write_bytes(full[:length])
        with pytest.raises(GgufFileError) as info:
            open_gguf(path)
        message = str(info.value)
        assert str(path) in message
        if length < len(unpadded_header):
            assert "truncated" in message, (length, message)
        else:
            assert "runs past the end" in message and "'w'" in message, (length, message)


def test_truncated_writer_file(tmp_path):
    """The same over a GGUFWriter file with long lazy arrays, prefixes sampled."""
    path = write_with_gguf_writer(tmp_path / "full.gguf", small_tensors(np.random.default_rng(0)))
    full = path.read_bytes()
    with open_gguf(path) as gguf_file:
        data_offset = gguf_file.data_offset
        # the writer pads after the last tensor too; a file cut in that padding is still whole
        data_end = max(t.offset + t.nbytes for t in gguf_file.tensors.values())
    header_step = max(1, data_offset // HEADER_PREFIX_STEPS)
    data_step = max(1, (data_end - data_offset) // DATA_PREFIX_STEPS)
    lengths = [*range(0, data_offset, header_step), *range(data_offset, data_end, data_step)]
    prefix = tmp_path / "prefix.gguf"
    for length in lengths:
        prefix.write_bytes(full[:length])
        with pytest.raises(GgufFileError, match="truncated|runs past the end"):
            open_gguf(prefix)


def test_empty_file(tmp_path):
    message = _open_error(tmp_path, b"")
    assert "truncated" in message and "magic" in message


def test_bad_magic(tmp_path):
    message = _open_error(tmp_path, b"GGML" + f32_tensor_file()[4:])
    assert "not a GGUF file" in message and "b'GGML'" in message and "b'GGUF'" in message


@pytest.mark.parametrize("version", [1, 4, 99])
def test_unsupported_version(tmp_path, version):
    message = _open_error(tmp_path, assemble([ARCH], [], version=version), UnsupportedError)
    assert f"version {version}" in message and "2 and 3" in message


def test_big_endian_file_is_named(tmp_path):
    big_endian_version_3 = 3 << 24
    message = _open_error(
        tmp_path, assemble([ARCH], [], version=big_endian_version_3), UnsupportedError
    )
    assert "big-endian" in message


def test_tensor_data_past_end_of_file(tmp_path):
    data = assemble([ARCH], [tensor_info("w", (16,), "F32", 0)], bytes(4 * 15))
    message = _open_error(tmp_path, data)
    assert "'w'" in message and "runs past the end" in message and "64 bytes" in message


def test_misaligned_tensor_offset(tmp_path):
    infos = [tensor_info("a", (1,), "F32", 0), tensor_info("b", (1,), "F32", 4)]
    message = _open_error(tmp_path, assemble([ARCH], infos, bytes(64)))
    assert "'b'" in message and "offset 4" in message and "multiple of the alignment 32" in message


def test_unknown_value_type(tmp_path):
    unknown = max(VALUE_TYPE.values()) + 1
    message = _open_error(tmp_path, assemble([ARCH, raw_kv("odd.key", unknown, b"\0" * 8)], []))
    assert "'odd.key'" in message and f"unknown value type code {unknown}" in message
    assert "uint8" in message  # the expected codes are listed


def test_unknown_array_element_type(tmp_path):
    payload = struct.pack("<IQ", 200, 1)
    message = _open_error(
        tmp_path, assemble([ARCH, raw_kv("arr", VALUE_TYPE["array"], payload)], [])
    )
    assert "'arr'" in message and "unknown value type code 200" in message


def test_unknown_tensor_type(tmp_path):
    data = assemble([ARCH], [tensor_info("w", (4,), 999, 0)], bytes(32))
    message = _open_error(tmp_path, data, UnsupportedError)
    assert "'w'" in message and "type code 999" in message and "Q4_K" in message


def test_n_dims_out_of_range(tmp_path):
    bad_dims = MAX_DIMS + 1
    data = assemble([ARCH], [tensor_info("w", (1,) * bad_dims, "F32", 0)], bytes(32))
    message = _open_error(tmp_path, data)
    assert "'w'" in message and f"n_dims = {bad_dims}" in message and f"0 to {MAX_DIMS}" in message


def test_quantized_row_not_whole_blocks(tmp_path):
    block_weights = formats.FORMATS["Q8_0"].block_weights
    ne0 = block_weights + block_weights // 2
    data = assemble([ARCH], [tensor_info("w", (ne0, 2), "Q8_0", 0)], bytes(256))
    message = _open_error(tmp_path, data, FormatError)
    assert "'w'" in message and f"rows of {ne0} weights" in message
    assert f"multiple of the Q8_0 block size {block_weights}" in message


def test_duplicate_tensor_names(tmp_path):
    infos = [tensor_info("w", (8,), "F32", 0), tensor_info("w", (8,), "F32", 32)]
    message = _open_error(tmp_path, assemble([ARCH], infos, bytes(64)))
    assert "'w' appears twice" in message


def test_duplicate_metadata_keys(tmp_path):
    message = _open_error(tmp_path, assemble([ARCH, ARCH], []))
    assert "'general.architecture' appears twice" in message


@pytest.mark.parametrize("scale_bits", [F16_INF, F16_NAN])
def test_nonfinite_scale_found_by_check(tmp_path, scale_bits):
    spec = formats.FORMATS["Q8_0"]
    rows, blocks_per_row = 3, 2
    bad_row, bad_block = 1, 1
    blocks = formats.random_blocks("Q8_0", rows, blocks_per_row * spec.block_weights).numpy()
    blocks = blocks.reshape(rows, blocks_per_row, spec.block_bytes)
    scale_offset = spec.field_offset("d")
    blocks[bad_row, bad_block, scale_offset : scale_offset + 2] = np.frombuffer(
        struct.pack("<H", scale_bits), np.uint8
    )
    data = assemble(
        [ARCH],
        [tensor_info("q.weight", (blocks_per_row * spec.block_weights, rows), "Q8_0", 0)],
        blocks.tobytes(),
    )
    path = _write(tmp_path, data)
    with open_gguf(path) as gguf_file:  # open stays fast: scales are not read
        tensor = gguf_file.tensors["q.weight"]
        for check in (tensor.check, gguf_file.check_tensors):
            with pytest.raises(GgufFileError) as info:
                check()
            message = str(info.value)
            assert str(path) in message and "'q.weight'" in message
            assert f"row {bad_row}, block {bad_block}" in message and "non-finite scale" in message


def test_nonfinite_float_value_found_by_check(tmp_path):
    values = np.ones(8, "<f4")
    values[5] = np.inf
    path = _write(tmp_path, assemble([ARCH], [tensor_info("n", (8,), "F32", 0)], values.tobytes()))
    with (
        open_gguf(path) as gguf_file,
        pytest.raises(GgufFileError, match=r"'n'.*element \[5\] is inf"),
    ):
        gguf_file.check_tensors()


def test_inflated_tensor_count(tmp_path):
    data = bytearray(f32_tensor_file())
    struct.pack_into("<Q", data, 8, HUGE)
    message = _open_error(tmp_path, bytes(data))
    assert "tensor count" in message and f"is {HUGE}" in message and "cannot fit" in message


def test_inflated_kv_count(tmp_path):
    data = bytearray(f32_tensor_file())
    struct.pack_into("<Q", data, 16, HUGE)
    message = _open_error(tmp_path, bytes(data))
    assert "kv_count" in message and "cannot fit" in message


def test_inflated_string_length(tmp_path):
    data = bytearray(f32_tensor_file())
    struct.pack_into("<Q", data, HEADER_FIXED_BYTES, HUGE)  # length of the first key
    message = _open_error(tmp_path, bytes(data))
    assert "truncated" in message and "metadata entry 0" in message and str(HUGE) in message


def test_inflated_array_count(tmp_path):
    payload = struct.pack("<IQ", VALUE_TYPE["float64"], HUGE)
    data = assemble([ARCH, raw_kv("big", VALUE_TYPE["array"], payload)], [])
    message = _open_error(tmp_path, data)
    assert "'big'" in message and "cannot fit" in message


def test_inflated_dimension(tmp_path):
    data = assemble([ARCH], [tensor_info("w", (2**40, 2**20), "F32", 0)], bytes(32))
    message = _open_error(tmp_path, data)
    assert "'w'" in message and "runs past the end" in message


def test_dimension_beyond_int64(tmp_path):
    data = assemble([ARCH], [tensor_info("w", (2**64 - 1,), "F32", 0)], bytes(32))
    message = _open_error(tmp_path, data)
    assert "'w'" in message and "dimension 0" in message and "int64" in message


@pytest.mark.parametrize(
    "alignment_kv",
    [scalar_kv("general.alignment", "uint32", 24), scalar_kv("general.alignment", "uint64", 32)],
)
def test_bad_alignment(tmp_path, alignment_kv):
    message = _open_error(tmp_path, assemble([ARCH, alignment_kv], []))
    assert "general.alignment" in message and "power of two" in message


def test_key_not_utf8(tmp_path):
    bad_key = gguf_string(b"bad\xff") + struct.pack("<IB", VALUE_TYPE["uint8"], 1)
    message = _open_error(tmp_path, assemble([bad_key], []))
    assert "not valid UTF-8" in message and "metadata entry 0" in message


def test_lazy_string_not_utf8(tmp_path):
    tokens = [f"t{i}" for i in range(SHORT_ARRAY_MAX_LEN + 1)]
    data = assemble([ARCH, string_array_kv("tokens", tokens)], [])
    bad = data.replace(b"t17", b"t\xff7")
    path = _write(tmp_path, bad)
    with open_gguf(path) as gguf_file:  # strings of long arrays are decoded on access
        array = gguf_file.metadata["tokens"]
        assert array[16] == "t16"
        with pytest.raises(GgufFileError, match=r"'tokens'\[17\] is not valid UTF-8"):
            array[17]


def test_bool_byte_not_0_or_1(tmp_path):
    data = assemble([ARCH, raw_kv("flag", VALUE_TYPE["bool"], b"\x02")], [])
    message = _open_error(tmp_path, data)
    assert "'flag'" in message and "expected 0 or 1" in message


def test_arrays_nested_too_deep(tmp_path):
    depth = 64
    payload = struct.pack("<IQ", VALUE_TYPE["array"], 1) * depth + struct.pack(
        "<IQ", VALUE_TYPE["uint8"], 0
    )
    message = _open_error(
        tmp_path, assemble([ARCH, raw_kv("deep", VALUE_TYPE["array"], payload)], [])
    )
    assert "'deep'" in message and "nested" in message


def test_only_ggufc_errors_escape_for_a_non_gguf_file(tmp_path):
    path = _write(tmp_path, b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(GgufcError):
        open_gguf(path)


def test_float_data_not_aligned_to_its_elements(tmp_path):
    """general.alignment 2 lets F32 data start off a 4-byte boundary: no view, a clear error."""
    kvs = [ARCH, scalar_kv("general.alignment", "uint32", 2)]
    probe = assemble(kvs, [tensor_info("w", (1,), "F32", 0)], bytes(8), alignment=2)
    path = _write(tmp_path, probe)
    with open_gguf(path) as gguf_file:
        relative = 2 if gguf_file.data_offset % 4 == 0 else 0
    path = _write(
        tmp_path, assemble(kvs, [tensor_info("w", (1,), "F32", relative)], bytes(8), alignment=2)
    )
    with open_gguf(path) as gguf_file, pytest.raises(GgufFileError) as info:
        _ = gguf_file.tensors["w"].data
    assert "'w'" in str(info.value) and "not aligned to its 4-byte elements" in str(info.value)
