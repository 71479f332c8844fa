"""Property: for random small programs (random op chains over a dynamic-row input, exported
with torch.export), the text round-trips and the parsed program computes the same thing."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ir_programs import outputs_equal, seq_dim, with_constants
from torch import nn

from compiler.ir.parser import parse_program
from compiler.ir.printer import print_program, structural_hash
from compiler.ir.program import GraphProgram

WIDTH = 8
# Each step: (op name, index of an earlier value, index of another earlier value, scalar)
OPS = (
    "relu",
    "tanh",
    "neg",
    "add",
    "mul",
    "sub",
    "scale",
    "linear",
    "softmax",
    "sum",
    "reshape",
    "half",
    "cat_slice",
    "cond",
    "where",
)


class _Chain(nn.Module):
    def __init__(self, steps) -> None:
        super().__init__()
        self.steps = steps
        self.proj = nn.Linear(WIDTH, WIDTH)
        self.register_buffer("offset", torch.linspace(-1, 1, WIDTH))

    def forward(self, x):
        values = [x]
        for op, first, second, scalar in self.steps:
            a, b = values[first % len(values)], values[second % len(values)]
            values.append(_apply(self, op, a, b, scalar))
        return tuple(values[-2:])


def _apply(module, op, a, b, scalar):
    if op in ("relu", "tanh", "neg"):
        return getattr(torch, op)(a)
    if op == "add":
        return a + b
    if op == "mul":
        return a * b
    if op == "sub":
        return a - module.offset
    if op == "scale":
        return a * scalar + int(scalar * 4)
    if op == "linear":
        return module.proj(a)
    if op == "softmax":
        return a.softmax(-1)
    if op == "sum":
        return a - a.sum(-1, keepdim=True)
    if op == "reshape":  # rows become 2*s0 and back
        return a.reshape(-1, WIDTH // 2).relu().reshape(-1, WIDTH)
    if op == "half":
        return a.to(torch.float16).float()
    if op == "cat_slice":  # rows 2*s0, sliced back to s0
        return torch.cat([a, b], dim=0)[: a.shape[0]]
    if op == "where":
        return torch.where(a > scalar, a, b)
    assert op == "cond"
    return torch.cond(a.shape[0] > 3, lambda t: t.cos(), lambda t: t * 2, (a,))


steps = st.lists(
    st.tuples(
        st.sampled_from(OPS),
        st.integers(0, 8),
        st.integers(0, 8),
        st.floats(-2, 2, allow_nan=False, width=32),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, rows=st.integers(2, 9))
def test_random_programs_round_trip_and_compute_the_same(steps, rows):
    module = _Chain(steps)
    x = torch.randn(5, WIDTH)
    exported = GraphProgram.from_module(module, (x,), dynamic_shapes=({0: seq_dim()},))
    text = print_program(exported)
    parsed = parse_program(text)
    assert print_program(parsed) == text
    assert structural_hash(parsed) == structural_hash(exported)
    inputs = exported.example_inputs({s: rows for s in exported.symbol_ranges})
    expected = module(*inputs)
    assert outputs_equal(exported(*inputs), expected)
    assert outputs_equal(with_constants(parsed, exported.constants())(*inputs), expected)
