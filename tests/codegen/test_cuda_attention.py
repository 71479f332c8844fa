"""The CUDA attention kernel (`codegen.kernels.attention`) against a float64 reference, on an
NVIDIA GPU (skipped without one): grouped rows, causal, sliding-window and random masks, a
row that sees no key (NaN, as softmax of nothing), ragged head dims; the cluster path (sm_90)
and the portable one (compiled for compute_80).  Outputs are poisoned first, and the keys no
row sees hold NaN: the kernel must not read them."""

from __future__ import annotations

import pytest
import torch
from cuda_test_support import CUDA_TEST_MARKS

from codegen.kernels.attention import (
    ATTENTION_THREADS,
    attention_grid,
    attention_shared_bytes,
    emit_attention,
)
from compiler.ops import attention_reference

pytestmark = CUDA_TEST_MARKS

# float32 sums in another order than the reference's: relative error of the output
ERROR_BOUND = 1e-5
# (heads B, groups G, tokens M, keys S, head dim D, value dim Dv)
SHAPES = [
    (1, 4, 1, 256, 256, 256),  # Gemma 3 270M's decode step
    (1, 4, 6, 256, 256, 256),  # its prefill of 6 tokens
    (2, 3, 5, 97, 64, 64),  # ragged keys, two heads
    (1, 2, 3, 40, 80, 96),  # head dim not a multiple of 32, wider values
    (1, 1, 33, 600, 128, 128),  # more keys than threads
]


def launch(launcher, q, k, v, visible, scale):
    from runtime_schema.program import Backend, KernelSource

    heads, rows, head_dim = q.shape
    keys, value_dim = k.shape[1], v.shape[2]
    kernel = emit_attention("cuda", head_dim, value_dim)
    source = KernelSource(
        backend=Backend.CUDA, entry=kernel.entry, source=kernel.source, header=kernel.header
    )
    out = torch.full((heads, rows, value_dim), float("nan"), device="cuda")
    launcher.launch(
        source,
        grid=attention_grid(rows, heads),
        block=(ATTENTION_THREADS, 1, 1),
        shared_memory_bytes=attention_shared_bytes(keys, value_dim),
        tensors=[t.cuda().contiguous() for t in (q, k, v, visible)] + [out],
        scalars=[rows, visible.shape[0], keys, scale],
    )
    torch.cuda.synchronize()
    return out.cpu()


def masks(tokens: int, keys: int, generator) -> dict[str, torch.Tensor]:
    positions = torch.randint(0, keys, (tokens,), generator=generator).sort().values
    key = torch.arange(keys)
    causal = key[None, :] <= positions[:, None]
    window = causal & (positions[:, None] - key[None, :] < max(1, keys // 4))
    random = torch.rand(tokens, keys, generator=generator) < 0.5
    random[:, 0] = True
    return {"causal": causal, "sliding window": window, "random": random}


def check_against_reference(launcher, generator, shape):
    heads, groups, tokens, keys, head_dim, value_dim = shape
    q = torch.randn(heads, groups * tokens, head_dim, generator=generator)
    scale = head_dim**-0.5
    for name, visible in masks(tokens, keys, generator).items():
        k = torch.randn(heads, keys, head_dim, generator=generator)
        v = torch.randn(heads, keys, value_dim, generator=generator)
        ref = attention_reference(q.double(), k.double(), v.double(), visible, scale)
        # keys no row sees are never read: NaN there would reach every output that read it
        unseen = ~visible.any(0)
        k[:, unseen] = float("nan")
        v[:, unseen] = float("nan")
        out = launch(launcher, q, k, v, visible, scale)
        where = f"{shape} {name} seed={generator.initial_seed()}"
        assert bool(torch.isfinite(out).all()), f"{where}: unwritten or non-finite outputs"
        error = float((out.double() - ref).norm() / ref.norm())
        assert error <= ERROR_BOUND, f"{where}: relative error {error:.3g}"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_attention_kernel_matches_float64_reference(launcher, generator, shape):
    check_against_reference(launcher, generator, shape)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=lambda s: "x".join(map(str, s)))
def test_attention_kernel_portable_path_matches_float64_reference(generator, shape):
    """Compiled for compute_80 (no thread block clusters): one block takes a row's keys."""
    from runtime_schema.cuda_launcher import CudaLauncher

    check_against_reference(CudaLauncher(target="compute_80"), generator, shape)


@pytest.mark.parametrize("keys", [10, 200])
def test_attention_kernel_gives_nan_for_a_row_that_sees_no_key(launcher, generator, keys):
    q = torch.randn(1, 4, 64, generator=generator)
    k = torch.randn(1, keys, 64, generator=generator)
    v = torch.randn(1, keys, 64, generator=generator)
    visible = torch.ones(2, keys, dtype=torch.bool)
    visible[1] = False  # token 1 (rows 1 and 3) sees nothing
    out = launch(launcher, q, k, v, visible, 0.125)
    assert bool(torch.isnan(out[0, [1, 3]]).all())
    ref = attention_reference(q.double(), k.double(), v.double(), visible, 0.125)
    assert torch.allclose(out[0, [0, 2]].double(), ref[0, [0, 2]], rtol=1e-5, atol=1e-6)
