"""The CPU reference `ggufc.linear` walks the weight in slabs of output rows
(`compiler.ops.linear_reference`); slab size must not change results beyond float32
rounding of the matmul order.  Slab sizes here leave a ragged last slab, and include one
row per slab and one slab for the whole weight (the unchunked computation)."""

from __future__ import annotations

import torch
from ggufc_ops_reference import (
    ALL_FORMATS,
    FLOAT_DTYPES,
    assert_within,
    linear_error_bound,
    reference_linear,
    row_weights,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import formats, ops

# Output rows: enough for several slabs with a ragged tail.
MAX_ROWS = 23
MAX_BATCH = 3
EXAMPLES = 40


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    fmt=st.sampled_from(ALL_FORMATS),
    rows=st.integers(1, MAX_ROWS),
    chunk_rows=st.integers(1, MAX_ROWS + 2),
    batch=st.integers(0, MAX_BATCH),
    dtype=st.sampled_from(FLOAT_DTYPES),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**63 - 1),
)
def test_chunked_linear_matches_unchunked_and_float64(
    fmt, rows, chunk_rows, batch, dtype, with_bias, seed
):
    generator = torch.Generator().manual_seed(seed)
    k = row_weights(fmt)
    blocks = formats.random_blocks(fmt, rows, k, generator=generator)
    x = torch.randn(batch, 2, k, generator=generator).to(dtype)
    bias = torch.randn(rows, generator=generator).to(dtype) if with_bias else None

    chunked = ops.linear_reference(x, blocks, bias, fmt, rows, k, chunk_rows)
    whole = ops.linear_reference(x, blocks, bias, fmt, rows, k, rows)

    assert chunked.shape == whole.shape == (batch, 2, rows)
    assert chunked.dtype == whole.dtype == dtype
    reference, magnitude = reference_linear(x, blocks, bias, fmt)
    bound = linear_error_bound(magnitude, reference, k, dtype)
    assert_within(chunked, reference, bound)
    assert_within(whole, reference, bound)
    # Both are float32 sums of the same products, in at most a different order.
    assert_within(chunked, whole.to(torch.float64), 2 * bound)


def test_op_uses_slabs_when_weight_exceeds_one(monkeypatch, generator):
    """Through the registered op, with a slab budget smaller than the weight: 3 rows per
    slab over 8 rows leaves a ragged slab of 2."""
    fmt = "Q8_0"
    rows, k = 8, row_weights(fmt)
    monkeypatch.setattr(ops, "LINEAR_CHUNK_WEIGHTS", 3 * k)
    assert ops.linear_chunk_rows(k) == 3
    blocks = formats.random_blocks(fmt, rows, k, generator=generator)
    x = torch.randn(1, k, generator=generator)
    out = ops.linear(x, blocks, None, fmt, rows, k)
    reference, magnitude = reference_linear(x, blocks, None, fmt)
    assert_within(out, reference, linear_error_bound(magnitude, reference, k, torch.float32))


def test_chunk_rows_is_at_least_one():
    assert ops.linear_chunk_rows(ops.LINEAR_CHUNK_WEIGHTS * 4) == 1
    assert ops.linear_chunk_rows(256) == ops.LINEAR_CHUNK_WEIGHTS // 256
