"""The dense route of a matmul linear (codegen.dense_linear): the threshold, the program the
lowering makes of it, and that program's outputs against the graph's (on CPU: the reference
dequantize and aten::linear; on CUDA: tests/runtime_schema/test_cuda.py)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen import dense_linear, lower
from codegen.dense_linear import dense_estimate_us, dense_threshold, matmul_estimate_us
from codegen.kernels import emit
from codegen.kernels.emitter import (
    MATMUL_GEOMETRY_TILES,
    MATMUL_SEGMENT_SCAN_ROWS,
    matmul_geometry_of,
    matmul_geometry_segments,
)
from compiler.formats import FORMATS, row_bytes
from compiler.ir.parser import parse_program
from runtime_schema import run_program
from runtime_schema.program import (
    AtenNode,
    Backend,
    CompareOp,
    IfNode,
    KernelKind,
    KernelNode,
    TensorMap,
)

FORMAT_NAMES = tuple(FORMATS)
# the shape of issue 8's batched cells: the dense route at M = 2048 in every format
BATCH_SHAPE = (4096, 14336)


def linear_ir(fmt: str, n: int, k: int, rows: str, dtype: str = "bf16", symbol: str = "") -> str:
    return f"""
{symbol}
const @w.blocks : u8[{n}, {row_bytes(fmt, k)}] gguf {fmt}
const @w.bias : {dtype}[{n}]

graph @main(%x : {dtype}[{rows}, {k}]) {{
  %y : {dtype}[{rows}, {n}] = ggufc.linear(%x, @w.blocks, @w.bias, "{fmt}", {n}, {k}, "matmul")
  return (%y)
}}
"""


def graph_output(gp, x):
    with torch.no_grad():
        (y,) = torch.fx.Interpreter(gp.graph_module).run(x)
    return y


def assert_close_to_the_graph(got, expected, where: str):
    """Relative error of the whole output: the dense route rounds the weights to bfloat16
    before the product (the reference rounds once, at the end), so elements near zero
    differ by a rounding of the larger terms; 1.6e-2 is the kernels' bfloat16 bound."""
    error = float((got.double() - expected.double()).norm() / expected.double().norm())
    assert error <= 1.6e-2, f"{where}: relative error {error:.3g}"


def assert_dense_route(program, chain_instructions, fmt):
    """The chain is the dequantize kernel then aten::linear on its output."""
    dequantize, linear = chain_instructions
    assert isinstance(dequantize, KernelNode) and dequantize.kind == KernelKind.DEQUANTIZE
    assert dequantize.format.name == fmt
    assert dequantize.source_for(Backend.CUDA).entry.startswith("ggufc_dequantize_")
    assert isinstance(linear, AtenNode) and linear.op == "aten::linear"
    assert linear.args[1].value.value == dequantize.outputs[0]


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_issue_8_batch_shape_at_2048_rows_takes_the_faster_route(fmt):
    """The H100 figures the model is calibrated on (BENCHMARKS.md, session 27): at M = 2048 on
    4096 x 14336 the 256-row matmul took 344.6 us for Q4_0 against the dense route's 353.3,
    374-396 us for the other formats against the dense route's 355-364."""
    assert (dense_threshold(fmt, *BATCH_SHAPE) >= 2048) == (fmt == "Q4_0")


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_every_format_keeps_the_matmul_at_512_rows_of_the_batch_shape(fmt):
    """Measured (session 27, H100): the 256-row matmul 85.8-100.5 us, the dense route
    130.9-140.2 us at M = 512."""
    assert dense_threshold(fmt, *BATCH_SHAPE) >= 512
    assert matmul_geometry_of(fmt, *BATCH_SHAPE, 512) == "rows256_split_k2"


def test_many_short_rows_keep_the_matmul_below_a_wave_of_tiles():
    """14336 x 4096 at M = 64: the matmul fills a wave (41-47 us measured), the dense route
    pays a pass over 58.7 M weights first (101-110 us)."""
    for fmt in FORMAT_NAMES:
        assert dense_threshold(fmt, 14336, 4096) >= 128


@settings(max_examples=60, deadline=None)
@given(
    fmt=st.sampled_from(FORMAT_NAMES),
    n=st.integers(1, 64).map(lambda b: 128 * b),
    blocks=st.integers(1, 64),
)
def test_threshold_is_a_tile_multiple_and_the_estimates_grow_with_m(fmt, n, blocks):
    k = blocks * FORMATS[fmt].block_weights
    threshold = dense_threshold(fmt, n, k)
    assert threshold % dense_linear.ROW_STEP == 0
    assert 0 <= threshold <= dense_linear.SCAN_MAX_ROWS
    previous = (0.0, 0.0)
    for m in (1, 17, 128, 129, 1000, 4096, 20000):
        estimates = (matmul_estimate_us(fmt, n, k, m), dense_estimate_us(fmt, n, k, m))
        assert all(e >= p for e, p in zip(estimates, previous))
        previous = estimates


def test_the_route_serves_16_bit_activations_and_bounded_weights():
    assert dense_linear.serves("Q4_K", "float16", 4096, 14336)
    assert dense_linear.serves("Q4_K", "bfloat16", 4096, 14336)
    assert not dense_linear.serves("Q4_K", "float32", 4096, 14336)
    # 262144 x 5376 (a large vocabulary): 2.8 GB of dense weights
    assert not dense_linear.serves("Q6_K", "float16", 262144, 5376)


def test_static_m_above_the_threshold_lowers_to_the_dense_route_and_runs_like_the_graph():
    fmt, n, k = "Q4_K", 512, 4096
    assert dense_threshold(fmt, n, k) < 256
    gp = parse_program(linear_ir(fmt, n, k, "256"))
    program = lower(gp)
    assert not any(isinstance(i, IfNode) for i in program.instructions())
    assert_dense_route(program, program.main.instructions, fmt)
    x = torch.randn(256, k, generator=torch.Generator().manual_seed(0)).bfloat16()
    (got,) = run_program(program, [x])
    assert_close_to_the_graph(got, graph_output(gp, x), "M = 256")


def routes_of(program) -> list[tuple[int | None, list]]:
    """The M-dependent routes of a program holding one linear: (the IfNode's M bound, the
    instructions of its then chain) down the nested else chains, the last with bound None."""
    routes, instructions = [], list(program.main.instructions)
    while isinstance(instructions[-1], IfNode):
        branch = instructions[-1]
        assert branch.compare == CompareOp.LE
        routes.append((branch.constant, list(program.chains[branch.then_chain].instructions)))
        instructions = list(program.chains[branch.else_chain].instructions)
    return [*routes, (None, instructions)]


def test_symbolic_m_across_the_threshold_branches_and_runs_like_the_graph():
    """Every geometry the matmul takes for M up to the threshold, each behind an IfNode on
    M, then the dense route; the program runs like the graph on both sides of each bound."""
    fmt, n, k = "Q4_K", 2048, 1024
    threshold = dense_threshold(fmt, n, k)
    segments = matmul_geometry_segments(fmt, n, k, 17, threshold)
    assert len(segments) >= 2
    gp = parse_program(linear_ir(fmt, n, k, "s0", symbol="symbol s0 : [17, 4096]"))
    program = lower(gp)
    routes = routes_of(program)
    assert [bound for bound, _ in routes] == [last for last, _ in segments] + [None]
    for (_, [matmul]), (_, geometry) in zip(routes, segments, strict=False):
        assert matmul.kind == KernelKind.MATMUL
        entry = matmul.source_for(Backend.CUDA).entry
        assert entry == emit("cuda", fmt, "matmul", "bfloat16", geometry).entry
    assert_dense_route(program, routes[-1][1], fmt)
    generator = torch.Generator().manual_seed(1)
    for rows in sorted({17, *(last for last, _ in segments), threshold + 1}):
        x = torch.randn(rows, k, generator=generator).bfloat16()
        (got,) = run_program(program, [x])
        assert_close_to_the_graph(got, graph_output(gp, x), f"M = {rows}")


def test_each_matmul_route_takes_its_activations_as_a_tensor_map_of_its_tile():
    """The 16-bit CUDA matmul copies its activation stages (and weight groups, where the rows
    are whole 16-byte words) by the tensor memory accelerator on sm_90a: each geometry's
    source asks the launcher for x as a map of tile_m x 64 boxes and for the blocks as an
    optional one of group slots; the dense route's kernel and Metal's sources take none."""
    fmt, n, k = "Q4_K", 2048, 1024
    gp = parse_program(linear_ir(fmt, n, k, "s0", symbol="symbol s0 : [17, 4096]"))
    program = lower(gp, backends=("metal", "cuda"))
    tiles = []
    for node in program.instructions():
        if not isinstance(node, KernelNode):
            continue
        assert node.source_for(Backend.METAL).tensor_maps == ()
        maps = node.source_for(Backend.CUDA).tensor_maps
        if node.kind != KernelKind.MATMUL:
            assert maps == ()
            continue
        entry = node.source_for(Backend.CUDA).entry
        (geometry,) = [
            g
            for g in MATMUL_GEOMETRY_TILES
            if entry == emit("cuda", fmt, "matmul", "bfloat16", g).entry
        ]
        tile_m = MATMUL_GEOMETRY_TILES[geometry][0]
        stride = emit("cuda", fmt, "matmul", "bfloat16", geometry).launch.tensor_maps[1].box_inner
        assert maps == (
            TensorMap(tensor=0, box_inner=64, box_rows=tile_m),
            TensorMap(tensor=1, box_inner=stride, box_rows=128, swizzle=0, optional=True),
        )
        tiles.append(tile_m)
    assert len(tiles) >= 2


def test_a_card_of_less_shared_memory_gets_no_kernel_needing_more():
    """The 256-row tile's deeper ring needs an H100's shared memory a block: lowered for the
    built-in H100 model a symbolic M reaches it, for a card of an A100's 163 KB (a tuning
    file's `RouteModel`) no kernel of the program asks for more than that card has."""
    fmt, n, k = "Q8_0", *BATCH_SHAPE
    gp = parse_program(linear_ir(fmt, n, k, "s0", symbol="symbol s0 : [17, 4096]"))
    for model, reaches_wide_tile in (
        (dense_linear.H100_ROUTE_MODEL, True),
        (dense_linear.RouteModel(shared_memory_per_block=163 * 1024), False),
    ):
        program = lower(gp, backends=("cuda",), route_model=model)
        kernels = [i for i in program.instructions() if isinstance(i, KernelNode)]
        assert max(i.shared_memory_bytes for i in kernels) <= model.shared_memory_per_block
        wide = emit("cuda", fmt, "matmul", "bfloat16", "rows256_split_k2").entry
        entries = {i.source_for(Backend.CUDA).entry for i in kernels}
        assert (wide in entries) == reaches_wide_tile, model.describe()


@pytest.mark.parametrize(("backends", "dtype"), [(("metal",), "bf16"), (("metal", "cuda"), "f32")])
def test_no_dense_route_without_cuda_or_for_float32(backends, dtype):
    fmt, n, k = "Q4_K", 512, 4096
    program = lower(parse_program(linear_ir(fmt, n, k, "32", dtype=dtype)), backends=backends)
    kinds = [i.kind for i in program.instructions() if isinstance(i, KernelNode)]
    assert kinds == [KernelKind.MATMUL]
    assert not any(isinstance(i, AtenNode) for i in program.instructions())


def test_symbolic_m_below_the_threshold_keeps_the_matmul():
    fmt, n, k = "Q4_K", 2048, 1024
    high = dense_threshold(fmt, n, k)
    program = lower(parse_program(linear_ir(fmt, n, k, "s0", symbol=f"symbol s0 : [17, {high}]")))
    kinds = {i.kind for i in program.instructions() if isinstance(i, KernelNode)}
    assert kinds == {KernelKind.MATMUL}
    assert not any(isinstance(i, AtenNode) for i in program.instructions())


def test_each_route_keeps_its_geometry_whatever_the_model_picks_at_its_last_m():
    """Past MATMUL_SEGMENT_SCAN_ROWS the geometry picked there takes every M, though the cost
    model may pick another at the range's top (512 x 512: 256-row tiles at M = 1088)."""
    fmt, n, k, high = "Q4_0", 512, 512, 1088
    assert dense_threshold(fmt, n, k) > high
    segments = matmul_geometry_segments(fmt, n, k, 17, high)
    at_scan_end = matmul_geometry_of(fmt, n, k, MATMUL_SEGMENT_SCAN_ROWS)
    assert segments[-1] == (high, at_scan_end) != (high, matmul_geometry_of(fmt, n, k, high))
    symbol = f"symbol s0 : [17, {high}]"
    program = lower(parse_program(linear_ir(fmt, n, k, "s0", symbol=symbol)))
    routes = routes_of(program)
    assert [bound for bound, _ in routes] == [last for last, _ in segments[:-1]] + [None]
    for (_, instructions), (_, geometry) in zip(routes, segments, strict=True):
        # (a SymNode before the kernel computes its grid where the tile is not 128 rows)
        [matmul] = [i for i in instructions if isinstance(i, KernelNode)]
        entry = matmul.source_for(Backend.CUDA).entry
        assert entry == emit("cuda", fmt, "matmul", "bfloat16", geometry).entry


@settings(max_examples=60, deadline=None)
@given(
    fmt=st.sampled_from(FORMAT_NAMES),
    n=st.integers(1, 64).map(lambda b: 128 * b),
    blocks=st.integers(1, 32),
    low=st.integers(17, 3000),
    span=st.integers(0, 5000),
)
def test_routes_over_a_range_are_the_route_at_each_m(fmt, n, blocks, low, span):
    """The runs the lowering branches between give every M in the range the route a static
    M would take (the benchmark's `matmul_route`), up to MATMUL_SEGMENT_SCAN_ROWS, where the
    geometry picked there (or the dense route) takes the rest."""
    k = blocks * FORMATS[fmt].block_weights
    high = low + span
    routes = dense_linear.matmul_routes(fmt, "float16", n, k, low, high)
    first = low
    for last, route in routes:
        for m in {first, (first + last) // 2, last}:
            single = dense_linear.matmul_route(fmt, "float16", n, k, m)
            if m <= MATMUL_SEGMENT_SCAN_ROWS or single == dense_linear.DENSE_ROUTE:
                assert route == single, (m, routes)
            else:
                assert route == matmul_geometry_of(fmt, n, k, MATMUL_SEGMENT_SCAN_ROWS)
        first = last + 1
    assert first == high + 1
    assert dense_linear.matmul_routes(fmt, "float32", n, k, low, high) is None


# ---- a card's route model (`ggufc tune` fits one) ---------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    fmt=st.sampled_from(FORMAT_NAMES),
    n=st.sampled_from((1024, 4096, 14336)),
    k_blocks=st.sampled_from((8, 32, 128, 448)),
    factor=st.sampled_from((1.25, 2.0, 4.0)),
)
def test_a_slower_matmul_or_faster_dense_route_never_raises_the_threshold(fmt, n, k_blocks, factor):
    k = 32 * k_blocks
    base = dense_threshold(fmt, n, k)
    slow_matmul = dense_linear.RouteModel(matmul_scales=((fmt, factor),))
    fast_dense = dense_linear.RouteModel(dequantize_scale=1 / factor, product_scale=1 / factor)
    assert dense_threshold(fmt, n, k, slow_matmul) <= base
    assert dense_threshold(fmt, n, k, fast_dense) <= base
    slow_dense = dense_linear.RouteModel(dequantize_scale=factor, product_scale=factor)
    assert dense_threshold(fmt, n, k, slow_dense) >= base
    # another format's factor changes nothing
    other = next(f for f in FORMAT_NAMES if f != fmt)
    assert dense_threshold(fmt, n, k, dense_linear.RouteModel(((other, factor),))) == base


def test_fitting_recovers_each_factor_as_a_median():
    model = dense_linear.H100_ROUTE_MODEL
    samples = []
    for fmt, n, k, m in [
        ("Q4_0", 4096, 4096, 128),
        ("Q4_0", 4096, 14336, 512),
        ("Q6_K", 2048, 4096, 64),
    ]:
        deq = dense_linear.dequantize_estimate_us(fmt, n, k, model)
        product = dense_linear.product_estimate_us(n, k, m, model)
        matmul = dense_linear.matmul_estimate_us(fmt, n, k, m, model)
        factor = 1.5 if fmt == "Q4_0" else 0.75
        samples.append(
            dense_linear.RouteSample(fmt, n, k, m, factor * matmul, 0.5 * deq, 2 * product)
        )
    # one outlier of the three moves no median
    samples.append(dense_linear.RouteSample("Q4_0", 4096, 4096, 64, 1e6, 1e6, 1e6))
    fitted = dense_linear.fit_route_model(samples, "Card")
    assert fitted.matmul_scales == (("Q4_0", 1.5), ("Q6_K", 0.75))
    assert (fitted.dequantize_scale, fitted.product_scale) == (0.5, 2.0)
    assert fitted.device == "Card"
    with pytest.raises(ValueError, match="at least one sample"):
        dense_linear.fit_route_model([], "Card")


def test_the_lowering_routes_with_the_model_it_is_given():
    """A model whose matmul is 1.5x slower moves the IfNode of a symbolic M down to its own
    threshold; the program still runs like the graph past it."""
    fmt, n, k = "Q4_0", 4096, 4096
    slow = dense_linear.RouteModel(matmul_scales=((fmt, 1.5),), device="Slow card")
    threshold, slow_threshold = dense_threshold(fmt, n, k), dense_threshold(fmt, n, k, slow)
    assert slow_threshold < threshold
    gp = parse_program(linear_ir(fmt, n, k, "s0", symbol="symbol s0 : [1, 4096]"))
    for model, expected in ((None, threshold), (slow, slow_threshold)):
        program = lower(gp, route_model=model)
        routes = routes_of(program)
        assert routes[-2][0] == expected  # the last bound: the matmul up to it, dense above
        assert_dense_route(program, routes[-1][1], fmt)
    x = torch.randn(slow_threshold + 1, k, generator=torch.Generator().manual_seed(3)).bfloat16()
    (got,) = run_program(program, [x])
    assert_close_to_the_graph(got, graph_output(gp, x), f"M = {slow_threshold + 1}")
