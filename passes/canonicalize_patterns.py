"""The canonicalization patterns: local rewrites that are correct for every value of every
symbolic dim.  Each removes work or puts a chain of ops into one canonical form.

| pattern | rewrite | why it is exact |
|---|---|---|
| fold-identity-reshape | view/reshape/_unsafe_view/expand(x, same shape) -> x | same values, same layout |
| fold-identity-slice | slice(x, d, 0, end, 1) with the same shape -> x | a full slice is x |
| fold-alias | alias(x) -> x | a view of all of x |
| fold-double-transpose | transpose(transpose(x, a, b), a, b) -> x; t(t(x)) -> x | swaps twice |
| fold-permute-chain | permute(permute(x, p), q) -> permute(x, p[q]); identity permute -> x | composition |
| fold-unsqueeze-squeeze | squeeze(unsqueeze(x, d), d) -> x | the inserted dim has size 1 |
| fold-mul-one | x * 1, 1 * x -> x (same dtype/shape) | 1 is the identity of * (NaN, inf, -0 kept) |
| fold-div-one | x / 1 -> x (same dtype/shape) | as above |
| fold-sub-zero | x - 0 -> x (same dtype/shape, alpha 1) | -0.0 - 0 = -0.0, so exact for floats too |
| fold-add-zero | x + 0 -> x for integer/bool x, x + (-0.0) -> x for floats | +0 would turn -0.0 into +0.0 |
| fold-noop-copy | clone/_to_copy/to(x) with same type and strides -> x | unless x would be returned |
| fold-cast-chain | cast(cast(x, A), B) -> cast(x, B) when x -> A is lossless | first cast is exact |
| fold-single-cat | cat([x]) -> x | one input, nothing to join |

An op that makes a new tensor (arithmetic, copy, cat) whose result the graph returns is
folded only when that cannot make an output alias an input, a constant or another output
(`shape_facts.may_replace_fresh_result`).
"""

from __future__ import annotations

import torch
import torch.fx

from passes.rewrite.pattern import RewritePattern
from passes.rewrite.rewriter import Rewriter
from passes.shape_facts import (
    is_scalar,
    may_replace_fresh_result,
    normalize_dim,
    rank,
    same_layout,
    same_tensor_type,
    tensor_value,
)

aten = torch.ops.aten
Node = torch.fx.Node

# dtype -> dtypes that hold every one of its values exactly.
_F16, _BF16, _F32, _F64 = torch.float16, torch.bfloat16, torch.float32, torch.float64
_I8, _U8, _I16, _I32, _I64 = torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64
LOSSLESS_WIDENING: dict[torch.dtype, frozenset[torch.dtype]] = {
    torch.bool: frozenset({_U8, _I8, _I16, _I32, _I64, _F16, _BF16, _F32, _F64}),
    _I8: frozenset({_I16, _I32, _I64, _F16, _BF16, _F32, _F64}),
    _U8: frozenset({_I16, _I32, _I64, _F16, _BF16, _F32, _F64}),
    _I16: frozenset({_I32, _I64, _F32, _F64}),
    _I32: frozenset({_I64, _F64}),
    _F16: frozenset({_F32, _F64}),
    _BF16: frozenset({_F32, _F64}),
    _F32: frozenset({_F64}),
}
INTEGRAL_DTYPES = frozenset({torch.bool, _U8, _I8, _I16, _I32, _I64})
NEGATIVE_ZERO = -0.0


def _tensor_arg(node: Node, index: int = 0) -> Node | None:
    arg = node.args[index] if len(node.args) > index else None
    return arg if tensor_value(arg) is not None else None


class FoldIdentityReshape(RewritePattern):
    name = "fold-identity-reshape"
    root_targets = (
        aten.view.default,
        aten.reshape.default,
        aten._unsafe_view.default,
        aten.expand.default,
    )

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        source = _tensor_arg(node)
        if source is None or not same_tensor_type(node, source):
            return False
        rewriter.replace_node(node, source)
        return True


class FoldIdentitySlice(RewritePattern):
    name = "fold-identity-slice"
    root_targets = (aten.slice.Tensor,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        source = _tensor_arg(node)
        args = list(node.args) + [None] * (5 - len(node.args))
        start = node.kwargs.get("start", args[2])
        step = node.kwargs.get("step", args[4] if args[4] is not None else 1)
        if source is None or start not in (None, 0) or step != 1:
            return False
        if not same_tensor_type(node, source):
            return False
        rewriter.replace_node(node, source)
        return True


class FoldAlias(RewritePattern):
    name = "fold-alias"
    root_targets = (aten.alias.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        source = _tensor_arg(node)
        if source is None or not same_tensor_type(node, source):
            return False
        rewriter.replace_node(node, source)
        return True


class FoldDoubleTranspose(RewritePattern):
    name = "fold-double-transpose"
    root_targets = (aten.transpose.int, aten.t.default)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        inner = node.args[0]
        if not isinstance(inner, Node) or inner.target != node.target:
            return False
        source = _tensor_arg(inner)
        if source is None or self._swap(node) is None or self._swap(node) != self._swap(inner):
            return False
        if not same_tensor_type(node, source):
            return False
        rewriter.replace_node(node, source)
        return True

    @staticmethod
    def _swap(node: Node) -> frozenset[int] | None:
        ndim = rank(node)
        if ndim is None:
            return None
        if node.target == aten.t.default:
            return frozenset({0, 1}) if ndim == 2 else frozenset()
        a = normalize_dim(node.args[1], ndim)
        b = normalize_dim(node.args[2], ndim)
        return None if a is None or b is None else frozenset({a, b})


class FoldPermuteChain(RewritePattern):
    name = "fold-permute-chain"
    root_targets = (aten.permute.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        outer = self._permutation(node)
        if outer is None:
            return False
        inner_node = node.args[0]
        inner = self._permutation(inner_node) if isinstance(inner_node, Node) else None
        if inner is not None:
            source = _tensor_arg(inner_node)
            composed = [inner[i] for i in outer]
        else:
            source, composed = inner_node, outer
        if tensor_value(source) is None:
            return False
        if composed == list(range(len(composed))):
            if not same_tensor_type(node, source):
                return False
            rewriter.replace_node(node, source)
            return True
        if source is inner_node:
            return False
        new = rewriter.call_function(
            aten.permute.default, (source, composed), before=node, meta_from=node
        )
        rewriter.replace_node(node, new)
        return True

    @staticmethod
    def _permutation(node: Node) -> list[int] | None:
        if node.target != aten.permute.default or len(node.args) < 2:
            return None
        ndim = rank(node)
        dims = node.args[1]
        if ndim is None or not isinstance(dims, (list, tuple)) or len(dims) != ndim:
            return None
        normalized = [normalize_dim(d, ndim) for d in dims]
        if None in normalized or sorted(normalized) != list(range(ndim)):
            return None
        return normalized


class FoldUnsqueezeSqueeze(RewritePattern):
    name = "fold-unsqueeze-squeeze"
    root_targets = (aten.squeeze.dim,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        inner = node.args[0]
        if not isinstance(inner, Node) or inner.target != aten.unsqueeze.default:
            return False
        source = _tensor_arg(inner)
        ndim = rank(inner)
        if source is None or ndim is None:
            return False
        squeezed = normalize_dim(node.args[1], ndim)
        inserted = normalize_dim(inner.args[1], ndim)
        if squeezed is None or squeezed != inserted or not same_tensor_type(node, source):
            return False
        rewriter.replace_node(node, source)
        return True


class _FoldBinaryIdentity(RewritePattern):
    """x OP c -> x when c is the identity of OP and the result has x's type."""

    identity: float = 0.0
    commutative = False

    def accepts(self, source: Node, constant) -> bool:
        return is_scalar(constant, self.identity)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        if len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
            return False
        operands = [(node.args[0], node.args[1])]
        if self.commutative:
            operands.append((node.args[1], node.args[0]))
        for source, constant in operands:
            if tensor_value(source) is None or not self.accepts(source, constant):
                continue
            if same_tensor_type(node, source) and may_replace_fresh_result(node, source):
                rewriter.replace_node(node, source)
                return True
        return False


class FoldMulOne(_FoldBinaryIdentity):
    name = "fold-mul-one"
    root_targets = (aten.mul.Tensor, aten.mul.Scalar)
    identity = 1.0
    commutative = True


class FoldDivOne(_FoldBinaryIdentity):
    name = "fold-div-one"
    root_targets = (aten.div.Tensor, aten.div.Scalar)
    identity = 1.0


class FoldSubZero(_FoldBinaryIdentity):
    name = "fold-sub-zero"
    root_targets = (aten.sub.Tensor, aten.sub.Scalar)
    identity = 0.0


class FoldAddZero(_FoldBinaryIdentity):
    name = "fold-add-zero"
    root_targets = (aten.add.Tensor, aten.add.Scalar)
    identity = 0.0
    commutative = True

    def accepts(self, source: Node, constant) -> bool:
        if not is_scalar(constant, 0.0):
            return False
        if tensor_value(source).dtype in INTEGRAL_DTYPES:
            return True
        # Only -0.0 is an exact identity of float addition: -0.0 + 0.0 is +0.0.
        return isinstance(constant, float) and str(constant) == str(NEGATIVE_ZERO)


def _cast_target_dtype(node: Node) -> torch.dtype | None:
    """The dtype a pure cast node converts to, or None if `node` is not a plain cast."""
    if node.target == aten._to_copy.default:
        allowed = {"dtype", "layout", "device", "memory_format"}
        if len(node.args) != 1 or set(node.kwargs) - allowed:
            return None
        if node.kwargs.get("memory_format") not in (None, torch.preserve_format):
            return None
        return tensor_value(node).dtype if tensor_value(node) is not None else None
    if node.target == aten.to.dtype:
        extra = list(node.args[2:])
        if any(extra) or any(node.kwargs.get(k) for k in ("non_blocking", "copy")):
            return None
        if node.kwargs.get("memory_format") not in (None, torch.preserve_format):
            return None
        return node.args[1] if len(node.args) > 1 else node.kwargs.get("dtype")
    return None


class FoldNoopCopy(RewritePattern):
    name = "fold-noop-copy"
    root_targets = (aten.clone.default, aten._to_copy.default, aten.to.dtype)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        source = _tensor_arg(node)
        if source is None:
            return False
        if node.target == aten.clone.default:
            if node.kwargs.get("memory_format") not in (None, torch.preserve_format):
                return False
        elif _cast_target_dtype(node) is None:
            return False
        if not same_layout(node, source):
            return False
        # `to(x, same dtype)` returns x itself in eager mode; a real copy must stay a copy
        # when it is a graph output (the caller may own and mutate it).
        if node.target != aten.to.dtype and not may_replace_fresh_result(node, source):
            return False
        rewriter.replace_node(node, source)
        return True


class FoldCastChain(RewritePattern):
    name = "fold-cast-chain"
    root_targets = (aten._to_copy.default, aten.to.dtype)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        inner = node.args[0] if node.args else None
        if not isinstance(inner, Node) or _cast_target_dtype(node) is None:
            return False
        middle = _cast_target_dtype(inner)
        source = _tensor_arg(inner)
        if middle is None or source is None:
            return False
        if tensor_value(node) is None or tensor_value(source).device != tensor_value(node).device:
            return False
        if middle not in LOSSLESS_WIDENING.get(tensor_value(source).dtype, frozenset()):
            return False
        args = (source,) + tuple(node.args[1:])
        new = rewriter.call_function(node.target, args, node.kwargs, before=node, meta_from=node)
        rewriter.replace_node(node, new)
        return True


class FoldSingleCat(RewritePattern):
    name = "fold-single-cat"
    root_targets = (aten.cat.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        inputs = node.args[0] if node.args else None
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 1:
            return False
        source = inputs[0]
        if tensor_value(source) is None or not same_layout(node, source):
            return False
        if not may_replace_fresh_result(node, source):
            return False
        rewriter.replace_node(node, source)
        return True


# The canonicalization set, as data: every pattern `canonicalize` applies.
CANONICALIZATION_PATTERNS: tuple[type[RewritePattern], ...] = (
    FoldIdentityReshape,
    FoldIdentitySlice,
    FoldAlias,
    FoldDoubleTranspose,
    FoldPermuteChain,
    FoldUnsqueezeSqueeze,
    FoldMulOne,
    FoldDivOne,
    FoldSubZero,
    FoldAddZero,
    FoldNoopCopy,
    FoldCastChain,
    FoldSingleCat,
)

__all__ = ["CANONICALIZATION_PATTERNS", "LOSSLESS_WIDENING"]
