"""The CUDA rotary kernels (`codegen.kernels.rotary`) against a float64 reference, on an NVIDIA
GPU (skipped without one): Gemma 3 270M's decode and prefill shapes, a head dim whose half
is not a multiple of 32, element counts that end mid-block; with an RMSNorm folded in (with
and without its weight, row counts that leave a block's warps idle); outputs poisoned
first."""

from __future__ import annotations

import pytest
import torch
from cuda_test_support import CUDA_TEST_MARKS

from codegen.kernels.rotary import emit_rotary, rotary_grid, rotary_threads

pytestmark = CUDA_TEST_MARKS

RTOL, ATOL = 1e-6, 1e-6
# (leading dims, tokens M, head dim D)
CASES = [
    ((1, 4), 1, 256),  # Gemma 3 270M's q at decode
    ((1, 1), 6, 256),  # its k at a prefill of 6 tokens
    ((2, 3), 5, 80),  # half of 40: lanes straddle the halves
    ((7,), 3, 128),
]


def launch(launcher, x, cos, sin, weight=None, eps=None):
    from runtime_schema.program import Backend, KernelSource

    dim, tokens = x.shape[-1], x.shape[-2]
    rows = x.numel() // dim
    normed = eps is not None
    kernel = emit_rotary("cuda", dim, normed, weight is not None)
    source = KernelSource(
        backend=Backend.CUDA, entry=kernel.entry, source=kernel.source, header=kernel.header
    )
    out = torch.full(x.shape, float("nan"), device="cuda")
    tables = [x.cuda(), cos.cuda(), sin.cuda()] + ([weight.cuda()] if weight is not None else [])
    launcher.launch(
        source,
        grid=rotary_grid(rows, dim, normed),
        block=(rotary_threads(normed), 1, 1),
        shared_memory_bytes=0,
        tensors=[*tables, out],
        scalars=[rows, tokens] + ([eps] if normed else []),
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


# (leading dims, tokens M, head dim D, weighted)
NORMED_CASES = [
    ((1, 4), 1, 256, True),  # Gemma 3 270M's q norm and RoPE at decode
    ((1, 1), 6, 256, True),  # its k at a prefill of 6 tokens
    ((3,), 3, 128, False),  # 9 rows: the last block's warps partly idle
]
NORMED_RTOL, NORMED_ATOL = 1e-5, 1e-5  # the norm's sum of squares and rsqrtf


@pytest.mark.parametrize("case", NORMED_CASES, ids=lambda c: f"{c[0]}x{c[1]}x{c[2]}x{c[3]}")
def test_rotary_kernel_with_rms_norm_matches_float64_reference(launcher, generator, case):
    lead, tokens, dim, weighted = case
    eps = 1e-6
    x = torch.randn(*lead, tokens, dim, generator=generator) * 3
    weight = torch.randn(dim, generator=generator) if weighted else None
    angles = torch.rand(tokens, dim // 2, generator=generator) * 6.3
    cos = torch.cat([angles.cos(), angles.cos()], -1)
    sin = torch.cat([-angles.sin(), angles.sin()], -1)
    out = launch(launcher, x, cos, sin, weight, eps)
    x64 = x.double()
    y = x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight.double()
    ref = y * cos.double() + y.roll(dim // 2, -1) * sin.double()
    where = f"{case} seed={generator.initial_seed()}"
    assert bool(torch.isfinite(out).all()), f"{where}: unwritten or non-finite outputs"
    torch.testing.assert_close(
        out.double(), ref, rtol=NORMED_RTOL, atol=NORMED_ATOL, msg=lambda m: f"{where}: {m}"
    )
