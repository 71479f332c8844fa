"""GGUFLinear / GGUFEmbedding, `quantize_module`, and what `torch.export` makes of them:
``ggufc.dequantize -> aten.linear / aten.embedding``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from ggufc_ops_reference import (
    ALL_FORMATS,
    FLOAT_DTYPES,
    ROWS,
    assert_within,
    linear_error_bound,
    reference_linear,
    reference_weight,
    row_weights,
)
from torch import nn
from torch.export import Dim, export

from compiler import formats
from compiler.errors import FormatError, UnsupportedError
from compiler.modules import GGUFEmbedding, GGUFLinear, quantize_module

DEQUANTIZE = torch.ops.ggufc.dequantize.default
# Relative RMS error of quantize -> dequantize on Gaussian weights that each format must
# beat; loose enough for any sound quantizer, far below what a transposed or misplaced row
# would give (about 1.4).
MAX_RELATIVE_RMS_ERROR = {
    "Q8_0": 0.01,
    "Q6_K": 0.03,
    "Q5_0": 0.06,
    "Q5_K": 0.06,
    "Q4_0": 0.12,
    "Q4_K": 0.12,
}


def _relative_rms(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).pow(2).mean().sqrt() / expected.pow(2).mean().sqrt())


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_gguf_linear_forward_matches_reference(fmt, dtype, generator):
    k = row_weights(fmt)
    blocks = formats.random_blocks(fmt, ROWS, k, generator=generator)
    bias = torch.randn(ROWS, generator=generator).to(dtype)
    module = GGUFLinear(blocks, fmt, k, ROWS, bias=bias)
    x = torch.randn(2, 3, k, generator=generator).to(dtype)

    out = module(x)

    assert out.shape == (2, 3, ROWS) and out.dtype == dtype
    reference, magnitude = reference_linear(x, blocks, bias, fmt)
    # The weight is rounded to the activation dtype before the product: one more rounding.
    weight_rounding = torch.finfo(dtype).eps * magnitude
    bound = linear_error_bound(magnitude, reference, k, dtype) + weight_rounding
    if dtype != torch.float32:  # F.linear in half precision may round partial sums too
        bound = bound + k * torch.finfo(dtype).eps * magnitude
    assert_within(out, reference, bound)


def test_gguf_linear_compute_dtype_casts_in_and_out(generator):
    fmt, k = "Q6_K", row_weights("Q6_K")
    blocks = formats.random_blocks(fmt, ROWS, k, generator=generator)
    module = GGUFLinear(blocks, fmt, k, ROWS, compute_dtype=torch.float32)
    x = torch.randn(4, k, generator=generator).to(torch.bfloat16)

    out = module(x)

    assert out.dtype == torch.bfloat16
    weight = formats.dequantize(blocks, fmt)
    assert torch.equal(out, F.linear(x.float(), weight).to(torch.bfloat16))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_gguf_embedding_forward_matches_reference(fmt, dtype, generator):
    k = row_weights(fmt)
    blocks = formats.random_blocks(fmt, ROWS, k, generator=generator)
    module = GGUFEmbedding(blocks, fmt, ROWS, k, dtype=dtype)
    indices = torch.randint(0, ROWS, (2, 3), generator=generator)

    out = module(indices)

    assert out.shape == (2, 3, k) and out.dtype == dtype
    reference = reference_weight(blocks, fmt)[indices]
    assert_within(out, reference, torch.finfo(dtype).eps * reference.abs())


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_from_float_quantizes_each_row_of_the_weight(fmt, generator):
    k = row_weights(fmt)
    linear = nn.Linear(k, 2 * ROWS)
    embedding = nn.Embedding(ROWS, k)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator))
        embedding.weight.copy_(torch.randn(embedding.weight.shape, generator=generator))

    quantized_linear = GGUFLinear.from_float(linear, fmt)
    quantized_embedding = GGUFEmbedding.from_float(embedding, fmt)

    assert quantized_linear.blocks.shape == (2 * ROWS, formats.row_bytes(fmt, k))
    assert torch.equal(quantized_linear.bias, linear.bias.detach())
    linear_weight = formats.dequantize(quantized_linear.blocks, fmt)
    embedding_weight = formats.dequantize(quantized_embedding.blocks, fmt)
    assert _relative_rms(linear_weight, linear.weight.detach()) < MAX_RELATIVE_RMS_ERROR[fmt]
    assert _relative_rms(embedding_weight, embedding.weight.detach()) < MAX_RELATIVE_RMS_ERROR[fmt]
    x = torch.randn(3, k, generator=generator)
    assert torch.equal(quantized_linear(x), F.linear(x, linear_weight, linear.bias))
    indices = torch.tensor([ROWS - 1, 0])
    assert torch.equal(quantized_embedding(indices), embedding_weight[indices])


def test_constructors_reject_blocks_that_do_not_fit(generator):
    blocks = formats.random_blocks("Q8_0", ROWS, 64, generator=generator)
    with pytest.raises(FormatError, match=r"GGUFLinear\(Q8_0, 96 -> 5\): blocks must be uint8"):
        GGUFLinear(blocks, "Q8_0", 96, ROWS)
    with pytest.raises(UnsupportedError, match=r"GGUFLinear\(Q8_0, 64 -> 5\): bias must be \[5\]"):
        GGUFLinear(blocks, "Q8_0", 64, ROWS, bias=torch.zeros(4))
    with pytest.raises(UnsupportedError, match=r"GGUFEmbedding\(Q9_0, 5 x 64\): unknown format"):
        GGUFEmbedding(blocks, "Q9_0", ROWS, 64)
    with pytest.raises(UnsupportedError, match=r"output dtype float64 is not supported"):
        GGUFEmbedding(blocks, "Q8_0", ROWS, 64, dtype=torch.float64)


def test_from_float_rejects_misaligned_rows_and_max_norm():
    with pytest.raises(UnsupportedError, match=r"from_float\(proj, Q4_K\): in_features=96 is not"):
        GGUFLinear.from_float(nn.Linear(96, 8), "Q4_K", name="proj")
    with pytest.raises(UnsupportedError, match=r"max_norm=1.0 renormalizes rows"):
        GGUFEmbedding.from_float(nn.Embedding(8, 32, max_norm=1.0), "Q8_0")


# ---- quantize_module + export ---------------------------------------------------------------

HIDDEN, FFN, VOCAB = 64, 256, 40


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn_v = nn.Linear(HIDDEN, HIDDEN)
        self.ffn_up = nn.Linear(HIDDEN, FFN, bias=False)
        self.ffn_down = nn.Linear(FFN, HIDDEN, bias=False)

    def forward(self, h):
        h = h + self.attn_v(h)
        return h + self.ffn_down(F.gelu(self.ffn_up(h)))


class _TinyLM(nn.Module):
    def __init__(self, num_layers: int = 2):
        super().__init__()
        self.token_embd = nn.Embedding(VOCAB, HIDDEN)
        self.blk = nn.ModuleList(_Block() for _ in range(num_layers))
        self.output = nn.Linear(HIDDEN, VOCAB, bias=False)

    def forward(self, tokens):
        h = self.token_embd(tokens)
        for block in self.blk:
            h = block(h)
        return self.output(h)


def _randomize(model: nn.Module, generator: torch.Generator) -> nn.Module:
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


def test_quantize_module_swaps_by_policy():
    model = quantize_module(
        _TinyLM(), {"blk.*.ffn_down": "Q6_K", "blk.1.*": None, "re:blk\\.\\d+\\.attn_v": "Q5_0"}
    )

    assert isinstance(model.blk[0].ffn_down, GGUFLinear) and model.blk[0].ffn_down.fmt == "Q6_K"
    assert isinstance(model.blk[1].ffn_down, GGUFLinear) and model.blk[1].ffn_down.fmt == "Q6_K"
    assert isinstance(model.blk[0].attn_v, GGUFLinear) and model.blk[0].attn_v.fmt == "Q5_0"
    assert type(model.blk[1].attn_v) is nn.Linear  # "blk.1.*" -> None came first
    assert type(model.blk[0].ffn_up) is nn.Linear  # no rule matches
    assert type(model.token_embd) is nn.Embedding and type(model.output) is nn.Linear


def test_quantize_module_replaces_shared_modules_and_a_root_linear():
    shared = nn.Linear(32, 32)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    quantize_module(model, {"*": "Q8_0"})
    assert isinstance(model[0], GGUFLinear) and model[0] is model[2]

    root = quantize_module(nn.Linear(32, 4), [("*", "Q4_0")])
    assert isinstance(root, GGUFLinear) and root.fmt == "Q4_0"


def test_quantize_module_leaves_linear_subclasses_alone():
    class Custom(nn.Linear):
        pass

    model = nn.Sequential(Custom(32, 32), nn.Linear(32, 32))
    quantize_module(model, {"*": "Q8_0"})
    assert type(model[0]) is Custom and isinstance(model[1], GGUFLinear)


def test_quantize_module_names_a_misaligned_module():
    with pytest.raises(
        UnsupportedError,
        match=r"quantize_module: 'blk\.0\.ffn_up' has rows of 64 weights, not a multiple of "
        r"the Q4_K block size 256",
    ):
        quantize_module(_TinyLM(), {"blk.0.ffn_up": "Q4_K"})


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_export_of_quantized_model_shows_dequantize_then_aten_op(dtype, generator):
    model = _randomize(_TinyLM(), generator)
    quantize_module(model, {"token_embd": "Q8_0", "*.ffn_down": "Q4_0", "*": "Q5_0"})
    for module in model.modules():
        if isinstance(module, GGUFEmbedding):
            module.dtype = dtype
    quantized = [m for m in model.modules() if isinstance(m, (GGUFLinear, GGUFEmbedding))]
    assert len(quantized) == 8
    tokens = torch.randint(0, VOCAB, (2, 5), generator=generator)

    program = export(model, (tokens,), dynamic_shapes=({1: Dim("seq")},))

    dequantize_nodes = [n for n in program.graph.nodes if n.target == DEQUANTIZE]
    assert len(dequantize_nodes) == len(quantized)
    consumers = []
    for node in dequantize_nodes:
        (user,) = node.users
        consumers.append(user.target)
        weight_position = 0 if user.target == torch.ops.aten.embedding.default else 1
        assert user.args[weight_position] is node
        assert node.args[4] == dtype
    assert consumers.count(torch.ops.aten.embedding.default) == 1
    assert consumers.count(torch.ops.aten.linear.default) == len(quantized) - 1

    decomposed = program.run_decompositions()
    assert sum(n.target == DEQUANTIZE for n in decomposed.graph.nodes) == len(quantized)

    longer = torch.randint(0, VOCAB, (2, 9), generator=generator)
    assert torch.equal(program.module()(longer), model(longer))
    assert torch.equal(decomposed.module()(longer), model(longer))
