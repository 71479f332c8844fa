"""Float64 references and error bounds for the ggufc op tests.

The reference weight is the format's own dequantize (float32, exact for every format)
widened to float64; products are summed in float64.  `linear_error_bound` is the classic
bound for a float32 dot product of length k, ``k * eps32 * sum|x_i w_i|``, plus one rounding
of the result to the output dtype.
"""

from __future__ import annotations

import torch

from compiler import formats

ALL_FORMATS = ("Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Blocks per row in the tests: more than one, so row-internal block order matters.
BLOCKS_PER_ROW = 2
# An odd number of output rows, so transposed or reshaped results cannot line up by luck.
ROWS = 5


def row_weights(fmt: str) -> int:
    return formats.FORMATS[fmt].block_weights * BLOCKS_PER_ROW


def reference_weight(blocks: torch.Tensor, fmt: str) -> torch.Tensor:
    return formats.dequantize(blocks, fmt, dtype=torch.float32).to(torch.float64)


def reference_linear(x, blocks, bias, fmt):
    """(float64 x @ W^T + bias, float64 sum of |x_i w_i| + |bias|) for x in its own dtype."""
    weight = reference_weight(blocks, fmt)
    x64 = x.to(torch.float64)
    out = x64 @ weight.t()
    magnitude = x64.abs() @ weight.abs().t()
    if bias is not None:
        out = out + bias.to(torch.float64)
        magnitude = magnitude + bias.to(torch.float64).abs()
    return out, magnitude


def linear_error_bound(magnitude, reference, k: int, dtype: torch.dtype) -> torch.Tensor:
    accumulate = k * torch.finfo(torch.float32).eps * magnitude
    final_rounding = torch.finfo(dtype).eps * reference.abs()
    return accumulate + final_rounding + torch.finfo(torch.float32).tiny


def assert_within(actual: torch.Tensor, reference: torch.Tensor, bound: torch.Tensor) -> None:
    error = (actual.to(torch.float64) - reference).abs()
    worst = (error - bound).argmax() if error.numel() else None
    assert bool((error <= bound).all()), (
        f"max error {error.max().item():.3e} exceeds its bound; worst element "
        f"{actual.reshape(-1)[worst].item()} vs reference {reference.reshape(-1)[worst].item()}"
    )
