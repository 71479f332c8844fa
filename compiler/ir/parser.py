"""Parse the textual IR (grammar: `compiler.ir.printer`) back into a runnable GraphProgram.

Steps, one line at a time:

1. `symbol` lines become dynamic symbols of one ShapeEnv, each constrained to its declared
   range (hint: the smallest value >= 2 in range not already taken, so no accidental 0/1
   specialisation or equality between symbols);
2. `const` lines become tensors with deterministic random data seeded from the constant's
   name (SHA-256): GGUF-hinted `u8` constants get valid random blocks of their format
   (`compiler.formats.random_blocks`), floats normal data with std `1/sqrt(last dim)` (so
   long dot products stay O(1)), integers values in `[0, SMALL_INT_BOUND)`, bools random bits;
3. the graph and its regions become FX graphs; constants are `get_attr` nodes created just
   before their first use, subgraphs are GraphModule attributes of the enclosing module;
4. every node's `meta["val"]` is recomputed by running its op under a FakeTensorMode on that
   ShapeEnv, and checked against the type the line declares.

Every error is an IRParseError `file:line:col: message`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import operator
import re
from dataclasses import dataclass, field

import sympy
import torch
import torch.fx
from torch._dynamo.source import ConstantSource
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StrictMinMaxConstraint
from torch.utils._sympy.functions import FloorDiv, Mod, PythonMod
from torch.utils._sympy.numbers import int_oo
from torch.utils._sympy.value_ranges import ValueRanges

from compiler.errors import GgufcError, IRParseError
from compiler.ir import naming
from compiler.ir.printer import (
    COND_OPERANDS_INDEX,
    GGUF_FORMAT_META,
    GGUF_HINT_KEYWORD,
    MAIN_GRAPH_NAME,
    NONE_TYPE,
    UNBOUNDED_TEXT,
    UNKNOWN_TYPE,
    SymbolNamer,
    type_text,
)
from compiler.ir.program import _UNBOUNDED, GraphProgram

# Random integer constants are drawn from [0, SMALL_INT_BOUND): valid as indices into any
# dim of size >= 2 and as boolean-like flags.
SMALL_INT_BOUND = 2
# Hints for symbols start here: 0 and 1 are specialised by the ShapeEnv.
_FIRST_GENERIC_HINT = 2
_SEED_BYTES = 8
_SEED_MASK = 2**63 - 1

_NAME_CHARS = re.compile(r"[A-Za-z0-9_]+")
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_CONST_NAME = re.compile(r"[A-Za-z0-9_.]+")
_NUMBER = re.compile(r"-?(?:\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)")
_UNQUOTABLE_NAME_CHARS = '"\\\n\r'
_DEFINITION = re.compile(r"^\s*%([A-Za-z0-9_]+)\s*:")
_PARAM_NAMES = re.compile(r"%([A-Za-z0-9_]+)\s*:")


def parse_program(text: str, *, filename: str = "<string>") -> GraphProgram:
    """Parse the textual IR into a runnable GraphProgram (see the module docstring)."""
    return _Parser(text, filename).parse()


# ---- parsed pieces ----------------------------------------------------------------------
@dataclass
class _Type:
    kind: str  # tensor | int | bool | float | none | unknown | tuple
    col: int
    dtype: torch.dtype | None = None
    dims: list[tuple[str, int]] = field(default_factory=list)  # (expression, column)
    expr: str = ""
    items: list[_Type] = field(default_factory=list)


@dataclass
class _Ref:
    sigil: str  # % value, @ constant, ^ region
    name: str
    line: int
    col: int


@dataclass
class _Device:
    text: str


@dataclass
class _ConstDecl:
    name: str
    dtype: torch.dtype
    shape: list[int]
    fmt: str | None
    line: int


class _Cursor:
    """A position in one line; every error it raises names file:line:col (1-based)."""

    def __init__(self, text: str, line: int, filename: str) -> None:
        self.text = text
        self.line = line
        self.filename = filename
        self.pos = 0

    def error(self, message: str, pos: int | None = None) -> IRParseError:
        column = (self.pos if pos is None else pos) + 1
        return IRParseError(f"{self.filename}:{self.line}:{column}: {message}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r":
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def peek(self, token: str) -> bool:
        self.skip_ws()
        return self.text.startswith(token, self.pos)

    def accept(self, token: str) -> bool:
        if self.peek(token):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str, what: str | None = None) -> None:
        if not self.accept(token):
            found = self.text[self.pos : self.pos + 12] or "end of line"
            raise self.error(f"expected {what or repr(token)}, found {found!r}")

    def expect_end(self) -> None:
        if not self.at_end():
            raise self.error(f"unexpected text {self.text[self.pos :]!r}")

    def match(self, pattern: re.Pattern, what: str) -> str:
        self.skip_ws()
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise self.error(f"expected {what}")
        self.pos = found.end()
        return found.group(0)

    def keyword(self, word: str) -> bool:
        """Accept `word` only as a whole word."""
        self.skip_ws()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (
            end >= len(self.text) or not (self.text[end].isalnum() or self.text[end] == "_")
        ):
            self.pos = end
            return True
        return False

    def string(self) -> str:
        self.skip_ws()
        start = self.pos
        if not self.text.startswith('"', start):
            raise self.error("expected a string")
        index = start + 1
        while index < len(self.text):
            char = self.text[index]
            if char == "\\":
                index += 2
                continue
            if char == '"':
                try:
                    value = json.loads(self.text[start : index + 1])
                except json.JSONDecodeError as exc:
                    raise self.error(f"bad string literal: {exc.msg}", start) from None
                self.pos = index + 1
                return value
            index += 1
        raise self.error("unterminated string", start)

    def balanced(self, close: str) -> str:
        """Text up to the `close` that ends the current bracket (consumed, not returned)."""
        pairs = {"(": ")", "[": "]"}
        depth = 0
        start = self.pos
        for index in range(self.pos, len(self.text)):
            char = self.text[index]
            if char in pairs:
                depth += 1
            elif char in (")", "]"):
                if depth == 0:
                    if char != close:
                        break
                    self.pos = index + 1
                    return self.text[start:index]
                depth -= 1
        raise self.error(f"missing {close!r}", start)


# ---- symbolic expressions -----------------------------------------------------------------
_BINARY_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE_OPS = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def _evaluate(expr_text: str, names: dict, functions: dict, floordiv, mod):
    """Evaluate an integer expression (`2*s0`, `(s0//2) + 1`, `Max(1, s0)`) over `names`."""
    tree = ast.parse(expr_text.strip(), mode="eval")

    def visit(node):
        if isinstance(node, ast.Expression):
            return visit(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise ValueError(f"unknown symbol {node.id!r}")
            return names[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -visit(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            left, right = visit(node.left), visit(node.right)
            if isinstance(node.op, ast.FloorDiv):
                return floordiv(left, right)
            if isinstance(node.op, ast.Mod):
                return mod(left, right)
            return _BINARY_OPS[type(node.op)](left, right)
        if (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and type(node.ops[0]) in _COMPARE_OPS
        ):
            return _COMPARE_OPS[type(node.ops[0])](visit(node.left), visit(node.comparators[0]))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            function = functions.get(node.func.id)
            if function is None or node.keywords:
                raise ValueError(f"unknown function {node.func.id!r}")
            return function(*[visit(a) for a in node.args])
        raise ValueError(f"unsupported expression {ast.unparse(node)!r}")

    return visit(tree)


_SYMINT_FUNCTIONS = {
    "Max": torch.sym_max,
    "Min": torch.sym_min,
    "FloorDiv": operator.floordiv,
    "Mod": operator.mod,
    "PythonMod": operator.mod,
    "Eq": operator.eq,
    "Ne": operator.ne,
}
_SYMPY_FUNCTIONS = {
    "Max": sympy.Max,
    "Min": sympy.Min,
    "FloorDiv": FloorDiv,
    "Mod": Mod,
    "PythonMod": PythonMod,
    "Eq": sympy.Eq,
    "Ne": sympy.Ne,
}


# ---- the parser -------------------------------------------------------------------------
class _Scope:
    """The graph being built: the main graph or one region."""

    def __init__(self, parent: _Scope | None, opened_at: int) -> None:
        self.parent = parent
        self.opened_at = opened_at
        self.graph = torch.fx.Graph()
        self.values: dict[str, tuple[torch.fx.Node, int]] = {}  # name -> (node, line)
        self.const_nodes: dict[str, torch.fx.Node] = {}
        self.regions: dict[str, tuple[torch.fx.GraphModule, int, int]] = {}  # module, line, col
        self.region_nodes: dict[str, torch.fx.Node] = {}
        self.attrs: dict[str, object] = {}


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.lines = text.split("\n")
        self.index = 0
        self.symbols: dict[str, torch.SymInt] = {}
        self.symbol_lines: dict[str, int] = {}
        self.ranges: dict[str, tuple[int, int]] = {}
        self.consts: dict[str, _ConstDecl] = {}
        self.tensors: dict[str, torch.Tensor] = {}
        self.used_consts: set[str] = set()
        self.shape_env = ShapeEnv()
        # Regions read constants as real tensors (get_attr on their module) when torch.cond
        # traces them; the mode fakes those on the fly.
        self.fake_mode = FakeTensorMode(shape_env=self.shape_env, allow_non_fake_inputs=True)
        self.fake_consts: dict[str, torch.Tensor] = {}
        self.namer = SymbolNamer()
        self.region_modules: dict[torch.fx.Node, torch.fx.GraphModule] = {}
        # Every value name the text defines: get_attr nodes get names outside this set, so
        # the text's names are kept exactly.
        self.reserved_names: set[str] = set()
        for line in self.lines:
            if _DEFINITION.match(line) or line.lstrip().startswith(("graph", "^")):
                self.reserved_names.update(_PARAM_NAMES.findall(line))

    # ---- lines ---------------------------------------------------------------------------
    def _next_line(self) -> _Cursor | None:
        """The next line that is not blank or a comment, or None at the end."""
        while self.index < len(self.lines):
            text = self.lines[self.index]
            self.index += 1
            stripped = text.strip()
            if stripped and not stripped.startswith("//"):
                return _Cursor(text, self.index, self.filename)
        return None

    def _peek_line(self) -> str | None:
        saved = self.index
        cursor = self._next_line()
        self.index = saved
        return None if cursor is None else cursor.text.strip()

    def _error_at_line(self, line: int, message: str) -> IRParseError:
        return IRParseError(f"{self.filename}:{line}:1: {message}")

    # ---- program -------------------------------------------------------------------------
    def parse(self) -> GraphProgram:
        cursor = self._next_line()
        while cursor is not None:
            if cursor.keyword("symbol"):
                self._symbol_decl(cursor)
            elif cursor.keyword("const"):
                self._const_decl(cursor)
            else:
                break
            cursor = self._next_line()
        if cursor is None:
            raise IRParseError(
                f"{self.filename}:{len(self.lines)}:1: expected 'graph @main(...) {{'"
            )
        cursor.pos = 0
        if not cursor.keyword("graph"):
            raise cursor.error("expected 'symbol', 'const' or 'graph'")
        cursor.expect("@" + MAIN_GRAPH_NAME, f"'@{MAIN_GRAPH_NAME}'")
        scope = _Scope(None, cursor.line)
        cursor.expect("(")
        self._params(cursor, scope)
        cursor.expect("{")
        cursor.expect_end()
        self._body(scope)
        trailing = self._next_line()
        if trailing is not None:
            raise trailing.error("unexpected text after the graph's closing '}'")
        self._declare_unused_constants(scope)
        gm = torch.fx.GraphModule(scope.attrs, scope.graph)
        return GraphProgram(gm, dict(self.ranges))

    def _symbol_decl(self, cursor: _Cursor) -> None:
        cursor.skip_ws()
        name_pos = cursor.pos
        name = cursor.match(_NAME_CHARS, "a symbol name")
        if name in self.symbols:
            raise cursor.error(
                f"symbol {name} is already declared (line {self.symbol_lines[name]})", name_pos
            )
        cursor.expect(":")
        cursor.expect("[")
        low_pos = cursor.pos
        low = int(cursor.match(re.compile(r"-?\d+"), "the symbol's minimum"))
        cursor.expect(",")
        if cursor.keyword(UNBOUNDED_TEXT):
            high = _UNBOUNDED
        else:
            high = int(
                cursor.match(re.compile(r"-?\d+"), f"the symbol's maximum or {UNBOUNDED_TEXT!r}")
            )
        cursor.expect("]")
        cursor.expect_end()
        if low < 0 or high < low:
            raise cursor.error(f"symbol {name}: bad range [{low}, {high}]", low_pos)
        hint = self._hint(low, high)
        source = ConstantSource(f"ir_symbol_{name}")
        upper = int_oo if high >= _UNBOUNDED else high
        constraint = StrictMinMaxConstraint(warn_only=False, vr=ValueRanges(low, upper))
        symbol = self.shape_env.create_symbol(
            hint,
            source=source,
            dynamic_dim=DimDynamic.DYNAMIC,
            constraint_dim=constraint,
            positive=True if low > 0 else None,
            do_not_specialize_zero_one=True,
        )
        if not isinstance(symbol, sympy.Symbol):
            raise cursor.error(f"symbol {name}: the range [{low}, {high}] leaves one value")
        self.symbols[name] = self.shape_env.create_symintnode(symbol, hint=hint, source=source)
        self.symbol_lines[name] = cursor.line
        self.ranges[str(symbol)] = (low, high)
        self.namer.canonical[symbol] = sympy.Symbol(name, **symbol.assumptions0)

    def _hint(self, low: int, high: int) -> int:
        taken = {s.node.hint for s in self.symbols.values()}
        candidate = max(low, _FIRST_GENERIC_HINT)
        while candidate in taken and candidate < high:
            candidate += 1
        return min(candidate, high)

    def _const_decl(self, cursor: _Cursor) -> None:
        cursor.skip_ws()
        name_pos = cursor.pos
        name = self._const_name(cursor)
        if name in self.consts:
            raise cursor.error(
                f"constant @{name} is already declared (line {self.consts[name].line})", name_pos
            )
        cursor.expect(":")
        declared = self._type(cursor)
        if declared.kind != "tensor":
            raise cursor.error("a constant's type must be a tensor type", declared.col)
        shape = []
        for expr, col in declared.dims:
            if not re.fullmatch(r"\s*\d+\s*", expr):
                raise cursor.error(f"constant @{name}: dims must be integers, found {expr!r}", col)
            shape.append(int(expr))
        fmt = None
        if cursor.keyword(GGUF_HINT_KEYWORD):
            fmt_pos = cursor.pos + 1
            fmt = cursor.match(_NAME_CHARS, "a GGUF format name")
            self._check_gguf_shape(cursor, name, declared.dtype, shape, fmt, fmt_pos)
        cursor.expect_end()
        self.consts[name] = _ConstDecl(name, declared.dtype, shape, fmt, cursor.line)

    def _check_gguf_shape(self, cursor, name, dtype, shape, fmt, fmt_pos) -> None:
        from compiler import formats

        spec = formats.FORMATS.get(fmt)
        if spec is None:
            known = ", ".join(sorted(formats.FORMATS))
            raise cursor.error(f"unknown GGUF format {fmt!r} (known: {known})", fmt_pos)
        if dtype != torch.uint8 or not shape or shape[-1] % spec.block_bytes:
            raise cursor.error(
                f"constant @{name}: GGUF {fmt} blocks are u8[..., a multiple of "
                f"{spec.block_bytes}], found {naming.dtype_text(dtype)}{shape}",
                fmt_pos,
            )

    def _const_name(self, cursor: _Cursor) -> str:
        cursor.expect("@", "a constant '@name'")
        if cursor.text.startswith('"', cursor.pos):
            start = cursor.pos
            name = cursor.string()
            # FX writes get_attr targets into generated Python inside "..." unescaped.
            if not name or any(c in name for c in _UNQUOTABLE_NAME_CHARS):
                raise cursor.error(
                    f"constant name {name!r} must be non-empty, without quotes, backslashes or line breaks",
                    start,
                )
            return name
        if cursor.pos < len(cursor.text) and cursor.text[cursor.pos] in " \t":
            raise cursor.error("expected a constant name right after '@'")
        return cursor.match(_CONST_NAME, "a constant name")

    # ---- types ---------------------------------------------------------------------------
    def _type(self, cursor: _Cursor) -> _Type:
        cursor.skip_ws()
        col = cursor.pos
        if cursor.accept(UNKNOWN_TYPE):
            return _Type("unknown", col)
        if cursor.accept("("):
            items = []
            while not cursor.accept(")"):
                items.append(self._type(cursor))
                if not cursor.accept(","):
                    cursor.expect(")", "',' or ')'")
                    break
            return _Type("tuple", col, items=items)
        word = cursor.match(_NAME_CHARS, "a type")
        if word in ("int", "bool", "float") and cursor.accept("("):
            expr_col = cursor.pos
            expr = cursor.balanced(")")
            if not expr.strip():
                raise cursor.error("empty expression", expr_col)
            return _Type(word, col, expr=expr.strip())
        if word == NONE_TYPE:
            return _Type("none", col)
        dtype = naming.dtype_from_text(word)
        if dtype is None:
            raise cursor.error(f"unknown dtype {word!r}", col)
        cursor.expect("[", "'[' after the dtype")
        dims = []
        if not cursor.accept("]"):
            start = cursor.pos
            inner = cursor.balanced("]")
            offset = 0
            for piece in _split_top_level(inner):
                stripped = piece.strip()
                if not stripped:
                    raise cursor.error("empty dim", start + offset)
                dims.append((stripped, start + offset + len(piece) - len(piece.lstrip())))
                offset += len(piece) + 1
        return _Type("tensor", col, dtype=dtype, dims=dims)

    def _dim_value(self, cursor: _Cursor, expr: str, col: int):
        try:
            value = _evaluate(
                expr, self.symbols, _SYMINT_FUNCTIONS, operator.floordiv, operator.mod
            )
        except (ValueError, SyntaxError) as exc:
            raise cursor.error(f"bad dim {expr!r}: {exc}", col) from None
        if not isinstance(value, (int, torch.SymInt)) or isinstance(value, bool):
            raise cursor.error(f"dim {expr!r} is not an integer", col)
        return value

    def _fake_from_type(self, cursor: _Cursor, declared: _Type, what: str):
        if declared.kind == "tensor":
            sizes = [self._dim_value(cursor, e, c) for e, c in declared.dims]
            with self.fake_mode:
                return torch.empty(sizes, dtype=declared.dtype)
        if declared.kind == "int":
            return self._dim_value(cursor, declared.expr, declared.col)
        raise cursor.error(f"{what} must have a tensor or int(...) type", declared.col)

    # ---- graph bodies ------------------------------------------------------------------------
    def _params(self, cursor: _Cursor, scope: _Scope) -> None:
        if cursor.accept(")"):
            return
        while True:
            cursor.expect("%", "an input '%name : type'")
            name_pos = cursor.pos - 1
            name = cursor.match(_NAME_CHARS, "a value name")
            self._check_new_name(cursor, scope, name, name_pos)
            cursor.expect(":")
            declared = self._type(cursor)
            fake = self._fake_from_type(cursor, declared, f"input %{name}")
            node = scope.graph.placeholder(name)
            node.meta["val"] = fake
            scope.values[name] = (node, cursor.line)
            if cursor.accept(")"):
                return
            cursor.expect(",", "',' or ')'")

    def _check_new_name(self, cursor: _Cursor, scope: _Scope, name: str, pos: int) -> None:
        if name in scope.values:
            raise cursor.error(f"%{name} is already defined (line {scope.values[name][1]})", pos)

    def _body(self, scope: _Scope) -> None:
        """Node lines, then `return`, then `}`; regions follow the node that uses them."""
        pending_return = False
        while True:
            cursor = self._next_line()
            if cursor is None:
                raise self._error_at_line(
                    scope.opened_at, "this '{' is never closed (missing '}' at the end)"
                )
            if cursor.accept("}"):
                cursor.expect_end()
                if not pending_return:
                    raise cursor.error("missing 'return' before '}'", 0)
                return
            if pending_return:
                raise cursor.error("expected '}' after 'return'")
            if cursor.keyword("return"):
                value = self._arg(cursor)
                cursor.expect_end()
                resolved = self._resolve(value, scope, {})
                scope.graph.output(resolved)
                pending_return = True
                continue
            if cursor.peek("%"):
                self._node_line(cursor, scope)
                continue
            if cursor.peek("^"):
                raise cursor.error("a region must follow the node line that uses it")
            raise cursor.error("expected a node line '%name : type = op(...)', 'return' or '}'")

    def _node_line(self, cursor: _Cursor, scope: _Scope) -> None:
        cursor.expect("%")
        name_pos = cursor.pos - 1
        name = cursor.match(_NAME_CHARS, "a value name")
        self._check_new_name(cursor, scope, name, name_pos)
        cursor.expect(":")
        declared = self._type(cursor)
        cursor.expect("=")
        cursor.skip_ws()
        op_pos = cursor.pos
        op_name = cursor.match(_DOTTED_NAME, "an op name")
        cursor.expect("(", "'(' after the op name")
        args, kwargs = self._arg_list(cursor)
        cursor.expect_end()
        line = cursor.line
        # Regions of this node follow it.
        new_regions: dict[str, tuple[torch.fx.GraphModule, int, int]] = {}
        while (peeked := self._peek_line()) is not None and peeked.startswith("^"):
            region_cursor = self._next_line()
            region_name, module, region_pos = self._region(region_cursor, scope, new_regions)
            new_regions[region_name] = (module, region_cursor.line, region_pos)
        scope.regions.update(new_regions)

        op_target, op_kind = self._resolve_op(cursor, op_name, op_pos)
        resolved_args = self._resolve(args, scope, new_regions)
        resolved_kwargs = self._resolve(kwargs, scope, new_regions)
        for region_name, (_, region_line, region_pos) in new_regions.items():
            if region_name not in scope.region_nodes:
                raise IRParseError(
                    f"{self.filename}:{region_line}:{region_pos + 1}: "
                    f"region ^{region_name} is never used by %{name}"
                )
        node = scope.graph.create_node(
            op_kind, op_target, tuple(resolved_args), resolved_kwargs, name=name
        )
        scope.values[name] = (node, line)
        if op_target is torch.ops.higher_order.cond:
            self._check_cond_operands(node, name, scope)
        self._propagate(node, name, declared, cursor, op_name, op_pos)

    def _check_cond_operands(self, node: torch.fx.Node, name: str, scope: _Scope) -> None:
        """Each branch's inputs must have the types of the operands the cond passes."""
        if len(node.args) <= COND_OPERANDS_INDEX:
            return
        operands = node.args[COND_OPERANDS_INDEX]
        if not isinstance(operands, (tuple, list)):
            return
        passed = [
            type_text(o.meta.get("val"), self.namer) if isinstance(o, torch.fx.Node) else None
            for o in operands
        ]
        for branch in node.args[1:COND_OPERANDS_INDEX]:
            if not isinstance(branch, torch.fx.Node) or branch not in self.region_modules:
                continue
            module, line, col = scope.regions[branch.target]
            inputs = [n for n in module.graph.nodes if n.op == "placeholder"]
            where = f"{self.filename}:{line}:{col + 1}: region ^{branch.target}"
            if len(inputs) != len(passed):
                raise IRParseError(
                    f"{where} takes {len(inputs)} inputs but %{name} passes {len(passed)}"
                )
            for placeholder, operand_type in zip(inputs, passed):
                declared = type_text(placeholder.meta.get("val"), self.namer)
                if operand_type is not None and declared != operand_type:
                    raise IRParseError(
                        f"{where}: input %{placeholder.name} is {declared} "
                        f"but %{name} passes {operand_type}"
                    )

    def _resolve_op(self, cursor: _Cursor, op_name: str, op_pos: int):
        if op_name.startswith(naming.METHOD_PREFIX + "."):
            return op_name[len(naming.METHOD_PREFIX) + 1 :], "call_method"
        try:
            target = naming.resolve_op(op_name)
        except (ImportError, RuntimeError):
            target = None
        if target is None:
            raise cursor.error(f"unknown op {op_name!r}", op_pos)
        return target, "call_function"

    def _region(self, cursor: _Cursor, parent: _Scope, siblings: dict):
        cursor.expect("^")
        name_pos = cursor.pos - 1
        name = cursor.match(_CONST_NAME, "a region name")
        if name in parent.regions or name in siblings:
            raise cursor.error(f"region ^{name} is already defined", name_pos)
        scope = _Scope(parent, cursor.line)
        cursor.expect("(", "'(' after the region name")
        self._params(cursor, scope)
        cursor.expect("{")
        cursor.expect_end()
        self._body(scope)
        return name, torch.fx.GraphModule(scope.attrs, scope.graph), name_pos

    # ---- arguments -------------------------------------------------------------------------
    def _arg_list(self, cursor: _Cursor, close: str = ")"):
        args: list = []
        kwargs: dict = {}
        if cursor.accept(close):
            return args, kwargs
        while True:
            cursor.skip_ws()
            keyword = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)").match(
                cursor.text, cursor.pos
            )
            if keyword is not None:
                if keyword.group(1) in kwargs:
                    raise cursor.error(f"keyword argument {keyword.group(1)!r} repeated")
                cursor.pos = keyword.end()
                kwargs[keyword.group(1)] = self._arg(cursor)
            else:
                if kwargs:
                    raise cursor.error("positional argument after keyword arguments")
                args.append(self._arg(cursor))
            if cursor.accept(close):
                return args, kwargs
            cursor.expect(",", f"',' or {close!r}")

    def _arg(self, cursor: _Cursor):
        cursor.skip_ws()
        pos = cursor.pos
        text = cursor.text
        if pos >= len(text):
            raise cursor.error("expected an argument")
        char = text[pos]
        if char in "%^":
            cursor.pos += 1
            pattern = _NAME_CHARS if char == "%" else _CONST_NAME
            return _Ref(char, cursor.match(pattern, "a name"), cursor.line, pos)
        if char == "@":
            return _Ref("@", self._const_name(cursor), cursor.line, pos)
        if char == '"':
            return cursor.string()
        if char == "[":
            cursor.pos += 1
            items, _ = self._items(cursor, "]")
            return items
        if char == "(":
            cursor.pos += 1
            items, _ = self._items(cursor, ")")
            return tuple(items)
        if text.startswith("-inf", pos):
            cursor.pos += len("-inf")
            return -math.inf
        number = _NUMBER.match(text, pos)
        if number is not None:
            cursor.pos = number.end()
            literal = number.group(0)
            return float(literal) if any(c in literal for c in ".eE") else int(literal)
        word = _DOTTED_NAME.match(text, pos)
        if word is None:
            raise cursor.error("expected an argument")
        cursor.pos = word.end()
        token = word.group(0)
        constants = {"True": True, "False": False, "None": None, "inf": math.inf, "nan": math.nan}
        if token in constants:
            return constants[token]
        if token == "device":
            cursor.expect("(")
            device = cursor.string()
            cursor.expect(")")
            try:
                return torch.device(device)
            except RuntimeError:
                raise cursor.error(f"bad device {device!r}", pos) from None
        if token.startswith("torch."):
            value = getattr(torch, token[len("torch.") :], None)
            if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
                return value
        if token in naming.DTYPE_SHORT_NAMES.values():  # `f16` for torch.float16
            return naming.dtype_from_text(token)
        raise cursor.error(f"unknown argument {token!r}", pos)

    def _items(self, cursor: _Cursor, close: str) -> tuple[list, dict]:
        items: list = []
        if cursor.accept(close):
            return items, {}
        while True:
            items.append(self._arg(cursor))
            if cursor.accept(close):
                return items, {}
            cursor.expect(",", f"',' or {close!r}")
            if cursor.accept(close):  # trailing comma: (x,)
                return items, {}

    def _resolve(self, value, scope: _Scope, new_regions: dict):
        """Replace references in a parsed argument by FX nodes of `scope`."""
        if isinstance(value, _Ref):
            return self._resolve_ref(value, scope, new_regions)
        if isinstance(value, list):
            return [self._resolve(v, scope, new_regions) for v in value]
        if isinstance(value, tuple):
            return tuple(self._resolve(v, scope, new_regions) for v in value)
        if isinstance(value, dict):
            return {k: self._resolve(v, scope, new_regions) for k, v in value.items()}
        return value

    def _ref_error(self, ref: _Ref, message: str) -> IRParseError:
        return IRParseError(f"{self.filename}:{ref.line}:{ref.col + 1}: {message}")

    def _resolve_ref(self, ref: _Ref, scope: _Scope, new_regions: dict) -> torch.fx.Node:
        if ref.sigil == "%":
            found = scope.values.get(ref.name)
            if found is None:
                raise self._ref_error(ref, f"undefined value %{ref.name}")
            return found[0]
        if ref.sigil == "@":
            node = scope.const_nodes.get(ref.name)
            if node is not None:
                return node
            if ref.name not in self.consts:
                raise self._ref_error(ref, f"undeclared constant @{ref.name}")
            node = self._const_node(scope, ref.name)
            scope.const_nodes[ref.name] = node
            self.used_consts.add(ref.name)
            return node
        node = scope.region_nodes.get(ref.name)
        if node is not None:
            return node
        region = scope.regions.get(ref.name) or new_regions.get(ref.name)
        if region is None:
            raise self._ref_error(ref, f"undefined region ^{ref.name}")
        scope.attrs[ref.name] = region[0]
        node = self._get_attr(scope, ref.name)
        scope.region_nodes[ref.name] = node
        self.region_modules[node] = region[0]
        return node

    def _get_attr(self, scope: _Scope, target: str) -> torch.fx.Node:
        base = re.sub(r"[^A-Za-z0-9_]", "_", target)
        name = base
        suffix = 0
        while name in self.reserved_names:
            suffix += 1
            name = f"{base}_attr{suffix}"
        self.reserved_names.add(name)
        return scope.graph.create_node("get_attr", target, name=name)

    def _declare_unused_constants(self, scope: _Scope) -> None:
        """Constants declared but used nowhere still become (unused) get_attr nodes."""
        unused = [name for name in self.consts if name not in self.used_consts]
        if not unused:
            return
        output = next(n for n in scope.graph.nodes if n.op == "output")
        with scope.graph.inserting_before(output):
            for name in unused:
                self._const_node(scope, name)

    # ---- constants -------------------------------------------------------------------------
    def _tensor(self, name: str) -> torch.Tensor:
        tensor = self.tensors.get(name)
        if tensor is None:
            tensor = random_constant(self.consts[name])
            self.tensors[name] = tensor
        return tensor

    def _const_node(self, scope: _Scope, name: str) -> torch.fx.Node:
        scope.attrs[name] = self._tensor(name)
        node = self._get_attr(scope, name)
        node.meta["val"] = self._fake_const(name)
        fmt = self.consts[name].fmt
        if fmt is not None:
            node.meta[GGUF_FORMAT_META] = fmt
        return node

    def _fake_const(self, name: str) -> torch.Tensor:
        fake = self.fake_consts.get(name)
        if fake is None:
            fake = self.fake_mode.from_tensor(self._tensor(name), static_shapes=True)
            self.fake_consts[name] = fake
        return fake

    # ---- types by propagation --------------------------------------------------------------------
    def _propagate(
        self, node: torch.fx.Node, name: str, declared: _Type, cursor: _Cursor, op_name, op_pos
    ):
        args = torch.fx.node.map_arg(node.args, self._value)
        kwargs = torch.fx.node.map_arg(node.kwargs, self._value)
        try:
            with self.fake_mode:
                if node.op == "call_method":
                    if not args:
                        raise cursor.error(
                            f"{op_name} needs the receiver as its first argument", op_pos
                        )
                    result = getattr(args[0], node.target)(*args[1:], **kwargs)
                else:
                    result = node.target(*args, **kwargs)
        except IRParseError:
            raise
        except GgufcError as exc:
            raise cursor.error(
                f"%{name}: {op_name} rejected its arguments: {exc}", op_pos
            ) from None
        # Any failure of the op on the declared types means the text is not a valid program.
        except Exception as exc:  # noqa: BLE001
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise cursor.error(
                f"%{name}: {op_name} fails on these arguments: {type(exc).__name__}: {message}",
                op_pos,
            ) from None
        node.meta["val"] = result
        if not self._matches(declared, result):
            raise cursor.error(
                f"type mismatch for %{name}: declared {_declared_text(declared)}, "
                f"inferred {type_text(result, self.namer)}",
                declared.col,
            )

    def _value(self, node: torch.fx.Node):
        """What an op receives for `node` under fake propagation: a region's GraphModule
        (region get_attr nodes carry no val), else the node's val."""
        module = self.region_modules.get(node)
        return module if module is not None else node.meta.get("val")

    def _matches(self, declared: _Type, value) -> bool:
        kind = declared.kind
        if kind == "unknown":
            return True
        if kind == "none":
            return value is None
        if kind == "tuple":
            return (
                isinstance(value, (tuple, list))
                and len(value) == len(declared.items)
                and all(self._matches(t, v) for t, v in zip(declared.items, value))
            )
        if kind == "tensor":
            return (
                isinstance(value, torch.Tensor)
                and value.dtype == declared.dtype
                and value.dim() == len(declared.dims)
                and all(self._expr_matches(e, d) for (e, _), d in zip(declared.dims, value.shape))
            )
        python_type = {"int": int, "bool": bool, "float": float}[kind]
        symbolic_type = {"int": torch.SymInt, "bool": torch.SymBool, "float": torch.SymFloat}[kind]
        if isinstance(value, bool) and kind != "bool":
            return False
        if not isinstance(value, (python_type, symbolic_type)):
            return False
        return self._expr_matches(declared.expr, value)

    def _expr_matches(self, declared: str, value) -> bool:
        inferred = self.namer.value_text(value)
        if declared.replace(" ", "") == inferred.replace(" ", ""):
            return True
        # Same value, written differently (`1 + s0` for `s0 + 1`)?
        names = {str(c): c for c in self.namer.canonical.values()}
        try:
            left = _evaluate(declared, names, _SYMPY_FUNCTIONS, FloorDiv, PythonMod)
            right = _evaluate(inferred, names, _SYMPY_FUNCTIONS, FloorDiv, PythonMod)
            return bool(sympy.simplify(sympy.sympify(left) - sympy.sympify(right)) == 0)
        except (ValueError, SyntaxError, TypeError, AttributeError):
            return False


def _declared_text(declared: _Type) -> str:
    """A declared type as the printer would write it (for error messages)."""
    if declared.kind == "tensor":
        return f"{naming.dtype_text(declared.dtype)}[{', '.join(e for e, _ in declared.dims)}]"
    if declared.kind in ("int", "bool", "float"):
        return f"{declared.kind}({declared.expr})"
    if declared.kind == "tuple":
        inner = [_declared_text(t) for t in declared.items]
        return f"({inner[0]},)" if len(inner) == 1 else "(" + ", ".join(inner) + ")"
    return NONE_TYPE if declared.kind == "none" else UNKNOWN_TYPE


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside parentheses: `Max(1, s0), 4` -> [`Max(1, s0)`, ` 4`]."""
    pieces, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(text[start:index])
            start = index + 1
    pieces.append(text[start:])
    return pieces


# ---- deterministic constant data -----------------------------------------------------------
def constant_generator(name: str) -> torch.Generator:
    """A generator seeded from the constant's name, so every parse gives the same data."""
    digest = hashlib.sha256(name.encode()).digest()
    seed = int.from_bytes(digest[:_SEED_BYTES], "little") & _SEED_MASK
    return torch.Generator().manual_seed(seed)


def random_constant(decl: _ConstDecl) -> torch.Tensor:
    generator = constant_generator(decl.name)
    shape = decl.shape
    if decl.fmt is not None:
        from compiler import formats

        spec = formats.FORMATS[decl.fmt]
        rows = math.prod(shape[:-1])
        k = shape[-1] // spec.block_bytes * spec.block_weights
        blocks = formats.random_blocks(decl.fmt, rows, k, generator=generator)
        return torch.as_tensor(blocks).reshape(shape)
    dtype = decl.dtype
    if dtype.is_floating_point:
        std = 1.0 / math.sqrt(shape[-1]) if len(shape) >= 2 and shape[-1] > 0 else 1.0
        return (torch.randn(shape, generator=generator, dtype=torch.float32) * std).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    if dtype.is_complex:
        return torch.randn(shape, generator=generator, dtype=dtype)
    return torch.randint(0, SMALL_INT_BOUND, shape, generator=generator).to(dtype)


__all__ = ["constant_generator", "parse_program"]
