"""The CUDA gated GELU kernel (`codegen.kernels.gated_gelu`) against a float64 reference, on an
NVIDIA GPU (skipped without one): Gemma 3 270M's stacked gate / up halves, a ragged width of
two inputs, row counts leaving a block's threads idle; outputs poisoned first."""

from __future__ import annotations

import math

import pytest
import torch
from cuda_test_support import CUDA_TEST_MARKS

from codegen.kernels.gated_gelu import GATED_GELU_THREADS, emit_gated_gelu, gated_gelu_grid

pytestmark = CUDA_TEST_MARKS

# tanhf against float64's tanh, and the float32 products
RTOL, ATOL = 1e-5, 1e-6
# (rows, inner width, stacked)
CASES = [
    (1, 2048, True),  # Gemma 3 270M's MLP at decode
    (6, 2048, True),
    (3, 100, False),  # ragged width, gate and up apart
    (33, 100, True),
]


def reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    g = gate.double()
    inner = math.sqrt(2 / math.pi) * (g + 0.044715 * g**3)
    return 0.5 * g * (1 + torch.tanh(inner)) * up.double()


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_gated_gelu_kernel_matches_float64_reference(launcher, generator, case):
    from runtime_schema.program import Backend, KernelSource

    rows, inner, stacked = case
    x = torch.randn(rows, 2 * inner if stacked else inner, generator=generator) * 3
    up = None if stacked else torch.randn(rows, inner, generator=generator)
    kernel = emit_gated_gelu("cuda", inner, stacked)
    source = KernelSource(
        backend=Backend.CUDA, entry=kernel.entry, source=kernel.source, header=kernel.header
    )
    out = torch.full((rows, inner), float("nan"), device="cuda")
    tensors = [x.cuda()] + ([] if up is None else [up.cuda()]) + [out]
    launcher.launch(
        source,
        grid=gated_gelu_grid(rows, inner),
        block=(GATED_GELU_THREADS, 1, 1),
        shared_memory_bytes=0,
        tensors=tensors,
        scalars=[rows],
    )
    torch.cuda.synchronize()
    got = out.cpu()
    gate, value = (x[:, :inner], x[:, inner:]) if stacked else (x, up)
    where = f"{case} seed={generator.initial_seed()}"
    assert bool(torch.isfinite(got).all()), f"{where}: unwritten or non-finite outputs"
    torch.testing.assert_close(
        got.double(), reference(gate, value), rtol=RTOL, atol=ATOL, msg=lambda m: f"{where}: {m}"
    )
