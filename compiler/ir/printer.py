"""The textual IR: one line per node, with shapes, dtypes and symbolic dims.

Example (a quantized projection, a view with a symbolic size, a torch.cond on the row count)::

    symbol s0 : [2, 128]
    const @blk.0.attn_q.weight : u8[64, 210] gguf Q6_K
    const @out.weight : f32[64, 64]

    graph @main(%x : f32[1, s0, 256]) {
      %q : f32[1, s0, 64] = ggufc.linear(%x, @blk.0.attn_q.weight, None, "Q6_K", 64, 256)
      %sym_size_int_1 : int(s0) = aten.sym_size.int(%x, 1)
      %view : f32[1, s0, 4, 16] = aten.view(%q, [1, %sym_size_int_1, 4, 16])
      %gt : bool(s0 > 4) = operator.gt(%sym_size_int_1, 4)
      %cond : (f32[1, s0, 64],) = higher_order.cond(%gt, ^true_graph_0, ^false_graph_0, (%q, @out.weight))
        ^true_graph_0(%q_1 : f32[1, s0, 64], %w : f32[64, 64]) {
          %linear : f32[1, s0, 64] = aten.linear(%q_1, %w)
          return (%linear,)
        }
        ^false_graph_0(%q_1 : f32[1, s0, 64], %w : f32[64, 64]) {
          %mul : f32[1, s0, 64] = aten.mul.Tensor(%q_1, 2)
          return (%mul,)
        }
      %getitem : f32[1, s0, 64] = operator.getitem(%cond, 0)
      return (%view, %getitem)
    }

Grammar (one statement per line; leading whitespace is insignificant; a line whose first
non-blank characters are `//` is a comment; blank lines are ignored)::

    program     := { symbol_decl } { const_decl } graph
    symbol_decl := "symbol" SYMBOL ":" "[" INT "," ( INT | "inf" ) "]"
    const_decl  := "const" CONST ":" tensor_type [ "gguf" FORMAT ]
    graph       := "graph" "@main" "(" [ param { "," param } ] ")" "{"  body  "}"
    body        := { node_line { region } } "return" arg
    node_line   := VALUE ":" type "=" OP "(" [ arg { "," arg } ] [ { "," KEY "=" arg } ] ")"
    region      := REGION "(" [ param { "," param } ] ")" "{"  body  "}"
    param       := VALUE ":" type
    type        := tensor_type | "int(" EXPR ")" | "bool(" EXPR ")" | "float(" EXPR ")"
                 | "none" | "?" | "(" [ type { "," type } [ "," ] ] ")"
    tensor_type := DTYPE "[" [ EXPR { "," EXPR } ] "]"
    arg         := VALUE | CONST | REGION | INT | FLOAT | STRING | "True" | "False" | "None"
                 | "[" [ arg { "," arg } ] "]" | "(" [ arg { "," arg } [ "," ] ] ")"
                 | "torch." NAME | DTYPE | "device(" STRING ")"

    VALUE  = %name          an FX node of the enclosing graph or region (names are scoped)
    CONST  = @dotted.name   a constant, by its original fully-qualified name (or @"...")
    REGION = ^name          a subgraph (GraphModule attribute) of the enclosing graph
    SYMBOL = s0, s1, ...    a symbolic dim; EXPR is a sympy expression over them
    DTYPE  = f64 f32 f16 bf16 i64 i32 i16 i8 u8 u16 u32 u64 b8 c64 c128 (else torch's name)
    FLOAT  = Python repr (exact round trip), or inf, -inf, nan
    STRING = a JSON string literal
    OP     = aten.linear | aten.mul.Tensor | ggufc.linear | higher_order.cond
           | operator.getitem | torch.sym_max | method.<name>   (see `compiler.ir.naming`)

Stability rules, so a dump is the same text however the program was made:

* symbols are renamed `s0, s1, ...` (unbacked ones `u0, ...`) in order of first appearance
  in the text, and only symbols that appear are declared;
* constants are declared in order of first use (unused ones last), with the dtype and shape
  of the tensor; `gguf FMT` marks a constant some `ggufc` op reads as GGUF blocks of FMT;
* get_attr nodes are not lines: a constant use prints `@name`, a subgraph use `^name`, and
  a subgraph's body is printed, indented, right after the first node that uses it;
* a node's type is its `meta["val"]` (`?` when a pass left none); symbolic ints, bools and
  floats print their value, e.g. `int(2*s0)`.

`structural_hash` hashes the same text with values and regions numbered in order of
definition, so it ignores node names but sees every op, wire, type, argument and constant
declaration.  Constant *contents* are not hashed.
"""

from __future__ import annotations

import hashlib
import json
import math

import sympy
import torch
import torch.fx

from compiler.errors import UnsupportedError
from compiler.ir import naming
from compiler.ir.program import _UNBOUNDED, GraphProgram

INDENT = "  "
UNKNOWN_TYPE = "?"
NONE_TYPE = "none"
UNBOUNDED_TEXT = "inf"
MAIN_GRAPH_NAME = "main"
GGUF_HINT_KEYWORD = "gguf"
# get_attr nodes may carry the GGUF format of their constant (the parser sets it from `gguf`);
# the format found from a ggufc op that reads the constant wins over it.
GGUF_FORMAT_META = "ggufc_gguf_format"
# The ggufc ops name these schema arguments for the packed blocks and their format.
BLOCKS_ARGUMENT = "blocks"
FORMAT_ARGUMENT = "fmt"
# higher_order.cond(pred, true_fn, false_fn, operands): operands feed the branches'
# placeholders in order.
COND_OPERANDS_INDEX = 3


def print_program(gp: GraphProgram) -> str:
    """The textual IR of `gp` (see the module docstring)."""
    return _Printer(gp, anonymous=False).render()


def structural_hash(gp: GraphProgram) -> str:
    """SHA-256 of the program's structure, ignoring node and subgraph names."""
    text = _Printer(gp, anonymous=True).render()
    return hashlib.sha256(text.encode()).hexdigest()


def symbol_names(gp: GraphProgram) -> dict[str, str]:
    """The printed name of each symbol (`s0`) -> its key in `gp.symbol_ranges` (torch's name,
    e.g. `s27`), so users can give symbol values by the names they read in a dump."""
    printer = _Printer(gp, anonymous=False)
    printer.render()
    return {
        str(canonical): str(original) for original, canonical in printer.symbols.canonical.items()
    }


def symbolic_expr(value) -> sympy.Expr:
    """The sympy expression of a SymInt/SymBool/SymFloat, with the shape env's replacements
    applied so that equal values print equally."""
    node = value.node
    expr = node.expr
    shape_env = getattr(node, "shape_env", None)
    if shape_env is not None:
        expr = shape_env.replace(expr)
    return expr


class SymbolNamer:
    """Renames a program's symbols `s0, s1, ...` in order of first appearance."""

    def __init__(self) -> None:
        self.canonical: dict[sympy.Symbol, sympy.Symbol] = {}
        self._counters: dict[str, int] = {}
        self.shape_envs: dict[sympy.Symbol, object] = {}

    def expr_text(self, expr, shape_env=None) -> str:
        if isinstance(expr, (int, bool)):
            return str(expr)
        for symbol in sorted(expr.free_symbols, key=str):
            if symbol not in self.canonical:
                prefix = str(symbol).rstrip("0123456789") or "s"
                index = self._counters.get(prefix, 0)
                self._counters[prefix] = index + 1
                self.canonical[symbol] = sympy.Symbol(f"{prefix}{index}", **symbol.assumptions0)
                self.shape_envs[symbol] = shape_env
        return str(expr.xreplace(self.canonical))

    def value_text(self, value) -> str:
        """A SymInt/int (a dim or a symbolic scalar) as an expression."""
        if isinstance(value, (torch.SymInt, torch.SymBool, torch.SymFloat)):
            return self.expr_text(symbolic_expr(value), getattr(value.node, "shape_env", None))
        if isinstance(value, float):
            return _float_text(value)
        return str(value)


def type_text(value, symbols: SymbolNamer) -> str:
    """The IR type of a `meta["val"]`."""
    if isinstance(value, torch.Tensor):
        dims = ", ".join(symbols.value_text(d) for d in value.shape)
        return f"{naming.dtype_text(value.dtype)}[{dims}]"
    if isinstance(value, (torch.SymBool, bool)):
        return f"bool({symbols.value_text(value)})"
    if isinstance(value, (torch.SymInt, int)):
        return f"int({symbols.value_text(value)})"
    if isinstance(value, (torch.SymFloat, float)):
        return f"float({symbols.value_text(value)})"
    if value is None:
        return NONE_TYPE
    if isinstance(value, (tuple, list)):
        parts = [type_text(v, symbols) for v in value]
        if len(parts) == 1:
            return f"({parts[0]},)"
        return "(" + ", ".join(parts) + ")"
    return UNKNOWN_TYPE


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def const_text(name: str) -> str:
    """`@name`, quoted when the name is not a plain dotted identifier."""
    return "@" + (name if _is_plain_name(name) else json.dumps(name))


def _is_plain_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "_." for c in name) and name.isascii()


class _Scope:
    """One graph being printed: the main graph or a region."""

    def __init__(self, owner: torch.nn.Module, anonymous: bool) -> None:
        self.owner = owner
        self.anonymous = anonymous
        self.value_names: dict[torch.fx.Node, str] = {}
        self.printed_regions: set[str] = set()
        self.region_names: dict[str, str] = {}

    def define(self, node: torch.fx.Node) -> str:
        name = str(len(self.value_names)) if self.anonymous else node.name
        self.value_names[node] = name
        return name


class _Printer:
    def __init__(self, gp: GraphProgram, *, anonymous: bool) -> None:
        self.gp = gp
        self.anonymous = anonymous
        self.symbols = SymbolNamer()
        # constant name -> tensor, in order of first use; GGUF formats found for them
        self.constants: dict[str, torch.Tensor] = {}
        self.used_formats: dict[str, str] = {}
        self.declared_formats: dict[str, str] = {}
        self.region_count = 0
        self.lines: list[str] = []

    # ---- top level ---------------------------------------------------------------------
    def render(self) -> str:
        graph = self.gp.graph
        scope = _Scope(self.gp.graph_module, self.anonymous)
        params = self._params(graph, scope)
        self.lines.append(f"graph @{MAIN_GRAPH_NAME}({params}) {{")
        self._body(graph, scope, depth=1, sources={})
        self.lines.append("}")
        for node in graph.nodes:  # constants nothing uses are still declared, last
            if node.op == "get_attr" and not node.users:
                value = _attr(self.gp.graph_module, node.target)
                if isinstance(value, torch.Tensor):
                    self._use_constant(node.target, value)
                    self._note_declared_format(node)
        header = self._symbol_lines() + self._const_lines()
        if header:
            header.append("")
        return "\n".join(header + self.lines) + "\n"

    def _symbol_lines(self) -> list[str]:
        lines = []
        for original, canonical in self.symbols.canonical.items():
            low, high = self._range(original)
            high_text = UNBOUNDED_TEXT if high >= _UNBOUNDED else str(high)
            lines.append(f"symbol {canonical} : [{low}, {high_text}]")
        return lines

    def _range(self, symbol: sympy.Symbol) -> tuple[int, int]:
        declared = self.gp.symbol_ranges.get(str(symbol))
        if declared is not None:
            return declared
        shape_env = self.symbols.shape_envs.get(symbol)
        value_range = getattr(shape_env, "var_to_range", {}).get(symbol)
        if value_range is None:
            return (0, _UNBOUNDED)
        low = int(value_range.lower) if value_range.lower.is_finite else 0
        high = int(value_range.upper) if value_range.upper.is_finite else _UNBOUNDED
        return (low, high)

    def _const_lines(self) -> list[str]:
        lines = []
        for name, tensor in self.constants.items():
            fmt = self.used_formats.get(name) or self.declared_formats.get(name)
            line = f"const {const_text(name)} : {type_text(tensor, self.symbols)}"
            if fmt is not None:
                line += f" {GGUF_HINT_KEYWORD} {fmt}"
            lines.append(line)
        return lines

    def _use_constant(self, name: str, tensor: torch.Tensor) -> None:
        known = self.constants.setdefault(name, tensor)
        if known is not tensor and (known.dtype != tensor.dtype or known.shape != tensor.shape):
            raise UnsupportedError(
                f"constant @{name} names two different tensors "
                f"({naming.dtype_text(known.dtype)}{list(known.shape)} and "
                f"{naming.dtype_text(tensor.dtype)}{list(tensor.shape)}); the IR needs one"
            )

    def _note_declared_format(self, node: torch.fx.Node) -> None:
        fmt = node.meta.get(GGUF_FORMAT_META)
        if isinstance(fmt, str):
            self.declared_formats.setdefault(node.target, fmt)

    # ---- graphs ------------------------------------------------------------------------
    def _params(self, graph: torch.fx.Graph, scope: _Scope) -> str:
        parts = []
        for node in graph.nodes:
            if node.op == "placeholder":
                name = scope.define(node)
                parts.append(f"%{name} : {self._node_type(node)}")
        return ", ".join(parts)

    def _node_type(self, node: torch.fx.Node) -> str:
        if "val" not in node.meta:
            return UNKNOWN_TYPE
        return type_text(node.meta["val"], self.symbols)

    def _body(self, graph, scope: _Scope, depth: int, sources: dict) -> None:
        """Print the nodes of `graph`.  `sources` maps placeholders of a region to the
        constant their operand is, so GGUF hints are found through torch.cond."""
        indent = INDENT * depth
        for node in graph.nodes:
            if node.op in ("placeholder", "get_attr"):
                continue
            if node.op == "output":
                self.lines.append(f"{indent}return {self._arg(node.args[0], scope)}")
                continue
            if node.op not in ("call_function", "call_method"):
                raise UnsupportedError(
                    f"node %{node.name}: the IR cannot print {node.op} nodes "
                    f"(target {node.target!r})"
                )
            self._note_gguf_hint(node, scope, sources)
            op = self._op_text(node)
            # The type is printed before the arguments so symbols are named in reading order.
            node_type = self._node_type(node)
            args = [self._arg(a, scope) for a in node.args]
            args += [f"{key}={self._arg(v, scope)}" for key, v in node.kwargs.items()]
            name = scope.define(node)
            self.lines.append(f"{indent}%{name} : {node_type} = {op}({', '.join(args)})")
            self._regions(node, scope, depth + 1, sources)

    def _op_text(self, node: torch.fx.Node) -> str:
        if node.op == "call_method":
            return f"{naming.METHOD_PREFIX}.{node.target}"
        text = naming.op_text(node.target)
        if text is None:
            raise UnsupportedError(
                f"node %{node.name}: the IR has no name for its target {node.target!r}"
            )
        return text

    def _regions(self, node: torch.fx.Node, scope: _Scope, depth: int, sources: dict) -> None:
        region_nodes = [
            n
            for n in _flat_nodes((node.args, node.kwargs))
            if n.op == "get_attr" and isinstance(_attr(scope.owner, n.target), torch.fx.GraphModule)
        ]
        operand_sources = self._cond_operand_sources(node, scope, sources)
        for region_node in region_nodes:
            key = region_node.target
            if key in scope.printed_regions:
                continue
            scope.printed_regions.add(key)
            module = _attr(scope.owner, key)
            inner = _Scope(module, self.anonymous)
            indent = INDENT * depth
            params = self._params(module.graph, inner)
            region_name = self._region_name(region_node, scope)
            self.lines.append(f"{indent}{region_name}({params}) {{")
            placeholders = [n for n in module.graph.nodes if n.op == "placeholder"]
            inner_sources = dict(zip(placeholders, operand_sources))
            self._body(module.graph, inner, depth + 1, inner_sources)
            self.lines.append(f"{indent}}}")

    def _cond_operand_sources(self, node, scope: _Scope, sources: dict) -> list:
        if node.target is not torch.ops.higher_order.cond or len(node.args) <= COND_OPERANDS_INDEX:
            return []
        operands = node.args[COND_OPERANDS_INDEX]
        if not isinstance(operands, (tuple, list)):
            return []
        return [self._constant_source(op, scope, sources) for op in operands]

    def _constant_source(self, value, scope: _Scope, sources: dict):
        """(owner, constant name) if `value` is a constant (directly or through torch.cond
        operands), else None."""
        if not isinstance(value, torch.fx.Node):
            return None
        if value.op == "get_attr":
            return (scope.owner, value.target)
        return sources.get(value)

    def _note_gguf_hint(self, node: torch.fx.Node, scope: _Scope, sources: dict) -> None:
        target = node.target
        if not isinstance(target, torch._ops.OpOverload) or target.namespace != "ggufc":
            return
        bound = _bind_arguments(target, node.args, node.kwargs)
        fmt = bound.get(FORMAT_ARGUMENT)
        source = self._constant_source(bound.get(BLOCKS_ARGUMENT), scope, sources)
        if source is None or not isinstance(fmt, str):
            return
        owner, name = source
        tensor = _attr(owner, name)
        if isinstance(tensor, torch.Tensor):
            self._use_constant(name, tensor)
            self.used_formats.setdefault(name, fmt)

    def _region_name(self, region_node: torch.fx.Node, scope: _Scope) -> str:
        if not self.anonymous:
            return "^" + region_node.target
        names = scope.region_names
        if region_node.target not in names:
            names[region_node.target] = f"^r{self.region_count}"
            self.region_count += 1
        return names[region_node.target]

    # ---- arguments ---------------------------------------------------------------------
    def _arg(self, arg, scope: _Scope) -> str:
        if isinstance(arg, torch.fx.Node):
            return self._node_ref(arg, scope)
        if arg is None or isinstance(arg, bool):
            return str(arg)
        if isinstance(arg, int):
            return str(arg)
        if isinstance(arg, float):
            return _float_text(arg)
        if isinstance(arg, str):
            return json.dumps(arg)
        if isinstance(arg, list):
            return "[" + ", ".join(self._arg(a, scope) for a in arg) + "]"
        if isinstance(arg, tuple):
            parts = [self._arg(a, scope) for a in arg]
            return f"({parts[0]},)" if len(parts) == 1 else "(" + ", ".join(parts) + ")"
        if isinstance(arg, (torch.dtype, torch.layout, torch.memory_format)):
            return str(arg)
        if isinstance(arg, torch.device):
            return f"device({json.dumps(str(arg))})"
        raise UnsupportedError(f"the IR cannot print the argument {arg!r} ({type(arg).__name__})")

    def _node_ref(self, node: torch.fx.Node, scope: _Scope) -> str:
        if node.op == "get_attr":
            value = _attr(scope.owner, node.target)
            if isinstance(value, torch.fx.GraphModule):
                return self._region_name(node, scope)
            if isinstance(value, torch.Tensor):
                self._use_constant(node.target, value)
                self._note_declared_format(node)
                return const_text(node.target)
            raise UnsupportedError(
                f"get_attr %{node.name} refers to {type(value).__name__} {node.target!r}; "
                "the IR holds only tensor constants and subgraphs"
            )
        name = scope.value_names.get(node)
        if name is None:
            raise UnsupportedError(f"%{node.name} is used before it is defined")
        return f"%{name}"


def _flat_nodes(tree) -> list[torch.fx.Node]:
    found: list[torch.fx.Node] = []
    torch.fx.node.map_arg(tree, found.append)
    return found


def _attr(owner: torch.nn.Module, path: str):
    value = owner
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            raise UnsupportedError(f"get_attr target {path!r} does not exist on the graph module")
    return value


def _bind_arguments(target: torch._ops.OpOverload, args, kwargs) -> dict:
    names = [a.name for a in target._schema.arguments]
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


__all__ = [
    "SymbolNamer",
    "const_text",
    "print_program",
    "structural_hash",
    "symbol_names",
    "type_text",
]
