"""Differential check of `fuse-rms-norm`: on spelled-out RMSNorms of random rank, width, eps,
operand order, with or without a weight, with or without a residual added after and a
weighted norm of that sum, the outputs after the pass equal those before to float32
rounding, and every norm was fused (so the comparison is of the fused op)."""

from __future__ import annotations

import operator

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_differential import outputs_at_samples

from compiler.ir.parser import parse_program
from passes import PassManager

RTOL, ATOL = 1e-5, 1e-6


def norm_program(
    lead: list[int],
    width: int,
    eps: float,
    weighted: bool,
    swap: bool,
    dim: int,
    residual: bool,
    next_norm: bool = False,
):
    shape = ", ".join(str(d) for d in ["s0", *lead, width])
    keep = ", ".join(str(d) for d in ["s0", *lead, 1])
    last = dim if dim < 0 else len(lead) + 1
    mean_add = f"aten.add.Tensor({eps!r}, %m)" if swap else f"aten.add.Tensor(%m, {eps!r})"
    scaled = "aten.mul.Tensor(%r, %x)" if swap else "aten.mul.Tensor(%x, %r)"
    lines = [
        "symbol s0 : [1, 16]",
        f"const @w : f32[{width}]",
        "",
        f"graph @main(%x : f32[{shape}], %res : f32[{shape}]) {{",
        f"  %p : f32[{shape}] = aten.pow.Tensor_Scalar(%x, 2)",
        f"  %m : f32[{keep}] = aten.mean.dim(%p, [{last}], True)",
        f"  %a : f32[{keep}] = {mean_add}",
        f"  %r : f32[{keep}] = aten.rsqrt(%a)",
        f"  %n : f32[{shape}] = {scaled}",
    ]
    if weighted:
        weight_mul = "aten.mul.Tensor(@w, %n)" if swap else "aten.mul.Tensor(%n, @w)"
        lines.append(f"  %o : f32[{shape}] = {weight_mul}")
    out = "%o" if weighted else "%n"
    if residual:
        added = f"aten.add.Tensor(%res, {out})" if swap else f"aten.add.Tensor({out}, %res)"
        lines.append(f"  %s : f32[{shape}] = {added}")
        out = "%s"
    if next_norm:
        lines.append(f"  %y : f32[{shape}] = aten.rms_norm(%s, [{width}], @w, {eps!r})")
        out = "%s, %y"
    lines += [f"  return ({out},)", "}"]
    return "\n".join(lines) + "\n"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lead=st.lists(st.integers(1, 3), max_size=2),
    width=st.integers(1, 300),
    eps=st.sampled_from([1e-6, 1e-5, 0.5]),
    weighted=st.booleans(),
    swap=st.booleans(),
    dim=st.sampled_from([-1, 0]),
    residual=st.booleans(),
    next_norm=st.booleans(),
)
def test_fused_norm_keeps_outputs(lead, width, eps, weighted, swap, dim, residual, next_norm):
    next_norm = next_norm and residual
    text = norm_program(lead, width, eps, weighted, swap, dim, residual, next_norm)
    program = parse_program(text)
    before = outputs_at_samples(program)
    PassManager("fuse-rms-norm", verify=True).run(program)
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    ggufc, aten = torch.ops.ggufc, torch.ops.aten
    if next_norm and weighted:
        expected = [ggufc.rms_norm_add_norm.default, operator.getitem, operator.getitem]
    elif next_norm:  # the sum's own norm has no weight: no rms_norm_add_norm
        expected = [ggufc.rms_norm_add.default, aten.rms_norm.default]
    else:
        expected = [(ggufc.rms_norm_add if residual else aten.rms_norm).default]
    assert targets == expected, text
    for b_sample, a_sample in zip(before, outputs_at_samples(program), strict=True):
        for b, a in zip(b_sample, a_sample, strict=True):
            torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL, msg=lambda m: f"{text}\n{m}")
