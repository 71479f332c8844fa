"""Round trip on exported modules: torch.export -> GraphProgram -> lower -> save -> load ->
run == the FX graph (the program-file issue's check), and size expressions -> SymNodes."""

from __future__ import annotations

import math

import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils._sympy.functions import FloorDiv, Max, Min, Mod

from codegen import lower
from codegen.lowering import _Sizes
from compiler.ir.program import GraphProgram
from compiler.modules import GGUFLinear
from runtime_schema import load_program, run_program, save_program
from runtime_schema.builder import ProgramBuilder
from runtime_schema.interpreter import _sym_eval
from runtime_schema.program import SymNode

MAX_TOKENS = 64


class CachedAttention(nn.Module):
    """Masks from positions, an out-of-place cache update, softmax attention, a quantized
    projection: the ops the model front ends leave in their graphs."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.proj = GGUFLinear.from_float(nn.Linear(64, 64, bias=True), "Q8_0")
        self.register_buffer("inv_freq", torch.rand(8, generator=generator))

    def forward(self, x, positions, cache):
        m = x.shape[1]
        q = x.view(1, m, 4, 16).transpose(1, 2)
        angles = positions.float()[:, None] * self.inv_freq[None, :]
        q = torch.cat((q[..., :8] * torch.cos(angles), q[..., 8:] * torch.sin(angles)), dim=-1)
        new_cache = cache.index_copy(1, positions, q[0, :1])
        keys = new_cache.repeat_interleave(4, dim=0).unsqueeze(0)
        scores = torch.matmul(q, keys.transpose(-1, -2)) * 0.25
        key_pos = torch.arange(cache.shape[1])
        visible = (key_pos[None, :] <= positions[:, None]) & (
            positions[:, None] - key_pos[None, :] < 16
        )
        scores = scores.masked_fill(~visible, float("-inf"))
        out = torch.matmul(torch.softmax(scores, dim=-1), keys)
        out = out.transpose(1, 2).reshape(1, m, 64)
        return torch.nn.functional.gelu(self.proj(out), approximate="tanh"), new_cache


def export_attention() -> GraphProgram:
    tokens = torch.export.Dim("tokens", min=1, max=MAX_TOKENS)
    inputs = (torch.randn(1, 3, 64), torch.arange(3), torch.zeros(1, MAX_TOKENS, 16))
    return GraphProgram.from_module(
        CachedAttention().eval(), inputs, dynamic_shapes=({1: tokens}, {0: tokens}, None)
    )


def test_exported_module_round_trips(tmp_path):
    gp = export_attention()
    path = tmp_path / "attention.ggufc"
    save_program(lower(gp), path)
    loaded = load_program(path)
    generator = torch.Generator().manual_seed(3)
    cache = torch.randn(1, MAX_TOKENS, 16, generator=generator)
    for m, start in ((1, 9), (5, 0), (33, 20)):
        inputs = [torch.randn(1, m, 64, generator=generator), torch.arange(start, start + m), cache]
        with torch.no_grad():
            expected = gp.graph_module(*inputs)
        actual = run_program(loaded, inputs)
        for a, e in zip(actual, expected):
            torch.testing.assert_close(a, e, rtol=0, atol=0)


# ---- size expressions ------------------------------------------------------------------------

SYMBOL = sympy.Symbol("s", integer=True, positive=True)
SYMBOL_RANGE = (1, 512)


def expressions():
    """Non-negative integer expressions over SYMBOL with the operators sizes use."""
    leaf = st.one_of(st.just(SYMBOL), st.integers(0, 40).map(sympy.Integer))
    positive = st.integers(1, 70).map(sympy.Integer)

    def extend(children):
        return st.one_of(
            st.tuples(children, children).map(lambda ab: ab[0] + ab[1]),
            st.tuples(children, children).map(lambda ab: ab[0] * ab[1]),
            st.tuples(children, positive).map(lambda ab: FloorDiv(ab[0], ab[1])),
            st.tuples(children, positive).map(lambda ab: Mod(ab[0], ab[1])),
            st.tuples(children, children).map(lambda ab: Min(ab[0], ab[1])),
            st.tuples(children, children).map(lambda ab: Max(ab[0], ab[1])),
            # a subtraction that stays >= 0
            st.tuples(children, st.integers(0, 30)).map(lambda ab: ab[0] + 30 - ab[1]),
        )

    return st.recursive(leaf, extend, max_leaves=6)


# the value of an expression's node from its arguments' values, by the node's class
NODE_VALUES = (
    (sympy.Add, sum),
    (sympy.Mul, math.prod),
    (sympy.Pow, lambda args: args[0] ** args[1]),
    (FloorDiv, lambda args: args[0] // args[1]),
    (Mod, lambda args: args[0] % args[1]),
    ((Min, sympy.Min), min),
    ((Max, sympy.Max), max),
)


def value_of(expr: sympy.Expr, value: int) -> int:
    """``expr`` at SYMBOL = ``value``, node by node in Python integers: the reference the
    lowering's size nodes must agree with.  (sympy's own ``subs`` is not one: a node its
    construction left unevaluated, such as Min(s, Max(2, 3)) // 2, stays symbolic after the
    substitution and cannot be turned into an int.)"""
    if expr == SYMBOL:
        return value
    if expr.is_Integer:
        return int(expr)
    args = [value_of(arg, value) for arg in expr.args]
    for kind, combine in NODE_VALUES:
        if isinstance(expr, kind):
            return combine(args)
    raise TypeError(f"no value for {type(expr).__name__} node {expr}")


def test_value_of_evaluates_unevaluated_nodes():
    unevaluated = FloorDiv(Min(SYMBOL, Max(2, 3, evaluate=False), evaluate=False), 2)
    assert value_of(unevaluated, 4) == 1
    assert value_of(Mod(SYMBOL * 3 + 7, 5), 6) == 0


@settings(max_examples=150, deadline=None)
@given(expr=expressions(), value=st.integers(*SYMBOL_RANGE))
def test_size_expressions_evaluate_like_sympy(expr, value):
    builder = ProgramBuilder()
    sizes = _Sizes(builder, {"s": SYMBOL_RANGE}, {})
    dim = sizes.expr(expr, "test")
    expected = value_of(expr, value)
    env = {sizes.symbols["s"]: value}
    for node in sizes.prologue:
        assert isinstance(node, SymNode)
        operands = [env[d.value] if d.is_symbolic else d.size for d in node.operands]
        result = _sym_eval(node.op, operands, "test")
        info = builder.values[node.output].info
        # the interpreter rejects a SymInt outside its declared range
        assert info.min <= result <= info.max, (node, result, info)
        env[node.output] = result
    actual = env[dim.value] if dim.is_symbolic else dim.size
    assert actual == expected
    # each distinct sub-expression is computed once
    keys = [(n.op, n.operands) for n in sizes.prologue]
    assert len(keys) == len(set(keys))
