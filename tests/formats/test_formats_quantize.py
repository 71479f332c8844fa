"""Quantization: bit-identical to gguf-py for the legacy formats, readable by gguf-py for all,
and accurate enough for the K-quants (round-trip error below plain min/max rounding)."""

from __future__ import annotations

import pytest
import torch
from format_cases import (
    ALL_FORMATS,
    K_FORMATS,
    LEGACY_FORMATS,
    assert_bit_identical,
    generator,
    gguf_dequantize,
    gguf_quantize,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import formats

K = 512
# relative RMS error of dequantize(quantize(w)) on N(0, 1) rows of 4096 weights: the K-quant
# bounds sit below what plain min/max rounding gives (0.078, 0.038, 0.019); the legacy ones a
# little above gguf-py's (their quantizers are fixed by bit-identity)
RMS_BOUNDS = {
    "Q4_0": 0.090,
    "Q5_0": 0.045,
    "Q8_0": 0.0060,
    "Q4_K": 0.074,
    "Q5_K": 0.0375,
    "Q6_K": 0.0185,
}
RMS_ROWS, RMS_K = 48, 4096
QUANT_BITS = {"Q4_0": 4, "Q5_0": 5, "Q8_0": 8, "Q4_K": 4, "Q5_K": 5, "Q6_K": 6}
GRID_SLACK = 1.02
# largest |multiplier| of a format's f16 scale(s) in a dequantized weight (level times
# sub-block scale, plus the min's): a subnormal f16 scale is off by up to 2**-25 absolute,
# which moves the whole grid, clamping included, by that times the multiplier, far more than
# GRID_SLACK's relative rounding once weights are small (Q6_K at scale 1e-3 has d = 12 * 2**-24)
F16_SCALE_MULTIPLIER = {
    "Q4_0": 8,
    "Q5_0": 16,
    "Q8_0": 127,
    "Q4_K": 63 * 15 + 63,
    "Q5_K": 63 * 31 + 63,
    "Q6_K": 128 * 32,
}
F16_SUBNORMAL_ROUNDING = 2.0**-25


def weight_cases(seed: int) -> dict[str, torch.Tensor]:
    gen = generator(seed)
    normal = torch.randn(32, K, generator=gen)
    return {
        "normal": normal,
        "exact zeros": normal * (torch.rand(32, K, generator=gen) < 0.5),
        "zero rows": torch.cat([torch.zeros(3, K), normal[:3]]),
        "large": normal[:8] * 3e4,
        "small": normal[:8] * 1e-6,
        "subnormal-scale": normal[:8] * 1e-9,
        "ties": torch.randint(-4, 5, (16, K), generator=gen).float(),
        "one sign": normal.abs()[:8],
    }


@pytest.mark.parametrize("fmt", LEGACY_FORMATS)
def test_legacy_quantize_bit_identical_to_gguf(fmt, seed):
    for name, weights in weight_cases(seed).items():
        ours = formats.quantize(weights, fmt)
        ref = gguf_quantize(weights, fmt)
        assert ours.dtype == torch.uint8 and ours.shape == ref.shape
        differs = (ours != ref).nonzero()
        assert len(differs) == 0, (
            f"{fmt} {name} seed={seed}: {len(differs)} bytes differ, first at "
            f"{tuple(differs[0].tolist())}"
        )


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_quantized_blocks_read_the_same_in_gguf(fmt, seed):
    for name, weights in weight_cases(seed).items():
        blocks = formats.quantize(weights, fmt)
        assert blocks.shape == (weights.shape[0], formats.row_bytes(fmt, K))
        assert formats.find_nonfinite_scales(blocks, fmt) is None, f"{fmt} {name} seed={seed}"
        assert_bit_identical(
            formats.dequantize(blocks, fmt),
            gguf_dequantize(blocks, fmt),
            f"{fmt} {name} seed={seed}",
        )


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_zero_weights_quantize_to_zero(fmt):
    blocks = formats.quantize(torch.zeros(2, K), fmt)
    assert torch.equal(formats.dequantize(blocks, fmt), torch.zeros(2, K))


@pytest.mark.parametrize("fmt", LEGACY_FORMATS)
def test_legacy_requantizing_dequantized_weights_is_identity(fmt, seed):
    blocks = formats.quantize(weight_cases(seed)["normal"], fmt)
    again = formats.quantize(formats.dequantize(blocks, fmt), fmt)
    assert torch.equal(again, blocks), f"{fmt} seed={seed}"


@pytest.mark.parametrize("fmt", K_FORMATS)
def test_k_requantizing_dequantized_weights_stays_close(fmt, seed):
    weights = weight_cases(seed)["normal"]
    first = formats.dequantize(formats.quantize(weights, fmt), fmt)
    second = formats.dequantize(formats.quantize(first, fmt), fmt)
    drift = (second - first).square().mean().sqrt()
    error = (first - weights).square().mean().sqrt()
    # values already on a grid must not move further than one quantization of fresh data
    assert drift <= error, f"{fmt} seed={seed}: requantization drift {drift} > error {error}"


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_leading_dims_and_input_dtypes(fmt, seed):
    weights = weight_cases(seed)["normal"][:6]
    flat = formats.quantize(weights, fmt)
    assert torch.equal(formats.quantize(weights.view(2, 3, K), fmt), flat.view(2, 3, -1))
    assert torch.equal(formats.quantize(weights.double(), fmt), flat)
    halves = weights.half()
    assert torch.equal(formats.quantize(halves, fmt), formats.quantize(halves.float(), fmt))


def test_round_trip_rms_error(seed, capsys):
    weights = torch.randn(RMS_ROWS, RMS_K, generator=generator(seed))
    figures = {}
    for fmt in ALL_FORMATS:
        restored = formats.dequantize(formats.quantize(weights, fmt), fmt)
        figures[fmt] = float(
            (restored - weights).square().mean().sqrt() / weights.square().mean().sqrt()
        )
    with capsys.disabled():
        print(f"\nround-trip relative RMS error, N(0,1), {RMS_ROWS}x{RMS_K}, seed={seed}:")
        for fmt, figure in figures.items():
            print(f"  {fmt}: {figure:.5f} (bound {RMS_BOUNDS[fmt]})")
    for fmt, figure in figures.items():
        assert figure <= RMS_BOUNDS[fmt], f"{fmt} seed={seed}: {figure:.5f} > {RMS_BOUNDS[fmt]}"


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@settings(max_examples=25, deadline=None)
@given(
    scale=st.floats(1e-3, 1e4),
    rows=st.integers(1, 3),
    blocks_per_row=st.integers(1, 2),
    seed=st.integers(0, 2**32),
)
def test_round_trip_error_is_within_a_grid_step(fmt, scale, rows, blocks_per_row, seed):
    spec = formats.get_format(fmt)
    weights = torch.randn(rows, blocks_per_row * 256, generator=generator(seed)) * scale
    restored = formats.dequantize(formats.quantize(weights, fmt), fmt)
    per_block = (restored - weights).abs().view(-1, spec.block_weights).amax(-1)
    block_range = weights.abs().view(-1, spec.block_weights).amax(-1)
    # one step of a grid of 2**bits levels over [-range, range], plus f16 scale rounding
    step = block_range * 2 / 2 ** QUANT_BITS[fmt] * GRID_SLACK
    step += F16_SCALE_MULTIPLIER[fmt] * F16_SUBNORMAL_ROUNDING
    worst = int((per_block - step).argmax())
    assert per_block[worst] <= step[worst], (
        f"{fmt} scale={scale} seed={seed}: block {worst} error {per_block[worst]} > {step[worst]}"
    )
