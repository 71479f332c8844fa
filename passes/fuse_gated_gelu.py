"""`fuse-gated-gelu`: a GeGLU activation, ``gelu(gate, approximate="tanh") * up``, becomes one
``ggufc.gated_gelu``.

A GeGLU MLP (Gemma's) multiplies the tanh-approximated GELU of its gate projection by its up
projection: two elementwise kernels on CUDA (Gemma 3 270M: 36 launches a decode step, ~1.2
us each).  ``ggufc.gated_gelu`` is the same function in one op, one kernel.  When the gate
and up are the two halves of one tensor's last dim (the stacked projection
`fuse-sibling-linears` makes), the op takes that tensor and its kernel reads the halves in
place, so neither slice is copied.

| pattern | matches | becomes |
|---|---|---|
| fuse-gated-gelu | ``mul(gelu(g, "tanh"), u)`` (either operand order), float32, g and u of one shape, the gelu single-use; g = ``slice(y, last, 0, I)`` and u = ``slice(y, last, I, 2I)`` of a y with last dim 2I | ``ggufc.gated_gelu(y)``; otherwise ``ggufc.gated_gelu(g, u)`` |

Why it is the same function: the reference of ``ggufc.gated_gelu`` is those ops; its kernels
compute the GELU with their own tanh, so outputs agree to float32 rounding.

Statistic: ``fused-gated-gelu`` (ggufc.gated_gelu nodes the pass made).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.fx

from compiler import ops
from passes.fuse_gguf_patterns import bound_arguments, is_call
from passes.pass_base import Pass, option
from passes.rewrite.driver import DEFAULT_MAX_ITERATIONS, GreedyConfig, apply_patterns_greedily
from passes.rewrite.pattern import RewritePattern
from passes.rewrite.rewriter import Rewriter
from passes.shape_facts import normalize_dim, same_dims, tensor_value

Node = torch.fx.Node
aten = torch.ops.aten


def _halves(gate, up):
    """The y of ``gate = slice(y, last, 0, I)``, ``up = slice(y, last, I, 2I)`` (step 1) where
    y's last dim is 2I, else None."""
    if not (is_call(gate, aten.slice.Tensor) and is_call(up, aten.slice.Tensor)):
        return None
    g, u = bound_arguments(gate), bound_arguments(up)
    y = g["self"]
    if u["self"] is not y or g["step"] != 1 or u["step"] != 1:
        return None
    y_value = tensor_value(y)
    if y_value is None:
        return None
    last = y_value.dim() - 1
    width = y_value.shape[-1]
    if not isinstance(width, int) or width % 2:
        return None
    half = width // 2
    if (
        normalize_dim(g["dim"], y_value.dim()) != last
        or normalize_dim(u["dim"], y_value.dim()) != last
    ):
        return None
    if (g["start"], g["end"], u["start"], u["end"]) != (0, half, half, width):
        return None
    return y


class FuseGatedGelu(RewritePattern):
    name = "fuse-gated-gelu"
    root_targets = (aten.mul.Tensor,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        for gelu in node.args[:2]:
            if not is_call(gelu, aten.gelu.default) or len(gelu.users) != 1:
                continue
            if bound_arguments(gelu)["approximate"] != ops.GATED_GELU_APPROXIMATE:
                continue
            gate = gelu.args[0]
            up = node.args[1] if node.args[0] is gelu else node.args[0]
            values = [tensor_value(v) for v in (gate, up, node)]
            if any(v is None or v.dtype not in ops.GATED_GELU_DTYPES for v in values):
                continue
            if not all(same_dims(v.shape, values[0].shape) for v in values[1:]):
                continue  # the mul broadcast one side
            stacked = _halves(gate, up)
            args = (stacked,) if stacked is not None else (gate, up)
            fused = rewriter.call_function(ops.gated_gelu, args, before=node, meta_from=node)
            rewriter.replace_node(node, fused)
            return True
        return False


@dataclass(frozen=True)
class FuseGatedGeluPass(Pass):
    """Turn float32 ``gelu(gate, "tanh") * up`` into ggufc.gated_gelu (reading a stacked
    gate / up projection's halves in place)."""

    name: ClassVar[str] = "fuse-gated-gelu"
    max_iterations: int = option(DEFAULT_MAX_ITERATIONS, "cap on greedy sweeps over the graph")

    def run(self, program, context) -> bool:
        config = GreedyConfig(max_iterations=self.max_iterations)
        before = _count(program.graph)
        changed = apply_patterns_greedily(program, [FuseGatedGelu()], context, config, self.name)
        context.count("fused-gated-gelu", _count(program.graph) - before)
        return changed


def _count(graph: torch.fx.Graph) -> int:
    return sum(1 for node in graph.nodes if is_call(node, ops.gated_gelu))


__all__ = ["FuseGatedGelu", "FuseGatedGeluPass"]
