"""`split-dynamic-m`: pick the ggufc.linear kernel per M bucket, as torch.cond regions.

``M`` of a ``ggufc.linear(x, ...)`` is the product of ``x``'s leading dims (the rows of the
product).  The right GPU kernel depends on it: a matrix-vector kernel for ``M = 1``, a
batched one for a few rows, a tensor-core matmul beyond.  With ``buckets=t1,t2``::

    M <= t1        -> kernel="matvec"
    t1 < M <= t2   -> kernel="matvec_batched"
    M > t2         -> kernel="matmul"

(one threshold: matvec / matmul; none: matmul only).  Where one kernel overtakes the next
depends on the activations' dtype, so the thresholds come per dtype: ``buckets`` for float16
and bfloat16 activations (default `compiler.tuning.DEFAULT_BUCKETS`, ``1,9``),
``float32-buckets`` for float32 ones (default ``16``: the batched kernel never won with
float32 activations); both defaults from H100 runs of ``ggufc tune``.  Buckets that the
range of ``M`` (from the program's symbol ranges) cannot reach are dropped.

* Static ``M``, or a symbolic ``M`` that only one bucket can hold: the kernel argument is
  set in place, no branch.
* Symbolic ``M``: the linears are grouped into regions (`passes.regions`), and each region
  is replaced by one ``torch.ops.higher_order.cond`` whose branches are copies of the region
  with the kernel of one bucket.  Three buckets give nested conds::

      %m = sym_size(...)                       # M, from an input that carries its symbols
      %pred = operator.le(%m, t1)
      %cond = higher_order.cond(%pred, ^true_graph_0, ^false_graph_0, (*operands, %m))
        ^true_graph_0(...)  { region, kernel="matvec" }
        ^false_graph_0(..., %m) {
          %pred = operator.le(%m, t2)
          %cond = higher_order.cond(%pred, ^true_graph_0, ^false_graph_0, (..., %m))
            ^true_graph_0 { region, kernel="matvec_batched" }
            ^false_graph_0 { region, kernel="matmul" }
        }
      %getitem = operator.getitem(%cond, 0) ...  # one per value the outside reads

  Operands are what the region reads from outside (inputs, constants, sizes) plus ``M``; every
  branch takes all of them, so both sides of each cond have one signature.  Branches are
  ordinary FX graphs, runnable in eager PyTorch.

Regions (option ``region``): ``op`` wraps each linear alone; ``layer`` takes the linears of one
decoder layer (the ``blk.N.`` / ``layers.N.`` prefix of their weight's name) with the same
``M`` and buckets; ``max`` (default) takes every linear with the same ``M`` and buckets. A
region is the convex closure of its linears (they and every op on a path between two of them);
one that would hold an input, an op with side effects or another cond is cut into consecutive
runs, and if contracting all regions at once would make a cycle every linear gets its own
region. A region whose outside readers need a non-tensor value falls back to one region per
linear.

Statistics: ``static-linear`` (kernel set directly), ``split-linear`` (linears inside
regions), ``regions``, ``branches`` (leaf branches over all regions), ``region-nodes``
(nodes moved into regions, counted once), ``unsplittable-regions`` (regions left alone, their
kernels "auto", because no graph input carries a symbol of their M).
"""

from __future__ import annotations

import heapq
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import sympy
import torch
import torch.fx

from compiler import ops
from compiler.errors import PassError
from compiler.tuning import (
    BUCKETS_OPTION_BY_DTYPE,
    DEFAULT_BUCKETS,
    FLOAT32_DEFAULT_BUCKETS,
    KERNELS_BY_THRESHOLD_COUNT,
)
from passes.fuse_gguf_patterns import bound_arguments
from passes.pass_base import Pass, option
from passes.regions import form_regions, graph_view, quotient_is_acyclic
from passes.shape_facts import dim_expr, tensor_value

COND = torch.ops.higher_order.cond
REGION_MODES = ("op", "layer", "max")
# Kernel of each bucket, by the number of thresholds given (shared with `ggufc tune`).
KERNELS_BY_THRESHOLDS = KERNELS_BY_THRESHOLD_COUNT
# ggufc.linear's arguments in schema order; the kernel is the last one.
LINEAR_ARGUMENTS = ("x", "blocks", "bias", "fmt", "n", "k", "kernel")
# Names torch.export gives the two branches of a cond; reused for readable dumps.
TRUE_BRANCH, FALSE_BRANCH = "true_graph", "false_graph"
# The decoder layer of a weight, from its constant's name ("blk.3.attn_q.blocks" -> "blk.3").
LAYER_PREFIX = re.compile(r"^(.*?(?:^|\.)(?:blk|layers|layer|h|blocks)\.\d+)\.")
UNBOUNDED = float("inf")
# GraphProgram stores an unbounded maximum as 2**63 - 1; anything this large means "no bound".
UNBOUNDED_RANGE_MAX = 2**62


@dataclass(frozen=True)
class Bucket:
    """Rows ``low <= M <= high`` use `kernel`."""

    low: float
    high: float
    kernel: str

    def holds(self, m: int) -> bool:
        return self.low <= m <= self.high

    def meets(self, low: float, high: float) -> bool:
        return self.low <= high and low <= self.high


@dataclass(frozen=True)
class SplitDynamicM(Pass):
    """Pin each ggufc.linear's kernel per M bucket, with torch.cond regions for symbolic M."""

    name: ClassVar[str] = "split-dynamic-m"
    buckets: tuple[int, ...] = option(
        DEFAULT_BUCKETS,
        "M thresholds of float16 / bfloat16 linears: matvec up to the first, matvec_batched "
        "up to the second, matmul above",
    )
    float32_buckets: tuple[int, ...] = option(
        FLOAT32_DEFAULT_BUCKETS, "the same for float32 linears"
    )
    region: str = option("max", "what one cond covers: op, layer or max")

    def __post_init__(self) -> None:
        for field in ("buckets", "float32_buckets"):
            thresholds = getattr(self, field)
            text = field.replace("_", "-")
            if len(thresholds) not in KERNELS_BY_THRESHOLDS:
                raise PassError(
                    f"split-dynamic-m: {text}= takes at most {max(KERNELS_BY_THRESHOLDS)} "
                    f"thresholds, got {len(thresholds)}"
                )
            if any(t < 1 for t in thresholds) or list(thresholds) != sorted(set(thresholds)):
                raise PassError(
                    f"split-dynamic-m: {text}= must be increasing positive integers, got "
                    f"{','.join(map(str, thresholds))}"
                )
        if self.region not in REGION_MODES:
            raise PassError(
                f"split-dynamic-m: region={self.region!r}; expected one of {', '.join(REGION_MODES)}"
            )

    def thresholds_for(self, dtype: torch.dtype) -> tuple[int, ...]:
        """The thresholds of linears with ``dtype`` activations (`buckets` unless float32)."""
        name = str(dtype).removeprefix("torch.")
        return getattr(self, BUCKETS_OPTION_BY_DTYPE.get(name, "buckets"))

    def bucket_list(self, dtype: torch.dtype = torch.float16) -> list[Bucket]:
        thresholds = self.thresholds_for(dtype)
        kernels = KERNELS_BY_THRESHOLDS[len(thresholds)]
        lows = [-UNBOUNDED, *(t + 1 for t in thresholds)]
        highs = [*thresholds, UNBOUNDED]
        return [Bucket(lo, hi, kernel) for lo, hi, kernel in zip(lows, highs, kernels)]

    def run(self, program, context) -> bool:
        return _Splitter(self, program, context).run()


def linear_rows(node: torch.fx.Node) -> sympy.Expr | None:
    """M of a ggufc.linear: the product of its activation's leading dims."""
    x = tensor_value(bound_arguments(node).get("x"))
    if x is None:
        return None
    rows = sympy.Integer(1)
    for dim in x.shape[:-1]:
        expr = dim_expr(dim)
        if expr is None:
            return None
        rows *= expr
    return sympy.expand(rows)


def layer_of(node: torch.fx.Node) -> str | None:
    """The decoder layer a linear belongs to, from its weight constant's name."""
    blocks = bound_arguments(node).get("blocks")
    if isinstance(blocks, torch.fx.Node) and blocks.op == "get_attr":
        match = LAYER_PREFIX.match(str(blocks.target))
        if match:
            return match.group(1)
    return None


def with_kernel(node: torch.fx.Node, kernel: str) -> tuple[tuple, dict]:
    """(args, kwargs) of ggufc.linear `node` with its kernel set to `kernel`."""
    bound = bound_arguments(node)
    args = tuple(bound[name] for name in LINEAR_ARGUMENTS[:-1]) + (kernel,)
    return args, {}


def _activation_dtype(node: torch.fx.Node) -> torch.dtype:
    """The dtype of a ggufc.linear's activations (float16 where export left no value)."""
    x = tensor_value(bound_arguments(node).get("x"))
    return torch.float16 if x is None else x.dtype


def _is_auto_linear(node: torch.fx.Node) -> bool:
    return (
        node.op == "call_function"
        and node.target is ops.linear
        and bound_arguments(node).get("kernel", ops.KERNEL_AUTO) == ops.KERNEL_AUTO
    )


def _is_barrier(node: torch.fx.Node) -> bool:
    if node.op != "call_function" or "val" not in node.meta:
        return True
    if isinstance(node.target, torch._ops.HigherOrderOperator):
        return True
    return node.is_impure()


class _Splitter:
    def __init__(self, pass_: SplitDynamicM, program, context):
        self.pass_ = pass_
        self.program = program
        self.graph: torch.fx.Graph = program.graph
        self.context = context
        self.rewriter = context.rewriter(program, pass_.name)
        # each split linear's region key: (M, the buckets it reaches)
        self.keys: dict[torch.fx.Node, tuple] = {}

    # ---- driver ------------------------------------------------------------------------
    def run(self) -> bool:
        linears = [n for n in self.graph.nodes if _is_auto_linear(n)]
        # a region holds linears of one M and one bucket plan (the plan follows the dtype)
        plans: dict[tuple, list[Bucket]] = {}
        changed = False
        symbolic: dict[tuple, list[torch.fx.Node]] = {}
        static = 0
        for node in linears:
            m = linear_rows(node)
            if m is None:
                continue
            reachable = self._reachable_buckets(m, self.pass_.bucket_list(_activation_dtype(node)))
            if len(reachable) == 1:
                args, kwargs = with_kernel(node, reachable[0].kernel)
                self.rewriter.update_args(node, args, kwargs)
                static += 1
                changed = True
            elif reachable:
                key = (m, tuple(reachable))
                self.keys[node] = key
                symbolic.setdefault(key, []).append(node)
                plans[key] = reachable
        self.context.count("static-linear", static)
        regions = self._regions(symbolic)
        split = region_nodes = branches = replaced = 0
        for key, region in regions:
            operands_m = self._rows_node(key[0], region[-1])
            if operands_m is None:
                continue
            seeds = [n for n in region if n.target is ops.linear and self.keys.get(n) == key]
            self._replace_region(region, seeds, plans[key], operands_m)
            split += len(seeds)
            region_nodes += len(region)
            branches += len(plans[key])
            replaced += 1
            changed = True
        if replaced:
            _restore_topological_order(self.graph)
        self.context.count("split-linear", split)
        self.context.count("regions", replaced)
        self.context.count("branches", branches)
        self.context.count("region-nodes", region_nodes)
        return changed

    def _reachable_buckets(self, m: sympy.Expr, buckets: list[Bucket]) -> list[Bucket]:
        if m.is_number:
            value = int(m)
            return [b for b in buckets if b.holds(value)]
        low, high = self._range(m)
        return [b for b in buckets if b.meets(low, high)]

    def _range(self, m: sympy.Expr) -> tuple[float, float]:
        """Bounds of M from the symbol ranges (a monomial in symbols with non-negative
        ranges); unknown shapes are treated as unbounded."""
        coefficient, monomial = m.as_coeff_Mul()
        powers = monomial.as_powers_dict()
        if coefficient <= 0 or any(
            not (isinstance(p, sympy.Integer) and p > 0) for p in powers.values()
        ):
            return -UNBOUNDED, UNBOUNDED
        low, high = float(coefficient), float(coefficient)
        for symbol, power in powers.items():
            if not isinstance(symbol, sympy.Symbol):
                return -UNBOUNDED, UNBOUNDED
            lo, hi = self.program.symbol_ranges.get(str(symbol), (0, UNBOUNDED))
            if lo < 0:
                return -UNBOUNDED, UNBOUNDED
            hi = UNBOUNDED if hi >= UNBOUNDED_RANGE_MAX else hi
            low *= lo ** int(power)
            high *= hi ** int(power)
        return low, high

    # ---- regions -----------------------------------------------------------------------
    def _regions(self, symbolic: dict) -> list[tuple[tuple, list[torch.fx.Node]]]:
        """(key, nodes) of each region: key = (M, the buckets it reaches)."""
        if not symbolic:
            return []
        groups: list[tuple[tuple, list]] = []
        for key, nodes in symbolic.items():
            groups.extend((key, group) for group in self._seed_groups(nodes))
        view = graph_view(self.graph)
        position = view.nodes
        groups.sort(key=lambda item: position[item[1][0]]["index"])
        formed = form_regions(view, [group for _, group in groups], _is_barrier)
        regions = [(groups[number][0], region) for number, region in formed]
        if not quotient_is_acyclic(view, [region for _, region in regions]):
            regions = [(key, [node]) for key, group in groups for node in group]
        final = []
        for key, region in regions:
            if self._outputs_are_tensors(region):
                final.append((key, region))
            else:
                final.extend((key, [n]) for n in region if self.keys.get(n) == key)
        return final

    def _seed_groups(self, nodes: list[torch.fx.Node]) -> list[list[torch.fx.Node]]:
        mode = self.pass_.region
        if mode == "op":
            return [[n] for n in nodes]
        if mode == "max":
            return [nodes]
        by_layer: dict[str, list] = {}
        groups: list[list] = []
        for node in nodes:
            layer = layer_of(node)
            if layer is None:
                groups.append([node])
            else:
                if layer not in by_layer:
                    by_layer[layer] = []
                    groups.append(by_layer[layer])
                by_layer[layer].append(node)
        return groups

    @staticmethod
    def _outputs_are_tensors(region: Sequence[torch.fx.Node]) -> bool:
        inside = set(region)
        for node in region:
            read_outside = any(user not in inside for user in node.users)
            if read_outside and not isinstance(node.meta.get("val"), torch.Tensor):
                return False
        return True

    # ---- M as a value ------------------------------------------------------------------
    def _rows_node(self, m: sympy.Expr, anchor: torch.fx.Node) -> torch.fx.Node | None:
        """A node computing M from the graph's inputs, inserted after `anchor`."""
        coefficient, monomial = m.as_coeff_Mul()
        powers = monomial.as_powers_dict()
        sources = self._symbol_sources()
        factors: list[torch.fx.Node] = []
        before = anchor.next
        for symbol, power in sorted(powers.items(), key=lambda item: str(item[0])):
            if symbol not in sources or not isinstance(power, sympy.Integer) or power < 1:
                self.context.count("unsplittable-regions")
                return None
            placeholder, dim = sources[symbol]
            size = self.rewriter.call_function(
                torch.ops.aten.sym_size.int,
                (placeholder, dim),
                before=before,
                val=placeholder.meta["val"].shape[dim],
            )
            factors.extend([size] * int(power))
        result = factors[0]
        for factor in factors[1:]:
            result = self.rewriter.call_function(
                operator.mul,
                (result, factor),
                before=before,
                val=result.meta["val"] * factor.meta["val"],
            )
        if coefficient != 1:
            result = self.rewriter.call_function(
                operator.mul,
                (int(coefficient), result),
                before=before,
                val=int(coefficient) * result.meta["val"],
            )
        return result

    def _symbol_sources(self) -> dict[sympy.Symbol, tuple[torch.fx.Node, int]]:
        sources: dict = {}
        for node in self.program.inputs:
            value = tensor_value(node)
            if value is None:
                continue
            for dim, size in enumerate(value.shape):
                expr = dim_expr(size)
                if isinstance(expr, sympy.Symbol):
                    sources.setdefault(expr, (node, dim))
        return sources

    # ---- rewriting one region ----------------------------------------------------------
    def _replace_region(self, region, seeds, buckets: list[Bucket], rows: torch.fx.Node) -> None:
        inside = set(region)
        operands: list[torch.fx.Node] = []
        for node in region:
            for source in node.all_input_nodes:
                if source not in inside and source not in operands:
                    operands.append(source)
        outputs = [n for n in region if any(user not in inside for user in n.users)]
        operands.append(rows)
        pinned = set(seeds)
        values = tuple(n.meta["val"] for n in outputs)
        body = _BranchBuilder(region, operands, outputs, pinned, values)

        root = self.program.graph_module
        true_name = _free_attribute(root, TRUE_BRANCH)
        root.add_submodule(true_name, body.leaf(buckets[0].kernel))
        false_name = _free_attribute(root, FALSE_BRANCH)
        root.add_submodule(false_name, body.tree(buckets[1:]))

        before = rows.next
        threshold = int(buckets[0].high)
        predicate = self.rewriter.call_function(
            operator.le, (rows, threshold), before=before, val=rows.meta["val"] <= threshold
        )
        branch_nodes = []
        for name in (true_name, false_name):
            with self.graph.inserting_before(before):
                attribute = self.graph.get_attr(name)
            if self.rewriter.listener is not None:
                self.rewriter.listener.node_inserted(self.rewriter.origin, attribute)
            branch_nodes.append(attribute)
        cond = self.rewriter.call_function(
            COND, (predicate, *branch_nodes, tuple(operands)), before=before, val=values
        )
        for index, output in enumerate(outputs):
            item = self.rewriter.call_function(
                operator.getitem, (cond, index), before=before, val=values[index]
            )
            for user in list(output.users):
                if user in inside or user is item:
                    continue
                replaced = torch.fx.node.map_arg(
                    (user.args, user.kwargs), lambda n, o=output, i=item: i if n is o else n
                )
                self.rewriter.update_args(user, *replaced)
        for node in reversed(region):
            self.rewriter.erase_node(node)


class _BranchBuilder:
    """Builds the branch graphs of one region: leaves (the region with one kernel) and the
    nested conds that choose among the remaining buckets."""

    def __init__(self, region, operands, outputs, pinned, values):
        self.region = region
        self.operands = operands
        self.outputs = outputs
        self.pinned = pinned
        self.values = values

    def _placeholders(self, graph: torch.fx.Graph) -> list[torch.fx.Node]:
        result = []
        for operand in self.operands:
            placeholder = graph.placeholder(operand.name)
            placeholder.meta["val"] = operand.meta["val"]
            result.append(placeholder)
        return result

    def leaf(self, kernel: str) -> torch.fx.GraphModule:
        graph = torch.fx.Graph()
        env = dict(zip(self.operands, self._placeholders(graph)))
        for node in self.region:
            copy = graph.node_copy(node, lambda n: env[n])
            if node in self.pinned:
                copy.args, copy.kwargs = with_kernel(copy, kernel)
            env[node] = copy
        graph.output(tuple(env[n] for n in self.outputs))
        return _branch_module(torch.nn.Module(), graph)

    def tree(self, buckets: Sequence[Bucket]) -> torch.fx.GraphModule:
        if len(buckets) == 1:
            return self.leaf(buckets[0].kernel)
        graph = torch.fx.Graph()
        placeholders = self._placeholders(graph)
        rows = placeholders[-1]
        threshold = int(buckets[0].high)
        predicate = graph.call_function(operator.le, (rows, threshold))
        predicate.meta["val"] = rows.meta["val"] <= threshold
        true_branch = graph.get_attr(f"{TRUE_BRANCH}_0")
        false_branch = graph.get_attr(f"{FALSE_BRANCH}_0")
        cond = graph.call_function(
            COND, (predicate, true_branch, false_branch, tuple(placeholders))
        )
        cond.meta["val"] = self.values
        items = []
        for index, value in enumerate(self.values):
            item = graph.call_function(operator.getitem, (cond, index))
            item.meta["val"] = value
            items.append(item)
        graph.output(tuple(items))
        branches = {
            f"{TRUE_BRANCH}_0": self.leaf(buckets[0].kernel),
            f"{FALSE_BRANCH}_0": self.tree(buckets[1:]),
        }
        return _branch_module(branches, graph)


def _branch_module(root, graph: torch.fx.Graph) -> torch.fx.GraphModule:
    """A GraphModule for a branch whose Python code is generated on first call, not now: for a
    big region, generating the code of three copies would cost more than the whole pass."""
    try:
        from torch.fx._lazy_graph_module import _LazyGraphModule
    except ImportError:  # a torch without lazy graph modules: generate the code now
        return torch.fx.GraphModule(root, graph)
    return _LazyGraphModule(root, graph)


def _free_attribute(root: torch.nn.Module, prefix: str) -> str:
    index = 0
    while hasattr(root, f"{prefix}_{index}"):
        index += 1
    return f"{prefix}_{index}"


def _restore_topological_order(graph: torch.fx.Graph) -> None:
    """Reorder nodes so each comes after its inputs, keeping the current order wherever it is
    already valid (a region's cond sits after the region's last node; outside readers of an
    earlier region value may have been placed before it)."""
    nodes = list(graph.nodes)
    position = {node: index for index, node in enumerate(nodes)}
    if all(position[s] < position[n] for n in nodes for s in n.all_input_nodes):
        return
    waiting = {node: len(set(node.all_input_nodes)) for node in nodes}
    ready = [(position[n], n.name) for n in nodes if waiting[n] == 0]
    by_name = {n.name: n for n in nodes}
    heapq.heapify(ready)
    order = []
    while ready:
        _, name = heapq.heappop(ready)
        node = by_name[name]
        order.append(node)
        for user in node.users:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (position[user], user.name))
    if len(order) != len(nodes):
        raise PassError("split-dynamic-m: the graph has a cycle after contracting regions")
    output = graph.output_node()
    for node in order:
        if node is not output:
            output.prepend(node)


__all__ = ["Bucket", "SplitDynamicM", "layer_of", "linear_rows", "with_kernel"]
