"""`fuse-rms-norm`: one ``aten.rms_norm`` node for each RMSNorm spelled out in elementary ops,
and ``ggufc.rms_norm_add`` where a residual add follows one.

A front end writes RMSNorm as ``x * rsqrt(mean(x^2, -1, keepdim) + eps) * w`` and export keeps
the pieces: six ops, so six kernel launches a norm on CUDA (Gemma 3 270M has 109 norms a
decode step, ~35% of the kernels of a step).  ``aten.rms_norm`` is the same function in one op,
one kernel on CUDA (torch's fused layer-norm kernel; H100: 2.3 us against 8.6 us for the six).

| pattern | matches | becomes |
|---|---|---|
| fuse-rms-norm | ``mul(x, rsqrt(add(mean(pow(x, 2), [-1], True), eps)))`` (either operand order of mul and add) | ``aten.rms_norm(x, [D], None, eps)`` |
| fold-rms-norm-weight | ``mul(rms_norm(x, [D], None, eps), w)``, w of shape [D] | ``aten.rms_norm(x, [D], w, eps)`` |
| fold-residual-add | ``add(r, rms_norm(x, [D], w, eps))`` (either order, alpha 1), float32 x and r of one shape, D static, w None or float32 [D] | ``ggufc.rms_norm_add(x, w, eps, r)`` |
| fold-next-norm | ``rms_norm(s, [D], w2, eps2)`` of ``s = rms_norm_add(x, w, eps, r)``, w and w2 float32 [D] | ``t = ggufc.rms_norm_add_norm(x, w, eps, r, w2, eps2)``; s -> ``t[0]``, the norm -> ``t[1]`` |

Why it is the same function: ``aten.rms_norm(x, [D], w, eps) = x * rsqrt(mean(x^2 over the
last dim) + eps) * w``.  The fused kernel sums the squares in its own order and its rsqrt may
differ in the last bit, so outputs agree to float32 rounding (relative 1e-6), not bit for
bit: this is a fusion, not a canonicalization.  Only float32 x (and w) are fused: for 16-bit
x the spelled-out form rounds x^2 and the mean to 16 bits, which the fused kernel (float32
inside) does not, so the two would differ by more than rounding.  Every intermediate must
have no other user, so nothing is computed twice.

fold-residual-add: a post-norm block (Gemma 3's norm after the attention and after the MLP)
ends in ``residual + rms_norm(h)``; ``ggufc.rms_norm_add`` is that sum, so a backend adds the
residual as the norm writes its row instead of launching a kernel for the add (36 launches a
decode step of Gemma 3 270M).  Its reference runs the same two ops, so this fold is exact.
fold-next-norm: the sum then feeds the next block's pre-norm (and the next residual add);
``ggufc.rms_norm_add_norm`` gives both the sum and its norm from one kernel that holds the
row in registers (36 more launches a step).  Only where both norms have a weight (a
KernelNode names its inputs by position) and no other user of the sum comes before the
pre-norm (the fused node takes the pre-norm's place).

Statistics: ``fused-rms-norm`` (norms, those folded into rms_norm_add and rms_norm_add_norm
included, that were not there before), ``folded-residual-add`` (residual adds folded),
``folded-next-norm`` (rms_norm_add_norm nodes made).
"""

from __future__ import annotations

import operator
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
from passes.shape_facts import normalize_dim, rank, same_dims, tensor_value

aten = torch.ops.aten
Node = torch.fx.Node

FUSED_DTYPES = (torch.float32,)
SQUARE_EXPONENT = 2


def _single_use(node: Node) -> bool:
    return len(node.users) == 1


def _other_operand(node: Node, operand: Node):
    """For a binary ``node`` with ``operand`` as one of its two arguments, the other one."""
    a, b = node.args[0], node.args[1]
    return b if a is operand else a


def _float_scalar(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _epsilon_of(node) -> tuple[Node, float] | None:
    """``add(mean, eps)`` or ``add(eps, mean)`` with a number eps and alpha 1 -> (mean, eps)."""
    if not is_call(node, aten.add.Tensor) or bound_arguments(node)["alpha"] != 1:
        return None
    a, b = node.args[0], node.args[1]
    mean, eps = (a, b) if isinstance(a, Node) else (b, a)
    eps = _float_scalar(eps)
    return None if eps is None or not isinstance(mean, Node) else (mean, eps)


def _mean_square_of(node: Node) -> Node | None:
    """``mean(pow(x, 2), [last dim], keepdim=True)`` -> x."""
    if not is_call(node, aten.mean.dim):
        return None
    mean = bound_arguments(node)
    square, dims = mean["self"], mean["dim"]
    if mean["dtype"] is not None or mean["keepdim"] is not True:
        return None
    if not is_call(square, aten.pow.Tensor_Scalar):
        return None
    x = square.args[0]
    ndim = rank(x) if isinstance(x, Node) else None
    if ndim is None or ndim == 0 or not isinstance(dims, (list, tuple)) or len(dims) != 1:
        return None
    if normalize_dim(dims[0], ndim) != ndim - 1 or square.args[1] != SQUARE_EXPONENT:
        return None
    if not (_single_use(square) and _single_use(node)):
        return None
    return x


def _fusable(x) -> bool:
    value = tensor_value(x)
    return value is not None and value.dim() > 0 and value.dtype in FUSED_DTYPES


class FuseRmsNorm(RewritePattern):
    name = "fuse-rms-norm"
    root_targets = (aten.rsqrt.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        # rooted at the rsqrt: it has exactly one user, the mul by x
        if not _single_use(node):
            return False
        scaled = next(iter(node.users))
        found = _epsilon_of(node.args[0])
        if not is_call(scaled, aten.mul.Tensor) or found is None or not _single_use(node.args[0]):
            return False
        mean, eps = found
        x = _mean_square_of(mean)
        if x is None or _other_operand(scaled, node) is not x or not _fusable(x):
            return False
        if not same_dims(tensor_value(scaled).shape, tensor_value(x).shape):
            return False  # the mul broadcast x against something else
        last = tensor_value(x).shape[-1]
        fused = rewriter.call_function(
            aten.rms_norm.default, (x, [last], None, eps), before=scaled, meta_from=scaled
        )
        rewriter.replace_node(scaled, fused)
        return True


class FoldRmsNormWeight(RewritePattern):
    name = "fold-rms-norm-weight"
    root_targets = (aten.mul.Tensor,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        norm = next((a for a in node.args[:2] if is_call(a, aten.rms_norm.default)), None)
        if norm is None or not _single_use(norm) or len(norm.args) < 4 or norm.args[2] is not None:
            return False
        weight = _other_operand(node, norm)
        x, shape, _, eps = norm.args[:4]
        w, out = tensor_value(weight), tensor_value(node)
        if w is None or w.dtype != tensor_value(x).dtype or not same_dims(w.shape, shape):
            return False
        if out is None or out.dtype != w.dtype or not same_dims(out.shape, tensor_value(x).shape):
            return False
        fused = rewriter.call_function(
            aten.rms_norm.default, (x, list(shape), weight, eps), before=node, meta_from=node
        )
        rewriter.replace_node(node, fused)
        return True


def _kernel_weight(weight, dim: int) -> bool:
    """None or a float32 [dim] tensor: the weights the RMSNorm kernel takes."""
    if weight is None:
        return True
    w = tensor_value(weight)
    return w is not None and w.dtype in FUSED_DTYPES and same_dims(w.shape, [dim])


class FoldResidualAdd(RewritePattern):
    name = "fold-residual-add"
    root_targets = (aten.add.Tensor,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        if bound_arguments(node)["alpha"] != 1:
            return False
        for norm in node.args[:2]:
            if is_call(norm, aten.rms_norm.default) and _single_use(norm):
                residual = _other_operand(node, norm)
                if residual is not norm and self._rewrite(node, norm, residual, rewriter):
                    return True
        return False

    @staticmethod
    def _rewrite(node: Node, norm: Node, residual, rewriter: Rewriter) -> bool:
        bound = bound_arguments(norm)
        x, shape, weight, eps = (bound[k] for k in ("input", "normalized_shape", "weight", "eps"))
        x_value, r_value, out = tensor_value(x), tensor_value(residual), tensor_value(node)
        if x_value is None or r_value is None or out is None or not _fusable(x):
            return False
        last = x_value.shape[-1]
        if not isinstance(last, int) or list(shape) != [last] or not _kernel_weight(weight, last):
            return False
        if r_value.dtype != x_value.dtype or out.dtype != x_value.dtype:
            return False
        if not (same_dims(r_value.shape, x_value.shape) and same_dims(out.shape, x_value.shape)):
            return False  # the add broadcast one side
        eps = torch.finfo(x_value.dtype).eps if eps is None else float(eps)  # aten's default
        fused = rewriter.call_function(
            ops.rms_norm_add,
            (x, weight, eps, residual),
            before=node,
            meta_from=node,
        )
        rewriter.replace_node(node, fused)
        return True


class FoldNextNorm(RewritePattern):
    name = "fold-next-norm"
    root_targets = (aten.rms_norm.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        bound = bound_arguments(node)
        total, shape, next_weight, next_eps = (
            bound[k] for k in ("input", "normalized_shape", "weight", "eps")
        )
        if not is_call(total, ops.rms_norm_add) or total.args[1] is None:
            return False
        x, weight, eps, residual = total.args[:4]
        x_value = tensor_value(x)
        dim = None if x_value is None else x_value.shape[-1]
        if dim is None or list(shape) != [dim] or next_weight is None:
            return False
        if not _kernel_weight(next_weight, dim):
            return False
        if not _users_after(total, node):
            return False
        next_eps = torch.finfo(torch.float32).eps if next_eps is None else float(next_eps)
        values = (tensor_value(total), tensor_value(node))
        fused = rewriter.call_function(
            ops.rms_norm_add_norm,
            (x, weight, eps, residual, next_weight, next_eps),
            before=node,
            val=values,
        )
        results = [
            rewriter.call_function(operator.getitem, (fused, i), before=node, val=values[i])
            for i in range(2)
        ]
        rewriter.replace_node(node, results[1])
        rewriter.replace_node(total, results[0])
        return True


def _users_after(value: Node, node: Node) -> bool:
    """True when every user of ``value`` but ``node`` comes after ``node`` in the graph (the
    fused node, placed at ``node``, then defines ``value``'s replacement before its uses)."""
    others = set(value.users) - {node}
    for later in value.graph.nodes:
        if later is node:
            return True
        if later in others:
            return False
    return False


RMS_NORM_PATTERNS = (FuseRmsNorm, FoldRmsNormWeight, FoldResidualAdd)
# Applied once the patterns above are done: until the driver has erased the spelled-out
# norms' dead pieces, they still use the sum (and sit before its pre-norm), so fold-next-norm
# would find a user of the sum ahead of the norm and leave it.
NEXT_NORM_PATTERNS = (FoldNextNorm,)


@dataclass(frozen=True)
class FuseRmsNormPass(Pass):
    """Turn spelled-out float32 RMSNorms (pow, mean, add, rsqrt, mul, mul) into aten.rms_norm,
    a residual add after one into ggufc.rms_norm_add, and that with the norm of its sum
    into ggufc.rms_norm_add_norm."""

    name: ClassVar[str] = "fuse-rms-norm"
    max_iterations: int = option(DEFAULT_MAX_ITERATIONS, "cap on greedy sweeps over the graph")

    def run(self, program, context) -> bool:
        norms_before = _count_norms(program.graph)
        folded_before = _count(program.graph, ops.rms_norm_add, ops.rms_norm_add_norm)
        next_before = _count(program.graph, ops.rms_norm_add_norm)
        config = GreedyConfig(max_iterations=self.max_iterations)
        changed = False
        for stage in (RMS_NORM_PATTERNS, NEXT_NORM_PATTERNS):
            patterns = [cls() for cls in stage]
            changed |= apply_patterns_greedily(program, patterns, context, config, self.name)
        context.count("fused-rms-norm", _count_norms(program.graph) - norms_before)
        folded = _count(program.graph, ops.rms_norm_add, ops.rms_norm_add_norm)
        context.count("folded-residual-add", folded - folded_before)
        context.count(
            "folded-next-norm", _count(program.graph, ops.rms_norm_add_norm) - next_before
        )
        return changed


def _count(graph: torch.fx.Graph, *targets) -> int:
    return sum(1 for node in graph.nodes if any(is_call(node, t) for t in targets))


def _count_norms(graph: torch.fx.Graph) -> int:
    """Norms computed, an rms_norm_add_norm counting two."""
    single = _count(graph, aten.rms_norm.default, ops.rms_norm_add)
    return single + 2 * _count(graph, ops.rms_norm_add_norm)


__all__ = ["NEXT_NORM_PATTERNS", "RMS_NORM_PATTERNS", "FuseRmsNormPass"]
