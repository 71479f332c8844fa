"""Dequantization is bit-identical to gguf-py's on random valid blocks, edge values included,
for every format, shape and output dtype."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from format_cases import (
    ALL_FORMATS,
    assert_bit_identical,
    edge_blocks,
    generator,
    gguf_dequantize,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import formats

ROWS, K = 24, 1024


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_random_blocks_bit_identical_to_gguf(fmt, seed):
    blocks = formats.random_blocks(fmt, ROWS, K, generator=generator(seed))
    ours = formats.dequantize(blocks, fmt)
    assert ours.shape == (ROWS, K)
    assert_bit_identical(ours, gguf_dequantize(blocks, fmt), f"{fmt} seed={seed}")


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_large_output_bit_identical_to_gguf(fmt, seed):
    # 4 MiB and more of float32 output: several chunks, and the huge-page output buffer
    blocks = formats.random_blocks(fmt, 256, 4096, generator=generator(seed))
    ours = formats.dequantize(blocks, fmt)
    assert ours.numel() * 4 >= formats.HUGE_PAGE_MIN_BYTES
    assert_bit_identical(ours, gguf_dequantize(blocks, fmt), f"{fmt} seed={seed}")
    halves = formats.dequantize(blocks, fmt, dtype=torch.bfloat16)
    assert torch.equal(halves, ours.to(torch.bfloat16)), f"{fmt} seed={seed}"


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_edge_value_blocks_bit_identical_to_gguf(fmt, seed):
    blocks = edge_blocks(fmt, ROWS, K, generator(seed))
    assert_bit_identical(
        formats.dequantize(blocks, fmt), gguf_dequantize(blocks, fmt), f"{fmt} seed={seed}"
    )


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_chunked_dequantize_matches_one_pass(fmt, seed, monkeypatch):
    # rows spanning several chunks, with a partial last chunk, in float32 and via the
    # float16 scratch path
    blocks = formats.random_blocks(fmt, 7, K, generator=generator(seed))
    whole = formats.dequantize(blocks, fmt)
    monkeypatch.setattr(formats, "CHUNK_WEIGHTS", 3 * formats.get_format(fmt).block_weights)
    assert_bit_identical(formats.dequantize(blocks, fmt), whole, f"{fmt} seed={seed}")
    half = formats.dequantize(blocks, fmt, dtype=torch.float16)
    assert torch.equal(half, whole.to(torch.float16)), f"{fmt} seed={seed}"


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_output_is_float32_result_cast(fmt, dtype, seed):
    blocks = formats.random_blocks(fmt, 4, K, generator=generator(seed))
    ours = formats.dequantize(blocks, fmt, dtype=dtype)
    assert ours.dtype == dtype
    expected = formats.dequantize(blocks, fmt).to(dtype)
    assert torch.equal(ours.view(torch.int16), expected.view(torch.int16)), f"{fmt} seed={seed}"


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_leading_dimensions_are_kept(fmt, seed):
    blocks = formats.random_blocks(fmt, 6, K, generator=generator(seed))
    flat = formats.dequantize(blocks, fmt)
    nested = formats.dequantize(blocks.view(2, 3, -1), fmt)
    assert nested.shape == (2, 3, K)
    assert torch.equal(nested.view(6, K), flat), f"{fmt} seed={seed}"
    one_row = formats.dequantize(blocks[1], fmt)
    assert torch.equal(one_row, flat[1]), f"{fmt} seed={seed}"


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_numpy_and_non_contiguous_inputs(fmt, seed):
    blocks = formats.random_blocks(fmt, 8, K, generator=generator(seed))
    expected = formats.dequantize(blocks, fmt)
    assert torch.equal(formats.dequantize(blocks.numpy(), fmt), expected)
    strided = formats.dequantize(blocks[::2], fmt)
    assert torch.equal(strided, expected[::2]), f"{fmt} seed={seed}"


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_empty_input(fmt):
    spec = formats.get_format(fmt)
    assert formats.dequantize(torch.empty(0, spec.block_bytes, dtype=torch.uint8), fmt).shape == (
        0,
        spec.block_weights,
    )
    assert formats.dequantize(torch.empty(3, 0, dtype=torch.uint8), fmt).shape == (3, 0)
    assert formats.quantize(torch.empty(3, 0), fmt).shape == (3, 0)
    assert formats.quantize(torch.empty(0, spec.block_weights), fmt).shape == (0, spec.block_bytes)


def _make_scales_finite(raw: bytearray, fmt: str) -> bytes:
    """Clear the exponent's low bit of any inf/NaN f16 scale (exponent 31 -> 30)."""
    spec = formats.get_format(fmt)
    for start in range(0, len(raw), spec.block_bytes):
        for field in spec.scale_fields:
            high = start + spec.field_offset(field.name) + 1
            if raw[high] & 0x7C == 0x7C:
                raw[high] &= 0xFB
    return bytes(raw)


@st.composite
def valid_rows(draw, fmt):
    spec = formats.get_format(fmt)
    nblocks = draw(st.integers(1, 3))
    rows = draw(st.integers(1, 3))
    raw = draw(
        st.binary(
            min_size=rows * nblocks * spec.block_bytes, max_size=rows * nblocks * spec.block_bytes
        )
    )
    data = np.frombuffer(_make_scales_finite(bytearray(raw), fmt), dtype=np.uint8)
    return torch.from_numpy(data.copy()).view(rows, nblocks * spec.block_bytes)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_valid_block_bytes_bit_identical(fmt, data):
    blocks = data.draw(valid_rows(fmt))
    assert_bit_identical(formats.dequantize(blocks, fmt), gguf_dequantize(blocks, fmt), fmt)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_block_ranges_at_any_byte_offset(fmt, seed):
    # views starting at any block (aligned or not to 8 bytes) take the same path to the same
    # bits as the whole
    spec = formats.get_format(fmt)
    stream = formats.random_blocks(fmt, 1, 13 * spec.block_weights, generator=generator(seed))
    whole = gguf_dequantize(stream, fmt).view(13, -1)
    for start, stop in ((0, 12), (4, 12), (1, 5), (3, 13), (2, 3)):
        part = stream.view(-1)[start * spec.block_bytes : stop * spec.block_bytes]
        assert_bit_identical(
            formats.dequantize(part, fmt).view(stop - start, -1),
            whole[start:stop],
            f"{fmt} blocks {start}:{stop} seed={seed}",
        )
