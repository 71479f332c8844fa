"""The kernel emitter: one source per (backend, format, kind, dtype), launch rules that cover
every output, strict templates, and errors that name what was asked for."""

from __future__ import annotations

import itertools
import math
import re

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen.kernels import (
    BACKENDS,
    DTYPES,
    FORMAT_NAMES,
    KINDS,
    LINEAR_KINDS,
    LaunchRule,
    TensorMapRule,
    all_kernels,
    emit,
    emit_header,
    geometries,
    pick_geometry,
)
from codegen.kernels.emitter import (
    DEFAULT_GEOMETRY,
    DTYPE_TAGS,
    H100_SHARED_MEMORY_PER_BLOCK,
    MATMUL_GEOMETRY_TILES,
    MATMUL_GROUP_STEPS,
    MATMUL_MAX_STAGES,
    MATMUL_MIN_STAGES,
    MATMUL_SEGMENT_SCAN_ROWS,
    MATVEC_BOUNDED_GEOMETRIES,
    MATVEC_CHUNK_WEIGHTS,
    MATVEC_GROUP_GEOMETRIES,
    MATVEC_GROUP_MIN_CHUNKS,
    MATVEC_INTEGER_X_FORMATS,
    MATVEC_LANE_WORD_FORMATS,
    MATVEC_LANE_WORD_GEOMETRIES,
    MATVEC_MMA_FORMATS,
    MATVEC_MMA_FORMS,
    MATVEC_MMA_FOUR_WARPS_MAX_K,
    MATVEC_MMA_MAX_M,
    MATVEC_MMA_ONE_ROW_ONLY_FORMS,
    MATVEC_MMA_X_THROUGH_L1,
    MATVEC_NARROW_MAX_WEIGHTS,
    MATVEC_ONE_ROW_MMA,
    MATVEC_ONE_ROW_MMA_AHEAD,
    MATVEC_ONE_ROW_MMA_BULK_ROWS,
    MATVEC_ONE_ROW_MMA_FORMATS,
    MATVEC_ONE_ROW_MMA_GROUP_STEPS,
    MATVEC_ONE_ROW_MMA_MAX_WAVES,
    MATVEC_PAIRED_MIN_K,
    MATVEC_QUAD_STREAM_GROUP_CHOICES,
    MATVEC_QUAD_STREAM_GROUPS,
    MATVEC_ROWS_PER_WARP,
    MATVEC_SPLIT_K_FORMATS,
    MATVEC_SPLIT_K_MIN_K,
    MATVEC_SPLIT_K_UNBOUNDED,
    MATVEC_SPLIT_K_WARPS,
    MATVEC_STREAM_GROUPS,
    MATVEC_STREAM_MAX_K,
    MATVEC_STREAM_MIN_N,
    MATVEC_WAVE_BLOCKS_PER_SM,
    MATVEC_WAVE_SMS,
    PORTABLE_SHARED_MEMORY_PER_BLOCK,
    SHARED_MEMORY_RESERVED_PER_BLOCK,
    SPLIT_K_BATCHED_DTYPES,
    SPLIT_K_BATCHED_FORMATS,
    SPLIT_K_BATCHED_SPLITS,
    SPLIT_K_BATCHED_TILE_M,
    SPLIT_K_MAX_BLOCKS,
    SPLIT_K_MIN_STEPS,
    THREADS,
    WARPS,
    blocks_held,
    cuda_matmul_layout,
    cuda_matvec_streamed,
    mapped_group_stride,
    matmul_geometry_of,
    matmul_geometry_segments,
    matmul_group_bytes,
    matmul_group_stride,
    matmul_shared_bytes,
    matvec_group_choices,
    matvec_group_warps,
    matvec_mma_staged_layout,
    mma_form_wave,
    one_row_mma_geometry,
    quad_stream_geometries,
    quad_stream_geometry,
    render_template,
    shared_bytes_for_at_most,
    split_k_blocks_per_sm,
    split_k_geometry_of,
    split_k_splits,
    takes_integer_x,
    takes_lane_words,
    takes_quad_stream,
    weight_map_element_bytes,
)
from codegen.kernels.launch import PART_WEIGHTS
from compiler.errors import UnsupportedError
from compiler.formats import get_format

ALL_CELLS = list(itertools.product(BACKENDS, FORMAT_NAMES, KINDS, DTYPES))
# every cell in every geometry it has
ALL_KERNELS = [(*cell, geometry) for cell in ALL_CELLS for geometry in geometries(*cell)]


def test_every_cell_has_its_own_source_and_entry():
    kernels = [emit(*cell) for cell in ALL_CELLS]
    assert len({k.entry for k in kernels}) == len(ALL_CELLS) // len(BACKENDS)
    assert len({(k.backend, k.source) for k in kernels}) == len(ALL_CELLS)
    for kernel in kernels:
        assert kernel.entry in kernel.source
        assert kernel.header == emit_header(kernel.backend, kernel.format)


def test_emission_is_deterministic():
    cell = ("cuda", "Q6_K", "matmul", "bfloat16")
    first = emit(*cell)
    emit.cache_clear()
    assert emit(*cell) == first


@pytest.mark.parametrize(
    "cell, bad",
    [
        (("rocm", "Q4_0", "matvec", "float16"), "rocm"),
        (("cuda", "Q3_K", "matvec", "float16"), "Q3_K"),
        (("cuda", "Q4_0", "gemv", "float16"), "gemv"),
        (("metal", "Q4_0", "matvec", "float64"), "float64"),
    ],
)
def test_unsupported_cells_raise_naming_the_value(cell, bad):
    with pytest.raises(UnsupportedError, match=bad):
        emit(*cell)


def test_templates_reject_missing_values():
    with pytest.raises(jinja2.UndefinedError):
        render_template("cuda/matvec.cu", entry="ggufc_x", format="Q4_0")


@pytest.mark.parametrize("backend, kind", list(itertools.product(BACKENDS, LINEAR_KINDS)))
def test_linear_kernels_take_sizes_as_arguments(backend, kind):
    source = emit(backend, "Q4_K", kind, "float16").source
    for size in ("M", "N", "K", "has_bias"):
        assert f" {size}" in source
    assert "4096" not in source and "14336" not in source  # no shape baked in


@given(
    cell=st.sampled_from(ALL_KERNELS),
    m=st.integers(1, 5000),
    n=st.integers(1, 300_000),
    blocks=st.integers(1, 84),
)
def test_launch_rule_covers_every_output_with_no_spare_block(cell, m, n, blocks):
    _, fmt, kind, _, _ = cell
    k = blocks * get_format(fmt).block_weights
    rule: LaunchRule = emit(*cell).launch
    grid = rule.grid_size(m, n, k)
    assert rule.block_size() == (rule.threads, 1, 1) and grid[2] == 1
    for extent, size in zip(rule.grid[:2], grid[:2]):
        values = {"M": m, "N": n, "K_PARTS": k // PART_WEIGHTS}
        product = 1
        for name in extent.sizes:
            product *= values[name]
        # each unit of ``per_block`` outputs has ``times`` blocks (a cluster splitting K)
        assert size % extent.times == 0
        units = size // extent.times
        assert units * extent.per_block >= product  # every output has a block
        assert (units - 1) * extent.per_block < max(product, 1)  # and no block is idle
    if kind == "dequantize":  # every row of the weight, whatever M
        assert [e.sizes for e in rule.grid[:2]] == [("N", "K_PARTS"), ()]
    elif kind != "embedding":
        assert {e.sizes for e in rule.grid[:2]} == {("N",), ("M",)}


def test_launch_rule_describes_itself():
    assert emit("cuda", "Q4_0", "matmul", "float16").launch.describe() == (
        "grid=(ceil(N/128), ceil(M/128), 1) block=(384, 1, 1)"
    )
    assert emit("cuda", "Q4_K", "matvec_batched", "float16", "split_k8").launch.describe() == (
        "grid=(ceil(N/128)*8, ceil(M/16), 1) block=(384, 1, 1)"
    )
    assert emit("cuda", "Q8_0", "embedding", "float32").launch.describe() == (
        "grid=(ceil(M*K_PARTS/128), 1, 1) block=(128, 1, 1)"
    )


def test_geometries_are_distinct_kernels():
    kernels = [emit(*cell) for cell in ALL_KERNELS]
    assert len({(k.backend, k.entry) for k in kernels}) == len(ALL_KERNELS)
    assert len({(k.backend, k.source) for k in kernels}) == len(ALL_KERNELS)
    assert len({(k.backend, k.launch) for k in kernels if k.kind == "matvec"}) > len(BACKENDS)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pick_geometry_follows_the_documented_rule(fmt, dtype):
    narrow_bound = MATVEC_NARROW_MAX_WEIGHTS[dtype]
    special = {f: ("split-K", MATVEC_SPLIT_K_MIN_K) for f in MATVEC_SPLIT_K_FORMATS}
    if max(matvec_group_choices(fmt, dtype)) > 1:
        # at the smallest K that allows pairs and a grid of well under a wave
        special[fmt] = ("paired", MATVEC_PAIRED_MIN_K)
    geometry, threshold = special.get(fmt, ("default", MATVEC_SPLIT_K_MIN_K))
    large_k = threshold * 2
    # small weights: narrow, whatever K
    assert pick_geometry("cuda", fmt, "matvec", dtype, 64, large_k) == "narrow"
    # large weights: split-K or shared row groups from the format's bound on K where it has one
    n = narrow_bound // threshold + 1
    picked = pick_geometry("cuda", fmt, "matvec", dtype, n, threshold)
    one_row = one_row_mma_geometry(fmt, dtype, n, threshold, H100_SHARED_MEMORY_PER_BLOCK)
    if one_row is not None:
        # the one-row staged form where the format's rule takes the grid
        # (test_one_row_mma_matvec_rule)
        geometry = one_row
    if geometry == "split-K":
        assert picked == split_k_geometry_of(fmt, dtype, n, threshold)
        assert picked in MATVEC_SPLIT_K_WARPS
    else:
        assert picked == geometry
    below = threshold - get_format(fmt).block_weights
    # (below it; rows of 4 chunks on a grid that fills a wave stream their row groups)
    expected = "quad_stream" if takes_quad_stream(fmt, dtype, 4 * n, below) else "default"
    assert pick_geometry("cuda", fmt, "matvec", dtype, 4 * n, below) == expected
    # many short rows: streamed up to the bound on K, from the bound on N
    short_k = MATVEC_STREAM_MAX_K // get_format(fmt).block_weights * get_format(fmt).block_weights
    assert pick_geometry("cuda", fmt, "matvec", dtype, MATVEC_STREAM_MIN_N, short_k) == "stream"
    longer_k = short_k + get_format(fmt).block_weights
    assert pick_geometry("cuda", fmt, "matvec", dtype, MATVEC_STREAM_MIN_N, longer_k) == "default"
    fewer = MATVEC_STREAM_MIN_N - 1
    assert pick_geometry("cuda", fmt, "matvec", dtype, fewer, short_k) == "default"
    # other kinds and Metal have one geometry
    assert pick_geometry("cuda", fmt, "matmul", dtype, n, large_k) == "default"
    assert pick_geometry("metal", fmt, "matvec", dtype, n, large_k) == "default"


# (format, dtype, N, K) -> geometry: the cases the comment of MATVEC_GROUP_WARPS names
GROUP_WARPS_CASES = {
    ("Q4_K", "float16", 4096, 14336): "paired",  # 256 blocks unshared: half a wave
    # Q4_K's 16-bit rows of K >= 8192 whose grids fill the one-row staged forms' waves take
    # those (test_one_row_mma_matvec_rule): 5376x21504 and 8192x8192 here are Q5_K's
    ("Q5_K", "float16", 5376, 21504): "quad",  # 2.55 waves beat 1.27 and 0.64
    ("Q5_K", "bfloat16", 5376, 21504): "quad",
    ("Q5_K", "float16", 8192, 8192): "paired",  # one wave unshared, two paired: a tie
    ("Q4_K", "float32", 8192, 8192): "paired",
    ("Q4_K", "float16", 14336, 4096): "quad_stream_g7",  # four chunks a row, int16 x: streamed
    ("Q5_K", "float16", 4096, 4096): "paired",
    ("Q4_K", "float16", 2048, 4096): "narrow",
    # Q6_K is never unshared; its 16-bit rows that fill the one-row staged form's waves take
    # that (test_one_row_mma_matvec_rule), not these
    ("Q6_K", "float16", 2048, 14336): "quad",
    ("Q6_K", "float16", 28672, 4096): "quad_stream_g5",
    # Q8_0's 16-bit rows that fill the one-row staged forms' waves take those
    # (test_one_row_mma_matvec_rule): these are float32's, the same rule
    ("Q8_0", "float32", 5376, 21504): "default",  # Q8_0 stops at pairs
    ("Q8_0", "float32", 8192, 8192): "default",  # its ties go to one warp
    ("Q8_0", "float32", 2048, 16384): "paired",
    ("Q8_0", "float16", 1536, 16384): "paired",  # under the one-row rule's fill
    ("Q4_K", "float32", 14336, 4096): "paired",  # float32: the same rule for Q4_K / Q5_K
    ("Q5_K", "float32", 5376, 21504): "quad",
    ("Q6_K", "float32", 8192, 8192): "default",
}


@pytest.mark.parametrize(("fmt", "dtype", "n", "k"), list(GROUP_WARPS_CASES))
def test_large_matvecs_share_row_groups_as_documented(fmt, dtype, n, k):
    assert pick_geometry("cuda", fmt, "matvec", dtype, n, k) == GROUP_WARPS_CASES[fmt, dtype, n, k]


def _last_wave_fill(n: int, group_warps: int) -> float:
    row_groups = math.ceil(n / MATVEC_ROWS_PER_WARP)
    blocks = math.ceil(row_groups * group_warps / WARPS)
    slots = MATVEC_WAVE_SMS * MATVEC_WAVE_BLOCKS_PER_SM
    return blocks / (math.ceil(blocks / slots) * slots)


@given(
    fmt=st.sampled_from(sorted({"Q4_K", "Q5_K", "Q6_K", "Q8_0"})),
    n=st.integers(1024, 65535),
    k_chunks=st.integers(1, 40),
)
def test_matvec_group_warps_fill_the_last_wave_best(fmt, n, k_chunks):
    """16-bit activations: no allowed G fills the last wave of blocks better than the picked
    one, none before it in the format's order as well, and every warp keeps its minimum
    chunks."""
    k = k_chunks * MATVEC_CHUNK_WEIGHTS
    picked = matvec_group_warps(fmt, "float16", n, k)
    allowed = [
        g for g in matvec_group_choices(fmt, "float16") if g * MATVEC_GROUP_MIN_CHUNKS <= k_chunks
    ]
    assert picked in (allowed or [1])
    for g in allowed:
        assert _last_wave_fill(n, g) <= _last_wave_fill(n, picked)
        if allowed.index(g) < allowed.index(picked):
            assert _last_wave_fill(n, g) < _last_wave_fill(n, picked)
    geometry = MATVEC_GROUP_GEOMETRIES.get(picked, "default")
    assert geometry in geometries("cuda", fmt, "matvec", "float16")


def test_bounded_matvecs_ask_for_the_blocks_the_rule_counts():
    for fmt, dtype in itertools.product(FORMAT_NAMES, DTYPES):
        activations = "float32" if dtype == "float32" else "16-bit"
        for geometry in geometries("cuda", fmt, "matvec", dtype):
            if geometry in MATVEC_SPLIT_K_WARPS or geometry in MATVEC_MMA_FORMS:
                continue  # their own tables: the split-K and staged mma kernels' tests
            source = emit("cuda", fmt, "matvec", dtype, geometry).source
            bounded = f"__launch_bounds__({WARPS * 32}, {MATVEC_WAVE_BLOCKS_PER_SM})"
            expected = geometry in MATVEC_BOUNDED_GEOMETRIES.get((activations, fmt), ())
            assert (bounded in source) == expected, (fmt, dtype, geometry)


def test_streamed_matvec_blocks_cover_their_warps_row_groups():
    kernel = emit("cuda", "Q8_0", "matvec", "float32", "stream")
    rows = WARPS * MATVEC_ROWS_PER_WARP * MATVEC_STREAM_GROUPS
    assert kernel.launch.grid[0].per_block == rows
    assert f"constexpr int STREAM_GROUPS = {MATVEC_STREAM_GROUPS};" in kernel.source
    default = emit("cuda", "Q8_0", "matvec", "float32")
    assert default.launch.grid[0].per_block == WARPS * MATVEC_ROWS_PER_WARP
    assert "constexpr int STREAM_GROUPS = 1;" in default.source


def test_emit_rejects_a_geometry_the_kernel_lacks_naming_the_choices():
    with pytest.raises(UnsupportedError, match=r"Q4_K with float16 .* no 'split_k' .*'narrow'"):
        emit("cuda", "Q4_K", "matvec", "float16", "split_k")
    with pytest.raises(UnsupportedError, match="'narrow'"):
        emit("metal", "Q4_0", "matvec", "float16", "narrow")
    # the split-K matmuls are 16-bit only
    with pytest.raises(UnsupportedError, match=r"float32 activations has no 'split_k8'"):
        emit("cuda", "Q4_K", "matvec_batched", "float32", "split_k8")


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_matvec_picks_its_split_by_the_documented_rule(fmt, dtype):
    def pick(n, k):
        return pick_geometry("cuda", fmt, "matvec_batched", dtype, n, k)

    if fmt not in SPLIT_K_BATCHED_FORMATS or dtype not in SPLIT_K_BATCHED_DTYPES:
        assert pick(4096, 14336) == "default"
        return
    # 32 tiles of 128 rows: 7 blocks each fit SPLIT_K_MAX_BLOCKS, 42 tiles: 5, 112 tiles: 2
    assert pick(4096, 14336) == "split_k7"
    assert pick(5376, 21504) == "split_k5"
    assert pick(14336, 4096) == "split_k2"
    # every block at least SPLIT_K_MIN_STEPS steps of 64 weights, else the smallest split
    assert pick(256, 4 * 64 * SPLIT_K_MIN_STEPS) == "split_k4"
    assert pick(256, 3 * 64 * SPLIT_K_MIN_STEPS) == "split_k3"
    assert pick(256, 256) == "split_k2"
    for n, k in ((131, 768), (640, 2048), (5376, 21504), (262144, 768)):
        splits = split_k_splits(n, k)
        tiles, steps = -(-n // 128), -(-k // 64)
        fits = tiles * splits <= SPLIT_K_MAX_BLOCKS and steps >= splits * SPLIT_K_MIN_STEPS
        assert fits or splits == SPLIT_K_BATCHED_SPLITS[0]
        assert pick(n, k) == f"split_k{splits}"


@given(
    backend=st.sampled_from(BACKENDS),
    fmt=st.sampled_from(FORMAT_NAMES),
    kind=st.sampled_from(KINDS),
    dtype=st.sampled_from(DTYPES),
    n=st.integers(1, 300_000),
    blocks=st.integers(1, 84),
)
def test_pick_geometry_picks_one_the_kernel_has(backend, fmt, kind, dtype, n, blocks):
    k = blocks * get_format(fmt).block_weights
    geometry = pick_geometry(backend, fmt, kind, dtype, n, k)
    assert geometry in geometries(backend, fmt, kind, dtype)
    emit(backend, fmt, kind, dtype, geometry)


# what an sm_80 block may have (163 KB) less the matmul's static shared memory (its stage
# barriers: 2 x 8 bytes a stage, at most 6 stages), so one program launches on an A100 too
SM80_BLOCK_SHARED_BYTES = 163 * 1024 - 2 * 8 * MATMUL_MAX_STAGES
H100_BLOCK_SHARED_BYTES = 227 * 1024 - 2 * 8 * MATMUL_MAX_STAGES


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_matmul_ring_fits_an_sm80_block_with_three_stages_or_more(fmt):
    for dtype in ("float16", "bfloat16"):
        layout = cuda_matmul_layout(fmt, dtype)
        assert MATMUL_MIN_STAGES <= layout["stages"] <= MATMUL_MAX_STAGES
        assert layout["shared_bytes"] <= SM80_BLOCK_SHARED_BYTES
        kernel = emit("cuda", fmt, "matmul", dtype)
        assert kernel.launch.shared_memory_bytes == layout["shared_bytes"]
        assert f"constexpr int STAGES = {layout['stages']};" in kernel.source
        if fmt in SPLIT_K_BATCHED_FORMATS:
            for splits in SPLIT_K_BATCHED_SPLITS:
                kernel = emit("cuda", fmt, "matvec_batched", dtype, f"split_k{splits}")
                layout = cuda_matmul_layout(fmt, dtype, SPLIT_K_BATCHED_TILE_M, splits)
                assert MATMUL_MIN_STAGES <= layout["stages"] <= MATMUL_MAX_STAGES
                assert kernel.launch.shared_memory_bytes == layout["shared_bytes"]
                # two blocks an SM on an H100 (227 KB a block, 228 KB an SM less 1 KB each)
                assert 2 * (layout["shared_bytes"] + 1024) <= 228 * 1024
                assert f"constexpr int SPLITS = {splits};" in kernel.source


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_every_matmul_geometry_fits_an_sm80_block_its_partial_sums_over_the_ring_if_large(fmt):
    """Every geometry's ring takes 3 stages or more within an sm_80 block but the 256-row
    tile's, which takes 4 or more within an H100's (and which the lowering does not pick for
    a card of less: `matmul_geometry_of`); a split's partial sums have their own space up to
    the 64-row tiles' 32 KB, and the 256-row tile's 128 KB reuse the ring (whose stages and
    slots then hold at least that much)."""
    for geometry, (tile_m, splits) in MATMUL_GEOMETRY_TILES.items():
        layout = cuda_matmul_layout(fmt, "float16", tile_m, splits)
        assert MATMUL_MIN_STAGES <= layout["stages"] <= MATMUL_MAX_STAGES, geometry
        assert matmul_shared_bytes(fmt, geometry) == layout["shared_bytes"]
        if tile_m == 256:
            assert layout["stages"] >= 4, geometry
            assert SM80_BLOCK_SHARED_BYTES < layout["shared_bytes"] <= H100_BLOCK_SHARED_BYTES
            for m in (256, 512, 1024):
                for shared in (PORTABLE_SHARED_MEMORY_PER_BLOCK, SM80_BLOCK_SHARED_BYTES):
                    assert matmul_geometry_of(fmt, 4096, 14336, m, shared) != geometry
            continue
        assert layout["shared_bytes"] <= SM80_BLOCK_SHARED_BYTES, geometry
        partials = tile_m // 2 * 256 * 4 if splits > 1 else 0
        assert layout["partials_over_ring"] == (partials > 32 * 1024), geometry
        kernel = emit("cuda", fmt, "matmul", "float16", geometry)
        over = "constexpr bool PARTIALS_OVER_RING = true;" in kernel.source
        assert over == layout["partials_over_ring"], geometry
        assert ("wg::claim_registers<" in kernel.source) == (tile_m == 256), geometry


def _generated_kernels(backend):
    from compile_checks import non_gguf_kernels

    return all_kernels(backend) + [k for ks in non_gguf_kernels(backend).values() for k in ks]


# (format, dtype, N, K) -> the split-K geometry the rule picks: the faster of the two in each
# of these H100 cells (session 18)
SPLIT_K_PICKS = {
    ("Q4_0", "float16", 4096, 14336): "split_k_paired",  # one wave paired; 3.5 rounds of 4 warps
    ("Q4_0", "float16", 5376, 21504): "split_k",  # 1344 paired blocks: 1.02 waves, counted 2
    ("Q4_0", "float16", 4096, 11008): "split_k",  # rounds tie beyond K = 8192
    ("Q4_0", "float16", 4096, 4096): "split_k_paired",  # rounds tie, K = 4096
    ("Q4_0", "float16", 1024, 4096): "split_k",  # one wave either way: 1 round against 2
    ("Q5_0", "float16", 14336, 4096): "split_k_paired",  # 6.8 / 3.4 waves: counted by share
    ("Q5_0", "float16", 128256, 4096): "split_k_paired",
    ("Q5_0", "float32", 14336, 4096): "split_k_paired",
    ("Q5_0", "float32", 4096, 14336): "split_k",
}


@pytest.mark.parametrize(("case", "expected"), SPLIT_K_PICKS.items())
def test_split_k_geometry_counts_rounds_of_parts(case, expected):
    fmt, dtype, n, k = case
    assert split_k_geometry_of(fmt, dtype, n, k) == expected
    if n * k > MATVEC_NARROW_MAX_WEIGHTS[dtype]:  # else the lowering takes the narrow one
        # unless the staged mma matvec takes the shape (test_one_row_mma_matvec_rule)
        one_row = one_row_mma_geometry(fmt, dtype, n, k, H100_SHARED_MEMORY_PER_BLOCK)
        assert pick_geometry("cuda", fmt, "matvec", dtype, n, k) == (one_row or expected)


# (format, N, K) -> the staged mma form a matvec (M = 1, 16-bit x) takes, None: its own
ONE_ROW_MMA_PICKS = {
    ("Q4_0", 4096, 14336): "mma",  # 16 rows of 8 warps: 256 blocks, 0.97 of a wave
    ("Q4_0", 4096, 11008): "mma",
    ("Q4_0", 3584, 18944): "mma",  # 0.85 of a wave
    ("Q4_0", 4096, 8192): "mma",
    ("Q4_0", 8192, 28672): "mma_four_warps",  # the staged pick at M = 1 too
    # three blocks an SM: the by-group four warps on rows of K >= 8192, else six warps
    ("Q4_0", 4608, 14336): "mma_four_warps_x_by_group",  # 0.73 of a wave of three blocks an SM
    ("Q4_0", 5376, 21504): "mma_four_warps_x_by_group",
    ("Q4_0", 12288, 8192): "mma_four_warps_x_by_group",  # 1.94 waves
    ("Q4_0", 6144, 4096): "mma_six_warps",  # K under the by-group four's least
    ("Q4_0", 11008, 4096): "mma_six_warps",
    ("Q4_0", 14336, 4096): "mma_two_warps",  # short rows: 0.85 of a wave of eight
    ("Q4_0", 16384, 14336): "mma_four_warps",  # two waves, the last 0.94 full
    ("Q4_0", 2048, 14336): None,  # 0.48 of a wave
    ("Q4_0", 28672, 4096): None,  # 3.4 waves of four warps
    ("Q4_0", 4096, 2048): None,  # K under its rule's min_k
    ("Q5_0", 4096, 14336): "mma",
    ("Q5_0", 3840, 16384): "mma",  # 0.91 of a wave
    ("Q5_0", 4096, 11008): "mma",
    ("Q5_0", 8192, 16384): "mma",  # two waves, the last 0.94 full
    ("Q5_0", 3584, 18944): "mma",  # 0.85: eight warps from 7/10 (W_AHEAD 2)
    ("Q5_0", 3072, 8192): "mma",  # 0.73
    ("Q5_0", 2560, 10240): None,  # 0.61
    # two warps from 7/8 of their wave, else (falling through) the staged pick without them:
    # four warps, whose second wave needs only 3/5 (its one wave the rule's 9/10)
    ("Q5_0", 16384, 4096): "mma_two_warps",  # 0.97
    ("Q5_0", 14848, 4096): "mma_two_warps",  # 0.88
    ("Q5_0", 14336, 4096): "mma_four_warps",  # two warps 0.85; four warps' second wave 0.70
    ("Q5_0", 13824, 4096): "mma_four_warps",  # 0.82; 0.64
    ("Q5_0", 13824, 6144): "mma_four_warps",  # (no two warps past K = 4096) 0.64
    ("Q5_0", 15872, 8192): "mma_four_warps",  # 0.88
    ("Q5_0", 12800, 4096): None,  # four warps' second wave 0.52 (they do not fall through)
    ("Q5_0", 7168, 4096): None,  # one wave of four warps 0.85: under 9/10
    # the by-group four warps where their last wave of three blocks an SM is 4/5 full
    ("Q5_0", 5376, 21504): "mma_four_warps_x_by_group",  # 0.85
    ("Q5_0", 5120, 13824): "mma_four_warps_x_by_group",  # 0.81
    ("Q5_0", 6144, 16384): "mma_four_warps_x_by_group",  # 0.97: before six warps
    ("Q5_0", 4608, 14336): None,  # 0.73
    ("Q5_0", 11008, 4096): None,  # its last wave 0.74 full
    ("Q6_K", 4096, 14336): "mma",
    ("Q6_K", 4096, 11008): "mma",
    ("Q6_K", 2560, 10240): "mma",  # 0.61 of a wave
    ("Q6_K", 14336, 4096): "mma_four_warps",  # no two warps at M = 1 for Q6_K: 1.70 waves
    ("Q6_K", 8192, 8192): "mma_four_warps",
    # three blocks an SM of four warps taking the activations a group at a time: 0.85 of a wave
    ("Q6_K", 5376, 21504): "mma_four_warps_x_by_group",
    ("Q6_K", 11008, 4096): "mma_four_warps_x_by_group",  # 1.74 waves of three
    ("Q6_K", 28672, 4096): None,  # four warps: 3.4 waves
    ("Q6_K", 2048, 14336): None,  # 0.48 of a wave
    # Q4_K: four warps, four or three (by group) blocks an SM, on rows of K >= 8192
    ("Q4_K", 5376, 21504): "mma_four_warps_x_by_group",  # 0.85 of a wave of three
    ("Q4_K", 4608, 14336): "mma_four_warps_x_by_group",  # 0.73
    ("Q4_K", 8192, 8192): "mma_four_warps",  # 0.97 of a wave of four
    ("Q4_K", 16384, 8192): None,  # 1.94 waves: Q4_K's rule takes one
    ("Q4_K", 11008, 14336): None,  # two waves of three
    ("Q4_K", 4096, 14336): None,  # eight warps' grid: not a form of its rule
    ("Q4_K", 3584, 18944): None,
    ("Q4_K", 11008, 4096): None,  # K under its rule's min_k
    ("Q4_K", 14336, 4096): None,
    ("Q5_K", 5376, 21504): None,  # not a format of the rule
    # Q8_0 (an H200's measurements): eight warps, or five (three blocks an SM) where their last
    # wave is fuller; a grid of any waves, one wave from 9/20 full (v66)
    ("Q8_0", 4096, 14336): "mma",  # 0.97 of a wave
    ("Q8_0", 2048, 8192): "mma",  # 0.48: at least 9/20
    ("Q8_0", 8192, 8192): "mma",  # two waves, the last 0.94 full
    ("Q8_0", 5376, 21504): "mma_five_warps",  # 0.85 of a wave of three blocks an SM
    ("Q8_0", 12288, 4096): "mma_five_warps",  # two waves, the last 0.94 full
    ("Q8_0", 4608, 14336): "mma_five_warps",  # one wave of three 0.73 full
    ("Q8_0", 11008, 4096): "mma_five_warps",  # two waves of three, the last 0.74 full
    ("Q8_0", 14336, 4096): "mma",  # four waves of eight warps (its streamed quad before v66)
    ("Q8_0", 128256, 4096): "mma",  # 31 waves
    ("Q8_0", 1536, 8192): None,  # 0.36 of a wave
    ("Q8_0", 3584, 18944): "mma",  # 0.85
    ("Q8_0", 3072, 14336): "mma",  # 0.73 (v65's long rows kept their paired kernel)
    ("Q8_0", 2048, 28672): "mma",  # 0.48
    ("Q8_0", 3072, 8192): "mma",  # 0.73 on shorter rows
    ("Q8_0", 4096, 3584): None,  # K under its rule's min_k
}


def test_staged_mma_activations_through_l1_only_where_listed():
    """A staged kernel's group activation copies go through L1 (cp.async.ca, X_THROUGH_L1)
    only for the (format, form)s of MATVEC_MMA_X_THROUGH_L1, each a form taking them a group
    at a time; every other staged kernel copies them past L1 (cp.async.cg) as before."""
    assert all(MATVEC_MMA_FORMS[form].x_by_group for _, form in MATVEC_MMA_X_THROUGH_L1)
    through = set()
    for fmt, dtype in itertools.product(FORMAT_NAMES, ("float16", "bfloat16")):
        for kind in ("matvec", "matvec_batched"):
            for geometry in geometries("cuda", fmt, kind, dtype):
                if geometry not in MATVEC_MMA_FORMS:
                    continue
                source = emit("cuda", fmt, kind, dtype, geometry).source
                listed = (fmt, geometry) in MATVEC_MMA_X_THROUGH_L1
                assert f"constexpr bool X_THROUGH_L1 = {str(listed).lower()};" in source
                if listed:
                    through.add((fmt, geometry))
    assert through == MATVEC_MMA_X_THROUGH_L1  # each listed pair is a kernel the lowering has


A100_SHARED_MEMORY_PER_SM = 163 * 1024  # a card of less shared memory than an H100's


def test_one_row_deeper_rings_only_where_listed():
    """The one-row kernels of MATVEC_ONE_ROW_MMA_AHEAD's (format, form)s run its rings ahead
    and issue their weights before a group's wait (WEIGHTS_BEFORE_WAIT); every other staged
    kernel, batched ones included, keeps its form's rings and issues them after.  The deeper
    rings keep each form's blocks an SM on an H100; where a card's shared memory does not hold
    them, the matvec keeps its own kernel."""
    listed = set()
    for fmt, dtype in itertools.product(FORMAT_NAMES, ("float16", "bfloat16")):
        for kind in ("matvec", "matvec_batched"):
            for geometry in geometries("cuda", fmt, kind, dtype):
                if geometry not in MATVEC_MMA_FORMS:
                    continue
                source = emit("cuda", fmt, kind, dtype, geometry).source
                layout = matvec_mma_staged_layout(fmt, dtype, geometry, kind)
                ahead = MATVEC_ONE_ROW_MMA_AHEAD.get((fmt, geometry)) if kind == "matvec" else None
                before = ahead is not None
                assert f"constexpr bool WEIGHTS_BEFORE_WAIT = {str(before).lower()};" in source
                expected = ahead or MATVEC_MMA_FORMS[geometry].aheads[fmt]
                assert (layout["w_ahead"], layout["x_ahead"]) == expected
                if before:
                    listed.add((fmt, geometry))
                    per_sm = H100_SHARED_MEMORY_PER_BLOCK + SHARED_MEMORY_RESERVED_PER_BLOCK
                    held = per_sm // (layout["shared_bytes"] + SHARED_MEMORY_RESERVED_PER_BLOCK)
                    assert held >= MATVEC_MMA_FORMS[geometry].blocks_per_sm, (fmt, geometry)
    assert listed == set(MATVEC_ONE_ROW_MMA_AHEAD)  # each one a one-row kernel the lowering has
    # Q6_K's eight warps at W_AHEAD 2 (104768 bytes) hold two blocks an H100 SM, one of an A100's
    assert MATVEC_ONE_ROW_MMA_AHEAD[("Q6_K", "mma")][0] == 2
    assert (
        one_row_mma_geometry("Q6_K", "float16", 4096, 14336, H100_SHARED_MEMORY_PER_BLOCK) == "mma"
    )
    assert one_row_mma_geometry("Q6_K", "float16", 4096, 14336, A100_SHARED_MEMORY_PER_SM) is None
    # Q4_0's (80192 bytes) two of either
    assert one_row_mma_geometry("Q4_0", "float16", 4096, 14336, A100_SHARED_MEMORY_PER_SM) == "mma"


def test_one_row_kernels_with_their_own_weight_groups():
    """The one-row kernels of MATVEC_ONE_ROW_MMA_GROUP_STEPS copy weight groups of those K
    steps (their batched twins MATMUL_GROUP_STEPS'), each group one box of the weight map, as
    2-byte elements where a box of single bytes would pass 256, with their rings of
    MATVEC_ONE_ROW_MMA_AHEAD (the weights asked for before the wait), at their form's blocks an
    SM."""
    for (fmt, geometry), steps in MATVEC_ONE_ROW_MMA_GROUP_STEPS.items():
        assert geometry in MATVEC_ONE_ROW_MMA[fmt].forms, (fmt, geometry)
        assert (fmt, geometry) in MATVEC_ONE_ROW_MMA_AHEAD
        assert steps > MATMUL_GROUP_STEPS[fmt]
        # a batched twin where the format has the form beyond its one-row rule
        has_twin = geometry not in MATVEC_MMA_ONE_ROW_ONLY_FORMS.get(fmt, ())
        for dtype in ("float16", "bfloat16"):
            kernel = emit("cuda", fmt, "matvec", dtype, geometry)
            assert f"constexpr int GROUP_STEPS = {steps};" in kernel.source
            assert "constexpr bool WEIGHTS_BEFORE_WAIT = true;" in kernel.source
            (box,) = kernel.launch.tensor_maps
            stride = mapped_group_stride(fmt, steps)
            assert stride > 256 and box.element_bytes == 2 and box.box_inner * 2 == stride
            assert f"constexpr int MAPPED_GROUP_STRIDE = {stride};" in kernel.source
            if has_twin:
                batched = emit("cuda", fmt, "matvec_batched", dtype, geometry)
                twin = MATMUL_GROUP_STEPS[fmt]
                assert f"constexpr int GROUP_STEPS = {twin};" in batched.source
                assert batched.launch.tensor_maps[0].element_bytes == 1
            # its shared memory holds its form's blocks an SM (its registers may hold no more)
            blocks = blocks_held(kernel.launch.shared_memory_bytes, H100_SHARED_MEMORY_PER_BLOCK)
            assert blocks >= MATVEC_MMA_FORMS[geometry].blocks_per_sm, (fmt, geometry)
    assert weight_map_element_bytes(256) == 1
    assert weight_map_element_bytes(272) == 2
    assert weight_map_element_bytes(528) == 4
    with pytest.raises(UnsupportedError, match="no element width"):
        weight_map_element_bytes(1040)


def test_bulk_rows_only_where_listed():
    """A bulk copy a row (BULK_ROWS) is the one-row kernels' of MATVEC_ONE_ROW_MMA_BULK_ROWS,
    forms of their format's one-row rule; their batched twins and every other staged kernel
    copy rows without a map by chunks."""
    for fmt, geometry in MATVEC_ONE_ROW_MMA_BULK_ROWS:
        assert geometry in MATVEC_ONE_ROW_MMA[fmt].forms, (fmt, geometry)
    for fmt in MATVEC_MMA_FORMATS:
        for geometry in MATVEC_MMA_FORMS:
            for kind in ("matvec", "matvec_batched"):
                if geometry not in geometries("cuda", fmt, kind, "float16"):
                    continue
                source = emit("cuda", fmt, kind, "float16", geometry).source
                bulk = kind == "matvec" and (fmt, geometry) in MATVEC_ONE_ROW_MMA_BULK_ROWS
                assert f"constexpr bool BULK_ROWS = {str(bulk).lower()};" in source


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_row_mma_matvec_rule(dtype):
    """The CUDA matvec of MATVEC_ONE_ROW_MMA_FORMATS with 16-bit x takes the staged mma
    matvec's pick at M = 1 among its rule's forms where K is at least the rule's min_k and the
    grid runs at most the rule's max_waves waves, the last min_fill full; the kernel is
    the staged template's one-row form under the matvec's name: launched as the matvec_batched
    of that form but a block an activation row, its activation slots a weight group's steps of
    that row where the batched kernel's hold a step's eight rows (a by-group form's: the
    group's steps of them), a by-group form's shared memory enough that no more than its form's
    blocks an SM fit an H100."""
    sixteen_bit = dtype in ("float16", "bfloat16")
    for (fmt, n, k), expected in ONE_ROW_MMA_PICKS.items():
        ours = expected if sixteen_bit else None
        one_row = one_row_mma_geometry(fmt, dtype, n, k, H100_SHARED_MEMORY_PER_BLOCK)
        assert one_row == ours, (fmt, n, k)
        picked = pick_geometry("cuda", fmt, "matvec", dtype, n, k)
        assert (picked == ours) if ours else picked not in MATVEC_MMA_FORMS, (fmt, n, k)
        # a static M = 1 takes the same (the matvec's pick does not depend on M)
        assert pick_geometry("cuda", fmt, "matvec", dtype, n, k, 1) == picked
        if ours:
            rule = MATVEC_ONE_ROW_MMA[fmt]
            assert ours in rule.forms_for(k) and k >= rule.form_min_k.get(ours, rule.min_k)
            blocks = -(-n // 16)
            wave = mma_form_wave(ours)
            waves = -(-blocks // wave)
            last_wave = blocks - (waves - 1) * wave
            if rule.max_waves is not None:
                assert waves <= rule.max_waves <= MATVEC_ONE_ROW_MMA_MAX_WAVES
                assert last_wave >= rule.min_fill_of(ours, waves) * wave
            elif waves == 1:  # a rule of any waves asks its fill of a grid of one wave only
                assert last_wave >= rule.min_fill_of(ours) * wave
            # the batched kernel's pick at M = 1 unless that is a form the rule leaves out, or
            # one it fell through from
            batched = pick_geometry("cuda", fmt, "matvec_batched", dtype, n, k, 1)
            left_out = batched not in rule.forms_for(k) or batched in rule.fall_through
            assert batched == ours or left_out, (fmt, n, k)
    for fmt in MATVEC_ONE_ROW_MMA_FORMATS:
        forms = MATVEC_ONE_ROW_MMA[fmt].forms
        # each a form of the format's batched kernel, or one it has for this rule only
        one_row_only = set(MATVEC_MMA_ONE_ROW_ONLY_FORMS.get(fmt, ()))
        batched_forms = set(geometries("cuda", fmt, "matvec_batched", "float16"))
        assert set(forms) <= batched_forms | one_row_only
        assert not one_row_only & batched_forms
        for geometry in MATVEC_MMA_FORMS:
            if not sixteen_bit or geometry not in forms:
                assert geometry not in geometries("cuda", fmt, "matvec", dtype)
                continue
            kernel = emit("cuda", fmt, "matvec", dtype, geometry)
            layout = matvec_mma_staged_layout(fmt, dtype, geometry)
            one_row = matvec_mma_staged_layout(fmt, dtype, geometry, "matvec")
            assert kernel.entry == f"ggufc_matvec_{geometry}_{fmt.lower()}_{DTYPE_TAGS[dtype]}"
            assert "constexpr bool ONE_ROW = true;" in kernel.source
            assert "constexpr bool X_BY_GROUP = true;" in kernel.source
            rows, activation_rows, _ = kernel.launch.grid
            assert rows.per_block == layout["tile_n"] and activation_rows.per_block == 1
            assert kernel.launch.threads == layout["threads"]
            by_group = MATVEC_MMA_FORMS[geometry].x_by_group
            if geometry not in one_row_only:
                batched = emit("cuda", fmt, "matvec_batched", dtype, geometry)
                assert "constexpr bool ONE_ROW = false;" in batched.source
                assert f"constexpr bool X_BY_GROUP = {str(by_group).lower()};" in batched.source
                assert rows == batched.launch.grid[0]
                assert batched.launch.grid[1].per_block == MATVEC_MMA_MAX_M
                assert kernel.launch.threads == batched.launch.threads
                if (fmt, geometry) not in MATVEC_ONE_ROW_MMA_GROUP_STEPS:  # else a wider box
                    assert kernel.launch.tensor_maps == batched.launch.tensor_maps
                assert batched.launch.shared_memory_bytes == layout["shared_bytes"]
            # every warp's activation ring: a weight group's steps of one row a weight slot,
            # instead of MAX_M rows a step slot (128 bytes a step of a row); where the one-row
            # kernel's rings are deeper, each weight slot more
            if (fmt, geometry) in MATVEC_ONE_ROW_MMA_GROUP_STEPS:
                # groups of its own: every warp's weight slots (and barriers) and a group's steps
                # of the row a slot, from a 128-byte boundary
                weight_slot = one_row["tile_n"] * one_row["group_stride"] + 8
                activation_slot = one_row["group_steps"] * 128
                warp_bytes = one_row["w_slots"] * (weight_slot + activation_slot)
                assert one_row["shared_bytes"] == one_row["warps"] * warp_bytes + 128
            else:
                slots = layout["w_slots"] if by_group else layout["x_slots"]
                steps = layout["group_steps"]
                batched_rows = slots * (steps if by_group else 1) * MATVEC_MMA_MAX_M
                one_rows = one_row["w_slots"] * steps
                saved = layout["warps"] * (batched_rows - one_rows) * 128
                more_slots = one_row["w_slots"] - layout["w_slots"]
                weight_slot = layout["tile_n"] * layout["group_stride"] + 8  # and its barrier
                added = layout["warps"] * more_slots * weight_slot
                assert layout["shared_bytes"] - one_row["shared_bytes"] == saved - added
            # the launch: the one-row layout's bytes, but a by-group form's reserves enough
            # that no more than its form's blocks an SM fit an H100
            reserved = one_row["shared_bytes"]
            if by_group:
                most = MATVEC_MMA_FORMS[geometry].blocks_per_sm
                reserved = max(reserved, shared_bytes_for_at_most(most))
                per_sm = H100_SHARED_MEMORY_PER_BLOCK + SHARED_MEMORY_RESERVED_PER_BLOCK
                assert per_sm // (reserved + SHARED_MEMORY_RESERVED_PER_BLOCK) == most
            assert kernel.launch.shared_memory_bytes == reserved
        assert "mma" not in geometries("metal", fmt, "matvec", dtype)


# (N, K) -> whether the lowering gives a Q8_0 matvec the streamed quad (float32; 16-bit x takes
# its one-row staged form there since v66): where rows are 4 chunks and the grid fills 7/10 of a
# wave (H100, session 18)
QUAD_STREAM_PICKS = {
    (14336, 4096): True,
    (11008, 4096): True,
    (128256, 4096): True,
    (10333, 4096): True,  # 370 blocks: the first grid at 7/10 of 528 slots
    (10332, 4096): False,  # 369 blocks
    (8192, 4096): False,  # 293 blocks
    (14336, 3072): False,  # 3 chunks a row: a warp of four idle
    (14336, 8192): False,  # 8 chunks a row: x not kept
}


@pytest.mark.parametrize(("shape", "expected"), QUAD_STREAM_PICKS.items())
def test_q8_0_matvec_takes_the_streamed_quad_by_chunks_and_wave(shape, expected):
    n, k = shape
    picked = pick_geometry("cuda", "Q8_0", "matvec", "float32", n, k)
    assert (picked == "quad_stream") == expected, picked
    assert takes_quad_stream("Q8_0", "float16", n, k) == expected
    # 16-bit activations: the one-row staged form wherever its rule takes the grid
    one_row = one_row_mma_geometry("Q8_0", "float16", n, k, H100_SHARED_MEMORY_PER_BLOCK)
    if one_row is not None:
        assert pick_geometry("cuda", "Q8_0", "matvec", "float16", n, k) == one_row


@pytest.mark.parametrize("fmt", ["Q4_K", "Q5_K", "Q6_K"])
def test_kquant_matvec_takes_the_streamed_quad_with_int16_activations_only(fmt):
    # Q6_K's 16-bit 14336x4096 takes the one-row staged form ahead of it
    n = 28672 if fmt in MATVEC_ONE_ROW_MMA else 14336
    streamed = set(quad_stream_geometries(fmt))
    for dtype in ("float16", "bfloat16"):
        assert pick_geometry("cuda", fmt, "matvec", dtype, n, 4096) in streamed, dtype
        assert pick_geometry("cuda", fmt, "matvec", dtype, 4096, 14336) not in streamed, dtype
        assert pick_geometry("cuda", fmt, "matvec", dtype, 2048, 4096) not in streamed, dtype
    assert takes_quad_stream(fmt, "float16", 14336, 4096)
    # with the float decode the streamed quad lost
    assert pick_geometry("cuda", fmt, "matvec", "float32", n, 4096) not in streamed
    assert not takes_quad_stream(fmt, "float32", 14336, 4096)
    assert quad_stream_geometry(fmt, "float32", n, 4096) is None


# N (K = 4096) -> the streamed quad of each format (None: another geometry), as the comment of
# MATVEC_QUAD_STREAM_GROUP_CHOICES measured on an H200: the busiest SM's rows decide
QUAD_STREAM_GROUP_PICKS = {
    5120: {"Q4_K": "quad_stream", "Q5_K": None},  # lane words from half a wave; 4 groups 0.61
    8192: {"Q4_K": "quad_stream", "Q5_K": "quad_stream"},  # 4 a SM x 16 rows against 5 x 20
    9216: {"Q4_K": "quad_stream_g6", "Q5_K": "quad_stream_g6"},  # 3 x 24 rows, one round
    11008: {"Q4_K": "quad_stream_g7", "Q5_K": "quad_stream_g7"},  # 3 x 28 against 4 x 24
    14336: {"Q4_K": "quad_stream_g7", "Q5_K": "quad_stream_g7"},  # 4 x 28 in one round of 4
    16384: {"Q4_K": "quad_stream_g8", "Q5_K": "quad_stream_g8"},  # 4 x 32: one round, not 8 x 16
    18944: {"Q4_K": "quad_stream", "Q5_K": "quad_stream_g6"},  # Q4_K: lane words past a round
    20480: {"Q4_K": "quad_stream", "Q5_K": "quad_stream_g5"},  # 8 x 20 in 2 rounds, not 10 x 16
    128256: {"Q4_K": "quad_stream", "Q5_K": "quad_stream"},  # 61 x 16 rows, the fewest
}


@pytest.mark.parametrize(("n", "picks"), QUAD_STREAM_GROUP_PICKS.items())
def test_streamed_quads_take_the_group_count_of_the_least_busy_sm(n, picks):
    for fmt, expected in picks.items():
        for dtype in ("float16", "bfloat16"):
            assert quad_stream_geometry(fmt, dtype, n, 4096) == expected, (fmt, dtype)
            if expected is not None:
                assert pick_geometry("cuda", fmt, "matvec", dtype, n, 4096) == expected
    # the streamed quads of other counts are the same kernel with other STREAM_GROUPS
    for groups in MATVEC_QUAD_STREAM_GROUP_CHOICES["Q5_K"]:
        geometry = "quad_stream" if groups == 4 else f"quad_stream_g{groups}"
        kernel = emit("cuda", "Q5_K", "matvec", "float16", geometry)
        assert f"constexpr int STREAM_GROUPS = {groups};" in kernel.source
        assert kernel.launch.grid[0].per_block == MATVEC_ROWS_PER_WARP * groups
    assert quad_stream_geometries("Q8_0") == ("quad_stream",)


@pytest.mark.parametrize(
    ("shape", "lane_words", "staged"),
    [
        ((4096, 4096), False, False),  # half a wave: paired
        ((5120, 4096), True, False),  # 0.61 of a wave
        ((11008, 4096), False, False),  # 0.65 of two: 7 staged groups in one round instead
        ((4608, 3584), True, False),  # 0.55
        ((18944, 4096), True, False),  # 0.75 of three waves (Q5_K: 6 groups)
    ],
)
def test_lane_word_streamed_quad_takes_grids_from_half_a_wave(shape, lane_words, staged):
    """Q4_K's lane-word kernel takes the streamed quad from MATVEC_LANE_WORD_MIN_FILL of the
    whole waves; the staged K-quants (Q5_K) keep MATVEC_QUAD_STREAM_MIN_FILL (and both may take
    other counts of row groups: test_streamed_quads_take_the_group_count_of_the_least_busy_sm)."""
    n, k = shape
    for dtype in ("float16", "bfloat16"):
        assert (pick_geometry("cuda", "Q4_K", "matvec", dtype, n, k) == "quad_stream") == lane_words
        assert (pick_geometry("cuda", "Q5_K", "matvec", dtype, n, k) == "quad_stream") == staged


@pytest.mark.parametrize("fmt", sorted(MATVEC_QUAD_STREAM_GROUPS))
def test_streamed_quad_shares_row_groups_and_streams_them(fmt):
    groups = MATVEC_QUAD_STREAM_GROUPS[fmt]
    kernel = emit("cuda", fmt, "matvec", "float16", "quad_stream")
    assert "constexpr int GROUP_WARPS = 4;" in kernel.source
    assert f"constexpr int STREAM_GROUPS = {groups};" in kernel.source
    assert kernel.launch.grid[0].per_block == MATVEC_ROWS_PER_WARP * groups
    assert "quad_stream" not in geometries("cuda", "Q4_0", "matvec", "float16")


def test_streamed_quad_variant_takes_any_group_count():
    assert cuda_matvec_streamed("Q4_K", "float16", 3, group_warps=2).launch.grid[0].per_block == (
        WARPS // 2 * MATVEC_ROWS_PER_WARP * 3
    )
    with pytest.raises(UnsupportedError, match="3 warps a row group"):
        cuda_matvec_streamed("Q8_0", "float16", 2, group_warps=3)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matvecs_take_int16_activations_for_16_bit_x_of_their_formats(fmt, dtype):
    """Every CUDA matvec geometry of a MATVEC_INTEGER_X_FORMATS format with 16-bit x sums by
    dp2a on int16 activations; float32 x and the other formats keep the float decode."""
    expected = fmt in MATVEC_INTEGER_X_FORMATS and dtype in ("float16", "bfloat16")
    assert takes_integer_x(fmt, dtype) == expected
    for geometry in geometries("cuda", fmt, "matvec", dtype):
        source = emit("cuda", fmt, "matvec", dtype, geometry).source
        if geometry in MATVEC_MMA_FORMS:
            continue  # the staged mma matvec: 16-bit x straight into the mma
        if takes_lane_words(fmt, dtype, geometry):
            # the lane-word kernel has only the int16 decode
            assert expected and "ggufc::load_nibble_halves" in source, geometry
            continue
        assert f"constexpr bool INTEGER_X = {'true' if expected else 'false'};" in source, geometry


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_lane_word_matvec_is_the_int16_streamed_quad_of_its_formats(fmt, dtype):
    """The geometries of MATVEC_LANE_WORD_GEOMETRIES of a MATVEC_LANE_WORD_FORMATS format with
    int16 x are `cuda/matvec_lanes.cu` (each lane loads its own words of the blocks), launched
    as the staged kernel of the same geometry and bounded for MATVEC_WAVE_BLOCKS_PER_SM
    blocks an SM; every other matvec is `cuda/matvec.cu`."""
    for geometry in geometries("cuda", fmt, "matvec", dtype):
        kernel = emit("cuda", fmt, "matvec", dtype, geometry)
        lanes = (
            fmt in MATVEC_LANE_WORD_FORMATS
            and geometry in MATVEC_LANE_WORD_GEOMETRIES
            and dtype in ("float16", "bfloat16")
        )
        assert takes_lane_words(fmt, dtype, geometry) == lanes, geometry
        assert ("each lane loading its own words" in kernel.source) == lanes, geometry
        if lanes:
            assert f"__launch_bounds__({THREADS}, {MATVEC_WAVE_BLOCKS_PER_SM})" in kernel.source
            staged = cuda_matvec_streamed(fmt, dtype, MATVEC_QUAD_STREAM_GROUPS[fmt], 4)
            assert kernel.launch == staged.launch
            assert "LANE_WORDS" in kernel.header


@pytest.mark.parametrize("fmt", MATVEC_SPLIT_K_FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_split_k_kernels_block_and_bounds(fmt, dtype):
    """Both split-K kernels take MATVEC_SPLIT_K_ROWS rows a block, with 2 or 4 warps; their
    registers are bounded for the blocks an SM the rule counts, but where unbounded."""
    activations = "float32" if dtype == "float32" else "16-bit"
    for geometry, warps in MATVEC_SPLIT_K_WARPS.items():
        kernel = emit("cuda", fmt, "matvec", dtype, geometry)
        threads = warps * 32
        assert kernel.launch.threads == threads
        assert kernel.launch.grid_size(1, 4096, 4096) == (4096 // 4, 1, 1)
        bounds = f"__launch_bounds__({threads}, {split_k_blocks_per_sm(fmt, dtype, geometry)})"
        assert (bounds in kernel.source) == ((activations, fmt) not in MATVEC_SPLIT_K_UNBOUNDED)
    assert split_k_blocks_per_sm(fmt, dtype, "split_k_paired") == 2 * split_k_blocks_per_sm(
        fmt, dtype, "split_k"
    )


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_a_mapped_group_box_holds_every_group_of_whole_word_rows(fmt):
    """The box a group of rows comes in by tensor map (rows of whole 16-byte words): from the
    16-byte boundary at or before each group of a row (groups start at multiples of the
    group's bytes) it holds the whole group, in an odd number of 16-byte chunks, and fits the
    slot rows the chunk copies use; Q4_0 / Q8_0 read 144 bytes a row instead of 176."""
    group_bytes = matmul_group_bytes(fmt)
    box = mapped_group_stride(fmt)
    assert box % 32 == 16 and box <= matmul_group_stride(fmt)
    for start in range(0, 64 * group_bytes, group_bytes):
        assert start % 16 + group_bytes <= box, (fmt, start)
    # no narrower box of odd chunks holds them all
    assert (
        max(start % 16 for start in range(0, 16 * group_bytes, group_bytes)) + group_bytes
        > box - 32
    )
    if fmt in ("Q4_0", "Q8_0"):
        assert (box, matmul_group_stride(fmt)) == (144, 176)


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_16bit_cuda_matmuls_and_staged_mma_matvecs_take_tensor_maps(backend):
    """The kernels of the 16-bit CUDA matmul template (the matmul's geometries and the split-K
    matvec_batched) take x as a tensor map of a stage's box and, optionally, their blocks as
    one of a group slot's (a box's width of bytes x 128 rows, no swizzle); the staged mma
    matvec only the optional one of its blocks (a box's width of bytes x its 16 or 32 rows); each
    declared in the signature; no other kernel takes one."""
    mapped = staged = 0
    both = (
        "const __grid_constant__ ggufc::TensorMap x_map, "
        "const __grid_constant__ ggufc::TensorMap w_map"
    )
    blocks_only = "int has_bias, const __grid_constant__ ggufc::TensorMap w_map)"
    for kernel in _generated_kernels(backend):
        maps = getattr(kernel, "launch", None) and kernel.launch.tensor_maps
        declared = both in kernel.source or blocks_only in kernel.source
        assert bool(maps) == declared, kernel.entry
        if not maps:
            continue
        assert backend == "cuda" and kernel.dtype in ("float16", "bfloat16"), kernel.entry
        assert kernel.kind in ("matmul", "matvec_batched", "matvec"), kernel.entry
        if blocks_only in kernel.source:
            staged += 1
            if kernel.kind == "matvec":  # M = 1 on the staged kernel
                assert kernel.format in MATVEC_ONE_ROW_MMA_FORMATS, kernel.entry
            else:
                assert kernel.kind == "matvec_batched" and kernel.format in MATVEC_MMA_FORMATS
            stride = int(re.search(r"MAPPED_GROUP_STRIDE = (\d+);", kernel.source).group(1))
            tile_n = int(re.search(r"constexpr int TILE_N = (\d+);", kernel.source).group(1))
            assert tile_n == (
                32 if kernel.entry.startswith("ggufc_matvec_batched_mma_wide") else 16
            )
            # a box past 256 bytes reads the blocks as wider elements (the kernel's coordinates too)
            element = int(re.search(r"MAP_ELEMENT_BYTES = (\d+);", kernel.source).group(1))
            assert element == weight_map_element_bytes(stride)
            assert element == 1 if stride <= 256 else stride // element <= 256
            assert maps == (
                TensorMapRule(
                    tensor=1,
                    box_inner=stride // element,
                    box_rows=tile_n,
                    swizzle=0,
                    optional=True,
                    element_bytes=element,
                ),
            ), kernel.entry
            continue
        mapped += 1
        tile_m = int(re.search(r"constexpr int TILE_M = (\d+);", kernel.source).group(1))
        stride = int(re.search(r"MAPPED_GROUP_STRIDE = (\d+);", kernel.source).group(1))
        assert maps == (
            TensorMapRule(tensor=0, box_inner=64, box_rows=tile_m),
            TensorMapRule(tensor=1, box_inner=stride, box_rows=128, swizzle=0, optional=True),
        ), kernel.entry
    cuda = backend == "cuda"
    assert (mapped > 0) == cuda
    staged_geometries = sum(len(form.aheads) for form in MATVEC_MMA_FORMS.values())
    # (a form a format has for its one-row rule only has no batched kernel)
    staged_geometries -= sum(len(forms) for forms in MATVEC_MMA_ONE_ROW_ONLY_FORMS.values())
    one_row = sum(len(rule.forms) for rule in MATVEC_ONE_ROW_MMA.values())
    assert staged == (2 * (staged_geometries + one_row) if cuda else 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cuda_kernels_and_only_they_are_launched_dependently(backend):
    """A dependently launched kernel may start before the one ahead of it ends: every CUDA
    kernel lets the next one start and waits for the previous ones (prelude.cuh)."""
    for kernel in _generated_kernels(backend):
        assert kernel.dependent_launch == (backend == "cuda"), kernel.entry
        if backend != "cuda":
            continue
        # one wait; at most one place that lets the next kernel start (none: cluster kernels),
        # or in the staged matvec two that exclude each other: at the start where the grid
        # fills its waves, after the weight loads where it does not
        both = kernel.source.count("ggufc::begin_dependent_kernel();")
        allows = kernel.source.count("ggufc::allow_dependent_launch();")
        waits = kernel.source.count("ggufc::wait_for_previous_kernels();")
        assert both + waits == 1, kernel.entry
        if "constexpr unsigned WAVE_BLOCKS_PER_SM" in kernel.source:
            assert both == 0 and allows == 2, kernel.entry
            assert "if (fills_waves) {" in kernel.source, kernel.entry
            assert "if (!has_next && !fills_waves) {" in kernel.source, kernel.entry
        else:
            assert both + allows <= 1, kernel.entry


def test_cuda_matvec_lets_the_next_kernel_start_early_by_geometry():
    """The staged matvec decides at run time whether its grid fills its waves, except in the
    narrow geometry, whose trigger stays after the weight loads (emitter)."""
    staged = [
        k for k in _generated_kernels("cuda") if "constexpr unsigned WAVE_BLOCKS_PER_SM" in k.source
    ]
    assert staged
    for kernel in staged:
        geometry = "narrow" if "_narrow_" in kernel.entry else "other"
        rule = "WAVE_BLOCKS_PER_SM = 0;" not in kernel.source
        assert rule == (geometry != "narrow"), kernel.entry


# The fastest geometry measured for these (H100, float16; PERFORMANCE.md, sessions 24 (every
# format alike) and 26 (256-row tiles)): the cost model must pick it
MEASURED_FASTEST_MATMUL_GEOMETRIES = [
    ("Q4_K", (4096, 14336, 32), "rows64_split_k8"),
    ("Q4_K", (4096, 14336, 128), "rows64_split_k2"),
    ("Q4_K", (14336, 4096, 128), DEFAULT_GEOMETRY),
    ("Q4_K", (2048, 8192, 32), "rows64_split_k4"),
    ("Q4_K", (4096, 4096, 64), "rows64_split_k2"),
    ("Q8_0", (4096, 14336, 256), "rows256_split_k2"),
    ("Q4_0", (4096, 14336, 512), "rows256_split_k2"),
    ("Q6_K", (5376, 21504, 256), "rows256_split_k2"),
]


@pytest.mark.parametrize(("fmt", "shape", "geometry"), MEASURED_FASTEST_MATMUL_GEOMETRIES)
def test_matmul_cost_model_picks_the_measured_fastest_geometry(fmt, shape, geometry):
    n, k, m = shape
    assert matmul_geometry_of(fmt, n, k, m) == geometry
    assert pick_geometry("cuda", fmt, "matmul", "float16", n, k, m) == geometry
    # any M (a symbolic one the lowering does not branch on), float32 and Metal: the default
    assert pick_geometry("cuda", fmt, "matmul", "float16", n, k) == DEFAULT_GEOMETRY
    assert pick_geometry("cuda", fmt, "matmul", "float32", n, k, m) == DEFAULT_GEOMETRY
    assert pick_geometry("metal", fmt, "matmul", "float16", n, k, m) == DEFAULT_GEOMETRY


@settings(max_examples=80, deadline=None)
@given(
    fmt=st.sampled_from(FORMAT_NAMES),
    n=st.integers(1, 300).map(lambda t: 64 * t),
    k=st.integers(1, 400).map(lambda s: 64 * s),
    low=st.integers(1, 2000),
    span=st.integers(0, 3000),
)
def test_matmul_geometry_segments_cover_the_range_with_the_picked_geometry(fmt, n, k, low, span):
    high = low + span
    segments = matmul_geometry_segments(fmt, n, k, low, high)
    lasts = [last for last, _ in segments]
    assert lasts == sorted(set(lasts)) and lasts[-1] == high
    assert all(a != b for (_, a), (_, b) in itertools.pairwise(segments))
    first = low
    for last, geometry in segments:
        for m in {first, last, (first + last) // 2}:
            assert geometry == matmul_geometry_of(fmt, n, k, min(m, MATMUL_SEGMENT_SCAN_ROWS))
        first = last + 1
    # a split leaves each block SPLIT_K_MIN_STEPS K steps
    for _, geometry in segments:
        assert MATMUL_GEOMETRY_TILES[geometry][1] * SPLIT_K_MIN_STEPS <= max(k // 64, 1) or (
            MATMUL_GEOMETRY_TILES[geometry][1] == 1
        )


@pytest.mark.parametrize("dtype", ("float16", "bfloat16"))
def test_the_staged_mma_matvec_takes_its_forms_by_shape_rows_and_shared_memory(dtype):
    """Rows of K <= 4096 whose grid is one wave of eight blocks an SM at least 4/5 full take two
    warps a block (Q4_0, Q5_0, Q6_K, Q4_K; Q6_K first its form with the activations a group at
    a time, where its grid is one wave of seven blocks an SM at least 4/5 full); else rows of
    K <= 8192 (Q4_0: any K) on a grid of 16-row blocks whose last wave of four an SM is at
    least 3/5 full, or which fills two waves, take four warps a block (four blocks an SM in an
    H100's shared memory; in an A100's only Q4_0's fit), unless four warps taking the
    activations a group at a time (Q4_0, Q5_0, Q6_K; three an SM) fill their last wave more on
    a grid of under two waves of four; else Q4_K / Q5_K their loaded form on rows of K <= 4096;
    else the by-group four or five warps (Q4_K, Q8_0; three an SM), where they fill it so and
    more than 16 rows of 8 warps; else Q8_0 its deep wide form, Q4_0 16 rows a block taking the
    activations a group at a time on rows of K >= 4096 whose last wave of two blocks an SM is at
    least 7/10 full (two blocks an SM in an H100's shared memory, not in an A100's), and the
    others 16 rows a block."""

    def pick(fmt, n, k, m, shared=H100_SHARED_MEMORY_PER_BLOCK):
        return pick_geometry("cuda", fmt, "matvec_batched", dtype, n, k, m, shared)

    h100_sm = H100_SHARED_MEMORY_PER_BLOCK + SHARED_MEMORY_RESERVED_PER_BLOCK
    for fmt in MATVEC_MMA_FORMATS:
        four = matvec_mma_staged_layout(fmt, dtype, "mma_four_warps")["shared_bytes"]
        assert 4 * (four + SHARED_MEMORY_RESERVED_PER_BLOCK) <= h100_sm
        # three blocks an SM, taken over four warps where that fills its wave more: four warps
        # taking the activations a group at a time (Q4_0, Q5_0, Q6_K), before six warps
        fuller = "mma_four_warps_x_by_group" if fmt in ("Q4_0", "Q5_0", "Q6_K") else None
        three = fuller or ("mma_five_warps" if fmt in ("Q4_K", "Q8_0") else None)
        if three:
            three_bytes = matvec_mma_staged_layout(fmt, dtype, three)["shared_bytes"]
            assert 3 * (three_bytes + SHARED_MEMORY_RESERVED_PER_BLOCK) <= h100_sm
        other = {"Q8_0": "mma_wide", "Q4_0": "mma_x_by_group"}.get(fmt, "mma")
        if other == "mma_x_by_group":
            group_bytes = matvec_mma_staged_layout(fmt, dtype, other)["shared_bytes"]
            assert 2 * (group_bytes + SHARED_MEMORY_RESERVED_PER_BLOCK) <= h100_sm
        # rows of K <= 4096: the K-quants' loaded form (Q5_K's up to 4 rows)
        loaded = "mma_loaded" if fmt in ("Q4_K", "Q5_K") else other
        short = [loaded, loaded, "mma" if fmt == "Q5_K" else loaded]  # M = 2, 4, 8
        # the loaded form first, then three blocks an SM
        three_or_short = short if loaded == "mma_loaded" else [three or other] * 3
        two = "mma_two_warps" if fmt in ("Q4_0", "Q5_0", "Q6_K", "Q4_K") else "mma_four_warps"
        if two == "mma_two_warps":
            two_bytes = matvec_mma_staged_layout(fmt, dtype, two)["shared_bytes"]
            assert 8 * (two_bytes + SHARED_MEMORY_RESERVED_PER_BLOCK) <= h100_sm
        # Q6_K: two warps taking the activations a group at a time, seven blocks an SM
        by_group = "mma_two_warps_x_by_group" if fmt == "Q6_K" else two
        if by_group != two:
            group_bytes = matvec_mma_staged_layout(fmt, dtype, by_group)["shared_bytes"]
            assert 7 * (group_bytes + SHARED_MEMORY_RESERVED_PER_BLOCK) <= h100_sm
            assert 8 * (group_bytes + SHARED_MEMORY_RESERVED_PER_BLOCK) > h100_sm
        # blocks: last waves of 2 / 3 / 4 / 8 blocks an SM (264 / 396 / 528 / 1056 blocks a wave)
        expected = {
            (14336, 4096): by_group,  # 896: 2.26 waves of three, 0.70 of four, 0.85 of eight
            (16384, 4096): two,  # 1024: 0.97 of eight, past a wave of seven (924)
            (17024, 4096): "mma_four_warps",  # 1064: past a wave of eight
            (8192, 4096): "mma_four_warps",  # 512: 0.29 / 0.97
            (28672, 4096): "mma_four_warps",  # 1792: 3.4 waves of four
            (5120, 5120): fuller or "mma_four_warps",  # 320: 0.81 / 0.61
            (6144, MATVEC_MMA_FOUR_WARPS_MAX_K): fuller or "mma_four_warps",  # 384: 0.97 / 0.73
            (11008, 4096): three_or_short,  # 688: 2.6 waves of two (0.61) / 0.74 / 0.30
            (4096, MATVEC_MMA_FOUR_WARPS_MAX_K + 256): other,  # 256: 0.97 / 0.65 / 0.48
            (4096, 8192): other,
            (4096, 4096): short,
        }
        for (n, k), geometry in expected.items():
            by_m = geometry if isinstance(geometry, list) else [geometry] * 3
            assert [pick(fmt, n, k, m) for m in (2, 4, 8)] == by_m, (fmt, n, k)
        # a card of less shared memory (an A100's) takes four warps where four still fit an
        # SM (three blocks of six warps fit none)
        a100_sm = PORTABLE_SHARED_MEMORY_PER_BLOCK + SHARED_MEMORY_RESERVED_PER_BLOCK
        four_fit = 4 * (four + SHARED_MEMORY_RESERVED_PER_BLOCK) <= a100_sm
        a100_pick = pick(fmt, 28672, 4096, 8, PORTABLE_SHARED_MEMORY_PER_BLOCK)
        assert (a100_pick == "mma_four_warps") == four_fit
        if by_group != two:  # nor seven blocks of Q6_K's by-group two warps there
            assert pick(fmt, 14336, 4096, 8, PORTABLE_SHARED_MEMORY_PER_BLOCK) != by_group
    # longer rows: 336 blocks (0.27 / 0.85 / 0.64) take the by-group four or five warps where
    # the format has them; 512 (0.94 / 0.29 / 0.97) four where the format takes them at any K
    # (Q4_0)
    by_group_four = [pick(fmt, 5376, 21504, 4) for fmt in ("Q4_0", "Q5_0", "Q6_K")]
    assert by_group_four == ["mma_four_warps_x_by_group"] * 3
    assert pick("Q4_K", 5376, 21504, 4) == pick("Q8_0", 5376, 21504, 4) == "mma_five_warps"
    assert pick("Q4_0", 8192, 14336, 4) == "mma_four_warps"
    assert pick("Q5_0", 8192, 14336, 4) == pick("Q5_K", 5376, 21504, 4) == "mma"
    assert pick("Q4_K", 8192, 14336, 4) == pick("Q6_K", 8192, 14336, 4) == "mma"
    assert pick("Q8_0", 8192, 14336, 4) == "mma_wide"
    # Q8_0's deep wide form does not fit an A100, nor two blocks of Q4_0's by-group eight warps
    assert pick("Q8_0", 4096, 14336, 8, PORTABLE_SHARED_MEMORY_PER_BLOCK) == "mma"
    assert pick("Q4_0", 4096, 14336, 8, PORTABLE_SHARED_MEMORY_PER_BLOCK) == "mma"
    # Q4_0's by-group eight warps: not on a last wave under 7/10 full (192 blocks: 0.73 of a
    # wave of two an SM, 160: 0.61), nor on rows of a group or two a warp (K = 2048)
    assert pick("Q4_0", 3072, 8192, 8) == "mma_x_by_group"
    assert pick("Q4_0", 2560, 10240, 8) == pick("Q4_0", 4096, 2048, 8) == "mma"
