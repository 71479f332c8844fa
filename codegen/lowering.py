"""Lower a final graph program (after the pass pipeline) to a runtime `Program`.

``lower(graph_program, backends=("metal", "cuda")) -> Program``

What each FX node becomes
-------------------------
* placeholder (top graph)            -> a program input (tensor; its symbolic dims bind the
                                        program's SymInts at run time)
* get_attr of a tensor               -> a `Constant` (one value per constant name, with the
                                        `.gguf` slice it came from when the caller knows it,
                                        so ``save_program(weights="external")`` can reference
                                        the file instead of copying it)
* ``ggufc.linear`` / ``ggufc.embedding`` / ``ggufc.dequantize`` / ``ggufc.attention`` -> a
                                        `KernelNode`
* ``aten.rms_norm`` of float32 over the last dim, ``ggufc.rms_norm_add``,
  ``ggufc.rms_norm_add_norm``        -> a `KernelNode` (the RMSNorm kernel)
* ``ggufc.rotary`` -> a `KernelNode` (the rotary kernel)
* ``ggufc.gated_gelu`` -> a `KernelNode` (the gated GELU kernel)
* ``torch.cond(pred, then, else, operands)`` -> an `IfNode` whose branches are chains lowered
                                        from the branch subgraphs (nested conds nest chains)
* a node whose value is a SymInt (``aten.sym_size.int``, ``operator.mul`` ...) -> no
                                        instruction: its sympy expression becomes a `Dim`
                                        (see "Sizes" below)
* export's runtime asserts (`DROPPED_OPS`) -> nothing
* any other ATen op                  -> an `AtenNode` (its name must be on the interpreter's
                                        allow-list, `runtime_schema.aten_ops`)

Sizes
-----
Every symbolic size is a sympy expression over the graph's symbols (``s0``: the token count
M).  A plain symbol is a SymInt value bound from the first input whose shape names it; a
compound expression (``4*s0``, ``ceil(s0/64)``) is computed by `SymNode`s placed at the start
of the main chain (all symbols are known once the inputs are bound), each distinct expression
once.  The same machinery computes kernel grids.

Kernels (the contract with `codegen.kernels` and `runtime_schema.cuda_launcher`)
-----------------------------------------------------------------------------
``ggufc.linear(x [..., K], blocks, bias, fmt, n, k, kernel)``::

    inputs  = (x, blocks, bias)       bias: the node's, else a zero vector of x's dtype
    outputs = (out [..., N],)
    args    = (m = prod(x.shape[:-1]), n, k, has_bias = True)   int64, int64, int64, int32

    kind    = the node's ``kernel`` ("matvec" | "matvec_batched" | "matmul"); ``"auto"`` picks
              by a static M as split-dynamic-m's default buckets for x's dtype would
              (`compiler.tuning.DEFAULT_BUCKETS_BY_DTYPE`) and matmul for a symbolic one
              (matmul serves every M).  A CUDA matvec takes the
              geometry `codegen.kernels.pick_geometry` picks from N, K and the dtype: narrow
              (one weight row a warp) up to `MATVEC_NARROW_MAX_WEIGHTS[dtype]` weights, else
              streamed (row groups a warp in turn) for K <= `MATVEC_STREAM_MAX_K` and
              N >= `MATVEC_STREAM_MIN_N`, else for Q4_0 / Q5_0 / Q6_K with 16-bit
              activations, where the staged mma matvec's form for the shape fills its last
              wave enough within two waves, that form (`one_row_mma_geometry` by the
              format's `MATVEC_ONE_ROW_MMA` rule: its one-row kernel, an activation row a
              block), else split-K
              (`MATVEC_SPLIT_K_FORMATS`, K >= `MATVEC_SPLIT_K_MIN_K`; 4 or 2 warps a block:
              `split_k_geometry_of`),
              else for Q8_0 and (with 16-bit activations) the K-quants rows of 4 chunks
              on a large grid the streamed quad (`quad_stream_geometry`: the K-quants'
              row groups in turn by the busiest SM's rows), else 1, 2 or 4
              warps a row group (default, paired, quad: `matvec_group_warps`, by format,
              dtype, N and K).  A CUDA
              matvec_batched with 16-bit activations depends on M too: the mma matvec up
              to `MATVEC_MMA_MAX_M` rows, above them the split-K matmul (Q4_K, Q5_K) or
              the tensor-core batched matvec (the other formats); a symbolic M whose range
              holds both makes the node an `IfNode` (M <= MATVEC_MMA_MAX_M) whose two
              chains hold one KernelNode each (`takes_mma_matvec`).
              A matmul with 16-bit activations and CUDA among the backends depends on M
              too (`matmul_routes`): up to `codegen.dense_linear.dense_threshold(fmt, N,
              K, route_model)` (for a weight of at most `DENSE_MAX_WEIGHT_BYTES` dequantized) the GGUF
              matmul in the geometry `codegen.kernels.emitter.matmul_geometry_of` picks
              (128- or 64-row tiles, K split over a cluster of 2 to 8 blocks, 256-row
              tiles split in 2), above it the
              dense route: a ``dequantize`` KernelNode (N x K in x's dtype) then an
              ``aten::linear(x, weight, bias)`` AtenNode (cuBLAS on a CUDA device; the bias
              the node's own, None without one).  A static M takes its one route; a
              symbolic M whose range spans several takes nested `IfNode`s (M <= the last
              M of a route: that route; else the next), one a run of M with the same route
              (`codegen.kernels.emitter.matmul_geometry_segments`).

The CUDA kernels read a bias pointer in every call, and the CPU reference treats a third
input as the bias, so a linear without bias gets a shared zero bias per (N, dtype): exact
(adding 0.0), one small constant per distinct width, and the file stores each once.

``ggufc.embedding(blocks, indices, fmt, n, k, dtype)``: inputs ``(blocks, indices)``, args
``(m = indices.numel(), n, k)``.  ``ggufc.dequantize(blocks, fmt, n, k, dtype)``: inputs
``(blocks,)``, args ``(n, k)``, grid over every row (``ceil(N K / 32 / 128)``: the embedding
kernel with row i for index i); no sources for a dtype without kernels (the CPU reference
runs it).

``ggufc.attention(q [B, R, D], k [B, S, D], v [B, S, Dv], visible [M, S], scale)``:
inputs ``(q, k, v, visible)``, args ``(rows = R, tokens = M, keys = S, scale)`` (int64 x 3,
float32), template args ``(head_dim, value_dim, kernel_max_rows)`` (a CUDA run with more
rows than `ATTENTION_KERNEL_MAX_ROWS` runs the reference ops instead), grid
``attention_grid(R, B)`` (``(ATTENTION_SPLITS, R, B)``: a CUDA thread block cluster a row),
block `codegen.kernels.attention.ATTENTION_THREADS`, ``attention_shared_bytes(S, Dv)`` of
dynamic shared memory; its sources come from `codegen.kernels.attention.emit_attention` (B, S, D, Dv
static).  Not a GGUF op: the KernelNode's format is unused (Q4_0).

``ggufc.rotary(x [..., M, D], cos [M, D], sin [M, D], norm_weight?, norm_eps?)``: inputs
``(x, cos, sin[, norm_weight])``, args ``(rows = x.numel() / D, tokens = M[, eps])``
(int64, int64, float32), template arg ``dim``, grid and block from
`codegen.kernels.rotary.rotary_grid` / ``rotary_threads`` (a thread an element; with a norm,
a warp a row); sources from `codegen.kernels.rotary.emit_rotary`.

``ggufc.gated_gelu(x, up?)``: inputs ``(x[, up])`` (one input: x holds gate and up as the
halves of its last dim), args ``(rows = out.numel() / I)``, template arg ``inner = I`` (out's
last dim), grid ``ceil(rows * I / GATED_GELU_THREADS)``; sources from
`codegen.kernels.gated_gelu.emit_gated_gelu`.

``aten.rms_norm(x, [D], weight?, eps)`` of float32 x over its last dim (D static; weight None
or float32 ``[D]``): inputs ``(x[, weight])``, args ``(rows = x.numel() / D, eps)`` (int64,
float32), template arg ``dim``, grid ``(ceil(rows / RMS_NORM_ROWS_PER_BLOCK), 1, 1)``, block
`codegen.kernels.rms_norm.RMS_NORM_THREADS`; sources from
`codegen.kernels.rms_norm.emit_rms_norm`.  Other rms_norms stay ATen nodes.
``ggufc.rms_norm_add(x, weight?, eps, residual)`` lowers the same way with the residual as
the last input and a template arg ``residual = 1`` (the same op kind: the reference adds the
residual to the norm).  ``ggufc.rms_norm_add_norm(x, weight, eps, residual, next_weight,
next_eps)``: inputs ``(x, weight, residual, next_weight)``, template args ``residual = 1,
next_norm = 1``, args ``(rows, eps, next_eps)``, outputs ``(sum, normed)`` (the one
KernelNode with two outputs; the graph's getitems pick them).

``grid`` and ``block`` come from the kernel's launch rule (`codegen.kernels.launch`) with M
symbolic where the activation rows are.  A KernelNode holds one grid and block; they are
CUDA's when CUDA is among the backends (the runtime launcher is CUDA's), else the first
backend's.  Sources come from ``emitter(backend, fmt, kind, dtype, geometry=...)`` (default
`codegen.kernels.emit`), one per backend; ``backends=()`` gives a program for the CPU
reference interpreter only.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sympy
import torch
import torch.fx

from codegen.program_source import BACKEND_ENUMS, program_source
from compiler.errors import UnsupportedError
from compiler.ir.printer import symbolic_expr
from compiler.tuning import DEFAULT_BUCKETS_BY_DTYPE, kernel_for
from runtime_schema.aten_ops import ALLOWED_ATEN_OPS
from runtime_schema.builder import ProgramBuilder
from runtime_schema.program import (
    Argument,
    AtenNode,
    BoolValue,
    CompareOp,
    Dim,
    DType,
    DTypeValue,
    FloatListValue,
    FloatValue,
    GgufSlice,
    IfNode,
    IntListValue,
    IntValue,
    KernelKind,
    KernelNode,
    KernelSource,
    NoneValue,
    OpKind,
    Program,
    QuantFormat,
    StringValue,
    SymIntRef,
    SymNode,
    SymOp,
    TensorListRef,
    TensorRef,
)

if TYPE_CHECKING:
    from codegen.kernels.emitter import GeneratedKernel

DEFAULT_BACKENDS = ("metal", "cuda")
# The backend whose launch geometry a KernelNode carries when several are emitted.
LAUNCH_BACKEND = "cuda"

KERNEL_AUTO = "auto"
KERNEL_KINDS = {
    "matvec": KernelKind.MATVEC,
    "matvec_batched": KernelKind.MATVEC_BATCHED,
    "matmul": KernelKind.MATMUL,
    "embedding": KernelKind.EMBEDDING,
}
# torch dtype -> the emitter's activation dtype name
KERNEL_DTYPES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}

# Export's runtime checks: they return nothing and the interpreter checks shapes itself.
DROPPED_OPS = frozenset(
    {
        "aten::_assert_tensor_metadata",
        "aten::_assert_scalar",
        "aten::sym_constrain_range",
        "aten::sym_constrain_range_for_size",
        "aten::_assert_async.msg",
    }
)
# Keyword arguments that only say where / how to allocate: the interpreter allocates on its
# own device, so a program file stays device-agnostic.  Dropped when they have these values.
ALLOCATION_KWARGS = {
    "device": None,  # any device
    "pin_memory": (False, None),
    "layout": (torch.strided, None),
    "memory_format": (torch.preserve_format, torch.contiguous_format, None),
}
# Python comparison on a SymInt -> IfNode compare (and its mirror, for `1 >= s0`)
COMPARE_OPS = {
    sympy.Le: CompareOp.LE,
    sympy.Lt: CompareOp.LT,
    sympy.Ge: CompareOp.GE,
    sympy.Gt: CompareOp.GT,
    sympy.Eq: CompareOp.EQ,
    sympy.Ne: CompareOp.NE,
}
MIRRORED = {
    CompareOp.LE: CompareOp.GE,
    CompareOp.LT: CompareOp.GT,
    CompareOp.GE: CompareOp.LE,
    CompareOp.GT: CompareOp.LT,
    CompareOp.EQ: CompareOp.EQ,
    CompareOp.NE: CompareOp.NE,
}

# emit(backend, fmt, kind, dtype, *, geometry) -> KernelSource (geometry: the one
# codegen.kernels.pick_geometry picks)
Emitter = Callable[..., object]


def lower(
    graph_program,
    backends: Sequence[str] = DEFAULT_BACKENDS,
    *,
    emitter: Emitter | None = None,
    constant_sources: Mapping[str, GgufSlice] | None = None,
    metadata: Mapping[str, str] | None = None,
    route_model=None,
) -> Program:
    """The `Program` of `graph_program` (see the module doc).

    ``constant_sources`` maps a constant's name (its get_attr target) to where its bytes lie
    in a `.gguf` file; ``metadata`` is stored in the program as is; ``route_model``: the
    `codegen.dense_linear.RouteModel` a CUDA matmul's route by M is chosen with (default: the
    H100 model; ``ggufc tune`` fits one per card)."""
    for backend in backends:
        if backend not in BACKEND_ENUMS:
            raise UnsupportedError(
                f"lowering: unknown backend {backend!r}; supported: {', '.join(BACKEND_ENUMS)}"
            )
    if emitter is None and backends:
        from codegen.kernels import emit as emitter
    if route_model is None:
        from codegen.dense_linear import H100_ROUTE_MODEL as route_model
    lowering = _Lowering(
        graph_program, tuple(backends), emitter, dict(constant_sources or {}), route_model
    )
    return lowering.run(dict(metadata or {}))


# ---- sizes ----------------------------------------------------------------------------------


class _Sizes:
    """Sympy size expressions -> program Dims, computing compound ones with SymNodes in the
    prologue (the head of the main chain), each distinct expression once."""

    def __init__(
        self,
        builder: ProgramBuilder,
        symbol_ranges: Mapping[str, tuple[int, int]],
        display_names: Mapping[str, str],
    ):
        self.builder = builder
        self.prologue: list[SymNode] = []
        self.symbols: dict[str, int] = {
            name: builder.symint(display_names.get(name, name), low, high)
            for name, (low, high) in symbol_ranges.items()
        }
        self.ranges = dict(symbol_ranges)
        self._memo: dict[tuple, Dim] = {}

    def of(self, value, where: str) -> Dim:
        """A dim / SymInt / int as a Dim."""
        if isinstance(value, bool):
            raise UnsupportedError(f"{where}: expected a size, got the bool {value}")
        if isinstance(value, int):
            return Dim(value)
        if isinstance(value, torch.SymInt):
            return self.expr(symbolic_expr(value), where)
        raise UnsupportedError(f"{where}: expected a size, got {type(value).__name__}")

    def expr(self, expr, where: str) -> Dim:
        expr = sympy.sympify(expr)
        if expr.is_Integer:
            return Dim(int(expr))
        if expr.is_Symbol:
            index = self.symbols.get(str(expr))
            if index is None:
                raise UnsupportedError(
                    f"{where}: size symbol {expr} has no range (the program's symbols: "
                    f"{', '.join(self.symbols) or 'none'})"
                )
            return Dim.symbolic(index)
        return self._compound(expr, where)

    def _compound(self, expr, where: str) -> Dim:
        from torch.utils._sympy.functions import CeilToInt, FloorDiv, Max, Min, Mod, PythonMod

        if isinstance(expr, sympy.Add):
            positive = [t for t in expr.args if not t.could_extract_minus_sign()]
            negative = [-t for t in expr.args if t.could_extract_minus_sign()]
            if not positive:
                raise UnsupportedError(f"{where}: size {expr} is negative")
            total = self.apply(SymOp.ADD, [self.expr(t, where) for t in positive], where)
            for term in negative:
                total = self.apply(SymOp.SUB, [total, self.expr(term, where)], where)
            return total
        if isinstance(expr, sympy.Mul):
            factors = list(expr.args)
            if any(f.is_Rational and not f.is_Integer for f in factors):
                raise UnsupportedError(f"{where}: size {expr} has a fractional factor")
            return self.apply(SymOp.MUL, [self.expr(f, where) for f in factors], where)
        if isinstance(expr, sympy.Pow) and expr.exp.is_Integer and expr.exp > 0:
            return self.apply(SymOp.MUL, [self.expr(expr.base, where)] * int(expr.exp), where)
        if isinstance(expr, FloorDiv):
            return self.apply(SymOp.FLOOR_DIV, [self.expr(a, where) for a in expr.args], where)
        if isinstance(expr, (Mod, PythonMod)):
            return self.apply(SymOp.MOD, [self.expr(a, where) for a in expr.args], where)
        if isinstance(expr, (Min, sympy.Min)):
            return self.apply(SymOp.MIN, [self.expr(a, where) for a in expr.args], where)
        if isinstance(expr, (Max, sympy.Max)):
            return self.apply(SymOp.MAX, [self.expr(a, where) for a in expr.args], where)
        if isinstance(expr, CeilToInt):
            inner = expr.args[0]
            numerator, denominator = sympy.fraction(sympy.together(inner))
            if denominator.is_Integer:
                return self.ceil_div(self.expr(numerator, where), int(denominator), where)
        raise UnsupportedError(
            f"{where}: size expression {expr} ({type(expr).__name__}) cannot be computed by "
            f"SymNodes (supported: + - * floor-div mod min max ceil-div)"
        )

    def apply(self, op: SymOp, operands: list[Dim], where: str) -> Dim:
        """``op(operands)`` folded when every operand is static, else a (memoized) SymNode."""
        if op in (SymOp.ADD, SymOp.MUL):
            static = [d.size for d in operands if not d.is_symbolic]
            symbolic = [d for d in operands if d.is_symbolic]
            folded = sum(static) if op == SymOp.ADD else _product(static)
            if op == SymOp.MUL and folded == 0:
                return Dim(0)
            identity = 0 if op == SymOp.ADD else 1
            operands = symbolic + ([Dim(folded)] if folded != identity or not symbolic else [])
            if len(operands) == 1:
                return operands[0]
            operands = sorted(operands, key=lambda d: (d.is_symbolic, d.value, d.size))
        elif all(not d.is_symbolic for d in operands):
            from runtime_schema.interpreter import _sym_eval

            return Dim(_sym_eval(op, [d.size for d in operands], where))
        key = (op, tuple(operands))
        dim = self._memo.get(key)
        if dim is None:
            low, high = self._range(op, operands)
            name = f"{op.name.lower()}_{len(self._memo)}"
            output = self.builder.symint(name, low, high)
            self.prologue.append(SymNode(op, tuple(operands), output))
            dim = self._memo[key] = Dim.symbolic(output)
        return dim

    def ceil_div(self, numerator: Dim, denominator: int, where: str) -> Dim:
        if denominator == 1:
            return numerator
        return self.apply(SymOp.CEIL_DIV, [numerator, Dim(denominator)], where)

    def _range(self, op: SymOp, operands: list[Dim]) -> tuple[int, int]:
        """Inclusive range of ``op(operands)`` from the operands' ranges (sizes are >= 0, and
        every SymOp is monotonic in each operand except SUB's and the divisors')."""
        from runtime_schema.interpreter import _sym_eval

        lows, highs = zip(*(self.range_of(d) for d in operands))
        if op == SymOp.SUB:
            return max(lows[0] - highs[1], 0), highs[0] - lows[1]
        if op in (SymOp.FLOOR_DIV, SymOp.CEIL_DIV):
            return _sym_eval(op, [lows[0], max(highs[1], 1)], ""), _sym_eval(
                op, [highs[0], max(lows[1], 1)], ""
            )
        if op == SymOp.MOD:
            return 0, max(highs[1] - 1, 0)
        return _sym_eval(op, list(lows), ""), _sym_eval(op, list(highs), "")

    def range_of(self, d: Dim) -> tuple[int, int]:
        """Inclusive range of the size ``d`` (its value twice where static)."""
        if not d.is_symbolic:
            return d.size, d.size
        info = self.builder.values[d.value].info
        return info.min, info.max


def _product(xs) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


# ---- the lowering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Predicate:
    """``condition <compare> constant`` over a SymInt (a cond's predicate)."""

    condition: Dim
    compare: CompareOp
    constant: int


@dataclass(frozen=True)
class _MatmulLinear:
    """A ``ggufc.linear`` the lowering sends down M-dependent routes: its node, format,
    kernel inputs (x, blocks, bias: the zero bias without one), the node's own bias (None
    without one: the dense route's aten::linear then takes none), rows, N and K."""

    node: torch.fx.Node
    fmt: str
    inputs: tuple[int, int, int]
    given_bias: int | None
    rows: Dim
    n: int
    k: int


class _Scope:
    """One FX graph being lowered into one chain: node -> what it lowered to."""

    def __init__(self, module: torch.fx.GraphModule, chain: int, name: str):
        self.module = module
        self.chain = chain
        self.name = name
        self.env: dict[torch.fx.Node, object] = {}


class _Lowering:
    def __init__(self, gp, backends: tuple[str, ...], emitter, constant_sources: dict, route_model):
        self.gp = gp
        self.backends = backends
        self.emitter = emitter
        self.constant_sources = constant_sources
        self.route_model = route_model
        self.builder = ProgramBuilder()
        self.display_names = _display_names(gp)
        self.sizes = _Sizes(self.builder, gp.symbol_ranges, self.display_names)
        self.constants: dict[int, int] = {}  # id(tensor) -> value index
        self.zero_biases: dict[tuple[int, torch.dtype], int] = {}
        self.names: set[str] = {v.name for v in self.builder.values}
        self.kernel_count = 0

    # ---- entry -----------------------------------------------------------------------------
    def run(self, metadata: dict[str, str]) -> Program:
        b = self.builder
        scope = _Scope(self.gp.graph_module, b.main, "main")
        outputs = self.lower_graph(scope, inputs=None)
        b.chains[b.main][1][:0] = self.sizes.prologue
        b.metadata.extend(sorted(metadata.items()))
        self._check_symbols_bound()
        return b.build(outputs)

    def _check_symbols_bound(self) -> None:
        bound = {
            d.value
            for i in self.builder.inputs
            for d in self.builder.values[i].info.shape
            if d.is_symbolic
        }
        for name, index in self.sizes.symbols.items():
            if index not in bound:
                raise UnsupportedError(
                    f"lowering: symbol {name} is not a plain dim of any graph input, so the "
                    f"program could not bind it from its inputs"
                )

    def lower_graph(self, scope: _Scope, inputs: list | None) -> list[int]:
        """Lower every node of `scope`'s graph into its chain; returns the values of its
        output.  ``inputs`` binds a branch subgraph's placeholders (None: the top graph)."""
        placeholders = {
            n: position
            for position, n in enumerate(
                n for n in scope.module.graph.nodes if n.op == "placeholder"
            )
        }
        if inputs is not None and len(inputs) != len(placeholders):
            raise UnsupportedError(
                f"{scope.name}: subgraph takes {len(placeholders)} operands, got {len(inputs)}"
            )
        outputs: list[int] = []
        for node in scope.module.graph.nodes:
            where = f"{scope.name}: node %{node.name}"
            if node.op == "placeholder":
                if inputs is None:
                    scope.env[node] = self.program_input(node, where)
                else:
                    scope.env[node] = inputs[placeholders[node]]
            elif node.op == "get_attr":
                scope.env[node] = self.get_attr(scope, node, where)
            elif node.op == "call_function":
                scope.env[node] = self.call(scope, node, where)
            elif node.op == "output":
                outputs = self.output_values(scope, node, where)
            else:
                raise UnsupportedError(f"{where}: {node.op} nodes cannot be lowered")
        return outputs

    # ---- values ----------------------------------------------------------------------------
    def unique_name(self, name: str) -> str:
        candidate, n = name, 1
        while candidate in self.names:
            candidate = f"{name}_{n}"
            n += 1
        self.names.add(candidate)
        return candidate

    def tensor_info(self, fake, where: str) -> tuple[DType, list[Dim]]:
        if not isinstance(fake, torch.Tensor):
            raise UnsupportedError(f"{where}: expected a tensor value, got {type(fake).__name__}")
        try:
            dtype = DType.from_torch(fake.dtype)
        except ValueError as exc:
            raise UnsupportedError(f"{where}: {exc}") from None
        return dtype, [self.sizes.of(d, f"{where} shape") for d in fake.shape]

    def new_tensor(self, name: str, fake, where: str) -> int:
        dtype, shape = self.tensor_info(fake, where)
        return self.builder.tensor(self.unique_name(name), dtype, shape)

    def program_input(self, node: torch.fx.Node, where: str) -> int:
        fake = node.meta.get("val")
        if not isinstance(fake, torch.Tensor):
            raise UnsupportedError(
                f"{where}: a program input must be a tensor, got {type(fake).__name__} "
                f"(sizes are bound from input shapes)"
            )
        for axis, size in enumerate(fake.shape):
            expr = sympy.sympify(symbolic_expr(size)) if isinstance(size, torch.SymInt) else None
            if expr is not None and not (expr.is_Symbol or expr.is_Integer):
                # the interpreter binds an input's symbolic dims as values: a compound one
                # would be defined twice (bound, and computed by its SymNode)
                shown = expr.subs(
                    {
                        sym: sympy.Symbol(self.display_names.get(str(sym), str(sym)))
                        for sym in expr.free_symbols
                    }
                )
                raise UnsupportedError(
                    f"{where}: dim {axis} of the input is {shown}; a program input's dims must "
                    f"be integers or plain symbols (sizes are bound from them)"
                )
        dtype, shape = self.tensor_info(fake, where)
        return self.builder.input(self.unique_name(node.name), dtype, shape)

    def constant(self, name: str, tensor: torch.Tensor, where: str) -> int:
        index = self.constants.get(id(tensor))
        if index is not None:
            return index
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        try:
            DType.from_torch(tensor.dtype)
        except ValueError as exc:
            raise UnsupportedError(f"{where}: constant {name!r}: {exc}") from None
        index = self.builder.constant(
            self.unique_name(name), tensor.detach(), source=self.constant_sources.get(name)
        )
        self.constants[id(tensor)] = index
        return index

    def get_attr(self, scope: _Scope, node: torch.fx.Node, where: str):
        obj = scope.module
        for part in str(node.target).split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise UnsupportedError(f"{where}: get_attr target {node.target!r} does not exist")
        if isinstance(obj, torch.fx.GraphModule):
            return obj  # a cond branch, lowered when the cond is
        if isinstance(obj, torch.Tensor):
            return self.constant(str(node.target), obj, where)
        raise UnsupportedError(f"{where}: get_attr of a {type(obj).__name__} cannot be lowered")

    def output_values(self, scope: _Scope, node: torch.fx.Node, where: str) -> list[int]:
        values = []
        for j, item in enumerate(_flatten(node.args[0])):
            lowered = scope.env.get(item) if isinstance(item, torch.fx.Node) else None
            if not isinstance(lowered, int):
                raise UnsupportedError(
                    f"{where}: output {j} ({item}) is not a tensor; program outputs are tensors"
                )
            values.append(lowered)
        return values

    # ---- calls -----------------------------------------------------------------------------
    def call(self, scope: _Scope, node: torch.fx.Node, where: str):
        target = node.target
        val = node.meta.get("val")
        if target is operator.getitem:
            container, index = node.args
            return scope.env[container][index]
        if target is torch.ops.higher_order.cond:
            return self.cond(scope, node, where)
        if isinstance(val, torch.SymBool):
            return self.predicate(val, where)
        if isinstance(val, torch.SymInt) or (
            isinstance(val, int) and not isinstance(target, torch._ops.OpOverload)
        ):
            return self.sizes.of(val, where)
        if not isinstance(target, torch._ops.OpOverload):
            raise UnsupportedError(f"{where}: cannot lower a call to {target}")
        namespace = target.namespace
        schema_name = _schema_name(target)
        if schema_name in DROPPED_OPS:
            return None
        if namespace == "ggufc":
            return self.kernel(scope, node, where)
        if namespace == "aten":
            if schema_name == "aten::sym_size.int":
                return self.sizes.of(val, where)
            if schema_name == "aten::rms_norm" and _rms_norm_kernel_applies(node):
                return self.rms_norm(scope, node, where)
            return self.aten(scope, node, schema_name, where)
        raise UnsupportedError(f"{where}: op {schema_name} has no lowering")

    def predicate(self, val: torch.SymBool, where: str) -> _Predicate | bool:
        expr = symbolic_expr(val)
        if expr in (sympy.true, sympy.false):
            return bool(expr)
        compare = COMPARE_OPS.get(type(expr))
        if compare is None:
            raise UnsupportedError(f"{where}: condition {expr} is not a comparison")
        lhs, rhs = expr.lhs, expr.rhs
        if lhs.is_Integer and not rhs.is_Integer:
            lhs, rhs, compare = rhs, lhs, MIRRORED[compare]
        if not rhs.is_Integer:
            raise UnsupportedError(
                f"{where}: condition {expr} must compare a size with an integer constant"
            )
        return _Predicate(self.sizes.expr(lhs, where), compare, int(rhs))

    def cond(self, scope: _Scope, node: torch.fx.Node, where: str):
        pred_node, then_node, else_node, operands = node.args[:4]
        predicate = scope.env[pred_node] if isinstance(pred_node, torch.fx.Node) else pred_node
        branches = [scope.env[then_node], scope.env[else_node]]
        operand_values = [
            scope.env[o] if isinstance(o, torch.fx.Node) else self.sizes.of(o, where)
            for o in operands
        ]
        if isinstance(predicate, bool):
            # A static predicate: inline the branch that always runs.
            taken = branches[0] if predicate else branches[1]
            sub = _Scope(taken, scope.chain, f"{scope.name}/{node.name}")
            return tuple(self.lower_graph(sub, operand_values))
        if not isinstance(predicate, _Predicate):
            raise UnsupportedError(
                f"{where}: cond predicate must be a comparison of a size with a constant"
            )
        condition = predicate.condition
        if not condition.is_symbolic:
            raise UnsupportedError(f"{where}: cond predicate compares a static size")
        chains = []
        for label, branch in zip(("then", "else"), branches):
            chain_name = self.unique_name(f"{scope.name}/{node.name}.{label}")
            chain = self.builder.chain(chain_name)
            results = self.lower_graph(_Scope(branch, chain, chain_name), operand_values)
            self.builder.results(chain, results)
            chains.append(chain)
        fakes = node.meta.get("val")
        if not isinstance(fakes, (tuple, list)):
            fakes = (fakes,)
        outputs = tuple(
            self.new_tensor(f"{node.name}_{j}", fake, f"{where} output {j}")
            for j, fake in enumerate(fakes)
        )
        self.builder.emit(
            scope.chain,
            IfNode(
                condition=condition.value,
                compare=predicate.compare,
                constant=predicate.constant,
                then_chain=chains[0],
                else_chain=chains[1],
                outputs=outputs,
            ),
        )
        return outputs

    # ---- ATen ------------------------------------------------------------------------------
    def aten(self, scope: _Scope, node: torch.fx.Node, schema_name: str, where: str):
        if schema_name not in ALLOWED_ATEN_OPS:
            raise UnsupportedError(
                f"{where}: {schema_name} is not on the interpreter's ATen allow-list "
                f"(runtime_schema/aten_ops.py)"
            )
        schema_args = {a.name: a for a in node.target._schema.arguments}
        positional = list(node.target._schema.arguments)
        args: list[Argument] = []
        for j, value in enumerate(node.args):
            arg_type = positional[j].type if j < len(positional) else None
            args.append(Argument(self.argument(scope, value, arg_type, f"{where} arg {j}")))
        for name, value in node.kwargs.items():
            if name in ALLOCATION_KWARGS and _droppable(name, value):
                continue
            arg_type = schema_args[name].type if name in schema_args else None
            args.append(Argument(self.argument(scope, value, arg_type, f"{where} {name}="), name))
        val = node.meta.get("val")
        fakes = val if isinstance(val, (tuple, list)) else (val,)
        if val is None:
            fakes = ()
        outputs = tuple(
            self.new_tensor(node.name if len(fakes) == 1 else f"{node.name}_{j}", fake, where)
            for j, fake in enumerate(fakes)
        )
        self.builder.emit(scope.chain, AtenNode(schema_name, tuple(args), outputs))
        if isinstance(val, (tuple, list)):
            return outputs
        return outputs[0] if outputs else None

    def argument(self, scope: _Scope, value, arg_type, where: str):
        """An FX argument as a program argument value (`arg_type`: the schema's type)."""
        if isinstance(value, torch.fx.Node):
            lowered = scope.env.get(value)
            if isinstance(lowered, int):
                return TensorRef(lowered)
            if isinstance(lowered, Dim):
                return SymIntRef(lowered.value) if lowered.is_symbolic else IntValue(lowered.size)
            raise UnsupportedError(f"{where}: %{value.name} is not a tensor or a size")
        if value is None:
            return NoneValue()
        if isinstance(value, bool):
            return BoolValue(value)
        if isinstance(value, int):
            return IntValue(value)
        if isinstance(value, float):
            return FloatValue(value)
        if isinstance(value, str):
            return StringValue(value)
        if isinstance(value, torch.dtype):
            try:
                return DTypeValue(DType.from_torch(value))
            except ValueError as exc:
                raise UnsupportedError(f"{where}: {exc}") from None
        if isinstance(value, (list, tuple)):
            return self.list_argument(scope, value, arg_type, where)
        raise UnsupportedError(
            f"{where}: argument {value!r} ({type(value).__name__}) cannot be lowered"
        )

    def list_argument(self, scope: _Scope, items, arg_type, where: str):
        element = str(arg_type.getElementType()) if hasattr(arg_type, "getElementType") else ""
        lowered = [scope.env.get(v) if isinstance(v, torch.fx.Node) else v for v in items]
        all_tensors = bool(items) and all(
            isinstance(node, torch.fx.Node) and isinstance(value, int)
            for node, value in zip(items, lowered)
        )
        if "Tensor" in element or all_tensors:
            if not all_tensors:
                raise UnsupportedError(f"{where}: a tensor list may hold only tensors")
            return TensorListRef(tuple(lowered))
        if "float" in element:
            return FloatListValue(tuple(float(v) for v in items))
        dims = []
        for v in lowered:
            if isinstance(v, Dim):
                dims.append(v)
            elif isinstance(v, int) and not isinstance(v, bool):
                dims.append(Dim(v))
            else:
                raise UnsupportedError(f"{where}: list element {v!r} is not a size")
        return IntListValue(tuple(dims))

    # ---- GGUF kernels ------------------------------------------------------------------------
    def kernel(self, scope: _Scope, node: torch.fx.Node, where: str) -> int:
        bound = _bound_arguments(node)
        op_name = node.target._schema.name.split("::")[-1]
        if op_name == "attention":
            return self.attention(scope, node, bound, where)
        if op_name == "rotary":
            return self.rotary(scope, node, bound, where)
        if op_name == "gated_gelu":
            return self.gated_gelu(scope, node, bound, where)
        if op_name in ("rms_norm_add", "rms_norm_add_norm"):
            arguments = (bound["x"], bound["weight"], bound["eps"])
            next_norm = (bound["next_weight"], bound["next_eps"]) if "next_eps" in bound else None
            return self.rms_norm(
                scope, node, where, arguments, residual=bound["residual"], next_norm=next_norm
            )
        fmt = bound["fmt"]
        if fmt not in QuantFormat.__members__:
            raise UnsupportedError(
                f"{where}: format {fmt!r} has no kernels; supported: "
                f"{', '.join(QuantFormat.__members__)}"
            )
        n = self.static_int(scope, bound["n"], f"{where} n")
        k = self.static_int(scope, bound["k"], f"{where} k")
        val = node.meta.get("val")
        output = self.new_tensor(node.name, val, where)
        blocks = self.tensor_operand(scope, bound["blocks"], f"{where} blocks")
        if op_name == "linear":
            x_node = bound["x"]
            x = self.tensor_operand(scope, x_node, f"{where} x")
            x_fake = x_node.meta["val"]
            rows = self.element_count(x_fake.shape[:-1], where)
            kind_name = self.linear_kind(
                bound.get("kernel", KERNEL_AUTO), rows, x_fake.dtype, where
            )
            if bound.get("bias") is not None:
                bias = self.tensor_operand(scope, bound["bias"], f"{where} bias")
            else:
                bias = self.zero_bias(n, x_fake.dtype)
            dtype = x_fake.dtype
            routes = self.matmul_routes(kind_name, fmt, dtype, rows, n, k)
            if routes is None:
                return self.emit_kernel(
                    scope,
                    node,
                    OpKind.LINEAR,
                    kind_name,
                    fmt,
                    dtype,
                    (x, blocks, bias),
                    output,
                    rows,
                    n,
                    k,
                    has_bias=True,
                )
            given_bias = bias if bound.get("bias") is not None else None
            linear = _MatmulLinear(node, fmt, (x, blocks, bias), given_bias, rows, n, k)
            self.emit_routes(scope.chain, scope, linear, routes, output)
            return output
        if op_name == "embedding":
            indices_node = bound["indices"]
            indices = self.tensor_operand(scope, indices_node, f"{where} indices")
            index_fake = indices_node.meta["val"]
            if "cuda" in self.backends and index_fake.dtype != torch.int64:
                raise UnsupportedError(
                    f"{where}: the CUDA embedding kernel reads int64 indices, got {index_fake.dtype}"
                )
            count = self.element_count(index_fake.shape, where)
            return self.emit_kernel(
                scope,
                node,
                OpKind.EMBEDDING,
                "embedding",
                fmt,
                val.dtype,
                (blocks, indices),
                output,
                count,
                n,
                k,
                has_bias=None,
            )
        if op_name == "dequantize":
            self.dequantize_node(scope.chain, fmt, val.dtype, blocks, output, n, k)
            return output
        raise UnsupportedError(f"{where}: ggufc op {op_name!r} has no lowering")

    def generated_sources(
        self, emit_for: Callable[[str], GeneratedKernel]
    ) -> tuple[KernelSource, ...]:
        """The KernelSource of each backend from ``emit_for(backend)``."""
        sources = []
        for backend in self.backends:
            generated = emit_for(backend)
            sources.append(program_source(backend, generated))
        return tuple(sources)

    def element_count(self, shape, where: str) -> Dim:
        """The product of ``shape``'s sizes (1 for no sizes), symbolic where they are."""
        return self.sizes.apply(
            SymOp.MUL, [self.sizes.of(d, where) for d in shape] or [Dim(1)], where
        )

    def emit_non_gguf_kernel(
        self,
        scope: _Scope,
        op: OpKind,
        sources: tuple,
        inputs: tuple,
        outputs: tuple,
        *,
        grid: tuple,
        threads: int,
        args: tuple,
        template_args: tuple,
        shared_memory_bytes: int = 0,
    ) -> None:
        """Emit the KernelNode of a kernel that is not a GGUF op (attention, RMSNorm, rotary,
        gated GELU): its kernel kind is the op's namesake, its format unused (Q4_0), its
        block ``threads`` wide."""
        self.kernel_count += 1
        self.builder.emit(
            scope.chain,
            KernelNode(
                name=f"{op.name.lower()}_{self.kernel_count}",
                format=QuantFormat.Q4_0,  # unused: not a GGUF op
                op=op,
                kind=KernelKind[op.name],
                sources=sources,
                inputs=inputs,
                outputs=outputs,
                grid=grid,
                block=(Dim(threads), Dim(1), Dim(1)),
                shared_memory_bytes=shared_memory_bytes,
                args=args,
                template_args=template_args,
            ),
        )

    def gated_gelu(self, scope: _Scope, node: torch.fx.Node, bound: dict, where: str) -> int:
        from codegen.kernels.gated_gelu import GATED_GELU_THREADS, emit_gated_gelu

        stacked = bound.get("up") is None
        names = ["x"] if stacked else ["x", "up"]
        inputs = tuple(self.tensor_operand(scope, bound[name], f"{where} {name}") for name in names)
        out_fake = node.meta["val"]
        inner = self.static_int(scope, out_fake.shape[-1], f"{where} inner width")
        rows = self.element_count(out_fake.shape[:-1], where)
        elements = self.sizes.apply(SymOp.MUL, [rows, Dim(inner)], where)
        output = self.new_tensor(node.name, out_fake, where)
        self.emit_non_gguf_kernel(
            scope,
            OpKind.GATED_GELU,
            self.generated_sources(lambda backend: emit_gated_gelu(backend, inner, stacked)),
            inputs,
            (output,),
            grid=(self.sizes.ceil_div(elements, GATED_GELU_THREADS, where), Dim(1), Dim(1)),
            threads=GATED_GELU_THREADS,
            args=(Argument(_size_arg(rows), "rows"),),
            template_args=(Argument(IntValue(inner), "inner"),),
        )
        return output

    def rotary(self, scope: _Scope, node: torch.fx.Node, bound: dict, where: str) -> int:
        from codegen.kernels.rotary import (
            ROTARY_NORMED_ROWS_PER_BLOCK,
            ROTARY_THREADS,
            emit_rotary,
            rotary_threads,
        )

        normed = bound.get("norm_eps") is not None
        names = ["x", "cos", "sin"] + (
            ["norm_weight"] if bound.get("norm_weight") is not None else []
        )
        inputs = tuple(self.tensor_operand(scope, bound[name], f"{where} {name}") for name in names)
        weighted = len(inputs) == 4
        x_fake = bound["x"].meta["val"]
        dim = self.static_int(scope, x_fake.shape[-1], f"{where} dim")
        rows = self.element_count(x_fake.shape[:-1], where)
        tokens = self.sizes.of(x_fake.shape[-2], where)
        if normed:  # a warp a row
            blocks = self.sizes.ceil_div(rows, ROTARY_NORMED_ROWS_PER_BLOCK, where)
        else:  # a thread an element
            elements = self.sizes.apply(SymOp.MUL, [rows, Dim(dim)], where)
            blocks = self.sizes.ceil_div(elements, ROTARY_THREADS, where)
        args = [Argument(_size_arg(rows), "rows"), Argument(_size_arg(tokens), "tokens")]
        if normed:
            args.append(Argument(FloatValue(float(bound["norm_eps"])), "eps"))
        output = self.new_tensor(node.name, node.meta.get("val"), where)
        self.emit_non_gguf_kernel(
            scope,
            OpKind.ROTARY,
            self.generated_sources(lambda backend: emit_rotary(backend, dim, normed, weighted)),
            inputs,
            (output,),
            grid=(blocks, Dim(1), Dim(1)),
            threads=rotary_threads(normed),
            args=tuple(args),
            template_args=(Argument(IntValue(dim), "dim"),),
        )
        return output

    def rms_norm(
        self,
        scope: _Scope,
        node: torch.fx.Node,
        where: str,
        arguments: tuple | None = None,
        residual: torch.fx.Node | None = None,
        next_norm: tuple | None = None,
    ) -> int | tuple[int, int]:
        """An ``aten.rms_norm`` node (``arguments`` None: its own), or the (x, weight, eps) of
        a ``ggufc.rms_norm_add`` with its ``residual``, and of a ``ggufc.rms_norm_add_norm``
        with its ``next_norm`` (next weight, next eps) too: two outputs (the sum, its norm)."""
        from codegen.kernels.rms_norm import (
            RMS_NORM_ROWS_PER_BLOCK,
            RMS_NORM_THREADS,
            emit_rms_norm,
        )

        if arguments is None:
            x, _, weight, eps = _rms_norm_arguments(node)
        else:
            x, weight, eps = arguments
        inputs = [self.tensor_operand(scope, x, f"{where} input")]
        if weight is not None:
            inputs.append(self.tensor_operand(scope, weight, f"{where} weight"))
        template_args = ()
        if residual is not None:
            inputs.append(self.tensor_operand(scope, residual, f"{where} residual"))
            template_args = (Argument(IntValue(1), "residual"),)
        extra_args = ()
        if next_norm is not None:
            next_weight, next_eps = next_norm
            inputs.append(self.tensor_operand(scope, next_weight, f"{where} next weight"))
            template_args += (Argument(IntValue(1), "next_norm"),)
            extra_args = (Argument(FloatValue(float(next_eps)), "next_eps"),)
        x_fake = x.meta["val"]
        dim = int(x_fake.shape[-1])
        eps = torch.finfo(torch.float32).eps if eps is None else float(eps)  # aten's default
        rows = self.element_count(x_fake.shape[:-1], where)
        fake = node.meta.get("val")
        if next_norm is None:
            outputs = (self.new_tensor(node.name, fake, where),)
        else:
            outputs = tuple(
                self.new_tensor(f"{node.name}_{part}", value, where)
                for part, value in zip(("sum", "normed"), fake, strict=True)
            )
        self.emit_non_gguf_kernel(
            scope,
            OpKind.RMS_NORM,
            self.generated_sources(
                lambda backend: emit_rms_norm(
                    backend, dim, weight is not None, residual is not None, next_norm is not None
                )
            ),
            tuple(inputs),
            outputs,
            grid=(self.sizes.ceil_div(rows, RMS_NORM_ROWS_PER_BLOCK, where), Dim(1), Dim(1)),
            threads=RMS_NORM_THREADS,
            args=(
                Argument(_size_arg(rows), "rows"),
                Argument(FloatValue(eps), "eps"),
                *extra_args,
            ),
            template_args=(Argument(IntValue(dim), "dim"), *template_args),
        )
        return outputs[0] if next_norm is None else outputs

    def attention(self, scope: _Scope, node: torch.fx.Node, bound: dict, where: str) -> int:
        from codegen.kernels.attention import (
            ATTENTION_KERNEL_MAX_ROWS,
            ATTENTION_THREADS,
            attention_grid,
            attention_shared_bytes,
            emit_attention,
        )

        operands = [bound[name] for name in ("q", "k", "v", "visible")]
        inputs = tuple(
            self.tensor_operand(scope, value, f"{where} {name}")
            for name, value in zip(("q", "k", "v", "visible"), operands)
        )
        q, k, v, visible = (value.meta["val"] for value in operands)
        heads, keys, head_dim = (
            self.static_int(scope, size, f"{where} {what}")
            for size, what in (
                (k.shape[0], "heads"),
                (k.shape[1], "keys"),
                (k.shape[2], "head dim"),
            )
        )
        value_dim = self.static_int(scope, v.shape[2], f"{where} value dim")
        output = self.new_tensor(node.name, node.meta.get("val"), where)
        rows = self.sizes.of(q.shape[1], where)
        tokens = self.sizes.of(visible.shape[0], where)
        splits, grid_rows, grid_heads = attention_grid(rows, Dim(heads))
        self.emit_non_gguf_kernel(
            scope,
            OpKind.ATTENTION,
            self.generated_sources(lambda backend: emit_attention(backend, head_dim, value_dim)),
            inputs,
            (output,),
            grid=(Dim(splits), grid_rows, grid_heads),
            threads=ATTENTION_THREADS,
            shared_memory_bytes=attention_shared_bytes(keys, value_dim),
            args=(
                Argument(_size_arg(rows), "rows"),
                Argument(_size_arg(tokens), "tokens"),
                Argument(IntValue(keys), "keys"),
                Argument(FloatValue(float(bound["scale"])), "scale"),
            ),
            template_args=(
                Argument(IntValue(head_dim), "head_dim"),
                Argument(IntValue(value_dim), "value_dim"),
                Argument(IntValue(ATTENTION_KERNEL_MAX_ROWS), "kernel_max_rows"),
            ),
        )
        return output

    def kernel_name(self, kind: str, fmt: str) -> str:
        self.kernel_count += 1
        return f"{kind}_{fmt.lower()}_{self.kernel_count}"

    def linear_kind(self, kernel: str, rows: Dim, dtype, where: str) -> str:
        if kernel != KERNEL_AUTO:
            if kernel not in KERNEL_KINDS or kernel == "embedding":
                raise UnsupportedError(f"{where}: unknown linear kernel {kernel!r}")
            return kernel
        if rows.is_symbolic:
            return "matmul"
        buckets = DEFAULT_BUCKETS_BY_DTYPE.get(KERNEL_DTYPES.get(dtype), ())
        return kernel_for(buckets, rows.size)

    def dequantize_node(self, chain, fmt: str, dtype, blocks: int, output: int, n, k) -> None:
        """Emits into ``chain`` the KernelNode dequantizing ``blocks`` (N x K of ``fmt``) to
        ``output`` in ``dtype``, with each backend's dequantize kernel (none for a dtype
        without kernels: the reference op serves it on CPU)."""
        sources, rules = [], {}
        dtype_name = KERNEL_DTYPES.get(dtype)
        for backend in self.backends if dtype_name is not None else ():
            generated = self.emitter(backend, fmt, "dequantize", dtype_name)
            sources.append(program_source(backend, generated))
            rules[backend] = generated.launch
        grid, block, _ = self.launch_dims(rules, Dim(n), n, k, f"dequantize {fmt} {n}x{k}")
        self.builder.emit(
            chain,
            KernelNode(
                name=self.kernel_name("dequantize", fmt),
                format=QuantFormat[fmt],
                op=OpKind.DEQUANTIZE,
                kind=KernelKind.DEQUANTIZE,
                sources=tuple(sources),
                inputs=(blocks,),
                outputs=(output,),
                grid=grid,
                block=block,
                args=(Argument(IntValue(n), "n"), Argument(IntValue(k), "k")),
            ),
        )

    def matmul_routes(self, kind_name: str, fmt: str, dtype, rows: Dim, n, k):
        """`codegen.dense_linear.matmul_routes` over the M the program can have, for a
        matmul linear with CUDA among the backends; else None (one kernel serves every M)."""
        from codegen import dense_linear

        dtype_name = KERNEL_DTYPES.get(dtype)
        if kind_name != "matmul" or "cuda" not in self.backends or dtype_name is None:
            return None
        low, high = self.sizes.range_of(rows)
        return dense_linear.matmul_routes(fmt, dtype_name, n, k, low, high, self.route_model)

    def emit_routes(self, chain, scope, linear: _MatmulLinear, routes, output: int) -> None:
        """Emits into ``chain`` the first of ``routes`` alone, or an IfNode (M <= its last M)
        between it and the others (nested in the else chain)."""
        (last, route), rest = routes[0], routes[1:]
        if not rest:
            self.emit_route(chain, scope, linear, route, last, output)
            return

        def emit_side(then: bool, side_chain: int, branch_output: int) -> None:
            if then:
                self.emit_route(side_chain, scope, linear, route, last, branch_output)
            else:
                self.emit_routes(side_chain, scope, linear, rest, branch_output)

        self.branch_on_rows(chain, scope, linear.node, linear.rows, last, "m", output, emit_side)

    def emit_route(self, chain, scope, linear: _MatmulLinear, route: str, m: int, output: int):
        """One route of a matmul linear into ``chain``: the dense route, or the matmul
        KernelNode in the CUDA geometry ``route`` (the other backends' for ``m`` rows)."""
        from codegen.dense_linear import DENSE_ROUTE

        node, fmt, (x, blocks, _), n, k = linear.node, linear.fmt, linear.inputs, linear.n, linear.k
        if route == DENSE_ROUTE:
            self.dense_linear(chain, node, fmt, x, blocks, linear.given_bias, output, n, k)
            return
        dtype_name = KERNEL_DTYPES[node.meta["val"].dtype]
        where = f"{scope.name}: node %{node.name}"
        args = (where, OpKind.LINEAR, "matmul", fmt, dtype_name, linear.inputs, linear.rows, n, k)
        self.kernel_node(chain, *args, True, output=output, m=m, cuda_geometry=route)

    def dense_linear(self, chain, node, fmt, x: int, blocks: int, bias, output: int, n, k):
        """Emits into ``chain`` the dense route of a linear: ``blocks`` dequantized to a
        weight of x's dtype, then ``aten::linear(x, weight, bias)`` (cuBLAS on CUDA)."""
        where = f"node %{node.name}"
        dtype = node.meta["val"].dtype
        weight_value = torch.empty(n, k, dtype=dtype, device="meta")
        weight = self.new_tensor(f"{node.name}_dense_weight", weight_value, where)
        self.dequantize_node(chain, fmt, dtype, blocks, weight, n, k)
        bias_arg = NoneValue() if bias is None else TensorRef(bias)
        args = (Argument(TensorRef(x)), Argument(TensorRef(weight)), Argument(bias_arg))
        self.builder.emit(chain, AtenNode("aten::linear", args, (output,)))

    def branch_on_rows(
        self, chain, scope, node, rows: Dim, threshold: int, label: str, output: int, emit_side
    ) -> None:
        """Emits into ``chain`` an IfNode (M <= ``threshold``) giving ``output``; its
        two chains (named ``<node>.<label>_then`` / ``_else``) are filled by
        ``emit_side(then, chain, branch_output)``."""
        where = f"{scope.name}: node %{node.name}"
        chains = []
        for side in ("then", "else"):
            name = self.unique_name(f"{scope.name}/{node.name}.{label}_{side}")
            side_chain = self.builder.chain(name)
            branch_output = self.new_tensor(f"{node.name}_{side}", node.meta.get("val"), where)
            emit_side(side == "then", side_chain, branch_output)
            self.builder.results(side_chain, [branch_output])
            chains.append(side_chain)
        self.builder.emit(
            chain,
            IfNode(
                condition=rows.value,
                compare=CompareOp.LE,
                constant=threshold,
                then_chain=chains[0],
                else_chain=chains[1],
                outputs=(output,),
            ),
        )

    def emit_kernel(
        self,
        scope,
        node,
        op,
        kind_name,
        fmt,
        dtype,
        inputs,
        output,
        rows,
        n,
        k,
        *,
        has_bias,
        chain: int | None = None,
    ) -> int:
        """The KernelNode(s) of a GGUF op into ``chain`` (default: the scope's)."""
        chain = scope.chain if chain is None else chain
        where = f"{scope.name}: node %{node.name}"
        dtype_name = KERNEL_DTYPES.get(dtype)
        if dtype_name is None:
            raise UnsupportedError(
                f"{where}: activation dtype {dtype} has no kernels; supported: "
                f"{', '.join(str(d) for d in KERNEL_DTYPES)}"
            )
        from codegen.kernels.emitter import MATVEC_MMA_MAX_M, takes_mma_matvec

        args = (where, op, kind_name, fmt, dtype_name, inputs, rows, n, k, has_bias)
        m_ranged = any(takes_mma_matvec(b, fmt, kind_name, dtype_name) for b in self.backends)
        low, high = self.sizes.range_of(rows)
        if not m_ranged or high <= MATVEC_MMA_MAX_M or low > MATVEC_MMA_MAX_M:
            # one geometry for every M the program can have (its range, or a static M)
            m = None if rows.is_symbolic and not m_ranged else high
            self.kernel_node(chain, *args, output=output, m=m)
            return output

        # the kernel's geometry depends on M: an IfNode, M <= MATVEC_MMA_MAX_M and above
        def emit_side(then: bool, side_chain: int, branch_output: int) -> None:
            m = MATVEC_MMA_MAX_M if then else MATVEC_MMA_MAX_M + 1
            self.kernel_node(side_chain, *args, output=branch_output, m=m)

        self.branch_on_rows(chain, scope, node, rows, MATVEC_MMA_MAX_M, "m", output, emit_side)
        return output

    def kernel_node(
        self,
        chain,
        where,
        op,
        kind_name,
        fmt,
        dtype_name,
        inputs,
        rows,
        n,
        k,
        has_bias,
        *,
        output: int,
        m: int | None,
        cuda_geometry: str | None = None,
    ) -> None:
        """Emits into ``chain`` the KernelNode of a GGUF op (``where`` names it in errors)
        with the geometries each backend picks for ``m`` activation rows (None: any), CUDA's
        ``cuda_geometry`` where given."""
        from codegen.kernels import pick_geometry

        sources, rules = [], {}
        for backend in self.backends:
            geometry = pick_geometry(
                backend,
                fmt,
                kind_name,
                dtype_name,
                n,
                k,
                m,
                shared_memory_per_block=self.route_model.shared_memory_per_block,
            )
            if backend == "cuda" and cuda_geometry is not None:
                geometry = cuda_geometry
            generated = self.emitter(backend, fmt, kind_name, dtype_name, geometry=geometry)
            sources.append(program_source(backend, generated))
            rules[backend] = generated.launch
        grid, block, shared = self.launch_dims(rules, rows, n, k, where)
        args = [
            Argument(_size_arg(rows), "m"),
            Argument(IntValue(n), "n"),
            Argument(IntValue(k), "k"),
        ]
        if has_bias is not None:
            args.append(Argument(BoolValue(has_bias), "has_bias"))
        self.builder.emit(
            chain,
            KernelNode(
                name=self.kernel_name(kind_name, fmt),
                format=QuantFormat[fmt],
                op=op,
                kind=KERNEL_KINDS[kind_name],
                sources=tuple(sources),
                inputs=tuple(inputs),
                outputs=(output,),
                grid=grid,
                block=block,
                shared_memory_bytes=shared,
                args=tuple(args),
            ),
        )

    def launch_dims(self, rules: dict, rows: Dim, n: int, k: int, where: str):
        """Grid, block and dynamic shared bytes of a KernelNode from its backends' launch
        rules (LAUNCH_BACKEND's where emitted, else the first backend's; ones without
        rules: a program for the CPU reference)."""
        if not rules:
            return (Dim(1),) * 3, (Dim(1),) * 3, 0
        rule = rules.get(LAUNCH_BACKEND) or rules[self.backends[0]]
        grid = tuple(self.grid_extent(extent, rows, n, k, where) for extent in rule.grid)
        block = tuple(Dim(size) for size in rule.block_size())
        return grid, block, rule.shared_memory_bytes

    def grid_extent(self, extent, rows: Dim, n: int, k: int, where: str) -> Dim:
        from codegen.kernels.launch import PART_WEIGHTS

        named = {"M": rows, "N": Dim(n), "K_PARTS": Dim(k // PART_WEIGHTS)}
        factors = [named[s] for s in extent.sizes] or [Dim(1)]
        product = self.sizes.apply(SymOp.MUL, factors, where)
        blocks = self.sizes.ceil_div(product, extent.per_block, where)
        if extent.times == 1:
            return blocks
        return self.sizes.apply(SymOp.MUL, [blocks, Dim(extent.times)], where)

    def zero_bias(self, n: int, dtype: torch.dtype) -> int:
        key = (n, dtype)
        index = self.zero_biases.get(key)
        if index is None:
            name = self.unique_name(f"zero_bias_{n}_{KERNEL_DTYPES.get(dtype, str(dtype))}")
            index = self.builder.constant(name, torch.zeros(n, dtype=dtype))
            self.zero_biases[key] = index
        return index

    def tensor_operand(self, scope: _Scope, value, where: str) -> int:
        lowered = scope.env.get(value) if isinstance(value, torch.fx.Node) else None
        if not isinstance(lowered, int):
            raise UnsupportedError(f"{where}: expected a tensor operand, got {value!r}")
        return lowered

    def static_int(self, scope: _Scope, value, where: str) -> int:
        if isinstance(value, torch.fx.Node):
            value = scope.env.get(value)
        if isinstance(value, Dim) and not value.is_symbolic:
            return value.size
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UnsupportedError(f"{where}: expected a static integer, got {value!r}")


def _display_names(gp) -> dict[str, str]:
    """torch's symbol name -> ``s0, s1, ...`` in order of first appearance in the graph
    inputs' shapes (as IR dumps print them), so program dumps read like graph dumps."""
    names: dict[str, str] = {}
    for node in gp.inputs:
        fake = node.meta.get("val")
        if not isinstance(fake, torch.Tensor):
            continue
        for d in fake.shape:
            if isinstance(d, torch.SymInt):
                for symbol in sorted(symbolic_expr(d).free_symbols, key=str):
                    names.setdefault(str(symbol), f"s{len(names)}")
    return names


def _bound_arguments(node: torch.fx.Node) -> dict:
    """The call's arguments by schema name, defaults filled in."""
    arguments = node.target._schema.arguments
    bound = {a.name: a.default_value for a in arguments if a.has_default_value()}
    bound.update(zip((a.name for a in arguments), node.args))
    bound.update(node.kwargs)
    return bound


def _rms_norm_arguments(node: torch.fx.Node) -> tuple:
    """(x, normalized_shape, weight, eps) of an ``aten.rms_norm`` node."""
    bound = _bound_arguments(node)
    return tuple(bound[name] for name in ("input", "normalized_shape", "weight", "eps"))


def _rms_norm_kernel_applies(node: torch.fx.Node) -> bool:
    """True for the norms the RMSNorm kernel computes: float32 x normed over its last dim
    (a static size), with no weight or a float32 one of that size."""
    x, shape, weight, _ = _rms_norm_arguments(node)
    x_fake = x.meta.get("val") if isinstance(x, torch.fx.Node) else None
    if not isinstance(x_fake, torch.Tensor) or x_fake.dtype != torch.float32 or x_fake.dim() < 1:
        return False
    last = x_fake.shape[-1]
    if not isinstance(last, int) or list(shape) != [last]:
        return False
    if weight is None:
        return True
    w_fake = weight.meta.get("val") if isinstance(weight, torch.fx.Node) else None
    return (
        isinstance(w_fake, torch.Tensor)
        and w_fake.dtype == torch.float32
        and list(w_fake.shape) == [last]
    )


def _size_arg(d: Dim):
    return SymIntRef(d.value) if d.is_symbolic else IntValue(d.size)


def _schema_name(op: torch._ops.OpOverload) -> str:
    name = op._schema.name
    overload = op._schema.overload_name
    return f"{name}.{overload}" if overload else name


def _droppable(name: str, value) -> bool:
    allowed = ALLOCATION_KWARGS[name]
    if allowed is None:
        return True
    return value in allowed


def _flatten(tree) -> list:
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in _flatten(item)]
    return [tree]


__all__ = ["DEFAULT_BACKENDS", "lower"]
