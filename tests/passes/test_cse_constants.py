"""`cse` merges constants by contents: equal small tensors become one `get_attr`, so what is
computed from them merges too; tensors that differ in any bit, dtype or shape stay apart."""

from __future__ import annotations

import io

import torch
from torch import nn

from compiler.ir.program import GraphProgram
from passes import PassManager


class Tables(nn.Module):
    """Four cos tables from buffers: two equal, one -0.0 where the others hold 0.0, one in
    another dtype (like a front end's per-layer rotary `inv_freq`)."""

    def __init__(self):
        super().__init__()
        base = torch.tensor([0.0, 0.5, 1.0, 2.0])
        self.register_buffer("first", base.clone())
        self.register_buffer("equal", base.clone())
        self.register_buffer("negative_zero", torch.tensor([-0.0, 0.5, 1.0, 2.0]))
        self.register_buffer("wide", base.double())

    def forward(self, x):
        return (
            torch.cos(x * self.first),
            torch.cos(x * self.equal),
            torch.cos(x * self.negative_zero),
            torch.cos(x.double() * self.wide),
        )


def _targets(program, op):
    return [n for n in program.graph.nodes if n.op == op]


def test_equal_constants_merge_and_their_users_with_them():
    module = Tables()
    x = torch.randn(3, 4)
    program = GraphProgram.from_module(module, (x,))
    assert len(_targets(program, "get_attr")) == 4
    before = program(x)
    manager = PassManager("cse,dce", pass_statistics=True, stream=io.StringIO())
    manager.run(program)
    after = program(x)
    constants = [n.target for n in _targets(program, "get_attr")]
    assert len(constants) == 3, constants
    cosines = [
        n for n in _targets(program, "call_function") if n.target is torch.ops.aten.cos.default
    ]
    assert len(cosines) == 3
    outputs = next(n for n in program.graph.nodes if n.op == "output").args[0]
    assert outputs[0] is outputs[1] and outputs[2] is not outputs[0]
    for b, a in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert "merged-constants 1" in manager.statistics.report()
