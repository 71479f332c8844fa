"""split-dynamic-m on an exported, fused model: for every region mode, each M runs the
kernel of its bucket, and the outputs are exactly those of the fused program (the branches
are copies of the same ops; the CPU reference ignores the kernel name)."""

from __future__ import annotations

import pytest
import torch
from gguf_pass_helpers import KernelRecorder, all_graph_nodes, count_targets, run_program
from test_fuse_gguf_exports import VOCAB, export

from compiler import ops
from passes import PassManager
from passes.regions import graph_view, is_convex
from passes.split_dynamic_m import SplitDynamicM

# M at each bucket edge of float32-buckets=1,8 (the exported model runs float32), and a large M.
M_AND_KERNEL = [
    (1, "matvec"),
    (2, "matvec_batched"),
    (8, "matvec_batched"),
    (9, "matmul"),
    (33, "matmul"),
]
LINEARS = 6
COND = torch.ops.higher_order.cond


@pytest.fixture(scope="module")
def fused_program():
    program = export(torch.float32, decompose=True)
    PassManager("fuse-gguf,canonicalize,cse", verify=True).run(program)
    return program


def split(program, options: str):
    result = program.copy()
    PassManager(f"split-dynamic-m{options},dce", verify=True).run(result)
    return result


@pytest.mark.parametrize("region, conds", [("op", LINEARS), ("layer", LINEARS), ("max", 1)])
def test_each_m_runs_its_buckets_kernel(fused_program, region, conds):
    program = split(fused_program, f"{{float32-buckets=1,8,region={region}}}")  # M_AND_KERNEL's
    assert count_targets(program.graph, COND) == conds
    assert count_targets(program.graph, ops.linear) == 0, "every linear moved into a branch"
    for m, kernel in M_AND_KERNEL:
        tokens = torch.randint(0, VOCAB, (1, m), generator=torch.Generator().manual_seed(m))
        expected = run_program(fused_program, tokens)
        recorder = KernelRecorder()
        with recorder:
            actual = run_program(program, tokens)
        assert recorder.kernels == [kernel] * LINEARS, f"M={m}"
        for a, e in zip(actual, expected, strict=True):
            torch.testing.assert_close(a, e, atol=0, rtol=0)


def test_every_branch_is_convex_in_the_original_graph(fused_program):
    """The nodes copied into a branch form a convex set of the graph they came from."""
    program = split(fused_program, "{float32-buckets=1,8,region=max}")
    view = graph_view(fused_program.graph)
    by_name = {n.name: n for n in fused_program.graph.nodes}
    leaves = [
        child
        for child in program.graph_module.modules()
        if isinstance(child, torch.fx.GraphModule)
        and count_targets(child.graph, COND) == 0
        and child is not program.graph_module
    ]
    assert len(leaves) == 3
    for leaf in leaves:
        copied = [by_name[n.name] for n in leaf.graph.nodes if n.op == "call_function"]
        assert is_convex(view, copied)
        kernels = {n.args[6] for n in leaf.graph.nodes if n.target is ops.linear}
        assert len(kernels) == 1


def test_static_m_needs_no_branch():
    program = export(torch.float32, decompose=False)
    PassManager("fuse-gguf", verify=True).run(program)
    # Narrow M's range to 2..8: only the matvec_batched bucket of 1,8 is reachable (and with
    # the float32 defaults, 16, only the matvec's)
    (symbol,) = program.symbol_ranges
    program.symbol_ranges[symbol] = (2, 8)
    for options, kernel in (("{float32-buckets=1,8}", "matvec_batched"), ("", "matvec")):
        result = program.copy()
        PassManager(f"split-dynamic-m{options}", verify=True).run(result)
        assert count_targets(result.graph, COND) == 0
        kernels = {n.args[6] for n in result.graph.nodes if n.target is ops.linear}
        assert kernels == {kernel}, options


def test_pass_is_idempotent(fused_program):
    program = split(fused_program, "")
    nodes = sum(1 for _ in all_graph_nodes(program.graph_module))
    PassManager("split-dynamic-m", verify=True).run(program)
    assert sum(1 for _ in all_graph_nodes(program.graph_module)) == nodes


def test_options_round_trip():
    assert str(SplitDynamicM()) == "split-dynamic-m"
    assert str(SplitDynamicM(buckets=(2, 16), region="layer")) == (
        "split-dynamic-m{buckets=2,16,region=layer}"
    )
    assert str(SplitDynamicM(float32_buckets=(3,))) == "split-dynamic-m{float32-buckets=3}"
    assert [b.kernel for b in SplitDynamicM(buckets=(4,)).bucket_list()] == ["matvec", "matmul"]
    # each dtype's linears take their own option
    split = SplitDynamicM(buckets=(4,), float32_buckets=(1, 8))
    assert [b.high for b in split.bucket_list(torch.bfloat16)] == [4, float("inf")]
    assert [b.kernel for b in split.bucket_list(torch.float32)] == [
        "matvec",
        "matvec_batched",
        "matmul",
    ]


def test_split_program_prints_parses_and_runs_as_python(fused_program):
    """The dump of a split program parses back to the same dump, and the generated Python
    code of the graph module (not only the interpreter) runs every bucket."""
    from compiler.ir.parser import parse_program
    from compiler.ir.printer import print_program

    program = split(fused_program, "{float32-buckets=1,8}")
    text = print_program(program)
    assert print_program(parse_program(text)) == text
    program.graph_module.recompile()
    for m, _ in M_AND_KERNEL:
        tokens = torch.randint(0, VOCAB, (1, m), generator=torch.Generator().manual_seed(m))
        (expected,) = run_program(fused_program, tokens)
        with torch.no_grad():
            (actual,) = program.graph_module(tokens)
        torch.testing.assert_close(actual, expected, atol=0, rtol=0)
