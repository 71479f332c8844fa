"""The `fuse-gguf` patterns: one per form in which a dequantized GGUF weight is consumed.

Every pattern replaces a consumer of ``W = ggufc.dequantize(blocks, fmt, n, k, dtype)`` by a
fused op on the raw ``blocks``; the dequantize itself goes away (dead-node folding) once its
last consumer is fused.  ``Wt`` below is ``W`` transposed by ``aten.t(W)``,
``aten.permute(W, [1, 0])`` or ``aten.transpose.int(W, 0, 1)``.

| pattern | matches | becomes |
|---|---|---|
| fuse-dequantize-linear | ``aten.linear(x, W, bias?)``, x of any rank >= 1 | ``ggufc.linear(x, blocks, bias)`` |
| fuse-dequantize-matmul | ``aten.matmul(x, Wt)`` | ``ggufc.linear(x, blocks, None)`` |
| fuse-dequantize-mm | ``aten.mm(x, Wt)`` (after `run_decompositions`) | ``ggufc.linear(x, blocks, None)`` |
| fuse-dequantize-addmm | ``aten.addmm(bias, x, Wt)``, beta = alpha = 1, bias ``[n]`` | ``ggufc.linear(x, blocks, bias)`` |
| fuse-dequantize-embedding | ``aten.embedding(W, indices)`` | ``ggufc.embedding(blocks, indices, ..., dtype)`` |
| fold-linear-reshapes | ``reshape(ggufc.linear(reshape(x, [M, k])), [*lead, n])`` with ``x: [*lead, k]`` | ``ggufc.linear(x)`` |

Why each is exact: ``aten.linear(x, W, b) = x @ W^T + b`` is the definition of
``ggufc.linear``; ``matmul``/``mm`` with ``W^T`` is the same without bias, and ``addmm(b, x,
Wt) = b + x @ W^T`` when beta = alpha = 1.  ``aten.embedding(W, i)[...] = W[i[...]]`` whatever
``padding_idx``, ``scale_grad_by_freq`` and ``sparse`` say (they only change gradients).  A
linear acts on each row of ``x`` alone, so flattening the leading dims before it and restoring
them after is the same as applying it to ``x`` directly (the export of a 3-D linear after
`run_decompositions` is ``view -> mm -> view``).

Dtypes: ``ggufc.linear`` returns ``x.dtype`` and ``ggufc.embedding`` its ``dtype`` argument.
A consumer is fused only when the value it produced has exactly that dtype (and the weight's
dtype equals the activation's), so the graph's types never change; a consumer that fails a
check is left alone and its dequantize stays (the pass counts it).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import torch
import torch.fx

from compiler import ops
from passes.rewrite.pattern import RewritePattern
from passes.rewrite.rewriter import Rewriter
from passes.shape_facts import same_dims, tensor_value

aten = torch.ops.aten
Node = torch.fx.Node

RESHAPE_TARGETS = (aten.view.default, aten.reshape.default, aten._unsafe_view.default)
# addmm(bias, x, w, beta=1, alpha=1): only the plain sum is a linear.
UNIT_SCALE = 1


@dataclass(frozen=True)
class Dequantized:
    """What a `ggufc.dequantize` node computes: ``W = dequant(blocks)`` of shape [n, k]."""

    node: Node
    blocks: Node
    fmt: str
    n: object
    k: object
    dtype: torch.dtype


def is_call(value, target) -> bool:
    """True when ``value`` is a node calling ``target``."""
    return isinstance(value, Node) and value.op == "call_function" and value.target is target


def bound_arguments(node: Node) -> dict:
    """The node's arguments by schema name (positional and keyword alike)."""
    schema = node.target._schema
    bound = {}
    for index, argument in enumerate(schema.arguments):
        if index < len(node.args):
            bound[argument.name] = node.args[index]
        elif argument.name in node.kwargs:
            bound[argument.name] = node.kwargs[argument.name]
        elif argument.has_default_value():
            bound[argument.name] = argument.default_value
    return bound


def as_dequantized(value, formats: Collection[str]) -> Dequantized | None:
    """`value` as a dequantize of a format in `formats`, else None."""
    if (
        not isinstance(value, Node)
        or value.op != "call_function"
        or value.target is not ops.dequantize
    ):
        return None
    args = bound_arguments(value)
    blocks, fmt = args.get("blocks"), args.get("fmt")
    if not isinstance(blocks, Node) or fmt not in formats or tensor_value(value) is None:
        return None
    return Dequantized(value, blocks, fmt, args["n"], args["k"], args["dtype"])


def _is_matrix_transpose(node: Node) -> bool:
    """`node` swaps the two dims of a 2-D tensor."""
    target, args = node.target, node.args
    if target is aten.t.default:
        return len(args) == 1
    if target is aten.permute.default:
        return len(args) == 2 and [d % 2 for d in args[1]] == [1, 0]
    if target is aten.transpose.int:
        return len(args) == 3 and {args[1] % 2, args[2] % 2} == {0, 1}
    return False


def as_transposed_dequantized(value, formats: Collection[str]) -> Dequantized | None:
    """`value` as ``W^T`` for a dequantized ``W``, else None."""
    if not isinstance(value, Node) or value.op != "call_function" or not value.args:
        return None
    source = value.args[0]
    weight = as_dequantized(source, formats)
    if weight is None or tensor_value(source).dim() != 2 or not _is_matrix_transpose(value):
        return None
    return weight


def _linear_result_fits(node: Node, x, weight: Dequantized) -> bool:
    """`node`'s value is what ``ggufc.linear(x, weight)`` gives: dtype of x (= weight dtype)
    and shape [*x.shape[:-1], n]."""
    out, activation = tensor_value(node), tensor_value(x)
    if out is None or activation is None or activation.dim() == 0:
        return False
    if not (out.dtype == activation.dtype == weight.dtype):
        return False
    if not same_dims(activation.shape[-1:], [weight.k]):
        return False
    return same_dims(out.shape, [*activation.shape[:-1], weight.n])


def _bias_fits(bias, weight: Dequantized, dtype: torch.dtype) -> bool:
    if bias is None:
        return True
    value = tensor_value(bias)
    return value is not None and value.dtype == dtype and same_dims(value.shape, [weight.n])


def insert_fused_linear(
    rewriter: Rewriter, replaced: Node, x: Node, weight: Dequantized, bias
) -> Node:
    """Insert ``ggufc.linear(x, blocks, bias, fmt, n, k)`` computing `replaced`'s value and
    make every use of `replaced` use it (`replaced` is erased)."""
    fused = rewriter.call_function(
        ops.linear,
        (x, weight.blocks, bias, weight.fmt, weight.n, weight.k),
        before=replaced,
        meta_from=replaced,
    )
    rewriter.replace_node(replaced, fused)
    return fused


class FusePattern(RewritePattern):
    """Base of the fusion patterns: they fuse only weights of the formats they are given."""

    def __init__(self, formats: Collection[str]):
        self.formats = frozenset(formats)


class FuseDequantizeLinear(FusePattern):
    name = "fuse-dequantize-linear"
    root_targets = (aten.linear.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        args = bound_arguments(node)
        x, bias = args.get("input"), args.get("bias")
        weight = as_dequantized(args.get("weight"), self.formats)
        if weight is None or not _linear_result_fits(node, x, weight):
            return False
        if not _bias_fits(bias, weight, weight.dtype):
            return False
        insert_fused_linear(rewriter, node, x, weight, bias)
        return True


class FuseDequantizeMatmul(FusePattern):
    name = "fuse-dequantize-matmul"
    root_targets = (aten.matmul.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        x, transposed = node.args[0], node.args[1]
        weight = as_transposed_dequantized(transposed, self.formats)
        if weight is None or not _linear_result_fits(node, x, weight):
            return False
        insert_fused_linear(rewriter, node, x, weight, None)
        return True


class FuseDequantizeMm(FusePattern):
    name = "fuse-dequantize-mm"
    root_targets = (aten.mm.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        x, transposed = node.args[0], node.args[1]
        weight = as_transposed_dequantized(transposed, self.formats)
        if weight is None or not _linear_result_fits(node, x, weight):
            return False
        insert_fused_linear(rewriter, node, x, weight, None)
        return True


class FuseDequantizeAddmm(FusePattern):
    name = "fuse-dequantize-addmm"
    root_targets = (aten.addmm.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        args = bound_arguments(node)
        if args.get("beta") != UNIT_SCALE or args.get("alpha") != UNIT_SCALE:
            return False
        bias, x = args.get("self"), args.get("mat1")
        weight = as_transposed_dequantized(args.get("mat2"), self.formats)
        if weight is None or not _linear_result_fits(node, x, weight):
            return False
        if bias is None or not _bias_fits(bias, weight, weight.dtype):
            return False
        insert_fused_linear(rewriter, node, x, weight, bias)
        return True


class FuseDequantizeEmbedding(FusePattern):
    name = "fuse-dequantize-embedding"
    root_targets = (aten.embedding.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        args = bound_arguments(node)
        weight = as_dequantized(args.get("weight"), self.formats)
        indices = args.get("indices")
        out, index_value = tensor_value(node), tensor_value(indices)
        if weight is None or out is None or index_value is None:
            return False
        if out.dtype != weight.dtype or index_value.dtype.is_floating_point:
            return False
        if not same_dims(out.shape, [*index_value.shape, weight.k]):
            return False
        fused = rewriter.call_function(
            ops.embedding,
            (weight.blocks, indices, weight.fmt, weight.n, weight.k, weight.dtype),
            before=node,
            meta_from=node,
        )
        rewriter.replace_node(node, fused)
        return True


class FoldLinearReshapes(RewritePattern):
    """``reshape(ggufc.linear(reshape(x, [M, k])), [*lead, n])`` -> ``ggufc.linear(x)`` when
    ``x`` is ``[*lead, k]``: rooted at the outer reshape."""

    name = "fold-linear-reshapes"
    root_targets = RESHAPE_TARGETS

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        linear = node.args[0] if node.args else None
        if (
            not isinstance(linear, Node)
            or linear.target is not ops.linear
            or len(linear.users) != 1
        ):
            return False
        args = bound_arguments(linear)
        flat = args.get("x")
        if not isinstance(flat, Node) or flat.target not in RESHAPE_TARGETS or not flat.args:
            return False
        source = flat.args[0]
        source_value, flat_value, out = tensor_value(source), tensor_value(flat), tensor_value(node)
        if source_value is None or flat_value is None or out is None or source_value.dim() == 0:
            return False
        # The inner reshape must keep rows whole: same last dim k on both sides.
        if not same_dims(source_value.shape[-1:], flat_value.shape[-1:]):
            return False
        if out.dtype != source_value.dtype:
            return False
        if not same_dims(out.shape, [*source_value.shape[:-1], args["n"]]):
            return False
        fused_args = (source, args["blocks"], args.get("bias"), args["fmt"], args["n"], args["k"])
        kernel = args.get("kernel", ops.KERNEL_AUTO)
        if kernel != ops.KERNEL_AUTO:
            fused_args += (kernel,)
        fused = rewriter.call_function(ops.linear, fused_args, before=node, meta_from=node)
        rewriter.replace_node(node, fused)
        return True


# The fusion patterns, one per consumer form; all are built with the formats to fuse.
FUSION_PATTERNS: tuple[type[FusePattern], ...] = (
    FuseDequantizeLinear,
    FuseDequantizeMatmul,
    FuseDequantizeMm,
    FuseDequantizeAddmm,
    FuseDequantizeEmbedding,
)
# Patterns that tidy what fusion leaves; they take no options.
CLEANUP_PATTERNS: tuple[type[RewritePattern], ...] = (FoldLinearReshapes,)


def fuse_gguf_patterns(formats: Collection[str]) -> list[RewritePattern]:
    return [cls(formats) for cls in FUSION_PATTERNS] + [cls() for cls in CLEANUP_PATTERNS]


__all__ = [
    "CLEANUP_PATTERNS",
    "FUSION_PATTERNS",
    "Dequantized",
    "as_dequantized",
    "bound_arguments",
    "fuse_gguf_patterns",
]
