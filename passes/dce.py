"""`dce`: erase every node whose value is unused and whose op has no side effect, and every
constant no node reads any more.  One reverse sweep: a node's users come after it, so by the
time a node is visited all of its users have been visited (and erased if dead)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from passes.effects import is_pure
from passes.pass_base import Pass


@dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Erase unused side-effect-free nodes and unreferenced constants."""

    name: ClassVar[str] = "dce"

    def run(self, program, context) -> bool:
        rewriter = context.rewriter(program, self.name)
        erased = 0
        for node in reversed(program.graph.nodes):
            if node.users or not is_pure(node):
                continue
            rewriter.erase_node(node)
            erased += 1
        context.count("erased-nodes", erased)
        return erased > 0
