"""Bad input raises FormatError / UnsupportedError naming the format and what was expected;
non-finite scales are reported by find_nonfinite_scales, not by dequantize."""

from __future__ import annotations

import pytest
import torch
from format_cases import ALL_FORMATS, generator

from compiler import formats
from compiler.errors import FormatError, GgufcError, UnsupportedError

K = 512


def test_unknown_format_lists_the_supported_ones():
    for call in (
        lambda: formats.get_format("Q3_K"),
        lambda: formats.row_bytes("q6_k", 256),
        lambda: formats.dequantize(torch.zeros(1, 210, dtype=torch.uint8), "IQ2_XS"),
        lambda: formats.quantize(torch.zeros(1, 256), "F16"),
        lambda: formats.random_blocks("Q4_1", 1, 32),
    ):
        with pytest.raises(UnsupportedError) as info:
            call()
        assert all(name in str(info.value) for name in ALL_FORMATS), str(info.value)
    assert issubclass(UnsupportedError, GgufcError)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_row_bytes(fmt):
    spec = formats.get_format(fmt)
    assert formats.row_bytes(fmt, 3 * spec.block_weights) == 3 * spec.block_bytes
    with pytest.raises(
        FormatError, match=rf"{fmt}.*{spec.block_weights + 1}.*{spec.block_weights}"
    ):
        formats.row_bytes(fmt, spec.block_weights + 1)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_dequantize_rejects_bad_blocks(fmt):
    spec = formats.get_format(fmt)
    with pytest.raises(FormatError, match=rf"{fmt}.*uint8.*int8"):
        formats.dequantize(torch.zeros(1, spec.block_bytes, dtype=torch.int8), fmt)
    with pytest.raises(FormatError, match=rf"{fmt}.*uint8.*float32"):
        formats.dequantize(torch.zeros(1, spec.block_bytes), fmt)
    with pytest.raises(
        FormatError, match=rf"{fmt}.*{spec.block_bytes + 1} bytes.*{spec.block_bytes}"
    ):
        formats.dequantize(torch.zeros(2, spec.block_bytes + 1, dtype=torch.uint8), fmt)
    with pytest.raises(FormatError, match=fmt):
        formats.dequantize(torch.tensor(7, dtype=torch.uint8), fmt)
    with pytest.raises(FormatError, match=fmt):
        formats.dequantize([0] * spec.block_bytes, fmt)
    with pytest.raises(FormatError, match=rf"{fmt}.*floating-point dtype.*int32"):
        formats.dequantize(torch.zeros(1, spec.block_bytes, dtype=torch.uint8), fmt, torch.int32)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_quantize_rejects_bad_weights(fmt):
    spec = formats.get_format(fmt)
    with pytest.raises(
        FormatError, match=rf"{fmt}.*{spec.block_weights + 2}.*{spec.block_weights}"
    ):
        formats.quantize(torch.zeros(2, spec.block_weights + 2), fmt)
    with pytest.raises(FormatError, match=rf"{fmt}.*floating-point"):
        formats.quantize(torch.zeros(1, spec.block_weights, dtype=torch.int32), fmt)
    bad = torch.zeros(1, spec.block_weights)
    bad[0, 3] = float("nan")
    with pytest.raises(FormatError, match=rf"{fmt}.*non-finite"):
        formats.quantize(bad, fmt)
    huge = torch.zeros(2, spec.block_weights)
    huge[1, 5] = 3e38  # any format's scale for this is beyond f16
    with pytest.raises(FormatError, match=rf"{fmt}.*row 1, block 0.*too large"):
        formats.quantize(huge, fmt)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_nonfinite_scales_are_found_not_raised(fmt, seed):
    spec = formats.get_format(fmt)
    blocks = formats.random_blocks(fmt, 3, K, generator=generator(seed))
    assert formats.find_nonfinite_scales(blocks, fmt) is None
    nblocks = K // spec.block_weights
    for field in spec.scale_fields:
        for bits in (0x7C00, 0xFC00, 0x7E00, 0x7C01):  # +inf, -inf, NaN, signalling NaN
            damaged = blocks.clone()
            offset = spec.field_offset(field.name) + (nblocks - 1) * spec.block_bytes
            damaged[2, offset : offset + 2] = torch.tensor([bits & 0xFF, bits >> 8])
            damaged[1, offset : offset + 2] = torch.tensor([bits & 0xFF, bits >> 8])
            assert formats.find_nonfinite_scales(damaged, fmt) == (1, nblocks - 1)
            assert formats.find_nonfinite_scales(damaged.view(3, 1, -1), fmt) == (1, nblocks - 1)
            values = formats.dequantize(damaged, fmt)  # no raise, like gguf-py
            assert torch.isfinite(values[0]).all()


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_random_blocks_are_valid(fmt, seed):
    blocks = formats.random_blocks(fmt, 5, K, generator=generator(seed))
    assert blocks.dtype == torch.uint8 and blocks.shape == (5, formats.row_bytes(fmt, K))
    assert formats.find_nonfinite_scales(blocks, fmt) is None
    assert torch.isfinite(formats.dequantize(blocks, fmt)).all()
    again = formats.random_blocks(fmt, 5, K, generator=generator(seed))
    assert torch.equal(blocks, again), "random_blocks must be reproducible from its generator"
