"""`GraphProgram`: one FX graph with its constants and the ranges of its symbolic dims.

This is the unit every pass, dump and lowering works on.  It is built from a
`torch.export.ExportedProgram` (or parsed from text) and is always runnable in eager PyTorch:

* user inputs are the graph's `placeholder` nodes, in order;
* weights, buffers and lifted constants are `get_attr` nodes whose target is the constant's
  original fully-qualified name (`blk.0.attn_q.weight`); the tensors live on `graph_module`;
* every node carries `meta["val"]` (a FakeTensor, SymInt or tuple of them) so shapes, dtypes
  and symbolic dims are known without running anything;
* `symbol_ranges` maps each symbolic dim's name (as sympy prints it) to its inclusive
  `(min, max)`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import sympy
import torch
import torch.fx

from compiler.errors import VerificationError

# Export inserts a call to this module to check input shapes; it is not part of the model.
_EXPORT_GUARD_MODULE = "_guards_fn"


@dataclass
class GraphProgram:
    graph_module: torch.fx.GraphModule
    symbol_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    # True once the graph was edited after the module's forward was generated; calling the
    # program regenerates it then (recompiling a 10,000-node graph after every pass would
    # cost more than the passes themselves).
    code_is_stale: bool = field(default=False, repr=False, compare=False)

    # ---- views -------------------------------------------------------------------------
    @property
    def graph(self) -> torch.fx.Graph:
        return self.graph_module.graph

    @property
    def inputs(self) -> list[torch.fx.Node]:
        return [n for n in self.graph.nodes if n.op == "placeholder"]

    def constant_names(self) -> list[str]:
        """Names of the constants the graph references, in first-use order, each once."""
        seen: dict[str, None] = {}
        for node in self.graph.nodes:
            if node.op == "get_attr" and isinstance(self.get_constant(node.target), torch.Tensor):
                seen.setdefault(node.target, None)
        return list(seen)

    def constants(self) -> dict[str, torch.Tensor]:
        return {name: self.get_constant(name) for name in self.constant_names()}

    def get_constant(self, name: str):
        obj = self.graph_module
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj

    def nodes(self) -> Iterator[torch.fx.Node]:
        return iter(self.graph.nodes)

    # ---- running -----------------------------------------------------------------------
    def mark_graph_changed(self) -> None:
        """Note that the graph was edited, so the generated forward must be regenerated
        before the program runs (the pass manager calls this after a pass that changed it)."""
        self.code_is_stale = True

    def __call__(self, *inputs: torch.Tensor):
        if self.code_is_stale:
            self.graph_module.recompile()
            self.code_is_stale = False
        return self.graph_module(*inputs)

    def default_symbol_values(self) -> dict[str, int]:
        """Each symbol at its minimum, raised to 2 (0 and 1 are special cases for export)
        but never above its maximum."""
        return {
            name: min(max(low, _SMALLEST_GENERIC_SIZE), high)
            for name, (low, high) in self.symbol_ranges.items()
        }

    def example_inputs(
        self,
        symbol_values: Mapping[str, int] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple:
        """Random inputs for the graph, with each symbolic dim set from `symbol_values`.

        `symbol_values` is keyed like `symbol_ranges` and overrides `default_symbol_values()`
        symbol by symbol.  Floating inputs are standard normal; integer inputs are indices,
        uniform in `[0, bound)` where bound is the size of the dim they index (the rows of an
        `aten.embedding` weight / `ggufc.embedding` table, the indexed dim of `index_select`
        and `gather`), or `DEFAULT_INDEX_BOUND` when they index nothing; bool inputs are
        random bits; SymInt inputs get their value.  `generator` defaults to one seeded with
        0, so the same call gives the same inputs.
        """
        values = self.default_symbol_values()
        if symbol_values:
            unknown = set(symbol_values) - set(self.symbol_ranges)
            if unknown:
                raise VerificationError(
                    f"example_inputs: unknown symbols {sorted(unknown)}; "
                    f"the program has {sorted(self.symbol_ranges)}"
                )
            values.update(symbol_values)
        for name, value in values.items():
            low, high = self.symbol_ranges[name]
            if not low <= value <= high:
                raise VerificationError(
                    f"example_inputs: {name}={value} is outside its range [{low}, {high}]"
                )
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        bounds = _index_bounds(self.graph)
        inputs = []
        for node in self.inputs:
            fake = node.meta.get("val")
            if isinstance(fake, torch.Tensor):
                shape = [_concrete(d, values, node) for d in fake.shape]
                inputs.append(_random_input(fake.dtype, shape, bounds.get(node), values, generator))
            elif isinstance(fake, (torch.SymInt, int)) and not isinstance(fake, bool):
                inputs.append(_concrete(fake, values, node))
            else:
                raise VerificationError(
                    f"example_inputs: input %{node.name} has no tensor or int meta['val'] "
                    f"({type(fake).__name__})"
                )
        return tuple(inputs)

    def copy(self) -> GraphProgram:
        """A deep copy of the graph; constant tensors are shared, not copied."""
        memo = {id(t): t for t in self.constants().values()}
        return GraphProgram(
            copy.deepcopy(self.graph_module, memo), dict(self.symbol_ranges), self.code_is_stale
        )

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_exported(cls, ep: torch.export.ExportedProgram) -> GraphProgram:
        """Unlift an ExportedProgram: parameter/buffer/constant placeholders become
        `get_attr` nodes on their original names, user inputs stay placeholders."""
        signature = ep.graph_signature
        lifted: dict[str, str] = {}
        lifted.update(signature.inputs_to_parameters)
        lifted.update(signature.inputs_to_buffers)
        lifted.update(signature.inputs_to_lifted_tensor_constants)
        tensors: dict[str, torch.Tensor] = {}
        tensors.update(ep.state_dict)
        tensors.update(ep.constants)

        graph = copy.deepcopy(ep.graph)
        root: dict[str, object] = {}
        first_real = next((n for n in graph.nodes if n.op != "placeholder"), None)
        for node in list(graph.nodes):
            if node.op != "placeholder" or node.name not in lifted:
                continue
            target = lifted[node.name]
            tensor = tensors[target]
            if isinstance(tensor, torch.nn.Parameter):
                tensor = tensor.detach()
            root[target] = tensor
            with graph.inserting_before(first_real):
                new = graph.get_attr(target)
            new.meta = dict(node.meta)
            node.replace_all_uses_with(new)
            graph.erase_node(node)
        # Submodules referenced by higher-order ops (torch.cond branches) come along.
        for node in graph.nodes:
            if node.op == "get_attr" and node.target not in root:
                root[node.target] = _get_path(ep.graph_module, node.target)
        _fill_missing_none_vals(graph)
        gm = torch.fx.GraphModule(root, graph)
        ranges = {
            str(sym): (int(vr.lower), int(vr.upper) if vr.upper.is_finite else _UNBOUNDED)
            for sym, vr in ep.range_constraints.items()
        }
        return cls(gm, ranges)

    @classmethod
    def from_module(
        cls,
        module: torch.nn.Module,
        example_inputs: tuple,
        dynamic_shapes: Mapping | tuple | None = None,
    ) -> GraphProgram:
        """Export `module` with `torch.export.export` and unlift it."""
        ep = torch.export.export(module, example_inputs, dynamic_shapes=dynamic_shapes)
        return cls.from_exported(ep)


# The largest value export reports for an unbounded dim is sympy's oo; we store it as int.
_UNBOUNDED = 2**63 - 1
# Export treats sizes 0 and 1 as special; example sizes start at 2.
_SMALLEST_GENERIC_SIZE = 2
# Integer inputs that index nothing the graph shows are drawn from [0, 2).
DEFAULT_INDEX_BOUND = 2


def _concrete(value, symbol_values: Mapping[str, int], node: torch.fx.Node) -> int:
    if isinstance(value, int):
        return value
    expr = value.node.expr
    shape_env = getattr(value.node, "shape_env", None)
    if shape_env is not None:
        expr = shape_env.replace(expr)
    result = _substitute(expr, symbol_values)
    if result.free_symbols:
        raise VerificationError(
            f"example_inputs: %{node.name} needs a value for {sorted(map(str, result.free_symbols))}"
        )
    return int(result)


def _fill_missing_none_vals(graph: torch.fx.Graph) -> None:
    """Export leaves some ops that return nothing (`aten._assert_tensor_metadata` in a
    re-exported graph) without `meta["val"]`; their value is None."""
    for node in graph.nodes:
        target = node.target
        if (
            node.op == "call_function"
            and "val" not in node.meta
            and isinstance(target, torch._ops.OpOverload)
            and not target._schema.returns
        ):
            node.meta["val"] = None


def _substitute(expr: sympy.Expr, symbol_values: Mapping[str, int]) -> sympy.Expr:
    known = {
        s: sympy.Integer(symbol_values[str(s)])
        for s in expr.free_symbols
        if str(s) in symbol_values
    }
    return sympy.sympify(expr.xreplace(known))


def _index_bounds(graph: torch.fx.Graph) -> dict[torch.fx.Node, object]:
    """input node -> the size (int or SymInt) of the dim it indexes, the smallest if several."""
    aten = torch.ops.aten
    bounds: dict[torch.fx.Node, list] = {}

    def note(index, size) -> None:
        if isinstance(index, torch.fx.Node) and index.op == "placeholder":
            bounds.setdefault(index, []).append(size)

    def size_of(tensor_node, dim):
        value = tensor_node.meta.get("val") if isinstance(tensor_node, torch.fx.Node) else None
        if (
            isinstance(value, torch.Tensor)
            and isinstance(dim, int)
            and -value.dim() <= dim < value.dim()
        ):
            return value.shape[dim]
        return None

    for node in graph.nodes:
        if node.op != "call_function":
            continue
        target, args = node.target, node.args
        if target is aten.embedding.default and len(args) >= 2:
            note(args[1], size_of(args[0], 0))
        elif target in (aten.index_select.default, aten.gather.default) and len(args) >= 3:
            note(args[2], size_of(args[0], args[1]))
        elif target is aten.index.Tensor and len(args) >= 2:
            for dim, index in enumerate(args[1]):
                note(index, size_of(args[0], dim))
        elif getattr(target, "namespace", None) == "ggufc" and target.__name__.startswith(
            "embedding"
        ):
            schema_names = [a.name for a in target._schema.arguments]
            bound = dict(zip(schema_names, args)) | dict(node.kwargs)
            note(bound.get("indices"), bound.get("n"))
    return {node: [s for s in sizes if s is not None] for node, sizes in bounds.items()}


def _random_input(dtype, shape, bounds, symbol_values, generator) -> torch.Tensor:
    if dtype.is_floating_point or dtype.is_complex:
        return torch.randn(shape, generator=generator, dtype=dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    limits = [_concrete_size(b, symbol_values) for b in bounds or []]
    limits = [b for b in limits if b is not None and b > 0]
    high = min(limits) if limits else DEFAULT_INDEX_BOUND
    return torch.randint(0, high, shape, generator=generator).to(dtype)


def _concrete_size(size, symbol_values) -> int | None:
    if isinstance(size, int):
        return size
    if isinstance(size, torch.fx.Node):
        size = size.meta.get("val")
    if isinstance(size, torch.SymInt):
        expr = size.node.expr
        result = _substitute(expr, symbol_values)
        return None if result.free_symbols else int(result)
    return size if isinstance(size, int) else None


def _get_path(root: torch.nn.Module, path: str):
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


__all__ = ["GraphProgram"]
