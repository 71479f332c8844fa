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

import torch
import torch.fx

# Export inserts a call to this module to check input shapes; it is not part of the model.
_EXPORT_GUARD_MODULE = "_guards_fn"


@dataclass
class GraphProgram:
    graph_module: torch.fx.GraphModule
    symbol_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)

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
    def __call__(self, *inputs: torch.Tensor):
        return self.graph_module(*inputs)

    def copy(self) -> GraphProgram:
        """A deep copy of the graph; constant tensors are shared, not copied."""
        memo = {id(t): t for t in self.constants().values()}
        return GraphProgram(copy.deepcopy(self.graph_module, memo), dict(self.symbol_ranges))

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


def _get_path(root: torch.nn.Module, path: str):
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


__all__ = ["GraphProgram"]
