"""fuse-gguf on programs exported from torch modules, as exported and after
`run_decompositions()`: every GGUF consumer form fused, the tied embedding / lm_head blob
read by both fused ops, outputs unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gguf_pass_helpers import count_targets, quantized_embedding, quantized_linear, run_program
from torch import nn

from compiler import ops
from compiler.errors import PassError
from compiler.ir.program import GraphProgram
from passes import PassManager, parse_pipeline
from passes.fuse_gguf import ALL_FORMATS, FuseGguf

VOCAB, HIDDEN, FFN = 64, 256, 512
MAX_TOKENS = 40
# Fused kernels sum in another order than aten's; outputs are O(10).
ATOL, RTOL = 1e-4, 1e-4
# bf16 keeps 8 bits of mantissa: a few roundings over five products.
BF16_RELATIVE_ERROR = 2e-2


class TinyDecoder(nn.Module):
    """Embedding, linears of rank 2, 3 and 4 with and without bias, a tied lm_head."""

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype
        self.embed = quantized_embedding("Q8_0", VOCAB, HIDDEN, seed=1)
        self.up = quantized_linear("Q4_K", HIDDEN, FFN, bias=True, dtype=dtype, seed=2)
        self.down = quantized_linear("Q6_K", FFN, HIDDEN, seed=3)
        self.mix = quantized_linear("Q5_0", HIDDEN, HIDDEN, bias=True, dtype=dtype, seed=4)
        self.gate = quantized_linear("Q4_0", HIDDEN, HIDDEN, seed=5)
        self.proj = quantized_linear("Q5_K", HIDDEN, HIDDEN, seed=6)

    def forward(self, tokens):
        h = self.embed(tokens).to(self.dtype)  # [1, M, H]
        h = self.down(F.gelu(self.up(h)))  # 3-D, bias / no bias
        flat = self.mix(h[0])  # 2-D with bias
        four = self.gate(flat.view(1, 1, -1, HIDDEN))  # 4-D
        # x @ W^T spelled with matmul (aten.matmul in the export)
        proj_weight = torch.ops.ggufc.dequantize(
            self.proj.blocks, "Q5_K", HIDDEN, HIDDEN, self.dtype
        )
        mixed = torch.matmul(four.view(1, -1, HIDDEN), proj_weight.t())
        tied = torch.ops.ggufc.dequantize(self.embed.blocks, "Q8_0", VOCAB, HIDDEN, self.dtype)
        return F.linear(mixed, tied)  # lm_head tied to the embedding


def export(dtype: torch.dtype, decompose: bool) -> GraphProgram:
    tokens = torch.zeros(1, 2, dtype=torch.long)
    m = torch.export.Dim("m", min=1, max=MAX_TOKENS)
    ep = torch.export.export(TinyDecoder(dtype), (tokens,), dynamic_shapes=({1: m},))
    if decompose:
        ep = ep.run_decompositions()
    return GraphProgram.from_exported(ep)


@pytest.mark.parametrize("decompose", [False, True], ids=["exported", "decomposed"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_every_consumer_is_fused_and_outputs_match(decompose, dtype):
    program = export(dtype, decompose)
    before = program.copy()
    assert count_targets(program.graph, ops.dequantize) == 7
    PassManager("fuse-gguf{require-fused=true}", verify=True).run(program)

    graph = program.graph
    assert count_targets(graph, ops.dequantize) == 0
    assert count_targets(graph, ops.linear) == 6
    assert count_targets(graph, ops.embedding) == 1
    assert not any(
        n.target
        in (
            torch.ops.aten.mm.default,
            torch.ops.aten.addmm.default,
            torch.ops.aten.linear.default,
            torch.ops.aten.matmul.default,
        )
        for n in graph.nodes
    ), "an unfused product is left"
    # The tied lm_head and the embedding read the one blob; it is stored once.
    embedding = next(n for n in graph.nodes if n.target is ops.embedding)
    blob = embedding.args[0].target
    lm_head_blobs = [n.args[1].target for n in graph.nodes if n.target is ops.linear]
    assert lm_head_blobs.count(blob) == 1
    assert list(program.constant_names()).count(blob) == 1
    for node in graph.nodes:
        if node.target is ops.linear:
            assert node.meta["val"].dtype == node.args[0].meta["val"].dtype == dtype

    for tokens_count in (1, 5, MAX_TOKENS):
        tokens = torch.randint(
            0, VOCAB, (1, tokens_count), generator=torch.Generator().manual_seed(tokens_count)
        )
        (expected,) = run_program(before, tokens)
        (actual,) = run_program(program, tokens)
        assert actual.dtype == expected.dtype == dtype
        if dtype == torch.float32:
            torch.testing.assert_close(actual, expected, atol=ATOL, rtol=RTOL)
        else:
            # The fused op keeps the weight in float32 where the unfused graph rounds it to
            # bf16 first: compare as a whole, at bf16's precision.
            error = (actual.double() - expected.double()).norm() / expected.double().norm()
            assert error < BF16_RELATIVE_ERROR


def test_formats_option_limits_fusion_and_require_fused():
    """Dequantizes of other formats are out of the pass's scope: left alone, and no error
    even with require-fused (the `.ir` tests cover a leftover of a selected format)."""
    program = export(torch.float32, decompose=True)
    PassManager("fuse-gguf{formats=Q6_K,Q8_0,require-fused=true}", verify=True).run(program)
    left = sorted(n.args[1] for n in program.graph.nodes if n.target is ops.dequantize)
    assert left == sorted(["Q4_K", "Q5_0", "Q4_0", "Q5_K"])
    assert count_targets(program.graph, ops.embedding) == 1
    assert count_targets(program.graph, ops.linear) == 2


def test_unknown_format_is_an_error():
    with pytest.raises(PassError, match="unknown format.*Q4_1"):
        FuseGguf(formats=("Q4_1",))


def test_pipeline_text_round_trip():
    assert str(FuseGguf()) == "fuse-gguf"
    assert FuseGguf().formats == ALL_FORMATS == ("Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K")
    text = "fuse-gguf{formats=Q6_K,Q4_K,require-fused=true}"
    (pass_,) = parse_pipeline(text).passes
    assert pass_ == FuseGguf(formats=("Q6_K", "Q4_K"), require_fused=True)
    assert parse_pipeline(text).to_text() == text
