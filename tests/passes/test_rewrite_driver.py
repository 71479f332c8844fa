"""The greedy rewrite driver: the per-target index, benefit order, worklist, listeners,
debug counter, convergence check and the contract patterns must keep."""

from __future__ import annotations

import operator

import pytest
import torch

from compiler.errors import PassError, PipelineParseError
from compiler.ir.parser import parse_program
from passes.context import PassContext
from passes.rewrite import (
    GreedyConfig,
    PatternSet,
    RewriteListener,
    RewritePattern,
    apply_patterns_greedily,
    parse_debug_counter,
)
from passes.statistics import PassStatistics

aten = torch.ops.aten

PROGRAM = """
symbol s0 : [2, 64]

graph @main(%x : f32[s0, 8]) {
  %m1 : f32[s0, 8] = aten.mul.Tensor(%x, 1)
  %e1 : f32[s0, 8] = aten.exp(%m1)
  %m2 : f32[s0, 8] = aten.mul.Tensor(%e1, 1)
  %n1 : f32[s0, 8] = aten.neg(%m2)
  %m3 : f32[s0, 8] = aten.mul.Tensor(%n1, 1)
  return (%m3,)
}
"""


class MulOne(RewritePattern):
    name = "mul-one"
    root_targets = (aten.mul.Tensor,)

    def match_and_rewrite(self, node, rewriter):
        if node.args[1] != 1:
            return False
        rewriter.replace_node(node, node.args[0])
        return True


class NegToExp(RewritePattern):
    """Rooted at the whole aten.neg packet; turns neg into exp (for ordering tests)."""

    name = "neg-to-exp"
    root_targets = (aten.neg,)
    benefit = 1

    def match_and_rewrite(self, node, rewriter):
        new = rewriter.call_function(aten.exp.default, node.args, before=node, meta_from=node)
        rewriter.replace_node(node, new)
        return True


class NegToRelu(NegToExp):
    name = "neg-to-relu"
    benefit = 5

    def match_and_rewrite(self, node, rewriter):
        new = rewriter.call_function(aten.relu.default, node.args, before=node, meta_from=node)
        rewriter.replace_node(node, new)
        return True


def targets(program):
    return [n.target for n in program.graph.nodes if n.op == "call_function"]


DEFAULT_CONFIG = GreedyConfig()


def run(program, patterns, config=DEFAULT_CONFIG, **context_fields):
    context = PassContext(statistics=PassStatistics("test"), **context_fields)
    changed = apply_patterns_greedily(program, patterns, context, config, "test")
    return changed, context.statistics


def test_patterns_only_meet_nodes_of_their_root_target():
    program = parse_program(PROGRAM)
    changed, stats = run(program, [MulOne()])
    assert changed
    assert targets(program) == [aten.exp.default, aten.neg.default]
    # 3 mul nodes, each tried once; exp and neg were never offered to the pattern.
    assert stats.patterns["mul-one"].attempts == 3
    assert stats.patterns["mul-one"].rewrites == 3
    assert stats.patterns["mul-one"].erased == 3
    assert stats.counters["iterations"] == 1


def test_higher_benefit_first_and_overload_packets_match():
    program = parse_program(PROGRAM)
    run(program, [NegToExp(), NegToRelu(), MulOne()])
    assert aten.relu.default in targets(program)
    assert aten.exp.default in targets(program)
    assert aten.neg.default not in targets(program)


def test_pattern_set_rejects_nameless_duplicate_and_rootless_patterns():
    class Nameless(MulOne):
        name = ""

    class Rootless(MulOne):
        name = "rootless"
        root_targets = ()

    with pytest.raises(PassError, match="has no name"):
        PatternSet([Nameless()])
    with pytest.raises(PassError, match="two patterns are named"):
        PatternSet([MulOne(), MulOne()])
    with pytest.raises(PassError, match="no root_targets"):
        PatternSet([Rootless()])
    assert PatternSet([MulOne()]).for_target(operator.getitem) == ()


def test_listener_sees_every_edit():
    events = []

    class Recorder(RewriteListener):
        def node_inserted(self, origin, node):
            events.append(("insert", origin, node.target))

        def node_erased(self, origin, node):
            events.append(("erase", origin, node.name))

        def node_replaced(self, origin, old, new):
            events.append(("replace", origin, old.name, new.name))

    program = parse_program(PROGRAM)
    run(program, [NegToExp()], listeners=[Recorder()])
    assert events == [
        ("insert", "neg-to-exp", aten.exp.default),
        ("replace", "neg-to-exp", "n1", events[1][3]),
        ("erase", "neg-to-exp", "n1"),
    ]


def test_debug_counter_skips_then_counts():
    counter = parse_debug_counter("mul-one-skip=1,mul-one-count=1")
    program = parse_program(PROGRAM)
    _, stats = run(program, [MulOne()], debug_counter=counter)
    # match 1 skipped, match 2 applied, match 3 skipped: m1 and m3 stay.
    assert [n.name for n in program.graph.nodes if n.target == aten.mul.Tensor] == ["m1", "m3"]
    assert (stats.patterns["mul-one"].matches, stats.patterns["mul-one"].rewrites) == (3, 1)
    assert counter.unused_names() == []


@pytest.mark.parametrize("text", ["mul-one", "mul-one-skip=x", "mul-one-skip=-1", "-count=1"])
def test_debug_counter_syntax_errors(text):
    with pytest.raises(PipelineParseError, match="expected NAME-skip=N or NAME-count=M"):
        parse_debug_counter(text)


def test_pattern_that_edits_but_returns_false_is_an_error():
    class Liar(MulOne):
        name = "liar"

        def match_and_rewrite(self, node, rewriter):
            super().match_and_rewrite(node, rewriter)
            return False

    with pytest.raises(PassError, match="pattern 'liar' edited the graph at %m1 but returned"):
        run(parse_program(PROGRAM), [Liar()])


def test_pattern_exception_names_pattern_and_node():
    class Broken(MulOne):
        name = "broken"

        def match_and_rewrite(self, node, rewriter):
            raise IndexError("oops")

    with pytest.raises(PassError, match="test: pattern 'broken' failed on %m1: IndexError: oops"):
        run(parse_program(PROGRAM), [Broken()])


def test_max_iterations_must_be_positive():
    with pytest.raises(PassError, match="max-iterations must be at least 1"):
        run(parse_program(PROGRAM), [MulOne()], GreedyConfig(max_iterations=0))


def test_long_chain_folds_in_one_sweep():
    length = 400
    lines = ["symbol s0 : [2, 64]", "", "graph @main(%x : f32[s0, 8]) {"]
    previous = "x"
    for i in range(length):
        lines.append(f"  %m{i} : f32[s0, 8] = aten.mul.Tensor(%{previous}, 1)")
        previous = f"m{i}"
    lines += [f"  %out : f32[s0, 8] = aten.exp(%{previous})", "  return (%out,)", "}"]
    program = parse_program("\n".join(lines) + "\n")
    _, stats = run(program, [MulOne()])
    assert targets(program) == [aten.exp.default]
    assert stats.counters["iterations"] == 1
    assert stats.patterns["mul-one"].attempts == length
