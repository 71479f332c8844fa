"""`fuse-sibling-linears`: GGUF linears that read the same activation become one linear.

An attention block's q, k and v projections read the same normed activation, and so do an
MLP's gate and up projections.  At decode (M = 1) each is a matvec whose time is mostly
latency, not bytes (Gemma 3 270M's are 0.1-1.4 MB: ~2.5 us a launch on an H100, a few
hundred ns of it reading), so one matvec over their weights stacked row after row does the
work of two or three for about the time of one.

| pattern | matches | becomes |
|---|---|---|
| fuse-sibling-linears | ``ggufc.linear(x, @w_i, None, fmt, n_i, k)`` for i = 1..c (c >= 2), the same ``x``, ``fmt`` and ``k``, each weight a constant | ``y = ggufc.linear(x, @w_1..w_c stacked, None, fmt, n_1 + ... + n_c, k)``, sibling i becomes ``aten.slice(y, last dim, n_1 + ... + n_(i-1), n_1 + ... + n_i)`` |

Why it is the same function: a GGUF weight is ``n`` rows of blocks, each row quantized on its
own, so the rows of ``@w_1`` then ``@w_2`` (``torch.cat`` on dim 0) are the weights of a
linear of ``n_1 + n_2`` outputs whose first ``n_1`` are the first linear's and whose next
``n_2`` are the second's.  Each output is the same dot product as before, but a kernel picked
for the wider ``n`` may sum in another order, so outputs agree to float32 rounding.

What is left out: linears with a bias, or whose ``kernel`` is no longer "auto" (after
`split-dynamic-m`); a sibling whose result a user views in a way a slice's strides do not
allow (an ``aten.view`` that does more than split the last dim: the slices are views of the
wider output, not contiguous copies).

Cost: the stacked weights are a new constant, a copy made at compile time (the siblings'
constants go when nothing else reads them).  A program that references its weights in the
.gguf file (``ggufc compile --weights external``) has to embed that copy, so the driver's
default pipeline leaves this pass out there.

Statistics: ``fused-linears`` (linears merged), ``fused-linear-groups`` (linears made).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.fx

from compiler import ops
from compiler.ir.printer import GGUF_FORMAT_META
from passes.fuse_gguf_patterns import bound_arguments
from passes.pass_base import Pass, option
from passes.rewrite.driver import DEFAULT_MAX_ITERATIONS, GreedyConfig, apply_patterns_greedily
from passes.rewrite.pattern import RewritePattern
from passes.rewrite.rewriter import Rewriter
from passes.shape_facts import same_dims, tensor_value

Node = torch.fx.Node
aten = torch.ops.aten

LINEAR = torch.ops.ggufc.linear.default
VIEW_TARGETS = (aten.view.default, aten._unsafe_view.default)


def _fusable_arguments(node: Node) -> dict | None:
    """The bound arguments of a ``ggufc.linear`` node this pass may merge, else None."""
    if node.op != "call_function" or node.target is not LINEAR:
        return None
    args = bound_arguments(node)
    blocks = args["blocks"]
    if args["bias"] is not None or args["kernel"] != ops.KERNEL_AUTO:
        return None
    if not (isinstance(blocks, Node) and blocks.op == "get_attr"):
        return None
    if not all(isinstance(args[name], int) for name in ("n", "k")):
        return None
    return args


def _views_fit_a_slice(node: Node) -> bool:
    """True when every ``aten.view`` of ``node``'s result only splits its last dim (a view a
    strided slice of a wider last dim allows); other ops take strided inputs as they are."""
    out = tensor_value(node)
    if out is None or out.dim() == 0:
        return False
    lead = list(out.shape[:-1])
    for user in node.users:
        if user.op != "call_function" or user.target not in VIEW_TARGETS:
            continue
        viewed = tensor_value(user)
        if viewed is None or viewed.dim() < out.dim():
            return False
        if not same_dims(list(viewed.shape[: len(lead)]), lead):
            return False
        trailing = viewed.shape[len(lead) :]
        if not all(isinstance(d, int) for d in trailing):
            return False
        if math.prod(trailing) != out.shape[-1]:
            return False
    return True


def _positions_after(x: Node, users: list[Node]) -> dict[Node, int]:
    """Each of ``users`` (users of ``x``, so after it) by its distance after ``x`` in the graph:
    a walk that stops at the last of them, not a scan of the graph."""
    remaining = set(users)
    positions = {}
    cursor, distance = x.next, 1
    while remaining:
        if cursor in remaining:
            positions[cursor] = distance
            remaining.discard(cursor)
        cursor, distance = cursor.next, distance + 1
    return positions


def stacked_name(targets: list[str]) -> str:
    """A name for the constant stacking ``targets``' rows: their common dotted prefix and
    suffix around their differing middles joined by ``_and_`` (``blk.0.attn_q.blocks`` and
    ``blk.0.attn_k.blocks`` -> ``blk.0.attn_q_and_attn_k.blocks``)."""
    split = [t.split(".") for t in targets]
    shortest = min(len(parts) for parts in split)
    head = 0
    while head < shortest - 1 and len({parts[head] for parts in split}) == 1:
        head += 1
    tail = 0
    while tail < shortest - head - 1 and len({parts[-1 - tail] for parts in split}) == 1:
        tail += 1
    middles = ["_".join(parts[head : len(parts) - tail]) for parts in split]
    parts = split[0][:head] + ["_and_".join(middles)] + (split[0][-tail:] if tail else [])
    return ".".join(parts)


class FuseSiblingLinears(RewritePattern):
    name = "fuse-sibling-linears"
    root_targets = (LINEAR,)

    def __init__(self):
        self.merged = 0  # linears replaced by a slice of a wider one
        self.groups = 0  # wider linears made

    def match_and_rewrite(self, node: Node, rewriter: Rewriter) -> bool:
        first = _fusable_arguments(node)
        if first is None or not _views_fit_a_slice(node):
            return False
        x = first["x"]
        if not isinstance(x, Node):
            return False
        group = [node]
        arguments = [first]
        for user in x.users:  # in the order the uses were made; sorted by position below
            if user is node:
                continue
            args = _fusable_arguments(user)
            if args is None or args["x"] is not x:
                continue
            if (args["fmt"], args["k"]) != (first["fmt"], first["k"]):
                continue
            if not _views_fit_a_slice(user):
                continue
            group.append(user)
            arguments.append(args)
        if len(group) < 2:
            return False
        order = _positions_after(x, group)
        ranked = sorted(zip(group, arguments), key=lambda pair: order[pair[0]])
        group = [n for n, _ in ranked]
        arguments = [a for _, a in ranked]
        if group[0] is not node:
            return False  # the group is rewritten from its first member
        self._fuse(rewriter, group, arguments)
        self.merged += len(group)
        self.groups += 1
        return True

    def _fuse(self, rewriter: Rewriter, group: list[Node], arguments: list[dict]) -> None:
        program = rewriter.program
        first = arguments[0]
        blocks_nodes = [a["blocks"] for a in arguments]
        stacked = torch.cat([program.get_constant(b.target) for b in blocks_nodes])
        x_fake = tensor_value(first["x"])
        fake_mode = x_fake.fake_mode
        with _uncached(fake_mode):
            self._rewrite(rewriter, group, arguments, stacked, x_fake)
        for blocks in dict.fromkeys(blocks_nodes):  # a weight two siblings share: once
            if not blocks.users:
                rewriter.erase_node(blocks)

    def _rewrite(
        self,
        rewriter: Rewriter,
        group: list[Node],
        arguments: list[dict],
        stacked: torch.Tensor,
        x_fake: torch.Tensor,
    ) -> None:
        """The stacked constant, the wider linear and a slice of it for each sibling."""
        first = arguments[0]
        fake_mode = x_fake.fake_mode
        blocks_nodes = [a["blocks"] for a in arguments]
        stacked_fake = fake_mode.from_tensor(stacked, static_shapes=True)
        total = sum(a["n"] for a in arguments)
        constant = rewriter.constant(
            stacked_name([b.target for b in blocks_nodes]),
            stacked,
            before=group[0],
            val=stacked_fake,
        )
        fmt = blocks_nodes[0].meta.get(GGUF_FORMAT_META)
        if fmt is not None:
            constant.meta[GGUF_FORMAT_META] = fmt
        with fake_mode:
            fused_fake = LINEAR(x_fake, stacked_fake, None, first["fmt"], total, first["k"])
        fused = rewriter.call_function(
            LINEAR,
            (first["x"], constant, None, first["fmt"], total, first["k"]),
            before=group[0],
            val=fused_fake,
        )
        last = fused_fake.dim() - 1
        start = 0
        for sibling, args in zip(group, arguments):
            end = start + args["n"]
            with fake_mode:
                part_fake = aten.slice.Tensor(fused_fake, last, start, end)
            part = rewriter.call_function(
                aten.slice.Tensor, (fused, last, start, end), before=sibling, val=part_fake
            )
            rewriter.replace_node(sibling, part)
            start = end


@contextlib.contextmanager
def _uncached(fake_mode):
    """``fake_mode`` with its op cache off.  A cache hit on a view op with symbolic sizes
    rebuilds the view through ``set_`` and costs more than computing it afresh (62-layer
    benchmark graph: this pass 0.84 -> 0.47 s; torch 2.13)."""
    enabled = fake_mode.cache_enabled
    fake_mode.cache_enabled = False
    try:
        yield
    finally:
        fake_mode.cache_enabled = enabled


@dataclass(frozen=True)
class FuseSiblingLinearsPass(Pass):
    """Merge GGUF linears of one format that read the same activation into one linear over
    their stacked weights, each former result a slice of its output."""

    name: ClassVar[str] = "fuse-sibling-linears"
    max_iterations: int = option(DEFAULT_MAX_ITERATIONS, "cap on greedy sweeps over the graph")

    def run(self, program, context) -> bool:
        config = GreedyConfig(max_iterations=self.max_iterations)
        pattern = FuseSiblingLinears()
        changed = apply_patterns_greedily(program, [pattern], context, config, self.name)
        context.count("fused-linears", pattern.merged)
        context.count("fused-linear-groups", pattern.groups)
        return changed


__all__ = ["FuseSiblingLinears", "FuseSiblingLinearsPass", "stacked_name"]
