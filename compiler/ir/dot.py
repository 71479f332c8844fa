"""Graphviz DOT view of a graph program.

Shapes: inputs are `invhouse`, ops `box`, constants grey `note`s (one per constant, shared by
all its uses), outputs `house`.  A node's label is `%name : type` over its op, with symbols
named as in the text dump (`print_program`).  Each region (a torch.cond branch) is a
`cluster` subgraph, drawn once even when several ops share it; dashed edges carry each op's
operands into the region's inputs and the region's results back to the op.  Every
identifier and label is a quoted, escaped DOT string.
"""

from __future__ import annotations

import torch
import torch.fx

from compiler.ir.printer import (
    COND_OPERANDS_INDEX,
    _attr,
    _flat_nodes,
    _Printer,
    const_text,
    type_text,
)
from compiler.ir.program import GraphProgram

_GRAPH_ATTRIBUTES = ('rankdir="TB"', 'node [fontname="monospace", fontsize="10"]')
_INPUT_STYLE = 'shape="invhouse"'
_OP_STYLE = 'shape="box", style="rounded"'
_CONST_STYLE = 'shape="note", style="filled", fillcolor="lightgrey"'
_OUTPUT_STYLE = 'shape="house"'
_REGION_EDGE_STYLE = 'style="dashed"'


def quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as \\n."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_dot(gp: GraphProgram) -> str:
    """The program as a Graphviz `digraph`."""
    return _DotWriter(gp).render()


class _DotWriter:
    def __init__(self, gp: GraphProgram) -> None:
        self.gp = gp
        printer = _Printer(gp, anonymous=False)
        printer.render()  # names the symbols exactly as the text dump does
        self.symbols = printer.symbols
        self.lines: list[str] = ["digraph program {"]
        self.lines += [f"  {a};" for a in _GRAPH_ATTRIBUTES]
        self.edges: list[str] = []
        self.constant_ids: dict[str, str] = {}
        self.drawn_regions: dict[int, dict] = {}  # id(GraphModule) -> its node ids
        self.counter = 0

    def render(self) -> str:
        self._graph(self.gp.graph, self.gp.graph_module, prefix="", depth=1)
        self.lines += self.edges
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"

    def _new_id(self) -> str:
        self.counter += 1
        return f"n{self.counter}"

    def _graph(self, graph: torch.fx.Graph, owner, prefix: str, depth: int) -> dict:
        """Declare the nodes of `graph`; returns node -> DOT id (placeholders and output
        included, so a caller can wire region inputs and results)."""
        indent = "  " * depth
        ids: dict[torch.fx.Node, str] = {}
        for node in graph.nodes:
            if node.op == "get_attr":
                value = _attr(owner, node.target)
                if isinstance(value, torch.Tensor):
                    ids[node] = self._constant(node.target, value)
                continue
            node_id = self._new_id()
            ids[node] = node_id
            if node.op == "placeholder":
                label, style = self._value_label(node), _INPUT_STYLE
            elif node.op == "output":
                label, style = f"{prefix}return", _OUTPUT_STYLE
            else:
                label, style = f"{self._value_label(node)}\n{self._op_label(node)}", _OP_STYLE
            self.lines.append(f"{indent}{quote(node_id)} [label={quote(label)}, {style}];")
            for source in _flat_nodes((node.args, node.kwargs)):
                if source in ids:
                    self.edges.append(f"  {quote(ids[source])} -> {quote(node_id)};")
            if node.op == "call_function":
                self._regions(node, owner, ids, depth)
        return ids

    def _regions(self, node: torch.fx.Node, owner, ids: dict, depth: int) -> None:
        indent = "  " * depth
        operands = []
        if node.target is torch.ops.higher_order.cond and len(node.args) > COND_OPERANDS_INDEX:
            raw = node.args[COND_OPERANDS_INDEX]
            operands = list(raw) if isinstance(raw, (tuple, list)) else []
        for region_node in _flat_nodes((node.args, node.kwargs)):
            if region_node.op != "get_attr":
                continue
            module = _attr(owner, region_node.target)
            if not isinstance(module, torch.fx.GraphModule):
                continue
            inner = self.drawn_regions.get(id(module))
            if inner is None:  # a region shared by several ops is drawn once
                cluster = self._new_id()
                title = f"^{region_node.target} of %{node.name}"
                self.lines.append(f"{indent}subgraph {quote('cluster_' + cluster)} {{")
                self.lines.append(f"{indent}  label={quote(title)};")
                inner = self._graph(
                    module.graph, module, prefix=f"^{region_node.target} ", depth=depth + 1
                )
                self.lines.append(f"{indent}}}")
                self.drawn_regions[id(module)] = inner
            placeholders = [n for n in module.graph.nodes if n.op == "placeholder"]
            for operand, placeholder in zip(operands, placeholders):
                if isinstance(operand, torch.fx.Node) and operand in ids:
                    self.edges.append(
                        f"  {quote(ids[operand])} -> {quote(inner[placeholder])} [{_REGION_EDGE_STYLE}];"
                    )
            output = next((n for n in module.graph.nodes if n.op == "output"), None)
            if output is not None:
                self.edges.append(
                    f"  {quote(inner[output])} -> {quote(ids[node])} [{_REGION_EDGE_STYLE}];"
                )

    def _constant(self, name: str, tensor: torch.Tensor) -> str:
        node_id = self.constant_ids.get(name)
        if node_id is None:
            node_id = self._new_id()
            self.constant_ids[name] = node_id
            label = f"{const_text(name)} : {type_text(tensor, self.symbols)}"
            self.lines.append(f"  {quote(node_id)} [label={quote(label)}, {_CONST_STYLE}];")
        return node_id

    def _value_label(self, node: torch.fx.Node) -> str:
        value_type = type_text(node.meta["val"], self.symbols) if "val" in node.meta else "?"
        return f"%{node.name} : {value_type}"

    def _op_label(self, node: torch.fx.Node) -> str:
        if node.op == "call_method":
            return f"method.{node.target}"
        from compiler.ir.naming import op_text

        return op_text(node.target) or str(node.target)


__all__ = ["quote", "to_dot"]
