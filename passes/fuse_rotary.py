"""`fuse-rotary`: a spelled-out rotate-half rotary embedding becomes one ``ggufc.rotary``.

A front end writes RoPE's rotate-half form as ``x * cos + roll(x, D/2) * sin`` (the
rotation's sign folded into ``sin``), and export keeps three ops: a roll, a mul and an
addcmul, three kernel launches on CUDA for each of q and k in every layer (Gemma 3 270M:
108 a decode step, each ~1.4 us for a few KB).  ``ggufc.rotary(x, cos, sin)`` is the same
function in one op, one kernel.

| pattern | matches | becomes |
|---|---|---|
| fuse-rotary | ``addcmul(mul(x, cos), roll(x, [D/2], [last dim]), sin)`` (either operand order of the mul and of addcmul's product; value 1), float32, ``cos`` and ``sin`` ``[M, D]`` for ``x: [..., M, D]`` | ``ggufc.rotary(x, cos, sin)`` |
| fold-rms-norm-into-rotary | ``ggufc.rotary(rms_norm(x, [D], w, eps), cos, sin)`` (and fuse-rotary itself, when the norm feeds only the roll and the mul), the norm single-use, float32, eps a number, D a multiple of 64 up to 1024 (what the fused kernel takes: a lane holds a row's element pairs) | ``ggufc.rotary(x, cos, sin, w, eps)`` |

Why it is the same function: the reference of ``ggufc.rotary`` is those three ops; its
kernels compute each element as ``fma(x[partner], sin, x * cos)``, which may round once
where addcmul rounds twice, so outputs agree to float32 rounding.  The roll and the mul
must have no other user, so nothing is computed twice.

The fold saves a model's per-head q / k norm its own launch (Gemma 3 270M: 36 a decode step).

Statistics: ``fused-rotary`` (ggufc.rotary nodes the pass made), ``folded-rms-norm`` (norms
folded into one).
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

FUSED_DTYPES = ops.ROTARY_DTYPES


def _half_roll_of(node) -> Node | None:
    """``roll(x, [D/2], [last dim])`` with a single use -> x."""
    if not is_call(node, aten.roll.default) or len(node.users) != 1:
        return None
    args = bound_arguments(node)
    x, shifts, dims = args["self"], args["shifts"], args["dims"]
    x_fake = tensor_value(x)
    if x_fake is None or x_fake.dim() < 2:
        return None
    last = x_fake.shape[-1]
    if not isinstance(last, int) or last % 2 or list(shifts) != [last // 2]:
        return None
    if len(dims) != 1 or normalize_dim(dims[0], x_fake.dim()) != x_fake.dim() - 1:
        return None
    return x


def _table(value, x_fake) -> bool:
    """True for a float32 ``[M, D]`` tensor matching ``x: [..., M, D]``."""
    fake = tensor_value(value)
    return (
        fake is not None
        and fake.dtype in FUSED_DTYPES
        and fake.dim() == 2
        and same_dims(list(fake.shape), list(x_fake.shape[-2:]))
    )


class FuseRotary(RewritePattern):
    name = "fuse-rotary"
    root_targets = (aten.addcmul.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        args = bound_arguments(node)
        if args["value"] != 1:
            return False
        product = args["self"]
        for rolled, sin in ((args["tensor1"], args["tensor2"]), (args["tensor2"], args["tensor1"])):
            x = _half_roll_of(rolled)
            if x is not None:
                break
        else:
            return False
        if not is_call(product, aten.mul.Tensor) or len(product.users) != 1:
            return False
        a, b = product.args[0], product.args[1]
        if a is x:
            cos = b
        elif b is x:
            cos = a
        else:
            return False
        x_fake, out = tensor_value(x), tensor_value(node)
        if x_fake.dtype not in FUSED_DTYPES or out is None or out.dtype != x_fake.dtype:
            return False
        if not (_table(cos, x_fake) and _table(sin, x_fake)):
            return False
        if not same_dims(list(out.shape), list(x_fake.shape)):
            return False
        # the norm that feeds x, when only this rotary reads it, goes into the same op
        found = _foldable_norm(x, {rolled, product})
        operands = (found[0], cos, sin, found[1], found[2]) if found else (x, cos, sin)
        fused = rewriter.call_function(ops.rotary, operands, before=node, meta_from=node)
        rewriter.replace_node(node, fused)
        return True


# Head dims the fused norm-and-rotary kernel takes (`codegen.kernels.rotary`): a lane holds
# elements d and d + D/2 of a row when D/2 is a multiple of the warp's 32 lanes.
NORMED_DIM_MULTIPLE = 64
NORMED_MAX_DIM = 1024


def _foldable_norm(norm, users: set) -> tuple | None:
    """(x, weight, eps) of ``norm`` when it is a float32 ``rms_norm(x, [D], weight, eps)`` read
    only by ``users``, with a number eps and a D the fused kernel takes; else None."""
    if not is_call(norm, aten.rms_norm.default) or set(norm.users) - users:
        return None
    args = bound_arguments(norm)
    x, shape, weight, eps = (args[name] for name in ("input", "normalized_shape", "weight", "eps"))
    x_fake = tensor_value(x)
    if x_fake is None or x_fake.dtype not in FUSED_DTYPES or isinstance(eps, bool):
        return None
    dim = x_fake.shape[-1]
    if not isinstance(eps, (int, float)) or not isinstance(dim, int) or list(shape) != [dim]:
        return None
    if dim % NORMED_DIM_MULTIPLE or dim > NORMED_MAX_DIM:
        return None
    if weight is not None:
        w_fake = tensor_value(weight)
        if w_fake is None or w_fake.dtype != x_fake.dtype or list(w_fake.shape) != [dim]:
            return None
    return x, weight, float(eps)


class FoldRmsNormIntoRotary(RewritePattern):
    name = "fold-rms-norm-into-rotary"
    root_targets = (ops.rotary,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        args = bound_arguments(node)
        if args["norm_eps"] is not None:
            return False
        found = _foldable_norm(args["x"], {node})
        if found is None:
            return False
        x, weight, eps = found
        fused = rewriter.call_function(
            ops.rotary, (x, args["cos"], args["sin"], weight, eps), before=node, meta_from=node
        )
        rewriter.replace_node(node, fused)
        return True


@dataclass(frozen=True)
class FuseRotaryPass(Pass):
    """Turn spelled-out float32 rotate-half rotary embeddings (roll, mul, addcmul) into
    ggufc.rotary, with the RMSNorm that feeds one folded in."""

    name: ClassVar[str] = "fuse-rotary"
    max_iterations: int = option(DEFAULT_MAX_ITERATIONS, "cap on greedy sweeps over the graph")

    def run(self, program, context) -> bool:
        config = GreedyConfig(max_iterations=self.max_iterations)
        before = _count(program.graph)
        normed_before = _count(program.graph, normed=True)
        patterns = [FuseRotary(), FoldRmsNormIntoRotary()]
        changed = apply_patterns_greedily(program, patterns, context, config, self.name)
        context.count("fused-rotary", _count(program.graph) - before)
        context.count("folded-rms-norm", _count(program.graph, normed=True) - normed_before)
        return changed


def _count(graph: torch.fx.Graph, normed: bool = False) -> int:
    """ggufc.rotary nodes (with a norm folded in, when ``normed``)."""
    return sum(
        1
        for node in graph.nodes
        if is_call(node, ops.rotary)
        and (not normed or bound_arguments(node)["norm_eps"] is not None)
    )


__all__ = ["FoldRmsNormIntoRotary", "FuseRotary", "FuseRotaryPass"]
