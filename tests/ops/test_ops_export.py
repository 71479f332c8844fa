"""The ggufc ops under tracing: fake (shape-only) kernels propagate symbolic dims, and
`torch.export` with a dynamic sequence dim keeps each op as exactly one node, also after
`run_decompositions()`."""

from __future__ import annotations

import importlib
from collections import Counter

import pytest
import torch
from ggufc_ops_reference import ROWS, row_weights
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.export import Dim, export
from torch.fx.experimental.symbolic_shapes import (
    DimDynamic,
    ShapeEnv,
    StatelessSymbolicContext,
)

import compiler.ops
from compiler import formats

GGUFC_TARGETS = {
    "dequantize": torch.ops.ggufc.dequantize.default,
    "linear": torch.ops.ggufc.linear.default,
    "embedding": torch.ops.ggufc.embedding.default,
}
BATCH, SEQ, OTHER_SEQ = 2, 3, 7


def _fake_with_dynamic_dims(mode: FakeTensorMode, tensor: torch.Tensor, dynamic: set[int]):
    sizes = [DimDynamic.DYNAMIC if d in dynamic else DimDynamic.STATIC for d in range(tensor.dim())]
    return mode.from_tensor(tensor, symbolic_context=StatelessSymbolicContext(dynamic_sizes=sizes))


@pytest.mark.parametrize("fmt", ["Q4_0", "Q6_K"])
def test_fake_kernels_propagate_symbolic_dims(fmt, generator):
    k = row_weights(fmt)
    blocks = formats.random_blocks(fmt, ROWS, k, generator=generator)
    real_x = torch.randn(BATCH, SEQ, k, dtype=torch.bfloat16)
    real_ids = torch.zeros(BATCH, SEQ, dtype=torch.int64)
    mode = FakeTensorMode(shape_env=ShapeEnv(), static_shapes=False)
    x = _fake_with_dynamic_dims(mode, real_x, {0, 1})
    ids = _fake_with_dynamic_dims(mode, real_ids, {0, 1})
    fake_blocks = mode.from_tensor(blocks)
    with mode:
        batch, seq = x.shape[0], x.shape[1]
        assert isinstance(seq, torch.SymInt)

        y = torch.ops.ggufc.linear(x, fake_blocks, None, fmt, ROWS, k)
        e = torch.ops.ggufc.embedding(fake_blocks, ids, fmt, ROWS, k, torch.float16)
        w = torch.ops.ggufc.dequantize(fake_blocks, fmt, ROWS, k, torch.float32)

    assert str(tuple(y.shape)) == str((batch, seq, ROWS)) and y.dtype == torch.bfloat16
    assert str(tuple(e.shape)) == str((ids.shape[0], ids.shape[1], k)) and e.dtype == torch.float16
    assert tuple(w.shape) == (ROWS, k) and w.dtype == torch.float32


class _AllOps(torch.nn.Module):
    def __init__(self, fmt: str, blocks: torch.Tensor, bias: torch.Tensor, kernel: str):
        super().__init__()
        self.fmt, self.kernel = fmt, kernel
        self.n, self.k = blocks.shape[0], row_weights(fmt)
        self.register_buffer("blocks", blocks)
        self.register_buffer("bias", bias)

    def forward(self, x, ids):
        y = torch.ops.ggufc.linear(
            x, self.blocks, self.bias, self.fmt, self.n, self.k, kernel=self.kernel
        )
        e = torch.ops.ggufc.embedding(self.blocks, ids, self.fmt, self.n, self.k, x.dtype)
        w = torch.ops.ggufc.dequantize(self.blocks, self.fmt, self.n, self.k, x.dtype)
        return y, e, w


def _call_targets(graph: torch.fx.Graph) -> Counter:
    return Counter(node.target for node in graph.nodes if node.op == "call_function")


def _export_all_ops(fmt, kernel, generator):
    k = row_weights(fmt)
    blocks = formats.random_blocks(fmt, ROWS, k, generator=generator)
    model = _AllOps(fmt, blocks, torch.randn(ROWS, generator=generator), kernel)
    x = torch.randn(BATCH, SEQ, k, generator=generator)
    ids = torch.randint(0, ROWS, (BATCH, SEQ), generator=generator)
    seq = Dim("seq")
    program = export(model, (x, ids), dynamic_shapes=({1: seq}, {1: seq}))
    return model, program


@pytest.mark.parametrize("kernel", ["auto", "matvec_batched"])
@pytest.mark.parametrize("fmt", ["Q8_0", "Q4_K"])
def test_export_keeps_each_op_as_one_node(fmt, kernel, generator):
    model, program = _export_all_ops(fmt, kernel, generator)

    for stage, graph_program in [("export", program), ("decomposed", program.run_decompositions())]:
        targets = _call_targets(graph_program.graph)
        assert {name: targets[t] for name, t in GGUFC_TARGETS.items()} == {
            "dequantize": 1,
            "linear": 1,
            "embedding": 1,
        }, f"{stage}: {targets}"
        assert set(targets) == set(GGUFC_TARGETS.values()), f"{stage}: extra ops {targets}"
        (linear_node,) = [
            n for n in graph_program.graph.nodes if n.target == GGUFC_TARGETS["linear"]
        ]
        out_shape = linear_node.meta["val"].shape
        assert isinstance(out_shape[1], torch.SymInt) and out_shape[2] == ROWS, stage
        recorded_kernel = linear_node.kwargs.get("kernel", "auto")
        if len(linear_node.args) > 6:
            recorded_kernel = linear_node.args[6]
        assert recorded_kernel == kernel, stage

        # The exported graph runs with another sequence length and agrees with eager.
        x = torch.randn(BATCH, OTHER_SEQ, model.k, generator=generator)
        ids = torch.randint(0, ROWS, (BATCH, OTHER_SEQ), generator=generator)
        for got, want in zip(graph_program.module()(x, ids), model(x, ids)):
            assert torch.equal(got, want), stage


def test_export_reports_bad_shapes_as_ggufc_errors(generator):
    fmt = "Q5_0"
    k = row_weights(fmt)
    model = _AllOps(fmt, formats.random_blocks(fmt, ROWS, k, generator=generator), None, "auto")
    wrong_x = torch.randn(BATCH, SEQ, k + formats.FORMATS[fmt].block_weights)
    ids = torch.zeros(BATCH, SEQ, dtype=torch.int64)

    with pytest.raises(compiler.ops.FormatError, match=r"ggufc\.linear\(Q5_0\): x must be"):
        export(model, (wrong_x, ids), dynamic_shapes=({1: Dim("seq")}, {1: Dim("seq")}))


def test_reimporting_the_op_library_is_harmless(generator):
    before = torch.ops.ggufc.linear.default
    importlib.reload(compiler.ops)
    assert torch.ops.ggufc.linear.default is before
    fmt, k = "Q8_0", row_weights("Q8_0")
    blocks = formats.random_blocks(fmt, ROWS, k, generator=generator)
    out = torch.ops.ggufc.dequantize(blocks, fmt, ROWS, k, torch.float32)
    assert out.shape == (ROWS, k)
