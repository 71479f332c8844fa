"""Every generated CUDA kernel against a float64 reference, on a GPU.

Reference: ``formats.dequantize(blocks).double() @ x.double().T + bias`` on the CPU, with x
and bias rounded to the activation dtype first (the kernels see the same values).  Blocks,
activations, bias and indices are fresh random data each run (the seed is in every failure
message); outputs are NaN-poisoned before each launch, so an element a kernel fails to write
fails the check.  Error: ||out - ref|| / ||ref|| under the per-(kind, dtype) bound below.

Skipped without a CUDA device and CuPy (run them with ``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import contextlib
import os

import pytest
import torch
from cuda_test_support import CUDA_TEST_MARKS

from codegen.cuda_timing import SLEEP_CYCLES
from codegen.kernels import DTYPES, FORMAT_NAMES, LINEAR_KINDS, emit, geometries
from codegen.kernels.emitter import (
    KQUANT_SCALE_FORMATS,
    MATVEC_MMA_FORMS,
    MATVEC_MMA_GEOMETRIES,
    MATVEC_ONE_ROW_MMA_BULK_ROWS,
    cuda_matvec_streamed,
    cuda_matvec_with_group_warps,
    takes_integer_x,
    takes_lane_words,
)
from compiler import formats
from compiler.formats import row_bytes

pytestmark = CUDA_TEST_MARKS

TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
# float32 accumulation everywhere; the output rounding to the dtype dominates
# (fp16: 2^-11, bf16: 2^-8 relative); the matmul's tensor-core operands are rounded too
# (fp16 / bf16 weights; TF32 for float32, 10-bit mantissa).  The float32 matvecs take biased
# quants at the top of the float's mantissa (prelude.cuh, "biased values"): up to 9.5e-7 on
# the H100 (session 10), exact values ~1e-7; with the quants in the low bits (the 16-bit
# placement) it would be 2.6-3.1e-6, which this bound catches.
ERROR_BOUNDS = {
    ("matvec", "float32"): 2e-6,
    ("matvec_batched", "float32"): 2e-6,
    ("matmul", "float32"): 3e-3,
    ("embedding", "float32"): 1e-6,
}
DTYPE_BOUNDS = {"float16": 2e-3, "bfloat16": 1.6e-2}
# rows of activations: 1, the bucket edges of matvec_batched (2, 8), one past it (9) and large
M_VALUES = (1, 2, 8, 9, 130)
# N = 131 is ragged for the matvec (4 rows per block) and matmul (64) tiles; K % 64 == 32
# for the 32-weight formats exercises the matmul's partial K step
RAGGED_N = 131
K_BY_FORMAT = {"Q4_0": 352, "Q5_0": 352, "Q8_0": 352, "Q4_K": 768, "Q5_K": 768, "Q6_K": 768}
LARGE_K = 21504
EMBEDDING_ROWS = 131
ACTIVATION_SCALE = 2.0


def error_bound(kind: str, dtype: str) -> float:
    return ERROR_BOUNDS.get((kind, dtype), DTYPE_BOUNDS.get(dtype, 0.0))


@pytest.fixture(scope="module")
def runner():
    from codegen.cuda_run import CudaKernelRunner

    return CudaKernelRunner()


@pytest.fixture(scope="module")
def portable_runner():
    """Compiles for the device's portable target: on an H100 (sm_90, not sm_90a) the 16-bit
    matmul takes its mma.sync path instead of wgmma."""
    from codegen.cuda_run import CudaKernelRunner

    return CudaKernelRunner(arch_specific=False)


@pytest.fixture
def rng():
    seed = int.from_bytes(os.urandom(8), "little") >> 1
    return torch.Generator().manual_seed(seed)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref).norm() / ref.norm())


def on_device(blocks: torch.Tensor):
    """The blocks in a fresh device tensor of their own (check_linear's default placement)."""
    return contextlib.nullcontext(blocks.cuda())


@contextlib.contextmanager
def at_allocation_end(blocks: torch.Tensor):
    """The blocks copied to the end of a fresh 2 MiB device allocation (their start 16-byte
    aligned, as the launcher requires, so they end within 16 bytes of it): the memory after
    them is most likely unmapped, so a kernel reading past the tensor faults.  Freed after
    the device is idle."""
    import cupy

    region_bytes = 2 << 20
    pointer = cupy.cuda.runtime.malloc(region_bytes)
    try:
        memory = cupy.cuda.UnownedMemory(pointer, region_bytes, None)
        at_end = cupy.cuda.MemoryPointer(memory, (region_bytes - blocks.numel()) // 16 * 16)
        placed = torch.from_dlpack(cupy.ndarray((blocks.numel(),), cupy.uint8, at_end))
        placed = placed.view(blocks.shape)
        placed.copy_(blocks.cuda())
        yield placed
    finally:
        torch.cuda.synchronize()
        cupy.cuda.runtime.free(pointer)


def check_linear(
    runner,
    rng,
    fmt,
    kind,
    dtype,
    m_shape,
    n,
    k,
    with_bias,
    geometry="default",
    kernel=None,
    place_blocks=on_device,
    x_scale=None,
):
    """One launch of ``kernel`` (else the emitted one of ``geometry``) on fresh random blocks,
    activations and bias, against the float64 reference; ``place_blocks(blocks)`` gives the
    context holding their device copy; ``x_scale`` (broadcast to x) multiplies the activations
    (default ACTIVATION_SCALE)."""
    kernel = kernel or emit("cuda", fmt, kind, dtype, geometry)
    torch_dtype = TORCH_DTYPES[dtype]
    blocks = formats.random_blocks(fmt, n, k, generator=rng)
    scale = ACTIVATION_SCALE if x_scale is None else x_scale
    x = (torch.randn(*m_shape, k, generator=rng) * scale).to(torch_dtype)
    bias = torch.randn(n, generator=rng).to(torch_dtype) if with_bias else None
    weights = formats.dequantize(blocks, fmt, torch.float32).double()
    ref = x.double() @ weights.T
    if bias is not None:
        ref = ref + bias.double()
    out = torch.full((*m_shape, n), float("nan"), dtype=torch_dtype, device="cuda")
    with place_blocks(blocks) as device_blocks:
        runner.linear(
            kernel,
            x.cuda(),
            device_blocks,
            None if bias is None else bias.cuda(),
            n,
            k,
            out=out,
        )
        out = out.cpu()
    where = f"{kernel.entry} M={m_shape} N={n} K={k} bias={with_bias} seed={rng.initial_seed()}"
    assert bool(torch.isfinite(out).all()), f"{where}: unwritten or non-finite outputs"
    error = relative_error(out, ref)
    assert error <= error_bound(kind, dtype), f"{where}: relative error {error:.3g}"


# every linear kind of every format with every dtype in every geometry it has (the matvec's
# narrow, split-K and paired too, the batched matvec's split-K matmuls)
KERNELS = [
    (fmt, kind, dtype, geometry)
    for fmt in FORMAT_NAMES
    for kind in LINEAR_KINDS
    for dtype in DTYPES
    for geometry in geometries("cuda", fmt, kind, dtype)
]
FLOAT16_KERNELS = [(f, kind, g) for f, kind, dtype, g in KERNELS if dtype == "float16"]


@pytest.mark.parametrize(("fmt", "kind", "dtype", "geometry"), KERNELS)
def test_linear_kernel_matches_float64_reference(runner, rng, fmt, kind, dtype, geometry):
    k = K_BY_FORMAT[fmt]
    for m in M_VALUES:
        # bias on odd M only: both paths of every kernel run in every test
        with_bias = m % 2 == 1
        check_linear(runner, rng, fmt, kind, dtype, (m,), RAGGED_N, k, with_bias, geometry)


@pytest.mark.parametrize("dtype", ("float16", "bfloat16"))
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_matmul_portable_build_matches_float64_reference(portable_runner, rng, fmt, dtype):
    """The 16-bit matmul has two paths in one source (wgmma on sm_90a, mma.sync elsewhere);
    the default runner tests the device's, this one the portable build's."""
    k = K_BY_FORMAT[fmt]
    for m in (9, 130):
        check_linear(portable_runner, rng, fmt, "matmul", dtype, (m,), RAGGED_N, k, m == 9)
    check_linear(portable_runner, rng, fmt, "matmul", dtype, (3, 3), 37, LARGE_K, True)


PORTABLE_GEOMETRY_KERNELS = [
    (fmt, geometry)
    for fmt in FORMAT_NAMES
    for geometry in geometries("cuda", fmt, "matmul", "float16")
    if geometry != "default"
]


@pytest.mark.parametrize(("fmt", "geometry"), PORTABLE_GEOMETRY_KERNELS)
def test_matmul_geometry_portable_build(portable_runner, rng, fmt, geometry):
    """Each geometry's portable build (mma.sync): 64-row tiles, their clusters splitting the
    tile's weight rows, and the 256-row tile's cluster splitting its activation rows (M = 300:
    a whole tile and a ragged one whose second block has no row)."""
    k = K_BY_FORMAT[fmt]
    for m in (130, 300):
        check_linear(
            portable_runner, rng, fmt, "matmul", "float16", (m,), RAGGED_N, k, m == 300, geometry
        )


# K whose rows are whole 16-byte words in every format (sm_90a: the weight groups come by
# tensor map), and per format one whose rows are not (the producer's threads copy them)
MAPPED_ROWS_K = 2048
COPIED_ROWS_K = {"Q4_0": 352, "Q5_0": 352, "Q8_0": 352, "Q6_K": 768}


def _record_weight_maps(monkeypatch) -> list[bool]:
    """A list the launcher then appends to at each launch: whether it encoded the weight
    blocks' map (tensor 1) or passed zeros."""
    from runtime_schema import cuda_launcher

    encode = cuda_launcher.tensor_map_parameters
    weight_maps: list[bool] = []

    def recorded(encoder, source, tensors):
        maps = encode(encoder, source, tensors)
        weights = [i for i, m in enumerate(source.tensor_maps) if m.tensor == 1]
        weight_maps.extend(bool(maps[i].any()) for i in weights)
        return maps

    monkeypatch.setattr(cuda_launcher, "tensor_map_parameters", recorded)
    return weight_maps


@pytest.mark.parametrize("geometry", ["default", "rows256_split_k2"])
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_matmul_weights_by_tensor_map_and_by_copies(runner, rng, fmt, geometry, monkeypatch):
    """Rows of whole 16-byte words take the weight groups by tensor map, others by the
    producer's copies (the launcher passes zeros for the optional map); both against
    float64, with a ragged N (the map's rows past N read as zeros)."""
    weight_maps = _record_weight_maps(monkeypatch)
    assert row_bytes(fmt, MAPPED_ROWS_K) % 16 == 0
    for k in (MAPPED_ROWS_K, COPIED_ROWS_K.get(fmt)):
        if k is None:
            continue  # Q4_K / Q5_K rows are always whole words
        mapped = k == MAPPED_ROWS_K
        assert mapped or row_bytes(fmt, k) % 16
        weight_maps.clear()
        check_linear(runner, rng, fmt, "matmul", "float16", (300,), RAGGED_N, k, True, geometry)
        assert weight_maps == [mapped], (k, weight_maps)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_matmul_with_fewer_k_steps_than_stages(runner, rng, fmt):
    """A row of one or two blocks is one to four K steps: the copy ring's first stages and
    their barriers are then never all filled."""
    block = formats.get_format(fmt).block_weights
    for k in (block, 2 * block):
        check_linear(runner, rng, fmt, "matmul", "float16", (130,), RAGGED_N, k, True)


@pytest.mark.parametrize("dtype", ("float16", "bfloat16"))
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_matmul_over_whole_tiles_and_a_long_k(runner, rng, fmt, dtype):
    """Whole activation tiles (the producer's bound-free copies) over a K long enough for the
    copy ring to wrap many times, with an odd and an even number of N tiles."""
    for n in (300, 256):
        check_linear(runner, rng, fmt, "matmul", dtype, (256,), n, 2048, n == 300)


MATMUL_GEOMETRY_KERNELS = [
    (fmt, dtype, geometry)
    for fmt in FORMAT_NAMES
    for dtype in ("float16", "bfloat16")
    for geometry in geometries("cuda", fmt, "matmul", dtype)
]


@pytest.mark.parametrize(("fmt", "dtype", "geometry"), MATMUL_GEOMETRY_KERNELS)
def test_matmul_geometry_over_a_long_k(runner, rng, fmt, dtype, geometry):
    """Each geometry where the lowering takes it: few rows (one and a ragged second 64-row
    tile) over a K long enough that every block of a split has many steps."""
    for m in (64, 97):
        check_linear(runner, rng, fmt, "matmul", dtype, (m,), RAGGED_N, LARGE_K, m == 97, geometry)


# rows of activations a kind is launched with when the weights end an allocation
M_BY_KIND = {"matvec": 1, "matvec_batched": 4, "matmul": 130}


@pytest.mark.parametrize(("fmt", "kind", "geometry"), FLOAT16_KERNELS)
def test_linear_kernel_reads_no_byte_past_its_weights(runner, rng, fmt, kind, geometry):
    """Weights at the end of an allocation (at_allocation_end): no kernel may read past them.
    The matmul's last N tile once did: a chunk starting before a row past N reached back into
    the bytes past the tensor, up to kilobytes past its end, wherever rows are not 16-byte
    multiples (Q4_0, Q5_0, Q8_0 at K = 352, Q6_K at 768); the matvecs copy a row's last chunk
    in 16-byte words, the last the one holding the row's last byte."""
    pytest.importorskip("cupy")
    m_shape = (M_BY_KIND[kind],)
    n, k = RAGGED_N, K_BY_FORMAT[fmt]
    check_linear(
        runner,
        rng,
        fmt,
        kind,
        "float16",
        m_shape,
        n,
        k,
        False,
        geometry,
        place_blocks=at_allocation_end,
    )


# the batched matvec's split-K matmuls: K split over a cluster of 2 to 8 blocks
SPLIT_K_KERNELS = [
    (fmt, geometry)
    for fmt, kind, geometry in FLOAT16_KERNELS
    if kind == "matvec_batched" and geometry.startswith("split_k")
]
# the mma matvec's geometries: the staged kernel's forms (16 or 32 weight rows a block; 8, 6 or
# 4 warps a block) and the K-quants' loaded one
MMA_KERNELS = [
    (fmt, dtype, geometry)
    for fmt, kind, dtype, geometry in KERNELS
    if kind == "matvec_batched" and geometry in MATVEC_MMA_GEOMETRIES
]
STAGED_MMA_KERNELS = [k for k in MMA_KERNELS if k[2] in MATVEC_MMA_FORMS]


@pytest.mark.parametrize(("fmt", "geometry"), SPLIT_K_KERNELS)
def test_split_k_matmul_with_fewer_k_steps_than_blocks(runner, rng, fmt, geometry):
    """Rows of one or two blocks are 4 or 8 K steps: split 8 ways, some blocks of a cluster
    have no step at all and still meet the others; M of one whole activation tile and of one
    row past it."""
    block = formats.get_format(fmt).block_weights
    for k in (block, 2 * block):
        for m in (16, 17):
            check_linear(
                runner, rng, fmt, "matvec_batched", "float16", (m,), RAGGED_N, k, m == 17, geometry
            )


@pytest.mark.parametrize(("fmt", "geometry"), SPLIT_K_KERNELS)
def test_split_k_matmul_over_whole_tiles_and_a_long_k(runner, rng, fmt, geometry):
    """Whole tiles (the producer's bound-free copies) and a K whose steps do not divide evenly
    among the blocks of a cluster."""
    for n in (300, 256):
        check_linear(
            runner, rng, fmt, "matvec_batched", "float16", (16,), n, 2048 + 256, n == 300, geometry
        )


@pytest.mark.parametrize("dtype", ("float16", "bfloat16"))
@pytest.mark.parametrize(("fmt", "geometry"), SPLIT_K_KERNELS)
def test_split_k_matmul_portable_build(portable_runner, rng, fmt, geometry, dtype):
    """Built without wgmma (mma.sync, 1 x 8 consumer warps for a tile of 16 rows), the blocks
    of a cluster split the tile's rows by consumer warp instead of K: a ragged N leaves some
    blocks of the last tile no row."""
    for m in (2, 16):
        check_linear(
            portable_runner,
            rng,
            fmt,
            "matvec_batched",
            dtype,
            (m,),
            RAGGED_N,
            2048,
            m == 2,
            geometry,
        )


@pytest.mark.parametrize(("fmt", "dtype", "geometry"), MMA_KERNELS)
def test_mma_matvec_over_every_m_of_its_tile(runner, rng, fmt, dtype, geometry):
    """The mma matvec (B = up to 8 activation rows) at every M of its tile and past it (a
    second tile of columns), a ragged last tile of weight rows, and super-blocks that its 8
    warps take unevenly (11: three warps take two)."""
    block = formats.get_format(fmt).block_weights
    for m in (*range(1, 10), 17):
        check_linear(
            runner, rng, fmt, "matvec_batched", dtype, (m,), RAGGED_N, 11 * block, m % 2, geometry
        )


@pytest.mark.parametrize(("fmt", "dtype", "geometry"), STAGED_MMA_KERNELS)
def test_staged_mma_matvec_over_a_long_k(runner, rng, fmt, dtype, geometry):
    """The staged mma matvec's rings wrapping many times: a K of its 8 warps' groups three
    times over and more (K = 6176: Q4_0 / Q5_0 25 groups of 4 K steps, Q8_0 49 of 2, the last
    one step, whose second K group lies past K; the K-quants K = 6400: 25 blocks of 4 steps), and K =
    4096 whole groups; whole tiles of rows (all but the last copied unbounded) and a ragged
    last tile; M of one or two tiles."""
    long_k = 6176 if formats.get_format(fmt).block_weights == 32 else 6400
    for n, k, m in ((256, long_k, 2), (RAGGED_N, long_k, 9), (256, 4096, 8), (RAGGED_N, 4096, 3)):
        check_linear(runner, rng, fmt, "matvec_batched", dtype, (m,), n, k, m % 2 == 1, geometry)


@pytest.mark.parametrize(("fmt", "dtype", "geometry"), STAGED_MMA_KERNELS)
def test_staged_mma_matvec_weights_by_tensor_map_and_by_copies(
    runner, rng, fmt, dtype, geometry, monkeypatch
):
    """Rows of whole 16-byte words take the staged mma matvec's weight groups by tensor map
    (a K whose group ring wraps many times: 3 x 2048), others by each warp's chunk copies
    (the launcher passes zeros for the optional map); both against float64, with a ragged N
    (the map's rows past N read as zeros) and M of one or two tiles."""
    weight_maps = _record_weight_maps(monkeypatch)
    for k in (3 * MAPPED_ROWS_K, COPIED_ROWS_K.get(fmt)):
        if k is None:
            continue  # Q4_K / Q5_K rows are always whole words
        mapped = row_bytes(fmt, k) % 16 == 0
        assert mapped == (k != COPIED_ROWS_K.get(fmt))
        for m in (5, 9):
            weight_maps.clear()
            check_linear(
                runner, rng, fmt, "matvec_batched", dtype, (m,), RAGGED_N, k, m == 5, geometry
            )
            assert weight_maps == [mapped], (k, m, weight_maps)


# the M = 1 matvec's one-row staged kernels (emitter.MATVEC_ONE_ROW_MMA)
ONE_ROW_KERNELS = [
    (fmt, dtype, geometry)
    for fmt, kind, dtype, geometry in KERNELS
    if kind == "matvec" and geometry in MATVEC_MMA_FORMS
]
# K whose rows are whole 16-byte words, ending in a short weight group of every one-row kernel
# (8-step groups of 512 weights: half of one), and K whose rows are not (a row's last K step
# then one of its two K groups); none for Q4_K / Q5_K, whose rows are always whole words
ONE_ROW_MAPPED_K = {"Q6_K": 6144}
ONE_ROW_COPIED_K = {"Q4_0": 6176, "Q5_0": 6176, "Q8_0": 6176, "Q6_K": 6400}


@pytest.mark.parametrize(("fmt", "dtype", "geometry"), ONE_ROW_KERNELS)
def test_one_row_matvec_weights_by_tensor_map_and_by_copies(
    runner, rng, fmt, dtype, geometry, monkeypatch
):
    """The one-row kernels take their weight groups by tensor map where rows are whole 16-byte
    words (boxes past 256 bytes as 2-byte elements: emitter.MATVEC_ONE_ROW_MMA_GROUP_STEPS),
    else by each warp's chunk copies (MATVEC_ONE_ROW_MMA_BULK_ROWS' kernels: by a bulk copy a
    row, the last tile of rows by chunks); both against float64 with a ragged N."""
    weight_maps = _record_weight_maps(monkeypatch)
    for k in (ONE_ROW_MAPPED_K.get(fmt, 6400), ONE_ROW_COPIED_K.get(fmt)):
        if k is None:
            continue
        weight_maps.clear()
        check_linear(runner, rng, fmt, "matvec", dtype, (1,), RAGGED_N, k, True, geometry)
        assert weight_maps == [row_bytes(fmt, k) % 16 == 0], k


@pytest.mark.parametrize(
    ("fmt", "dtype", "geometry"),
    [
        (fmt, dtype, geometry)
        for fmt, dtype, geometry in ONE_ROW_KERNELS
        if fmt in KQUANT_SCALE_FORMATS or (fmt, geometry) in MATVEC_ONE_ROW_MMA_BULK_ROWS
    ],
)
def test_one_row_matvec_by_chunk_copies_in_the_portable_build(
    portable_runner, rng, fmt, dtype, geometry
):
    """One-row kernels whose sm_90a build never copies their weights by chunks take them so in
    the build without sm_90a (no tensor map, no bulk copies): Q4_K / Q5_K, whose rows are always
    whole words (groups of one or two blocks; two: a row's head read a block), and the kernels
    of MATVEC_ONE_ROW_MMA_BULK_ROWS (a bulk copy a row where no map); the row's last group short
    (K = 6400, 25 blocks), against float64."""
    check_linear(portable_runner, rng, fmt, "matvec", dtype, (1,), RAGGED_N, 6400, True, geometry)


@pytest.mark.parametrize(("fmt", "kind", "geometry"), FLOAT16_KERNELS)
def test_linear_kernel_flattens_leading_dims_at_large_k(runner, rng, fmt, kind, geometry):
    check_linear(runner, rng, fmt, kind, "float16", (3, 3), 37, LARGE_K, True, geometry)


@pytest.mark.parametrize(
    ("fmt", "geometry"),
    [(fmt, g) for fmt, kind, dtype, g in KERNELS if kind == "matvec" and dtype == "float32"],
)
def test_matvec_geometries_at_large_k_in_float32(runner, rng, fmt, geometry):
    """float32 has the tightest bound; LARGE_K runs the split-K loop several times with a
    ragged tail and the staged kernels over many chunks."""
    check_linear(runner, rng, fmt, "matvec", "float32", (1,), RAGGED_N, LARGE_K, True, geometry)


INTEGER_X_MATVECS = [
    (fmt, dtype, geometry)
    for fmt, kind, dtype, geometry in KERNELS
    if kind == "matvec" and takes_integer_x(fmt, dtype)
]


@pytest.mark.parametrize(("fmt", "dtype", "geometry"), INTEGER_X_MATVECS)
def test_int16_activations_follow_each_parts_range(runner, rng, fmt, dtype, geometry):
    """The int16 decode (prelude: "integer dot products") scales each part of 32 activations
    by its own largest |x|: parts up to 10^5 apart, an all-zero part and one whose largest
    |x| is a power of two still meet the dtype's bound (one unit for all parts would lose the
    small ones, one too large would overflow int16)."""
    parts = LARGE_K // 32
    # 10^-4 .. 10^1: wider, the float16 outputs overflow
    part_scale = 10.0 ** (torch.rand(parts, generator=rng) * 5 - 4)
    part_scale[1] = 0.0
    x_scale = part_scale.repeat_interleave(32)
    check_linear(
        runner, rng, fmt, "matvec", dtype, (1,), RAGGED_N, LARGE_K, True, geometry, x_scale=x_scale
    )
    x = torch.full((1, K_BY_FORMAT[fmt]), 0.5).to(TORCH_DTYPES[dtype])
    x[0, ::3] = -2.0  # a largest |x| that is a power of two in every part
    blocks = formats.random_blocks(fmt, RAGGED_N, K_BY_FORMAT[fmt], generator=rng)
    ref = x.double() @ formats.dequantize(blocks, fmt, torch.float32).double().T
    kernel = emit("cuda", fmt, "matvec", dtype, geometry)
    out = torch.full((1, RAGGED_N), float("nan"), dtype=x.dtype, device="cuda")
    runner.linear(kernel, x.cuda(), blocks.cuda(), None, RAGGED_N, K_BY_FORMAT[fmt], out=out)
    error = relative_error(out.cpu(), ref)
    assert error <= error_bound("matvec", dtype), f"{kernel.entry}: relative error {error:.3g}"


@pytest.mark.parametrize(
    ("fmt", "kind", "dtype", "geometry"),
    [c for c in KERNELS if c[1] == "matvec" and c[2] != "float32"],
)
def test_matvec_passes_a_nan_activation_to_every_output(runner, rng, fmt, kind, dtype, geometry):
    """A NaN in x makes every output NaN, whichever decode (the int16 one loses it in the
    integer sum and keeps it in the float sums of x it subtracts)."""
    k = K_BY_FORMAT[fmt]
    x = torch.randn(1, k, generator=rng).to(TORCH_DTYPES[dtype])
    x[0, 5] = float("nan")
    blocks = formats.random_blocks(fmt, RAGGED_N, k, generator=rng)
    kernel = emit("cuda", fmt, kind, dtype, geometry)
    out = torch.zeros((1, RAGGED_N), dtype=x.dtype, device="cuda")
    runner.linear(kernel, x.cuda(), blocks.cuda(), None, RAGGED_N, k, out=out)
    assert bool(out.isnan().all()), f"{kernel.entry}: {int((~out.isnan()).sum())} outputs not NaN"


@pytest.mark.parametrize("group_warps", (1, 2, 4))
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_matvec_with_any_group_warps_matches_float64_reference(runner, rng, fmt, group_warps):
    """The benchmarks' group-warps variants (the paired geometry is 2), at a K of several
    chunks a row and a ragged N whose last row group is empty."""
    kernel = cuda_matvec_with_group_warps(fmt, "float32", group_warps)
    for k in (K_BY_FORMAT[fmt], LARGE_K):
        check_linear(runner, rng, fmt, "matvec", "float32", (1,), RAGGED_N, k, True, kernel=kernel)


@pytest.mark.parametrize("group_warps", (1, 4))
@pytest.mark.parametrize("dtype", ("float32", "float16"))
@pytest.mark.parametrize("stream_groups", (2, 7))
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_streamed_matvec_over_many_row_groups(runner, rng, fmt, stream_groups, dtype, group_warps):
    """Each warp of the streamed geometry takes row groups in turn, loading the next one's
    first chunk during this one's last: N spans three whole blocks and a ragged fourth whose
    warps run out of rows at different groups; K of one chunk a row (the activations kept
    from group to group), of two (the load crossing to the next group from the second), of one
    chunk for each warp sharing a row group (quad_stream: each warp's part of x kept), and of
    many."""
    kernel = cuda_matvec_streamed(fmt, dtype, stream_groups, group_warps)
    rows_per_block = kernel.launch.grid[0].per_block
    n = 3 * rows_per_block + 37
    for k in sorted({K_BY_FORMAT[fmt], 1024 + 256, group_warps * 1024, LARGE_K}):
        check_linear(runner, rng, fmt, "matvec", dtype, (1,), n, k, k == LARGE_K, kernel=kernel)


# the matvecs whose lanes load their own words of the blocks (cuda/matvec_lanes.cu)
LANE_WORD_KERNELS = [
    (fmt, dtype, geometry)
    for fmt, kind, dtype, geometry in KERNELS
    if kind == "matvec" and takes_lane_words(fmt, dtype, geometry)
]


@pytest.mark.parametrize(("fmt", "dtype", "geometry"), LANE_WORD_KERNELS)
def test_lane_word_matvec_over_its_row_groups_and_k_range(runner, rng, fmt, dtype, geometry):
    """The lane-word matvec over N of three blocks of row groups and a ragged fourth whose
    groups run out at different rows; K of one block (three warps without a chunk), of 13
    (the lowering's range: the last warp's chunk one block), of 16 (a whole chunk a warp) and
    LARGE_K (several chunks a warp, the other path)."""
    kernel = emit("cuda", fmt, "matvec", dtype, geometry)
    n = 3 * kernel.launch.grid[0].per_block + 5
    block = formats.get_format(fmt).block_weights
    for k in (block, 13 * block, 16 * block, LARGE_K):
        check_linear(runner, rng, fmt, "matvec", dtype, (1,), n, k, k != block, kernel=kernel)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_embedding_kernel_gathers_dequantized_rows(runner, rng, fmt, dtype):
    kernel = emit("cuda", fmt, "embedding", dtype)
    torch_dtype = TORCH_DTYPES[dtype]
    k = K_BY_FORMAT[fmt]
    blocks = formats.random_blocks(fmt, EMBEDDING_ROWS, k, generator=rng)
    weights = formats.dequantize(blocks, fmt, torch.float32).double()
    for shape in ((1,), (9,), (2, 65)):
        indices = torch.randint(0, EMBEDDING_ROWS, shape, generator=rng)
        indices.view(-1)[0] = EMBEDDING_ROWS - 1  # the last row, every time
        out = torch.full((*shape, k), float("nan"), dtype=torch_dtype, device="cuda")
        runner.embedding(kernel, blocks.cuda(), indices.cuda(), EMBEDDING_ROWS, k, out=out)
        out = out.cpu()
        ref = weights[indices]
        where = f"{kernel.entry} indices={list(shape)} seed={rng.initial_seed()}"
        assert bool(torch.isfinite(out).all()), f"{where}: unwritten or non-finite outputs"
        error = relative_error(out, ref)
        assert error <= error_bound("embedding", dtype), f"{where}: relative error {error:.3g}"


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_embedding_kernel_marks_out_of_range_indices_with_nan(runner, fmt):
    """Every value of a row named by an index outside [0, N) is NaN (every part a thread
    decodes, where a thread decodes several: Q5_K), and no other row's."""
    kernel = emit("cuda", fmt, "embedding", "float32")
    k = 2 * formats.get_format(fmt).block_weights
    blocks = formats.random_blocks(fmt, 4, k).cuda()
    out = runner.embedding(kernel, blocks, torch.tensor([0, 4, -1, 3], device="cuda"), 4, k)
    assert torch.isfinite(out).all(dim=1).tolist() == [True, False, False, True]
    assert torch.isnan(out[1:3]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_dequantize_kernel_equals_the_formats_dequantize(runner, rng, fmt, dtype):
    """Every row: 16-bit values equal to ``formats.dequantize``'s in that dtype (what the
    dense route hands cuBLAS), float32 within the embedding's bound; on a ragged row count
    and on one long row."""
    kernel = emit("cuda", fmt, "dequantize", dtype)
    torch_dtype = TORCH_DTYPES[dtype]
    for n, k in ((EMBEDDING_ROWS, K_BY_FORMAT[fmt]), (1, LARGE_K)):
        blocks = formats.random_blocks(fmt, n, k, generator=rng)
        out = torch.full((n, k), float("nan"), dtype=torch_dtype, device="cuda")
        runner.dequantize(kernel, blocks.cuda(), n, k, out=out)
        out = out.cpu()
        where = f"{kernel.entry} {n}x{k} seed={rng.initial_seed()}"
        assert bool(torch.isfinite(out).all()), f"{where}: unwritten or non-finite outputs"
        if dtype == "float32":
            ref = formats.dequantize(blocks, fmt, torch.float32).double()
            error = relative_error(out, ref)
            assert error <= error_bound("embedding", dtype), f"{where}: error {error:.3g}"
        else:
            expected = formats.dequantize(blocks, fmt, torch_dtype)
            assert torch.equal(out, expected), f"{where}: differs from formats.dequantize"


def test_embedding_kernel_reaches_the_last_row_of_a_vocabulary(runner, rng):
    rows, k = 262144, 256
    kernel = emit("cuda", "Q4_K", "embedding", "float16")
    blocks = formats.random_blocks("Q4_K", rows, k, generator=rng)
    indices = torch.tensor([rows - 1, 0, rows // 2])
    out = runner.embedding(kernel, blocks.cuda(), indices.cuda(), rows, k).cpu()
    ref = formats.dequantize(blocks[indices], "Q4_K", torch.float32).double()
    assert relative_error(out, ref) <= error_bound("embedding", "float16")


CHAIN_SIZE = 2048  # N of the lead launch = N and K of the checked one
# The lead launch (a Q8_0 matvec) reads about this many weights in all (K = this / M): ~25 us on
# an H100, long enough that the checked launch, started early, reads x before the lead has
# written it if it does not wait.  Without the wait (or with x loaded read-only, `.nc`, which
# ptxas moved above it) 4 of 4 chains failed for the matvecs and the batched matvec (session
# 17); the matmul's blocks (up to 160 KB of shared memory) do not fit beside the lead's, so
# it starts only as the lead ends.
LEAD_FORMAT = "Q8_0"
LEAD_WEIGHTS = CHAIN_SIZE * 32768


@pytest.fixture(scope="module")
def lead_weights():
    """K -> (device blocks, rms of the weights) of the lead launch, made once per K."""
    made = {}

    def get(k):
        if k not in made:
            blocks = formats.random_blocks(LEAD_FORMAT, CHAIN_SIZE, k)
            sample = formats.dequantize(blocks[:8], LEAD_FORMAT, torch.float64)
            made[k] = (blocks.cuda(), float(sample.pow(2).mean().sqrt()))
        return made[k]

    return get


@pytest.mark.parametrize(("fmt", "kind", "dtype", "geometry"), KERNELS)
def test_dependent_launch_reads_the_previous_kernels_output(
    runner, rng, lead_weights, fmt, kind, dtype, geometry
):
    """A long lead launch writes the checked kernel's x (NaN-poisoned before it).  Launched
    dependently the checked kernel starts while the lead still runs: it must wait for it
    before it reads x (prelude.cuh, programmatic dependent launch)."""
    if not runner.dependent_launch:
        # launched plainly the checked kernel cannot start before the lead ends, so the test
        # could not fail whatever the kernel's wait does
        pytest.skip(
            "launches are plain here (compute capability < 9.0 or GGUFC_DEPENDENT_LAUNCH=0)"
        )
    kernel = emit("cuda", fmt, kind, dtype, geometry)
    torch_dtype = TORCH_DTYPES[dtype]
    size, m = CHAIN_SIZE, M_BY_KIND[kind]
    lead_k = max(size, LEAD_WEIGHTS // size // m // 256 * 256)
    lead = emit("cuda", LEAD_FORMAT, "matvec", dtype, "default")
    lead_blocks, lead_rms = lead_weights(lead_k)
    blocks = formats.random_blocks(fmt, size, size, generator=rng)
    weights = formats.dequantize(blocks, fmt, torch.float64)
    # x scaled so that the hidden and final values stay well inside float16's range
    rms = float(weights.pow(2).mean().sqrt())
    scale = 1.0 / (lead_rms * rms * (lead_k * size) ** 0.5)
    x = (torch.randn(m, lead_k, generator=rng, dtype=torch.float64) * scale).to(torch_dtype)
    hidden = torch.full((m, size), float("nan"), dtype=torch_dtype, device="cuda")
    out = torch.full((m, size), float("nan"), dtype=torch_dtype, device="cuda")
    x_cuda, blocks_cuda = x.cuda(), blocks.cuda()
    for compiled in (lead, kernel):
        runner.prepare(compiled)  # no compile between the two launches
    torch.cuda.synchronize()  # the weights in place before either launch reads them
    # both launches queued behind a device-side sleep: launched from here one by one, the
    # checked one would reach the device only as the lead ends (the host's ~20 us a launch)
    torch.cuda._sleep(SLEEP_CYCLES)
    hidden.fill_(float("nan"))  # the kernel just ahead of the lead launch
    runner.linear(lead, x_cuda, lead_blocks, None, size, lead_k, out=hidden)
    runner.linear(kernel, hidden, blocks_cuda, None, size, size, out=out)
    hidden, out = hidden.cpu(), out.cpu()
    where = f"{kernel.entry} after {lead.entry} M={m} seed={rng.initial_seed()}"
    assert bool(torch.isfinite(hidden).all()), f"{where}: the lead launch left non-finite outputs"
    assert bool(torch.isfinite(out).all()), (
        f"{where}: non-finite outputs (x read before the lead wrote it?)"
    )
    error = relative_error(out, hidden.double() @ weights.T)
    assert error <= error_bound(kind, dtype), f"{where}: relative error {error:.3g}"
