"""`fuse-attention`: one ``ggufc.attention`` node for each masked softmax attention spelled out
in elementary ops.

The front ends (`compiler.architectures.layers.cached_attention`) write grouped-query
attention as five ops a layer, which export keeps: five kernel launches on CUDA, ~28 us a
layer on an H100 for Gemma 3 270M's decode step (BENCHMARKS.md), the largest cost of a
decode step outside the GGUF kernels.  ``ggufc.attention`` is the same function in one op,
which a backend can run as one kernel that also skips the keys a row cannot see.

| pattern | matches | becomes |
|---|---|---|
| fuse-attention | ``matmul(view(softmax(masked_fill(view(mul(matmul(q, transpose(k, -2, -1)), c), [B, G, M, S]), bitwise_not(visible), -inf), -1), [B, R, S]), v)`` | ``ggufc.attention(q, k, v, visible, c)`` |

with float32 ``q: [B, R, D]``, ``k: [B, S, D]``, ``v: [B, S, Dv]``, a number ``c``, bool
``visible: [M, S]`` and ``R = G * M``.  Why it is the same function: see ``ggufc.attention``
(`compiler.ops`), whose reference runs exactly these ops; a fused kernel sums in its own
order, so outputs agree to float32 rounding.  Every intermediate but the mask's negation
must have no other user, so nothing is computed twice.  Only float32 is fused (16-bit
scores would round differently), and only keys of a static count up to
`ATTENTION_MAX_KEYS` (a kernel holds a row's scores in shared memory).

Statistic: ``fused-attention`` (attention nodes made).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.fx

from passes.fuse_gguf_patterns import bound_arguments, is_call
from passes.pass_base import Pass, option
from passes.rewrite.driver import DEFAULT_MAX_ITERATIONS, GreedyConfig, apply_patterns_greedily
from passes.rewrite.pattern import RewritePattern
from passes.rewrite.rewriter import Rewriter
from passes.shape_facts import normalize_dim, same_dims, tensor_value

aten = torch.ops.aten
Node = torch.fx.Node

FUSED_DTYPES = (torch.float32,)
# Keys (cache slots) a fused attention may have: a row's float32 scores must fit the 32 KiB of
# threadgroup memory a Metal kernel has (less room for its reductions), and so the 48 KiB a
# CUDA block has without opting in.
ATTENTION_MAX_KEYS = (32 * 1024 - 256) // 4


def _single_use(node: Node) -> bool:
    return len(node.users) == 1


def _float32(value, rank: int):
    """The fake tensor of a float32 node of ``rank`` dims, else None."""
    fake = tensor_value(value) if isinstance(value, Node) else None
    if fake is None or fake.dtype not in FUSED_DTYPES or fake.dim() != rank:
        return None
    return fake


def _last_two_swapped(node) -> Node | None:
    """``transpose(k, -2, -1)`` (either order, any spelling of the dims) of a rank-3 k -> k."""
    if not is_call(node, aten.transpose.int) or not _single_use(node):
        return None
    k = node.args[0]
    if _float32(k, 3) is None:
        return None
    dims = {normalize_dim(d, 3) for d in node.args[1:3]}
    return k if dims == {1, 2} else None


def _negative_infinity(value) -> bool:
    return isinstance(value, float) and math.isinf(value) and value < 0


class FuseAttention(RewritePattern):
    name = "fuse-attention"
    root_targets = (aten.matmul.default,)

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        # rooted at the weighted sum: matmul(probs as [B, R, S], v)
        probs, v = node.args[0], node.args[1]
        if not (is_call(probs, aten.view.default) and _single_use(probs)):
            return False
        softmax = probs.args[0]
        if not (is_call(softmax, aten.softmax.int) and _single_use(softmax)):
            return False
        arguments = bound_arguments(softmax)
        if arguments["dtype"] is not None or normalize_dim(arguments["dim"], 4) != 3:
            return False
        masked = arguments["self"]
        if not (is_call(masked, aten.masked_fill.Scalar) and _single_use(masked)):
            return False
        grouped, negated, fill = masked.args[0], masked.args[1], masked.args[2]
        if not (_negative_infinity(fill) and is_call(negated, aten.bitwise_not.default)):
            return False
        if not (is_call(grouped, aten.view.default) and _single_use(grouped)):
            return False
        scaled = grouped.args[0]
        if not (is_call(scaled, aten.mul.Tensor) and _single_use(scaled)):
            return False
        scores, scale = scaled.args[0], scaled.args[1]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            return False
        if not (is_call(scores, aten.matmul.default) and _single_use(scores)):
            return False
        q = scores.args[0]
        k = _last_two_swapped(scores.args[1])
        visible = negated.args[0]
        return self._fuse(node, rewriter, q, k, v, visible, float(scale), grouped, probs)

    def _fuse(self, node, rewriter, q, k, v, visible, scale, grouped, probs) -> bool:
        q_fake, k_fake, v_fake = _float32(q, 3), _float32(k, 3) if k else None, _float32(v, 3)
        visible_fake = tensor_value(visible) if isinstance(visible, Node) else None
        if None in (q_fake, k_fake, v_fake, visible_fake):
            return False
        if visible_fake.dtype != torch.bool or visible_fake.dim() != 2:
            return False
        keys = k_fake.shape[1]
        if not isinstance(keys, int) or keys > ATTENTION_MAX_KEYS:
            return False
        heads, rows = q_fake.shape[0], q_fake.shape[1]
        four = tensor_value(grouped).shape  # [B, G, M, S]
        if len(four) != 4 or not same_dims(four[2:], visible_fake.shape):
            return False
        if not same_dims(tensor_value(probs).shape, (heads, rows, keys)):
            return False
        same = same_dims(k_fake.shape[::2], q_fake.shape[::2]) and same_dims(
            v_fake.shape[:2], k_fake.shape[:2]
        )
        if not same or not same_dims(four[:1] + four[3:], (heads, keys)):
            return False
        fused = rewriter.call_function(
            torch.ops.ggufc.attention.default,
            (q, k, v, visible, scale),
            before=node,
            meta_from=node,
        )
        rewriter.replace_node(node, fused)
        return True


ATTENTION_PATTERNS = (FuseAttention,)


@dataclass(frozen=True)
class FuseAttentionPass(Pass):
    """Turn spelled-out float32 masked softmax attentions (matmul, scale, mask, softmax,
    matmul) into ggufc.attention."""

    name: ClassVar[str] = "fuse-attention"
    max_iterations: int = option(DEFAULT_MAX_ITERATIONS, "cap on greedy sweeps over the graph")

    def run(self, program, context) -> bool:
        import compiler.ops  # noqa: F401  (registers torch.ops.ggufc)

        config = GreedyConfig(max_iterations=self.max_iterations)
        patterns = [cls() for cls in ATTENTION_PATTERNS]
        before = _count(program.graph)
        changed = apply_patterns_greedily(program, patterns, context, config, self.name)
        context.count("fused-attention", _count(program.graph) - before)
        return changed


def _count(graph: torch.fx.Graph) -> int:
    return sum(1 for node in graph.nodes if is_call(node, torch.ops.ggufc.attention.default))


__all__ = ["ATTENTION_MAX_KEYS", "ATTENTION_PATTERNS", "FuseAttentionPass"]
