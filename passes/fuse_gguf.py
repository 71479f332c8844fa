"""`fuse-gguf`: run every GGUF weight consumer on the raw blocks.

Front ends emit ``W = ggufc.dequantize(blocks, fmt, n, k, dtype)`` followed by ordinary
consumers (``aten.linear``, ``aten.embedding``, and the ``mm``/``addmm``/``matmul`` forms
export and `run_decompositions` produce).  The patterns of `passes.fuse_gguf_patterns`, one
per form, turn each consumer into ``ggufc.linear`` / ``ggufc.embedding`` on ``blocks``, through
the greedy rewrite driver.  A dequantize whose consumers are all fused becomes dead and is
erased; a blob used by several consumers (a tied token embedding and lm_head) gets one fused
op per consumer, all reading the same constant.

Statistics: ``fused-linear``, ``fused-embedding`` (fused ops after the pass that were not there
before) and ``unfused-dequantize`` (dequantize nodes of a selected format still in the graph:
some consumer could not be fused).  With ``require-fused=true`` any leftover is a PassError
that lists each dequantize and its consumers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.fx

from compiler import formats as gguf_formats
from compiler import ops
from compiler.errors import PassError
from passes.fuse_gguf_patterns import as_dequantized, fuse_gguf_patterns
from passes.pass_base import Pass, option
from passes.rewrite.driver import DEFAULT_MAX_ITERATIONS, GreedyConfig, apply_patterns_greedily
from passes.rewrite.listener import describe_target

ALL_FORMATS: tuple[str, ...] = tuple(gguf_formats.FORMATS)


@dataclass(frozen=True)
class FuseGguf(Pass):
    """Fuse ggufc.dequantize + linear/mm/matmul/embedding into ggufc.linear/ggufc.embedding."""

    name: ClassVar[str] = "fuse-gguf"
    formats: tuple[str, ...] = option(ALL_FORMATS, "GGUF formats whose consumers are fused")
    require_fused: bool = option(False, "fail if any ggufc.dequantize of those formats is left")
    max_iterations: int = option(DEFAULT_MAX_ITERATIONS, "cap on greedy sweeps over the graph")

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in gguf_formats.FORMATS]
        if unknown:
            raise PassError(
                f"fuse-gguf: unknown format(s) {', '.join(unknown)} in formats=; "
                f"known: {', '.join(ALL_FORMATS)}"
            )

    def run(self, program, context) -> bool:
        before = _count_fused(program.graph)
        config = GreedyConfig(max_iterations=self.max_iterations)
        changed = apply_patterns_greedily(
            program, fuse_gguf_patterns(self.formats), context, config, self.name
        )
        after = _count_fused(program.graph)
        context.count("fused-linear", after[ops.linear] - before[ops.linear])
        context.count("fused-embedding", after[ops.embedding] - before[ops.embedding])
        leftovers = self.leftover_dequantizes(program.graph)
        context.count("unfused-dequantize", len(leftovers))
        if leftovers and self.require_fused:
            listing = "; ".join(_describe_leftover(node) for node in leftovers)
            raise PassError(
                f"fuse-gguf: require-fused=true but {len(leftovers)} ggufc.dequantize node(s) "
                f"could not be fused: {listing}"
            )
        return changed

    def leftover_dequantizes(self, graph: torch.fx.Graph) -> list[torch.fx.Node]:
        """The dequantize nodes of the selected formats still in `graph`."""
        selected = frozenset(self.formats)
        return [node for node in graph.nodes if as_dequantized(node, selected) is not None]


def _count_fused(graph: torch.fx.Graph) -> dict:
    counts = {ops.linear: 0, ops.embedding: 0}
    for node in graph.nodes:
        if node.op == "call_function" and node.target in counts:
            counts[node.target] += 1
    return counts


def _describe_leftover(node: torch.fx.Node) -> str:
    weight = as_dequantized(node, ALL_FORMATS)
    source = weight.blocks.target if weight.blocks.op == "get_attr" else f"%{weight.blocks.name}"
    users = ", ".join(f"%{user.name} ({describe_target(user)})" for user in node.users)
    return f"%{node.name} ({weight.fmt} of {source}) used by {users or 'nothing'}"


__all__ = ["ALL_FORMATS", "FuseGguf"]
