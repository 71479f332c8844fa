"""The CUDA rotary kernel (`codegen.kernels.rotary`) against a float64 reference, on an NVIDIA
GPU (skipped without one): Gemma 3 270M's decode and prefill shapes, a head dim whose half
is not a multiple of 32, element counts that end mid-block; outputs poisoned first."""

from __future__ import annotations

import pytest
import torch
from cuda_test_support import CUDA_TEST_MARKS

from codegen.kernels.rotary import ROTARY_THREADS, emit_rotary, rotary_grid

pytestmark = CUDA_TEST_MARKS

RTOL, ATOL = 1e-6, 1e-6
# (leading dims, tokens M, head dim D)
CASES = [
    ((1, 4), 1, 256),  # Gemma 3 270M's q at decode
    ((1, 1), 6, 256),  # its k at a prefill of 6 tokens
    ((2, 3), 5, 80),  # half of 40: lanes straddle the halves
    ((7,), 3, 128),
]


def launch(launcher, x, cos, sin):
    from runtime_schema.program import Backend, KernelSource

    dim, tokens = x.shape[-1], x.shape[-2]
    rows = x.numel() // dim
    kernel = emit_rotary("cuda", dim)
    source = KernelSource(
        backend=Backend.CUDA, entry=kernel.entry, source=kernel.source, header=kernel.header
    )
    out = torch.full(x.shape, float("nan"), device="cuda")
    launcher.launch(
        source,
        grid=rotary_grid(rows, dim),
        block=(ROTARY_THREADS, 1, 1),
        shared_memory_bytes=0,
        tensors=[x.cuda(), cos.cuda(), sin.cuda(), out],
        scalars=[rows, tokens],
    )
    torch.cuda.synchronize()
    return out.cpu()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}x{c[2]}")
def test_rotary_kernel_matches_float64_reference(launcher, generator, case):
    lead, tokens, dim = case
    x = torch.randn(*lead, tokens, dim, generator=generator)
    angles = torch.rand(tokens, dim // 2, generator=generator) * 6.3
    cos = torch.cat([angles.cos(), angles.cos()], -1)
    sin = torch.cat([-angles.sin(), angles.sin()], -1)
    out = launch(launcher, x, cos, sin)
    x64 = x.double()
    ref = x64 * cos.double() + x64.roll(dim // 2, -1) * sin.double()
    where = f"{case} seed={generator.initial_seed()}"
    assert bool(torch.isfinite(out).all()), f"{where}: unwritten or non-finite outputs"
    torch.testing.assert_close(
        out.double(), ref, rtol=RTOL, atol=ATOL, msg=lambda m: f"{where}: {m}"
    )
