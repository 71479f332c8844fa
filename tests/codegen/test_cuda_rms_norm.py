"""The CUDA RMSNorm kernel (`codegen.kernels.rms_norm`) against a float64 reference, on an
NVIDIA GPU (skipped without one): Gemma 3 270M's dims, a dim too wide for a lane to keep
its elements in registers, a ragged dim without weight, row counts that leave a block's
warps idle; with and without a residual added (ggufc.rms_norm_add), and with the norm of
that sum too (ggufc.rms_norm_add_norm); outputs poisoned first."""

from __future__ import annotations

import pytest
import torch
from cuda_test_support import CUDA_TEST_MARKS

from codegen.kernels.rms_norm import RMS_NORM_THREADS, emit_rms_norm, rms_norm_grid

pytestmark = CUDA_TEST_MARKS

# float32 sums of squares in another order than the reference's, and rsqrtf's error
RTOL, ATOL = 1e-5, 1e-6
EPS = 1e-6
NEXT_EPS = 1e-5
# (rows, dim, weighted, residual, next norm)
CASES = [
    (1, 640, True, False, False),  # Gemma 3 270M's layer norms at decode
    (4, 256, True, False, False),  # its q norm at decode (4 heads)
    (7, 2048, True, False, False),  # 64 elements a lane: read twice
    (5, 100, False, False, False),  # ragged dim, no weight
    (33, 640, True, False, False),  # 9 blocks, the last with one busy warp
    (1, 640, True, True, False),  # Gemma 3 270M's post-norms and their residual add at decode
    (7, 2048, True, True, False),
    (33, 100, False, True, False),
    (1, 640, True, True, True),  # ... and the next pre-norm
    (7, 2048, True, True, True),
    (33, 100, True, True, True),
]


def launch(launcher, x, weight, residual, next_weight, eps):
    from runtime_schema.program import Backend, KernelSource

    rows, dim = x.shape
    kernel = emit_rms_norm(
        "cuda", dim, weight is not None, residual is not None, next_weight is not None
    )
    source = KernelSource(
        backend=Backend.CUDA, entry=kernel.entry, source=kernel.source, header=kernel.header
    )
    outs = [torch.full((rows, dim), float("nan"), device="cuda")]
    if next_weight is not None:
        outs.append(torch.full((rows, dim), float("nan"), device="cuda"))
    inputs = (weight, residual, next_weight)
    tensors = [x.cuda()] + [t.cuda() for t in inputs if t is not None] + outs
    launcher.launch(
        source,
        grid=rms_norm_grid(rows),
        block=(RMS_NORM_THREADS, 1, 1),
        shared_memory_bytes=0,
        tensors=tensors,
        scalars=[rows, eps] + ([NEXT_EPS] if next_weight is not None else []),
    )
    torch.cuda.synchronize()
    return [out.cpu() for out in outs]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_rms_norm_kernel_matches_float64_reference(launcher, generator, case):
    rows, dim, weighted, added, next_norm = case
    x = torch.randn(rows, dim, generator=generator) * 3
    weight = torch.randn(dim, generator=generator) if weighted else None
    residual = torch.randn(rows, dim, generator=generator) if added else None
    next_weight = torch.randn(dim, generator=generator) if next_norm else None
    outs = launch(launcher, x, weight, residual, next_weight, EPS)
    x64 = x.double()
    ref = x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + EPS)
    if weight is not None:
        ref = ref * weight.double()
    if residual is not None:
        ref = ref + residual.double()
    refs = [ref]
    if next_weight is not None:
        refs.append(
            ref * torch.rsqrt(ref.pow(2).mean(-1, keepdim=True) + NEXT_EPS) * next_weight.double()
        )
    where = f"{case} seed={generator.initial_seed()}"
    for i, (out, expected) in enumerate(zip(outs, refs, strict=True)):
        label = f"{where} output {i}"
        assert bool(torch.isfinite(out).all()), f"{label}: unwritten or non-finite outputs"
        torch.testing.assert_close(
            out.double(), expected, rtol=RTOL, atol=ATOL, msg=lambda m, label=label: f"{label}: {m}"
        )
