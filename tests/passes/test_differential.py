"""Differential check of every built-in pass: on random programs built from the ops the
cleanup passes touch, the program's outputs after the pass equal its outputs before, at
several values of the dynamic dim, and the result still verifies."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.ir.parser import parse_program
from passes import PassManager, default_pipeline
from passes.instrumentation.numerics import generate_inputs, sample_symbol_values
from passes.registry import BUILTIN_PASSES

# Each template turns value names into one op line producing f32[s0, 8].
UNARY_TEMPLATES = (
    "aten.exp({a})",
    "aten.neg({a})",
    "aten.mul.Tensor({a}, 1)",
    "aten.mul.Tensor({a}, 2.5)",
    "aten.add.Tensor({a}, 0)",
    "aten.add.Tensor({a}, -0.0)",
    "aten.sub.Tensor({a}, 0)",
    "aten.div.Tensor({a}, 1)",
    "aten.clone({a})",
    "aten.alias({a})",
    "aten.cat([{a}])",
    "aten.view({a}, [%n, 8])",
    "aten.slice.Tensor({a}, 0, 0, 9223372036854775807)",
    "aten.to.dtype({a}, torch.float32)",
)
BINARY_TEMPLATES = ("aten.add.Tensor({a}, {b})", "aten.mul.Tensor({a}, {b})")
# Multi-line templates: a chain whose end has the shape and dtype of its start.
CHAIN_TEMPLATES = (
    ("f32[8, s0] = aten.transpose.int({a}, 0, 1)", "f32[s0, 8] = aten.transpose.int({t}, 1, 0)"),
    ("f32[8, s0] = aten.permute({a}, [1, 0])", "f32[s0, 8] = aten.permute({t}, [1, 0])"),
    ("f32[s0, 1, 8] = aten.unsqueeze({a}, 1)", "f32[s0, 8] = aten.squeeze.dim({t}, 1)"),
    (
        "f64[s0, 8] = aten._to_copy({a}, dtype=torch.float64)",
        "f32[s0, 8] = aten._to_copy({t}, dtype=torch.float32)",
    ),
)

step = st.one_of(
    st.tuples(st.just("unary"), st.sampled_from(UNARY_TEMPLATES), st.integers(0, 99)),
    st.tuples(
        st.just("binary"), st.sampled_from(BINARY_TEMPLATES), st.integers(0, 99), st.integers(0, 99)
    ),
    st.tuples(st.just("chain"), st.sampled_from(CHAIN_TEMPLATES), st.integers(0, 99)),
    st.tuples(st.just("repeat"), st.integers(0, 99)),
)


def build_program_text(steps, outputs) -> str:
    lines = [
        "symbol s0 : [2, 64]",
        "",
        "graph @main(%x : f32[s0, 8], %y : f32[s0, 8]) {",
        "  %n : int(s0) = aten.sym_size.int(%x, 0)",
    ]
    values = ["%x", "%y"]
    defined: list[str] = []  # the op text of each defined value, for "repeat"
    for i, item in enumerate(steps):
        name = f"%v{i}"
        kind = item[0]
        if kind == "unary":
            op = item[1].format(a=values[item[2] % len(values)])
            lines.append(f"  {name} : f32[s0, 8] = {op}")
            defined.append(op)
        elif kind == "binary":
            op = item[1].format(a=values[item[2] % len(values)], b=values[item[3] % len(values)])
            lines.append(f"  {name} : f32[s0, 8] = {op}")
            defined.append(op)
        elif kind == "chain":
            first, second = item[1]
            lines.append(f"  {name}t : {first.format(a=values[item[2] % len(values)])}")
            lines.append(f"  {name} : {second.format(t=name + 't')}")
        else:  # repeat an earlier op, for cse
            if not defined:
                continue
            lines.append(f"  {name} : f32[s0, 8] = {defined[item[1] % len(defined)]}")
        values.append(name)
    chosen = sorted({values[o % len(values)] for o in outputs})
    lines.append(f"  return ({', '.join(chosen)},)")
    lines.append("}")
    return "\n".join(lines) + "\n"


def outputs_at_samples(program):
    results = []
    for seed, sample in enumerate(sample_symbol_values(program.symbol_ranges)):
        inputs = generate_inputs(program, sample, seed)
        results.append([t.clone() for t in program(*inputs)])
    return results


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(step, min_size=1, max_size=12), st.lists(st.integers(0, 99), min_size=1, max_size=3)
)
def test_every_pass_keeps_outputs(steps, outputs):
    text = build_program_text(steps, outputs)
    pipelines = [*BUILTIN_PASSES, default_pipeline().to_text()]
    for pipeline in pipelines:
        program = parse_program(text)
        before = outputs_at_samples(program)
        PassManager(pipeline, verify=True).run(program)
        after = outputs_at_samples(program)
        for b_sample, a_sample in zip(before, after):
            for b, a in zip(b_sample, a_sample, strict=True):
                torch.testing.assert_close(
                    a,
                    b,
                    rtol=0,
                    atol=0,
                    equal_nan=True,
                    msg=lambda m, p=pipeline: f"{p} on\n{text}\n{m}",
                )


def test_canonicalize_changes_random_programs():
    """Guard against a differential test that passes because nothing fires."""
    text = build_program_text(
        [
            ("chain", CHAIN_TEMPLATES[0], 0),
            ("unary", "aten.mul.Tensor({a}, 1)", 2),
            ("unary", "aten.exp({a})", 3),
        ],
        [4],
    )
    program = parse_program(text)
    PassManager("canonicalize").run(program)
    assert [n.target.__name__ for n in program.graph.nodes if n.op == "call_function"] == [
        "exp.default"
    ]
