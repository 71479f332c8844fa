"""Bad arguments to the ggufc ops raise FormatError / UnsupportedError naming the op, the
format and the expected vs actual shapes -- from the real kernels and from the fake ones."""

from __future__ import annotations

import pytest
import torch
from ggufc_ops_reference import ROWS, row_weights
from torch._subclasses.fake_tensor import FakeTensorMode

from compiler import formats
from compiler.errors import FormatError, GgufcError, UnsupportedError

FMT = "Q4_K"
K = row_weights(FMT)
ROW_BYTES = formats.row_bytes(FMT, K)


def _blocks(generator, rows=ROWS, k=K, fmt=FMT):
    return formats.random_blocks(fmt, rows, k, generator=generator)


def _run(fake: bool, fn, *tensors):
    """Call fn(*tensors) on real tensors, or on their fakes inside a FakeTensorMode."""
    if not fake:
        return fn(*tensors)
    mode = FakeTensorMode()
    fakes = [t if t is None else mode.from_tensor(t) for t in tensors]
    with mode:
        return fn(*fakes)


# (case id, builder -> (error type, message regex, fn, tensors))
def _linear(x, blocks, bias=None, fmt=FMT, n=ROWS, k=K, kernel="auto"):
    return lambda *t: torch.ops.ggufc.linear(*t, fmt, n, k, kernel=kernel), (x, blocks, bias)


LINEAR_CASES = {
    "unknown format": lambda g: (
        UnsupportedError,
        r"ggufc\.linear\(Q3_K\): unknown format 'Q3_K'; known: Q4_0",
        *_linear(torch.randn(2, K), _blocks(g), fmt="Q3_K"),
    ),
    "blocks not uint8": lambda g: (
        FormatError,
        (
            rf"ggufc\.linear\(Q4_K\): blocks must be uint8 \[n={ROWS}, row_bytes={ROW_BYTES}\] "
            rf"\(k={K}\), got int8 \[{ROWS}, {ROW_BYTES}\]"
        ),
        *_linear(torch.randn(2, K), _blocks(g).view(torch.int8)),
    ),
    "blocks 1-D": lambda g: (
        FormatError,
        (
            rf"blocks must be uint8 \[n={ROWS}, row_bytes={ROW_BYTES}\] \(k={K}\), "
            rf"got uint8 \[{ROWS * ROW_BYTES}\]"
        ),
        *_linear(torch.randn(2, K), _blocks(g).reshape(-1)),
    ),
    "blocks have too few rows": lambda g: (
        FormatError,
        rf"got uint8 \[{ROWS - 1}, {ROW_BYTES}\]",
        *_linear(torch.randn(2, K), _blocks(g, rows=ROWS - 1)),
    ),
    "blocks row of another k": lambda g: (
        FormatError,
        rf"row_bytes={ROW_BYTES}\] \(k={K}\), got uint8 \[{ROWS}, {ROW_BYTES // 2}\]",
        *_linear(torch.randn(2, K), _blocks(g, k=K // 2)),
    ),
    "k not a whole number of blocks": lambda g: (
        FormatError,
        (
            rf"ggufc\.linear\(Q4_K\): k={K + 32} must be a positive multiple of the Q4_K block "
            r"size 256"
        ),
        *_linear(torch.randn(2, K + 32), _blocks(g), k=K + 32),
    ),
    "x of another width": lambda g: (
        FormatError,
        rf"ggufc\.linear\(Q4_K\): x must be \[\.\.\., k={K}\], got \[2, 3, {K + 1}\]",
        *_linear(torch.randn(2, 3, K + 1), _blocks(g)),
    ),
    "0-d x": lambda g: (
        FormatError,
        r"x must be \[\.\.\., k=512\], got a 0-d tensor",
        *_linear(torch.tensor(1.0), _blocks(g)),
    ),
    "float64 x": lambda g: (
        UnsupportedError,
        (
            r"ggufc\.linear\(Q4_K\): activation dtype float64 is not supported; "
            r"expected one of float32, float16, bfloat16"
        ),
        *_linear(torch.randn(2, K, dtype=torch.float64), _blocks(g)),
    ),
    "integer x": lambda g: (
        UnsupportedError,
        r"activation dtype int64 is not supported",
        *_linear(torch.ones(2, K, dtype=torch.int64), _blocks(g)),
    ),
    "bias of another length": lambda g: (
        FormatError,
        rf"ggufc\.linear\(Q4_K\): bias must be \[n={ROWS}\], got \[{ROWS + 1}\]",
        *_linear(torch.randn(2, K), _blocks(g), torch.randn(ROWS + 1)),
    ),
    "2-D bias": lambda g: (
        FormatError,
        rf"bias must be \[n={ROWS}\], got \[1, {ROWS}\]",
        *_linear(torch.randn(2, K), _blocks(g), torch.randn(1, ROWS)),
    ),
    "integer bias": lambda g: (
        UnsupportedError,
        r"bias dtype int32 is not supported",
        *_linear(torch.randn(2, K), _blocks(g), torch.ones(ROWS, dtype=torch.int32)),
    ),
    "unknown kernel": lambda g: (
        UnsupportedError,
        (
            r"ggufc\.linear\(Q4_K\): unknown kernel 'gemv'; expected one of auto, matvec, "
            r"matvec_batched, matmul"
        ),
        *_linear(torch.randn(2, K), _blocks(g), kernel="gemv"),
    ),
}


def _dequantize(blocks, fmt=FMT, n=ROWS, k=K, dtype=torch.float32):
    return lambda *t: torch.ops.ggufc.dequantize(*t, fmt, n, k, dtype), (blocks,)


def _embedding(blocks, indices, fmt=FMT, n=ROWS, k=K, dtype=torch.float32):
    return lambda *t: torch.ops.ggufc.embedding(*t, fmt, n, k, dtype), (blocks, indices)


OTHER_CASES = {
    "dequantize: unknown format": lambda g: (
        UnsupportedError,
        r"ggufc\.dequantize\(q4_k\): unknown format 'q4_k'",
        *_dequantize(_blocks(g), fmt="q4_k"),
    ),
    "dequantize: n mismatch": lambda g: (
        FormatError,
        (
            rf"ggufc\.dequantize\(Q4_K\): blocks must be uint8 \[n={ROWS + 2}, "
            rf"row_bytes={ROW_BYTES}\] \(k={K}\), got uint8 \[{ROWS}, {ROW_BYTES}\]"
        ),
        *_dequantize(_blocks(g), n=ROWS + 2),
    ),
    "dequantize: int dtype": lambda g: (
        UnsupportedError,
        r"ggufc\.dequantize\(Q4_K\): output dtype int8 is not supported",
        *_dequantize(_blocks(g), dtype=torch.int8),
    ),
    "embedding: float indices": lambda g: (
        UnsupportedError,
        r"ggufc\.embedding\(Q4_K\): indices must be an integer tensor, got float32",
        *_embedding(_blocks(g), torch.zeros(3)),
    ),
    "embedding: bool indices": lambda g: (
        UnsupportedError,
        r"indices must be an integer tensor, got bool",
        *_embedding(_blocks(g), torch.zeros(3, dtype=torch.bool)),
    ),
    "embedding: k mismatch": lambda g: (
        FormatError,
        (
            rf"ggufc\.embedding\(Q4_K\): blocks must be uint8 \[n={ROWS}, "
            rf"row_bytes={2 * ROW_BYTES}\] \(k={2 * K}\), got uint8 \[{ROWS}, {ROW_BYTES}\]"
        ),
        *_embedding(_blocks(g), torch.zeros(3, dtype=torch.int64), k=2 * K),
    ),
    "embedding: float64 output": lambda g: (
        UnsupportedError,
        r"ggufc\.embedding\(Q4_K\): output dtype float64 is not supported",
        *_embedding(_blocks(g), torch.zeros(3, dtype=torch.int64), dtype=torch.float64),
    ),
}


def _rms_norm_add(x, weight, residual, eps=1e-6):
    return lambda *t: torch.ops.ggufc.rms_norm_add(t[0], t[1], eps, t[2]), (x, weight, residual)


RMS_NORM_ADD_CASES = {
    "rms_norm_add: float16 x": lambda g: (
        UnsupportedError,
        r"ggufc\.rms_norm_add: x is float16; supported: float32",
        *_rms_norm_add(torch.zeros(2, 8).half(), None, torch.zeros(2, 8)),
    ),
    "rms_norm_add: residual of another shape": lambda g: (
        FormatError,
        (
            r"ggufc\.rms_norm_add: expected x and residual of one shape \[\.\.\., D\]; "
            r"x \[2, 8\], residual \[1, 8\]"
        ),
        *_rms_norm_add(torch.zeros(2, 8), None, torch.zeros(1, 8)),
    ),
    "rms_norm_add: weight not [D]": lambda g: (
        FormatError,
        r"ggufc\.rms_norm_add: weight \[4\] against x \[2, 8\]",
        *_rms_norm_add(torch.zeros(2, 8), torch.ones(4), torch.zeros(2, 8)),
    ),
    "rms_norm_add_norm: next_weight not [D]": lambda g: (
        FormatError,
        r"ggufc\.rms_norm_add_norm: next_weight \[4\] against x \[2, 8\]",
        lambda *t: torch.ops.ggufc.rms_norm_add_norm(t[0], t[1], 1e-6, t[2], t[3], 1e-6),
        (torch.zeros(2, 8), torch.ones(8), torch.zeros(2, 8), torch.ones(4)),
    ),
    "gated_gelu: float16 x": lambda g: (
        UnsupportedError,
        r"ggufc\.gated_gelu: x is float16; supported: float32",
        lambda *t: torch.ops.ggufc.gated_gelu(*t),
        (torch.zeros(2, 8).half(),),
    ),
    "gated_gelu: up of another shape": lambda g: (
        FormatError,
        r"ggufc\.gated_gelu: expected x and up of one shape; x \[2, 8\], up \[2, 4\]",
        lambda *t: torch.ops.ggufc.gated_gelu(*t),
        (torch.zeros(2, 8), torch.zeros(2, 4)),
    ),
}

ALL_CASES = {**LINEAR_CASES, **OTHER_CASES, **RMS_NORM_ADD_CASES}


@pytest.mark.parametrize("fake", [False, True], ids=["real", "fake"])
@pytest.mark.parametrize("case", list(ALL_CASES))
def test_bad_arguments_raise_ggufc_errors(case, fake, generator):
    error, message, fn, tensors = ALL_CASES[case](generator)
    assert issubclass(error, GgufcError)
    with pytest.raises(error, match=message):
        _run(fake, fn, *tensors)


@pytest.mark.parametrize("bad_index", [-1, ROWS])
def test_embedding_rejects_out_of_range_indices(bad_index, generator):
    indices = torch.tensor([[0, bad_index], [1, 2]])
    low, high = min(0, bad_index), max(2, bad_index)
    with pytest.raises(
        FormatError,
        match=rf"ggufc\.embedding\(Q4_K\): indices must lie in \[0, n={ROWS}\), "
        rf"got values from {low} to {high}",
    ):
        torch.ops.ggufc.embedding(_blocks(generator), indices, FMT, ROWS, K, torch.float32)
