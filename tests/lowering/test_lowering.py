"""codegen.lower: graph programs (text IR, passes applied) -> Program, saved, loaded and run by
the reference interpreter, against the FX graph itself; and the structure lowering gives
(IfNode chains per M bucket, kernel kinds, symbolic grids, constants)."""

from __future__ import annotations

import pytest
import torch

from codegen import lower
from codegen.kernels import emit, pick_geometry
from codegen.kernels.emitter import PORTABLE_SHARED_MEMORY_PER_BLOCK
from compiler.errors import UnsupportedError
from compiler.ir.parser import parse_program
from compiler.tuning import DEFAULT_BUCKETS
from passes import PassManager
from runtime_schema import load_program, run_program, save_program
from runtime_schema.program import (
    AtenNode,
    Backend,
    CompareOp,
    GgufSlice,
    IfNode,
    KernelKind,
    KernelNode,
    OpKind,
    SymIntRef,
    SymNode,
)

# Both linears and the op between them depend on M = s0; the embedding feeds them.
MLP_IR = """
symbol s0 : [1, 256]
const @embd.blocks : u8[100, 144] gguf Q4_0
const @up.blocks : u8[512, 144] gguf Q4_K
const @down.blocks : u8[256, 420] gguf Q6_K
const @down.bias : f32[256]

graph @main(%ids : i64[1, s0]) {
  %x : f32[1, s0, 256] = ggufc.embedding(@embd.blocks, %ids, "Q4_0", 100, 256, torch.float32)
  %up : f32[1, s0, 512] = ggufc.linear(%x, @up.blocks, None, "Q4_K", 512, 256)
  %gelu : f32[1, s0, 512] = aten.gelu(%up)
  %down : f32[1, s0, 256] = ggufc.linear(%gelu, @down.blocks, @down.bias, "Q6_K", 256, 512)
  %out : f32[1, s0, 256] = aten.add.Tensor(%down, %x)
  return (%out, %gelu)
}
"""

# A static M: `kernel="auto"` is resolved by lowering.
STATIC_IR = """
const @w.blocks : u8[64, 34] gguf Q8_0

graph @main(%x1 : f32[1, 32], %x4 : f32[4, 32], %h4 : f16[4, 32], %x17 : f32[17, 32]) {
  %a : f32[1, 64] = ggufc.linear(%x1, @w.blocks, None, "Q8_0", 64, 32)
  %b : f32[4, 64] = ggufc.linear(%x4, @w.blocks, None, "Q8_0", 64, 32)
  %c : f16[4, 64] = ggufc.linear(%h4, @w.blocks, None, "Q8_0", 64, 32)
  %d : f32[17, 64] = ggufc.linear(%x17, @w.blocks, None, "Q8_0", 64, 32)
  return (%a, %b, %c, %d)
}
"""

M_VALUES = (1, 2, 8, 9, 61)  # every bucket and both sides of each edge


def split_program(text: str, pipeline: str = "split-dynamic-m"):
    program = parse_program(text)
    PassManager(pipeline).run(program)
    return program


def fx_outputs(gp, inputs):
    with torch.no_grad():
        result = torch.fx.Interpreter(gp.graph_module).run(*inputs)
    return list(result) if isinstance(result, (tuple, list)) else [result]


def assert_saved_program_runs_like_the_graph(gp, program, path, token_counts, make_inputs):
    """Save ``program`` to ``path``, load it back and run it on ``make_inputs(tokens,
    generator)`` for each token count: every output close to the graph's."""
    save_program(program, path)
    generator = torch.Generator().manual_seed(0)
    for tokens in token_counts:
        inputs = make_inputs(tokens, generator)
        got = run_program(load_program(path), inputs)
        for g, e in zip(got, fx_outputs(gp, inputs), strict=True):
            torch.testing.assert_close(g, e)


def mlp_inputs(m: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 100, (1, m), generator=generator)]


def kernels_by_chain(program):
    return {
        chain.name: [n for n in chain.instructions if isinstance(n, KernelNode)]
        for chain in program.chains
    }


# three buckets for the float32 mlp (its default has one threshold)
MLP_PIPELINE = f"split-dynamic-m{{float32-buckets={','.join(map(str, DEFAULT_BUCKETS))}}}"


@pytest.fixture(scope="module")
def mlp():
    gp = split_program(MLP_IR, MLP_PIPELINE)
    return gp, lower(gp)


@pytest.mark.parametrize("m", M_VALUES)
def test_saved_program_runs_like_the_graph(mlp, tmp_path, m):
    gp, program = mlp
    path = tmp_path / "mlp.ggufc"
    save_program(program, path)
    loaded = load_program(path)
    inputs = mlp_inputs(m, seed=m)
    expected = fx_outputs(gp, inputs)
    actual = run_program(loaded, inputs)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        torch.testing.assert_close(a, e, rtol=0, atol=0)


def test_three_buckets_become_nested_if_nodes(mlp):
    _, program = mlp
    ifs = [n for n in program.instructions() if isinstance(n, IfNode)]
    assert len(ifs) == 2
    outer = next(n for n in program.main.instructions if isinstance(n, IfNode))
    assert (outer.compare, outer.constant) == (CompareOp.LE, 1)
    inner = next(n for n in program.chains[outer.else_chain].instructions if isinstance(n, IfNode))
    assert (inner.compare, inner.constant) == (CompareOp.LE, DEFAULT_BUCKETS[1])
    assert outer.condition == inner.condition
    assert program.values[outer.condition].name == "s0"

    def kinds(chain):
        return [n.kind for n in program.chains[chain].instructions if isinstance(n, KernelNode)]

    assert kinds(outer.then_chain) == [KernelKind.MATVEC] * 2
    assert kinds(inner.then_chain) == [KernelKind.MATVEC_BATCHED] * 2
    assert kinds(inner.else_chain) == [KernelKind.MATMUL] * 2
    main_kernels = [n for n in program.main.instructions if isinstance(n, KernelNode)]
    assert [(n.op, n.kind) for n in main_kernels] == [(OpKind.EMBEDDING, KernelKind.EMBEDDING)]


def test_kernels_carry_both_sources_and_the_cuda_launch(mlp):
    _, program = mlp
    for node in program.instructions():
        if not isinstance(node, KernelNode):
            continue
        assert {s.backend for s in node.sources} == {Backend.METAL, Backend.CUDA}
        kind = node.kind.name.lower()
        named = {a.name: a.value for a in node.args}
        # the mlp's weights are small: its matvecs take the narrow geometry
        fmt = node.format.name
        geometry = pick_geometry("cuda", fmt, kind, "float32", named["n"].value, named["k"].value)
        assert geometry == ("narrow" if kind == "matvec" else "default")
        expected = emit("cuda", fmt, kind, "float32", geometry)
        cuda = node.source_for(Backend.CUDA)
        assert (cuda.entry, cuda.source, cuda.header) == (
            expected.entry,
            expected.source,
            expected.header,
        )
        # every CUDA kernel waits for the kernels before it (prelude: programmatic dependent
        # launch), so the runtime may start it early; a Metal one is launched plainly
        assert cuda.dependent_launch
        assert any(
            call in cuda.source
            for call in ("ggufc::wait_for_previous_kernels()", "ggufc::begin_dependent_kernel()")
        )
        assert not node.source_for(Backend.METAL).dependent_launch
        assert tuple(d.size for d in node.block) == expected.launch.block_size()
        names = [a.name for a in node.args]
        if node.op == OpKind.LINEAR:
            assert names == ["m", "n", "k", "has_bias"]
            assert len(node.inputs) == 3  # x, blocks, bias (a zero bias when the graph has none)
        else:
            assert names == ["m", "n", "k"]


def test_symbolic_grid_evaluates_to_the_launch_rule(mlp):
    """Grid Dims that depend on M are SymNodes in the main chain's prologue; evaluated at a
    given M they equal the emitter's launch rule."""
    from runtime_schema.interpreter import _sym_eval

    _, program = mlp
    prologue = []
    for node in program.main.instructions:
        if not isinstance(node, SymNode):
            break
        prologue.append(node)
    assert prologue, "compound sizes are computed at the head of the main chain"
    assert not any(isinstance(n, SymNode) for n in program.main.instructions[len(prologue) :])
    s0 = next(i for i, v in enumerate(program.values) if v.name == "s0")
    for m in M_VALUES:
        env = {s0: m}
        for node in prologue:
            operands = [env[d.value] if d.is_symbolic else d.size for d in node.operands]
            env[node.output] = _sym_eval(node.op, operands, "")
        for node in program.instructions():
            if not isinstance(node, KernelNode):
                continue
            args = {a.name: a.value for a in node.args}
            m = args["m"]
            rows = env[m.value] if isinstance(m, SymIntRef) else m.value
            kind = node.kind.name.lower()
            n, k = args["n"].value, args["k"].value
            fmt = node.format.name
            geometry = pick_geometry("cuda", fmt, kind, "float32", n, k)
            rule = emit("cuda", fmt, kind, "float32", geometry).launch
            grid = tuple(env[d.value] if d.is_symbolic else d.size for d in node.grid)
            assert grid == rule.grid_size(rows, n, k)
            if node.kind == KernelKind.MATMUL:
                assert node.grid[1].is_symbolic and not node.grid[0].is_symbolic


def test_static_m_picks_the_kernel_kind():
    gp = parse_program(STATIC_IR)
    program = lower(gp, backends=())
    kinds = [n.kind for n in program.instructions() if isinstance(n, KernelNode)]
    # kernel="auto" follows split-dynamic-m's default buckets of the dtype: float32 1..16 the
    # matvec, float16 2..9 the batched matvec
    assert kinds == [
        KernelKind.MATVEC,
        KernelKind.MATVEC,
        KernelKind.MATVEC_BATCHED,
        KernelKind.MATMUL,
    ]
    assert all(n.sources == () for n in program.instructions() if isinstance(n, KernelNode))
    inputs = [
        torch.randn(1, 32),
        torch.randn(4, 32),
        torch.randn(4, 32, dtype=torch.float16),
        torch.randn(17, 32),
    ]
    for a, e in zip(run_program(program, inputs), fx_outputs(gp, inputs)):
        torch.testing.assert_close(a, e, rtol=0, atol=0)


# M = 1 linears too large for the narrow geometry (2 Mi weights at float32), K = 4096
LARGE_MATVEC_IR = """
const @a.blocks : u8[512, 2304] gguf Q4_0
const @b.blocks : u8[512, 2304] gguf Q4_K
const @c.blocks : u8[512, 4352] gguf Q8_0

graph @main(%x : f32[1, 4096]) {
  %a : f32[1, 512] = ggufc.linear(%x, @a.blocks, None, "Q4_0", 512, 4096)
  %b : f32[1, 512] = ggufc.linear(%x, @b.blocks, None, "Q4_K", 512, 4096)
  %c : f32[1, 512] = ggufc.linear(%x, @c.blocks, None, "Q8_0", 512, 4096)
  return (%a, %b, %c)
}
"""


def test_large_matvecs_take_their_formats_geometry():
    """Split-K for Q4_0, paired warps for Q4_K and Q8_0 (a grid of 32 unpaired blocks): the
    entry, source and grid of each KernelNode are those of that geometry's kernel."""
    program = lower(parse_program(LARGE_MATVEC_IR), backends=("cuda",))
    kernels = [n for n in program.instructions() if isinstance(n, KernelNode)]
    expected = {
        "Q4_0": ("split_k", 512 // 4),
        "Q4_K": ("paired", 512 // 8),
        "Q8_0": ("paired", 512 // 8),
    }
    assert sorted(n.format.name for n in kernels) == sorted(expected)
    for node in kernels:
        geometry, blocks = expected[node.format.name]
        kernel = emit("cuda", node.format.name, "matvec", "float32", geometry)
        cuda = node.source_for(Backend.CUDA)
        assert (cuda.entry, cuda.source) == (kernel.entry, kernel.source)
        assert tuple(d.size for d in node.grid) == (blocks, 1, 1)
        assert tuple(d.size for d in node.block) == kernel.launch.block_size()


# batched Q4_K linears with float16 activations: 4 tiles of 128 rows, 64 K steps; M = 12
# (above MATVEC_MMA_MAX_M), M = 4, and a symbolic M of the batched bucket
SPLIT_K_BATCHED_IR = """
const @b.blocks : u8[512, 2304] gguf Q4_K

graph @main(%x : f16[12, 4096]) {
  %b : f16[12, 512] = ggufc.linear(%x, @b.blocks, None, "Q4_K", 512, 4096, "matvec_batched")
  return (%b)
}
"""
MMA_BATCHED_IR = SPLIT_K_BATCHED_IR.replace("[12, ", "[4, ")
SYMBOLIC_BATCHED_IR = """
const @b.blocks : u8[512, 2304] gguf Q4_K

symbol s0 : [2, 16]
graph @main(%x : f16[s0, 4096]) {
  %b : f16[s0, 512] = ggufc.linear(%x, @b.blocks, None, "Q4_K", 512, 4096, "matvec_batched")
  return (%b)
}
"""


def assert_node_runs(node, kernel, grid):
    """``node`` carries ``kernel``'s CUDA source, ``grid`` and its block and shared memory."""
    cuda = node.source_for(Backend.CUDA)
    assert (cuda.entry, cuda.source) == (kernel.entry, kernel.source)
    assert tuple(d.size for d in node.grid) == grid
    assert tuple(d.size for d in node.block) == kernel.launch.block_size()
    assert node.shared_memory_bytes == kernel.launch.shared_memory_bytes


def test_batched_k_quant_linear_takes_the_split_k_matmul():
    """matvec_batched of Q4_K with float16 activations lowers to the split-K matmul above
    MATVEC_MMA_MAX_M rows: its grid is the 4 row tiles times the cluster's 8 blocks, with the
    kernel's shared memory."""
    program = lower(parse_program(SPLIT_K_BATCHED_IR), backends=("cuda",))
    [node] = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert node.kind == KernelKind.MATVEC_BATCHED
    geometry = pick_geometry("cuda", "Q4_K", "matvec_batched", "float16", 512, 4096, 12)
    assert geometry == "split_k8"
    kernel = emit("cuda", "Q4_K", "matvec_batched", "float16", geometry)
    assert kernel.launch.shared_memory_bytes > 0
    assert_node_runs(node, kernel, (4 * 8, 1, 1))


def test_batched_q4_k_up_to_8_rows_takes_the_mma_matvec():
    """At M = 4 the same linear takes the mma matvec: 16 weight rows a block, 8 columns; on
    its rows of 4096 weights the K-quants' loaded form (Q5_K's up to 4 rows), on longer ones
    the staged kernel."""
    program = lower(parse_program(MMA_BATCHED_IR), backends=("cuda",))
    [node] = [n for n in program.instructions() if isinstance(n, KernelNode)]
    loaded = pick_geometry("cuda", "Q4_K", "matvec_batched", "float16", 512, 4096, 4)
    assert loaded == "mma_loaded"
    for dtype in ("float16", "bfloat16"):
        for fmt in ("Q4_K", "Q5_K"):
            short_at_8 = "mma_loaded" if fmt == "Q4_K" else "mma"
            for k, m, mma in ((4096, 4, "mma_loaded"), (4096, 8, short_at_8), (8192, 8, "mma")):
                assert pick_geometry("cuda", fmt, "matvec_batched", dtype, 512, k, m) == mma
                assert pick_geometry("cuda", fmt, "matvec_batched", dtype, 512, k, 9) == "split_k8"
            staged = emit("cuda", fmt, "matvec_batched", dtype, "mma")
            assert f"tc::Staged{fmt}" in staged.source  # cuda/matvec_mma_staged.cu
    # the other formats take the staged mma matvec up to 8 rows and the tensor-core batched
    # matvec above; Q8_0 its wide form (32 weight rows a block) where the card's shared
    # memory holds it
    for dtype in ("float16", "bfloat16"):
        for fmt in ("Q4_0", "Q5_0", "Q8_0", "Q6_K"):
            wide = fmt == "Q8_0"
            mma = "mma_wide" if wide else "mma"
            assert pick_geometry("cuda", fmt, "matvec_batched", dtype, 512, 4096, 8) == mma
            assert pick_geometry("cuda", fmt, "matvec_batched", dtype, 512, 4096, 9) == "default"
            staged = emit("cuda", fmt, "matvec_batched", dtype, mma)
            assert f"tc::Staged{fmt}" in staged.source  # cuda/matvec_mma_staged.cu
            assert staged.launch.shared_memory_bytes > 0
            assert staged.launch.grid_size(8, 512, 4096)[0] == 512 // (32 if wide else 16)
        wide_bytes = emit("cuda", "Q8_0", "matvec_batched", dtype, "mma_wide").launch
        assert wide_bytes.shared_memory_bytes > PORTABLE_SHARED_MEMORY_PER_BLOCK
        small = ("cuda", "Q8_0", "matvec_batched", dtype, 512, 4096, 8)
        assert pick_geometry(*small, PORTABLE_SHARED_MEMORY_PER_BLOCK) == "mma"
    kernel = emit("cuda", "Q4_K", "matvec_batched", "float16", loaded)
    assert "tc::Staged" not in kernel.source  # cuda/matvec_mma.cu
    assert_node_runs(node, kernel, (512 // 16, 1, 1))


# Q4_0 rows of K = 10240, 160 blocks of 16 rows: 0.61 of a wave (its one-row rule's min_fill:
# 3/5)
ONE_ROW_MMA_IR = """
const @w.blocks : u8[2560, 5760] gguf Q4_0

graph @main(%x : f16[1, 10240]) {
  %y : f16[1, 2560] = ggufc.linear(%x, @w.blocks, None, "Q4_0", 2560, 10240, "matvec")
  return (%y)
}
"""


def test_long_q4_0_rows_at_one_row_take_the_staged_mma_kernel(tmp_path):
    """A Q4_0 matvec (M = 1) of float16 activations on long rows of a wave's 16-row blocks:
    the KernelNode stays a matvec, its CUDA source is the staged mma matvec under the matvec's
    name (its grid, block, shared memory and weight tensor map), Metal keeps its own; the
    saved program runs like the graph."""
    gp = parse_program(ONE_ROW_MMA_IR)
    program = lower(gp)
    [node] = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert node.kind == KernelKind.MATVEC
    kernel = emit("cuda", "Q4_0", "matvec", "float16", "mma")
    assert kernel.entry == "ggufc_matvec_mma_q4_0_f16" and kernel.launch.tensor_maps
    assert_node_runs(node, kernel, (2560 // 16, 1, 1))
    assert node.source_for(Backend.METAL).entry == "ggufc_matvec_q4_0_f16"

    def make_inputs(m, generator):
        return [torch.randn(m, 10240, generator=generator).half()]

    assert_saved_program_runs_like_the_graph(
        gp, program, tmp_path / "one_row.ggufc", (1,), make_inputs
    )


def test_symbolic_m_branches_between_the_batched_geometries(tmp_path):
    """A symbolic M: an IfNode on M <= 8 whose branches hold the mma and the split-K kernel
    (the metal kernel is the same in both); the program runs like the graph on both sides."""
    gp = parse_program(SYMBOLIC_BATCHED_IR)
    program = lower(gp)
    [branch] = [n for n in program.main.instructions if isinstance(n, IfNode)]
    assert (branch.compare, branch.constant) == (CompareOp.LE, 8)
    assert program.values[branch.condition].name == "s0"
    sides = {}
    for label, chain in (("then", branch.then_chain), ("else", branch.else_chain)):
        [node] = program.chains[chain].instructions
        sides[label] = node
        assert node.outputs == program.chains[chain].results
    assert sides["then"].source_for(Backend.CUDA).entry.endswith("mma_loaded_q4_k_f16")
    assert sides["else"].source_for(Backend.CUDA).entry.endswith("split_k8_q4_k_f16")
    metal = {side.source_for(Backend.METAL).entry for side in sides.values()}
    assert len(metal) == 1

    def make_inputs(m, generator):
        return [torch.randn(m, 4096, generator=generator).half()]

    assert_saved_program_runs_like_the_graph(
        gp, program, tmp_path / "batched.ggufc", (2, 8, 9, 16), make_inputs
    )


def test_symbolic_m_of_a_32_weight_format_branches_to_the_tensor_core_matvec():
    """Q8_0 (no split-K matmul): the IfNode's branches hold the staged mma matvec and the
    tensor-core batched matvec (the default geometry)."""
    text = SYMBOLIC_BATCHED_IR.replace("u8[512, 2304] gguf Q4_K", "u8[512, 4352] gguf Q8_0")
    program = lower(parse_program(text.replace('"Q4_K"', '"Q8_0"')), backends=("cuda",))
    [branch] = [n for n in program.main.instructions if isinstance(n, IfNode)]
    assert (branch.compare, branch.constant) == (CompareOp.LE, 8)
    entries = [
        program.chains[chain].instructions[0].source_for(Backend.CUDA).entry
        for chain in (branch.then_chain, branch.else_chain)
    ]
    assert entries == ["ggufc_matvec_batched_mma_wide_q8_0_f16", "ggufc_matvec_batched_q8_0_f16"]


@pytest.mark.parametrize(("low", "high", "geometry"), [(2, 8, "mma_loaded"), (9, 16, "split_k8")])
def test_symbolic_m_on_one_side_takes_one_geometry(low, high, geometry):
    """A symbolic M whose range lies on one side of MATVEC_MMA_MAX_M needs no branch."""
    text = SYMBOLIC_BATCHED_IR.replace("[2, 16]", f"[{low}, {high}]")
    program = lower(parse_program(text), backends=("cuda",))
    assert not any(isinstance(n, IfNode) for n in program.instructions())
    [node] = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert node.source_for(Backend.CUDA).entry.endswith(f"{geometry}_q4_k_f16")


def test_constants_are_shared_and_keep_their_gguf_source(tmp_path):
    gp = parse_program(STATIC_IR)
    blob = gp.get_constant("w.blocks")
    gguf_copy = tmp_path / "weights.bin"
    prefix = b"\0" * 96
    gguf_copy.write_bytes(prefix + blob.numpy().tobytes())
    source = GgufSlice(str(gguf_copy), len(prefix), blob.numel())
    program = lower(gp, backends=(), constant_sources={"w.blocks": source})
    blocks = [c for c in program.constants if program.values[c.value].name == "w.blocks"]
    assert len(blocks) == 1 and blocks[0].source == source
    # the four linears read the one constant value
    readers = {n.inputs[1] for n in program.instructions() if isinstance(n, KernelNode)}
    assert readers == {blocks[0].value}
    # a no-bias linear reads a zero bias, one per (N, dtype): float32 and float16 here
    zero_biases = {n.inputs[2] for n in program.instructions() if isinstance(n, KernelNode)}
    assert len(zero_biases) == 2
    external = tmp_path / "external.ggufc"
    save_program(program, external, weights="external")
    embedded = tmp_path / "embedded.ggufc"
    save_program(program, embedded)
    assert external.stat().st_size < embedded.stat().st_size - blob.numel() // 2
    inputs = [
        torch.randn(1, 32),
        torch.randn(4, 32),
        torch.randn(4, 32, dtype=torch.float16),
        torch.randn(17, 32),
    ]
    for a, e in zip(run_program(load_program(external), inputs), fx_outputs(gp, inputs)):
        torch.testing.assert_close(a, e, rtol=0, atol=0)


def test_dequantize_lowers_to_the_dequantize_kernel():
    gp = parse_program(
        """
symbol s0 : [1, 64]
const @token_embd : u8[100, 68] gguf Q8_0

graph @main(%ids : i64[1, s0]) {
  %dequantize : f32[100, 64] = ggufc.dequantize(@token_embd, "Q8_0", 100, 64, torch.float32)
  %embedding : f32[1, s0, 64] = aten.embedding(%dequantize, %ids)
  return (%embedding,)
}
"""
    )
    program = lower(gp)
    (kernel,) = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert (kernel.op, kernel.kind) == (OpKind.DEQUANTIZE, KernelKind.DEQUANTIZE)
    cuda = kernel.source_for(Backend.CUDA)
    assert cuda.entry == "ggufc_dequantize_q8_0_f32"
    assert kernel.source_for(Backend.METAL).entry == "ggufc_dequantize_q8_0_f32"
    # every row: ceil(100 rows x 2 parts / 128 threads) blocks
    assert [d.size for d in kernel.grid] == [2, 1, 1]
    assert [n.op for n in program.instructions() if isinstance(n, AtenNode)] == ["aten::embedding"]
    ids = torch.randint(0, 100, (1, 7))
    torch.testing.assert_close(run_program(program, [ids])[0], fx_outputs(gp, [ids])[0])


def test_op_off_the_allow_list_is_named():
    gp = parse_program(
        """
symbol s0 : [1, 64]
graph @main(%x : f32[1, s0, 8]) {
  %erf : f32[1, s0, 8] = aten.erf(%x)
  return (%erf,)
}
"""
    )
    with pytest.raises(UnsupportedError, match=r"%erf: aten::erf is not on the .*allow-list"):
        lower(gp)


def test_input_with_a_compound_symbolic_dim_is_named():
    # bound from its shape at run time and computed by a SymNode, its size would be defined
    # twice: the lowering says so instead of writing an invalid program
    gp = parse_program(
        """
symbol s0 : [1, 16]
graph @main(%x : f32[2*s0, 8], %y : f32[s0, 4]) {
  %z : f32[2*s0, 8] = aten.neg(%x)
  return (%z, %y)
}
"""
    )
    with pytest.raises(UnsupportedError, match=r"%x: dim 0 of the input is 2\*s0; .*plain symbols"):
        lower(gp)


def test_unknown_backend_is_rejected(mlp):
    gp, _ = mlp
    with pytest.raises(UnsupportedError, match="unknown backend 'vulkan'"):
        lower(gp, backends=("vulkan",))


def test_emitter_is_a_parameter(mlp):
    gp, _ = mlp
    calls = []

    def emitter(backend, fmt, kind, dtype, **geometry):
        calls.append((backend, fmt, kind, dtype))
        return emit(backend, fmt, kind, dtype, **geometry)

    lower(gp, backends=("cuda",), emitter=emitter)
    assert ("cuda", "Q4_0", "embedding", "float32") in calls
    assert {c[2] for c in calls} == {"embedding", "matvec", "matvec_batched", "matmul"}
    assert {c[0] for c in calls} == {"cuda"}


# A fused attention of 2 query groups of the s0 tokens a key head (see fuse-attention).
ATTENTION_IR = """
symbol s0 : [1, 16]

graph @main(%x : f32[2, 2, s0, 8], %k : f32[2, 24, 8], %v : f32[2, 24, 12], %visible : b8[s0, 24]) {
  %m : int(s0) = aten.sym_size.int(%visible, 0)
  %r : int(2*s0) = operator.mul(2, %m)
  %q : f32[2, 2*s0, 8] = aten.reshape(%x, [2, %r, 8])
  %out : f32[2, 2*s0, 12] = ggufc.attention(%q, %k, %v, %visible, 0.25)
  return (%out,)
}
"""


def test_attention_lowers_to_one_kernel_with_its_launch_and_runs_like_the_graph(tmp_path):
    from codegen.kernels.attention import (
        ATTENTION_KERNEL_MAX_ROWS,
        ATTENTION_SPLITS,
        ATTENTION_THREADS,
        attention_shared_bytes,
    )

    gp = parse_program(ATTENTION_IR)
    program = lower(gp)
    kernels = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert len(kernels) == 1
    node = kernels[0]
    assert (node.op, node.kind) == (OpKind.ATTENTION, KernelKind.ATTENTION)
    assert {s.backend for s in node.sources} == {Backend.METAL, Backend.CUDA}
    assert node.source_for(Backend.CUDA).dependent_launch
    splits, rows, heads = node.grid
    assert (splits.size, heads.size) == (ATTENTION_SPLITS, 2) and rows.is_symbolic
    assert [d.size for d in node.block] == [ATTENTION_THREADS, 1, 1]
    assert node.shared_memory_bytes == attention_shared_bytes(24, 12)
    args = {a.name: a.value for a in node.args}
    assert list(args) == ["rows", "tokens", "keys", "scale"]
    assert isinstance(args["rows"], SymIntRef) and isinstance(args["tokens"], SymIntRef)
    assert (args["keys"].value, args["scale"].value) == (24, 0.25)
    template = {a.name: a.value.value for a in node.template_args}
    assert template == {
        "head_dim": 8,
        "value_dim": 12,
        "kernel_max_rows": ATTENTION_KERNEL_MAX_ROWS,
    }

    def inputs(tokens, generator):
        tensors = [
            torch.randn(2, 2, tokens, 8, generator=generator),
            torch.randn(2, 24, 8, generator=generator),
            torch.randn(2, 24, 12, generator=generator),
            torch.rand(tokens, 24, generator=generator) < 0.7,
        ]
        tensors[3][:, 0] = True
        return tensors

    path = tmp_path / "attention.ggufc"
    assert_saved_program_runs_like_the_graph(gp, program, path, (1, 5), inputs)


RMS_NORM_IR = """
symbol s0 : [1, 16]
const @w : f32[8]

graph @main(%x : f32[1, 4, s0, 8], %h : f16[s0, 8]) {
  %t : f32[1, s0, 4, 8] = aten.transpose.int(%x, 1, 2)
  %a : f32[1, s0, 4, 8] = aten.rms_norm(%t, [8], @w, 1e-06)
  %b : f32[1, s0, 4, 8] = aten.rms_norm(%a, [8])
  %c : f16[s0, 8] = aten.rms_norm(%h, [8], None, 1e-05)
  return (%b, %c)
}
"""


def test_float32_rms_norm_lowers_to_the_kernel_and_runs_like_the_graph(tmp_path):
    from codegen.kernels.rms_norm import RMS_NORM_THREADS

    gp = parse_program(RMS_NORM_IR)
    program = lower(gp)
    kernels = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert [(n.op, n.kind) for n in kernels] == [(OpKind.RMS_NORM, KernelKind.RMS_NORM)] * 2
    weighted, plain = kernels
    assert (len(weighted.inputs), len(plain.inputs)) == (2, 1)
    assert all({s.backend for s in n.sources} == {Backend.METAL, Backend.CUDA} for n in kernels)
    assert [d.size for d in weighted.block] == [RMS_NORM_THREADS, 1, 1]
    assert weighted.grid[0].is_symbolic and [d.size for d in weighted.grid[1:]] == [1, 1]
    args = {a.name: a.value for a in weighted.args}
    assert isinstance(args["rows"], SymIntRef) and args["eps"].value == pytest.approx(1e-6)
    assert {a.name: a.value.value for a in weighted.template_args} == {"dim": 8}
    # aten's default eps when the graph gives none; the float16 norm stays an ATen node
    assert {a.name: a.value for a in plain.args}["eps"].value == pytest.approx(
        torch.finfo(torch.float32).eps
    )
    assert [n.op for n in program.instructions() if isinstance(n, AtenNode)].count(
        "aten::rms_norm"
    ) == 1
    assert_saved_program_runs_like_the_graph(
        gp,
        program,
        tmp_path / "rms_norm.ggufc",
        (1, 3, 9),
        lambda tokens, generator: [
            torch.randn(1, 4, tokens, 8, generator=generator),
            torch.randn(tokens, 8, generator=generator).half(),
        ],
    )


RMS_NORM_ADD_IR = """
symbol s0 : [1, 16]
const @w : f32[8]

graph @main(%x : f32[s0, 8], %r : f32[s0, 8]) {
  %a : f32[s0, 8] = ggufc.rms_norm_add(%x, @w, 1e-06, %r)
  %b : f32[s0, 8] = ggufc.rms_norm_add(%a, None, 1e-05, %x)
  %t : (f32[s0, 8], f32[s0, 8]) = ggufc.rms_norm_add_norm(%b, @w, 1e-06, %a, @w, 1e-05)
  %s : f32[s0, 8] = operator.getitem(%t, 0)
  %n : f32[s0, 8] = operator.getitem(%t, 1)
  return (%a, %b, %s, %n)
}
"""


def test_rms_norm_add_lowers_to_the_kernel_with_its_residual_and_runs_like_the_graph(tmp_path):
    """rms_norm_add and rms_norm_add_norm (two outputs, picked by the graph's getitems)."""
    gp = parse_program(RMS_NORM_ADD_IR)
    program = lower(gp)
    kernels = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert [(n.op, n.kind) for n in kernels] == [(OpKind.RMS_NORM, KernelKind.RMS_NORM)] * 3
    weighted, plain, sandwich = kernels
    # x, weight, residual / x, residual / x, weight, residual, next weight; the residual and
    # the next norm named by template args
    assert [len(k.inputs) for k in kernels] == [3, 2, 4]
    assert [len(k.outputs) for k in kernels] == [1, 1, 2]
    for kernel in (weighted, plain):
        assert {a.name: a.value.value for a in kernel.template_args} == {"dim": 8, "residual": 1}
    assert {a.name: a.value.value for a in sandwich.template_args} == {
        "dim": 8,
        "residual": 1,
        "next_norm": 1,
    }
    assert {a.name: a.value for a in sandwich.args}["next_eps"].value == pytest.approx(1e-5)
    assert {s.entry for s in weighted.sources} == {"ggufc_rms_norm_add_d8_f32"}
    assert {s.entry for s in plain.sources} == {"ggufc_rms_norm_add_d8_unweighted_f32"}
    assert {s.entry for s in sandwich.sources} == {"ggufc_rms_norm_add_norm_d8_f32"}
    assert_saved_program_runs_like_the_graph(
        gp,
        program,
        tmp_path / "rms_norm_add.ggufc",
        (1, 5),
        lambda tokens, generator: [torch.randn(tokens, 8, generator=generator) for _ in range(2)],
    )


GATED_GELU_IR = """
symbol s0 : [1, 16]

graph @main(%y : f32[s0, 16], %u : f32[s0, 8]) {
  %a : f32[s0, 8] = ggufc.gated_gelu(%y)
  %b : f32[s0, 8] = ggufc.gated_gelu(%a, %u)
  return (%a, %b)
}
"""


def test_gated_gelu_lowers_to_the_kernel_and_runs_like_the_graph(tmp_path):
    from codegen.kernels.gated_gelu import GATED_GELU_THREADS

    gp = parse_program(GATED_GELU_IR)
    program = lower(gp)
    kernels = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert [(n.op, n.kind) for n in kernels] == [(OpKind.GATED_GELU, KernelKind.GATED_GELU)] * 2
    stacked, separate = kernels
    assert [len(k.inputs) for k in kernels] == [1, 2]
    assert {s.entry for s in stacked.sources} == {"ggufc_gated_gelu_stacked_i8_f32"}
    assert {s.entry for s in separate.sources} == {"ggufc_gated_gelu_i8_f32"}
    assert [d.size for d in stacked.block] == [GATED_GELU_THREADS, 1, 1]
    assert {a.name: a.value.value for a in stacked.template_args} == {"inner": 8}
    assert_saved_program_runs_like_the_graph(
        gp,
        program,
        tmp_path / "gated_gelu.ggufc",
        (1, 5),
        lambda tokens, generator: [
            torch.randn(tokens, 16, generator=generator),
            torch.randn(tokens, 8, generator=generator),
        ],
    )


ROTARY_IR = """
symbol s0 : [1, 16]

graph @main(%x : f32[1, 4, s0, 8], %cos : f32[s0, 8], %sin : f32[s0, 8]) {
  %y : f32[1, 4, s0, 8] = ggufc.rotary(%x, %cos, %sin)
  return (%y,)
}
"""


def test_rotary_lowers_to_the_kernel_and_runs_like_the_graph(tmp_path):
    from codegen.kernels.rotary import ROTARY_THREADS

    gp = parse_program(ROTARY_IR)
    program = lower(gp)
    (node,) = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert (node.op, node.kind) == (OpKind.ROTARY, KernelKind.ROTARY)
    assert {s.backend for s in node.sources} == {Backend.METAL, Backend.CUDA}
    assert [d.size for d in node.block] == [ROTARY_THREADS, 1, 1]
    assert node.grid[0].is_symbolic and [d.size for d in node.grid[1:]] == [1, 1]
    args = {a.name: a.value for a in node.args}
    assert isinstance(args["rows"], SymIntRef) and isinstance(args["tokens"], SymIntRef)
    assert {a.name: a.value.value for a in node.template_args} == {"dim": 8}
    assert_saved_program_runs_like_the_graph(
        gp,
        program,
        tmp_path / "rotary.ggufc",
        (1, 5),
        lambda tokens, generator: [
            torch.randn(1, 4, tokens, 8, generator=generator),
            torch.randn(tokens, 8, generator=generator),
            torch.randn(tokens, 8, generator=generator),
        ],
    )


ROTARY_NORMED_IR = """
symbol s0 : [1, 16]
const @w : f32[64]

graph @main(%x : f32[1, 4, s0, 64], %cos : f32[s0, 64], %sin : f32[s0, 64]) {
  %y : f32[1, 4, s0, 64] = ggufc.rotary(%x, %cos, %sin, @w, 1e-06)
  %z : f32[1, 4, s0, 64] = ggufc.rotary(%x, %cos, %sin, None, 1e-05)
  return (%y, %z)
}
"""


def test_rotary_with_a_norm_lowers_to_the_normed_kernel_and_runs_like_the_graph(tmp_path):
    from codegen.kernels import rotary
    from passes import fuse_rotary

    # the pass folds norms only for the dims the kernel takes
    assert (fuse_rotary.NORMED_DIM_MULTIPLE, fuse_rotary.NORMED_MAX_DIM) == (
        rotary.NORMED_DIM_MULTIPLE,
        rotary.NORMED_MAX_DIM,
    )
    gp = parse_program(ROTARY_NORMED_IR)
    program = lower(gp)
    weighted, plain = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert (len(weighted.inputs), len(plain.inputs)) == (4, 3)
    assert {a.name: a.value.value for a in weighted.args if a.name == "eps"} == {
        "eps": pytest.approx(1e-6)
    }
    assert [d.size for d in weighted.block] == [rotary.rotary_threads(True), 1, 1]
    assert weighted.sources[0].entry != plain.sources[0].entry
    assert_saved_program_runs_like_the_graph(
        gp,
        program,
        tmp_path / "rotary_normed.ggufc",
        (1, 5),
        lambda tokens, generator: [
            torch.randn(1, 4, tokens, 64, generator=generator),
            torch.randn(tokens, 64, generator=generator),
            torch.randn(tokens, 64, generator=generator),
        ],
    )
