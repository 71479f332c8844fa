"""Quantization policies: pattern matching, misaligned rows, and the Q4_K_M mix, which must
reproduce the formats of the published Gemma 3 270M Q4_K_M file from its names and shapes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from compiler import open_gguf
from compiler.errors import UnsupportedError
from compiler.modules import (
    GGUFEmbedding,
    GGUFLinear,
    QuantizationPolicy,
    as_policy,
    count_layers,
    q4_k_m_policy,
    quantize_module,
    use_more_bits,
)


def test_first_matching_rule_wins_and_none_keeps_float():
    policy = as_policy(
        {"re:blk\\.0\\..*": None, "blk.*.attn_v": "Q6_K", "blk.*": "Q4_K", "*embd*": "Q8_0"}
    )
    assert policy.match("blk.0.attn_v") is None
    assert policy.match("blk.3.attn_v") == "Q6_K"
    assert policy.match("blk.3.attn_q") == "Q4_K"
    assert policy.match("token_embd") == "Q8_0"
    assert policy.match("output") is None  # no rule: float
    assert policy.match("xblk.3.attn_q") is None  # globs match the whole name


def test_mapping_and_pairs_give_the_same_policy():
    rules = [("blk.*", "Q4_K"), ("*", None)]
    assert as_policy(dict(rules)) == as_policy(rules) == QuantizationPolicy(tuple(rules))


@pytest.mark.parametrize(
    ("rules", "misaligned", "message"),
    [
        ([("*", "Q4_X")], "error", r"quantization policy rule '\*': unknown format 'Q4_X'"),
        ([("re:blk.(", "Q4_K")], "error", r"pattern 're:blk\.\(' is not a valid regular"),
        ([("*", "Q4_K")], "round", r"misaligned='round'; expected one of error, fallback"),
    ],
)
def test_bad_policies_are_rejected(rules, misaligned, message):
    with pytest.raises(UnsupportedError, match=message):
        QuantizationPolicy(tuple(rules), misaligned=misaligned)


def test_preset_names_need_a_model():
    with pytest.raises(UnsupportedError, match=r"'Q4_K_M' needs the model"):
        as_policy("Q4_K_M")
    with pytest.raises(UnsupportedError, match=r"unknown policy preset 'Q3_K_S'"):
        quantize_module(nn.Linear(32, 32), "Q3_K_S")


@pytest.mark.parametrize(
    ("fmt", "row_weights", "misaligned", "expected"),
    [
        ("Q4_K", 512, "error", "Q4_K"),
        ("Q4_K", 640, "fallback", "Q5_0"),
        ("Q5_K", 640, "fallback", "Q8_0"),
        ("Q6_K", 640, "fallback", "Q8_0"),
        ("Q6_K", 648, "fallback", None),  # not even whole 32-weight blocks
        ("Q4_0", 48, "fallback", None),
        ("Q4_K", 640, "float", None),
    ],
)
def test_misaligned_rows(fmt, row_weights, misaligned, expected):
    policy = QuantizationPolicy((("*", fmt),), misaligned=misaligned)
    assert policy.resolve("blk.0.ffn_up", row_weights) == expected


def test_misaligned_error_names_the_module():
    policy = QuantizationPolicy((("*", "Q6_K"),))
    with pytest.raises(UnsupportedError, match=r"'blk\.2\.attn_k' has rows of 640 weights"):
        policy.resolve("blk.2.attn_k", 640)


GGUF_ROLES = {"v": "attn_v", "down": "ffn_down", "q": "attn_q", "qkv": "attn_qkv"}
HF_ROLES = {"v": "self_attn.v_proj", "down": "mlp.down_proj", "q": "self_attn.q_proj"}


@given(num_layers=st.integers(1, 96), data=st.data())
def test_q4_k_m_gives_more_bits_to_attn_v_and_ffn_down_in_chosen_layers(num_layers, data):
    layer = data.draw(st.integers(0, num_layers - 1))
    policy = q4_k_m_policy(num_layers)
    more_bits = "Q6_K" if use_more_bits(layer, num_layers) else "Q4_K"
    for prefix, roles in [(f"blk.{layer}.", GGUF_ROLES), (f"model.layers.{layer}.", HF_ROLES)]:
        assert policy.resolve(prefix + roles["v"], 256) == more_bits
        assert policy.resolve(prefix + roles["down"], 256) == more_bits
        assert policy.resolve(prefix + roles["q"], 256) == "Q4_K"
    assert policy.resolve(f"blk.{layer}.attn_qkv", 256) == "Q5_K"
    assert policy.resolve("output", 256) == policy.resolve("lm_head", 256) == "Q6_K"
    assert policy.resolve("model.embed_tokens", 256) == "Q4_K"
    assert q4_k_m_policy(num_layers, tied_embeddings=True).resolve("token_embd", 256) == "Q6_K"


def test_q4_k_m_reproduces_the_gemma_file(gemma_path):
    with open_gguf(gemma_path) as gguf:
        weights = {
            name.removesuffix(".weight"): tensor
            for name, tensor in gguf.tensors.items()
            if len(tensor.shape) == 2
        }
    policy = q4_k_m_policy(count_layers(weights), tied_embeddings="output" not in weights)

    chosen = {name: policy.resolve(name, tensor.shape[-1]) for name, tensor in weights.items()}

    assert chosen == {name: tensor.format for name, tensor in weights.items()}
    assert {"Q4_K", "Q5_0", "Q6_K", "Q8_0"} <= set(chosen.values())


def test_quantize_module_resolves_the_q4_k_m_preset_from_the_model():
    # K-quant rows need 256 inputs; few outputs keep the quantizer fast.
    hidden, outputs, vocab, num_layers = 256, 8, 8, 4

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = nn.ModuleDict(
                {"q_proj": nn.Linear(hidden, outputs), "v_proj": nn.Linear(hidden, outputs)}
            )
            self.mlp = nn.ModuleDict({"down_proj": nn.Linear(hidden, outputs)})

    class HFStyle(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Module()
            self.model.embed_tokens = nn.Embedding(vocab, hidden)
            self.model.layers = nn.ModuleList(Layer() for _ in range(num_layers))
            self.lm_head = nn.Linear(hidden, vocab, bias=False)
            self.lm_head.weight = self.model.embed_tokens.weight  # tied

    model = quantize_module(HFStyle(), "Q4_K_M")

    assert isinstance(model.model.embed_tokens, GGUFEmbedding)
    assert model.model.embed_tokens.fmt == model.lm_head.fmt == "Q6_K"  # tied: like output
    for index, layer in enumerate(model.model.layers):
        more_bits = "Q6_K" if use_more_bits(index, num_layers) else "Q4_K"
        assert all(isinstance(m, GGUFLinear) for m in layer.modules() if not m._modules)
        assert layer.self_attn["v_proj"].fmt == layer.mlp["down_proj"].fmt == more_bits
        assert layer.self_attn["q_proj"].fmt == "Q4_K"
    x = torch.randint(0, vocab, (3,))
    assert model.model.embed_tokens(x).shape == (3, hidden)


def test_count_layers():
    assert count_layers(["token_embd", "blk.0.attn_q", "blk.11.ffn_up", "output"]) == 12
    assert count_layers(["model.layers.3.mlp", "h.7.attn"]) == 8
    assert count_layers(["encoder", "decoder"]) == 0
