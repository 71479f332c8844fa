"""Numerics of the ggufc ops' CPU reference kernels against float64 references, on random
valid blocks of every format, every activation dtype, and 1-D to 4-D (and empty) inputs."""

from __future__ import annotations

import pytest
import torch
from ggufc_ops_reference import (
    ALL_FORMATS,
    FLOAT_DTYPES,
    ROWS,
    assert_within,
    linear_error_bound,
    reference_linear,
    reference_weight,
    row_weights,
)

from compiler import formats

# Leading dims of the activation: 1-D x [k], 2-D .. 4-D, and empty M.
LINEAR_LEADING_DIMS = [(), (3,), (2, 3), (2, 1, 3), (0,), (2, 0)]
# Shapes of the index tensor: 0-d (one row), 1-D .. 4-D, and empty.
EMBEDDING_INDEX_SHAPES = [(), (4,), (2, 3), (2, 1, 3), (1, 2, 1, 2), (0,), (2, 0)]


def _id(value) -> str:
    return str(value).removeprefix("torch.")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=_id)
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_dequantize_matches_reference(fmt, dtype, generator):
    k = row_weights(fmt)
    blocks = formats.random_blocks(fmt, ROWS, k, generator=generator)

    out = torch.ops.ggufc.dequantize(blocks, fmt, ROWS, k, dtype)

    assert out.shape == (ROWS, k) and out.dtype == dtype
    reference = reference_weight(blocks, fmt)
    assert_within(out, reference, torch.finfo(dtype).eps * reference.abs())


@pytest.mark.parametrize("with_bias", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize("leading", LINEAR_LEADING_DIMS, ids=_id)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=_id)
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_linear_matches_reference(fmt, dtype, leading, with_bias, generator):
    k = row_weights(fmt)
    blocks = formats.random_blocks(fmt, ROWS, k, generator=generator)
    x = torch.randn(*leading, k, generator=generator).to(dtype)
    bias = torch.randn(ROWS, generator=generator).to(dtype) if with_bias else None

    out = torch.ops.ggufc.linear(x, blocks, bias, fmt, ROWS, k)

    assert out.shape == (*leading, ROWS) and out.dtype == dtype
    reference, magnitude = reference_linear(x, blocks, bias, fmt)
    assert_within(out, reference, linear_error_bound(magnitude, reference, k, dtype))


@pytest.mark.parametrize("kernel", ["auto", "matvec", "matvec_batched", "matmul"])
def test_linear_kernel_choice_does_not_change_the_reference_result(kernel, generator):
    fmt, k = "Q4_K", row_weights("Q4_K")
    blocks = formats.random_blocks(fmt, ROWS, k, generator=generator)
    x = torch.randn(3, k, generator=generator)

    out = torch.ops.ggufc.linear(x, blocks, None, fmt, ROWS, k, kernel=kernel)

    assert torch.equal(out, torch.ops.ggufc.linear(x, blocks, None, fmt, ROWS, k))


def test_linear_bias_may_have_another_float_dtype(generator):
    fmt, k = "Q8_0", row_weights("Q8_0")
    blocks = formats.random_blocks(fmt, ROWS, k, generator=generator)
    x = torch.randn(2, k, generator=generator).to(torch.bfloat16)
    bias = torch.randn(ROWS, generator=generator)  # float32 bias, bfloat16 activations

    out = torch.ops.ggufc.linear(x, blocks, bias, fmt, ROWS, k)

    assert out.dtype == torch.bfloat16
    reference, magnitude = reference_linear(x, blocks, bias, fmt)
    assert_within(out, reference, linear_error_bound(magnitude, reference, k, torch.bfloat16))


@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32], ids=_id)
@pytest.mark.parametrize("index_shape", EMBEDDING_INDEX_SHAPES, ids=_id)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=_id)
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_embedding_matches_reference(fmt, dtype, index_shape, index_dtype, generator):
    k = row_weights(fmt)
    blocks = formats.random_blocks(fmt, ROWS, k, generator=generator)
    indices = torch.randint(0, ROWS, index_shape, generator=generator, dtype=index_dtype)

    out = torch.ops.ggufc.embedding(blocks, indices, fmt, ROWS, k, dtype)

    assert out.shape == (*index_shape, k) and out.dtype == dtype
    reference = reference_weight(blocks, fmt)[indices.to(torch.int64)]
    assert_within(out, reference, torch.finfo(dtype).eps * reference.abs())


def test_embedding_dequantizes_only_the_rows_it_reads(generator, monkeypatch):
    fmt, k, table_rows = "Q6_K", row_weights("Q6_K"), 64
    blocks = formats.random_blocks(fmt, table_rows, k, generator=generator)
    indices = torch.tensor([[3, 1], [3, 60]])
    dequantized_rows = []
    real_dequantize = formats.dequantize

    def counting_dequantize(rows, *args, **kwargs):
        dequantized_rows.append(rows.reshape(-1, rows.shape[-1]).shape[0])
        return real_dequantize(rows, *args, **kwargs)

    monkeypatch.setattr(formats, "dequantize", counting_dequantize)
    out = torch.ops.ggufc.embedding(blocks, indices, fmt, table_rows, k, torch.float32)

    assert sum(dequantized_rows) == indices.numel()
    monkeypatch.undo()
    assert torch.equal(out, reference_weight(blocks, fmt)[indices].to(torch.float32))
