"""Deliberately broken passes for the instrumentation tests, loaded with
`ggufc opt --load-pass %S/broken_passes.py:CLASS` (never registered by default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from passes.pass_base import Pass, option
from passes.rewrite.driver import GreedyConfig, apply_patterns_greedily
from passes.rewrite.pattern import RewritePattern

aten = torch.ops.aten


@dataclass(frozen=True)
class TurnAddIntoSub(Pass):
    """Rewrite the first aten.add.Tensor into aten.sub.Tensor (wrong numerics, valid IR)."""

    name: ClassVar[str] = "test-add-to-sub"

    def run(self, program, context) -> bool:
        for node in program.graph.nodes:
            if node.target == aten.add.Tensor:
                rewriter = context.rewriter(program)
                new = rewriter.call_function(
                    aten.sub.Tensor, node.args, node.kwargs, before=node, meta_from=node
                )
                rewriter.replace_node(node, new)
                return True
        return False


@dataclass(frozen=True)
class DropMeta(Pass):
    """Delete meta['val'] of the first call node (breaks verification)."""

    name: ClassVar[str] = "test-drop-meta"

    def run(self, program, context) -> bool:
        for node in program.graph.nodes:
            if node.op == "call_function":
                del node.meta["val"]
                return True
        return False


@dataclass(frozen=True)
class AddDanglingConstant(Pass):
    """Attach a tensor no node reads (breaks verification: dangling constant)."""

    name: ClassVar[str] = "test-dangle"

    def run(self, program, context) -> bool:
        program.graph_module.register_buffer("orphan", torch.zeros(2))
        return True


@dataclass(frozen=True)
class Crash(Pass):
    """Raise an exception (a buggy pass)."""

    name: ClassVar[str] = "test-crash"
    message: str = option("boom", "text of the exception")

    def run(self, program, context) -> bool:
        raise RuntimeError(self.message)


class SwapAddOperands(RewritePattern):
    """a + b -> b + a: never reaches a fixpoint."""

    name = "swap-add-operands"
    root_targets = (aten.add.Tensor,)

    def match_and_rewrite(self, node, rewriter) -> bool:
        a, b = node.args[:2]
        if not isinstance(b, torch.fx.Node):
            return False
        rewriter.update_args(node, (b, a) + tuple(node.args[2:]))
        return True


@dataclass(frozen=True)
class SwapForever(Pass):
    """Apply swap-add-operands greedily (a pattern set without a fixpoint)."""

    name: ClassVar[str] = "test-swap-forever"
    max_iterations: int = option(3, "iteration cap")
    test_convergence: bool = option(False, "fail if the cap is hit")

    def run(self, program, context) -> bool:
        config = GreedyConfig(self.max_iterations, self.test_convergence)
        return apply_patterns_greedily(program, [SwapAddOperands()], context, config, self.name)


@dataclass(frozen=True)
class RelabelGgufFormat(Pass):
    """Change the format argument of every ggufc op (blocks no longer fit it)."""

    name: ClassVar[str] = "test-relabel-format"
    fmt: str = option("Q4_K", "the wrong format to write")

    def run(self, program, context) -> bool:
        changed = False
        rewriter = context.rewriter(program)
        for node in program.graph.nodes:
            if str(node.target).startswith("ggufc."):
                args = list(node.args)
                fmt_index = [a.name for a in node.target._schema.arguments].index("fmt")
                args[fmt_index] = self.fmt
                rewriter.update_args(node, tuple(args))
                changed = True
        return changed
