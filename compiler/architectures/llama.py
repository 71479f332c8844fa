"""Llama-family decoders (GGUF architectures `llama` and `qwen2`) with packed GGUF weights.

Per layer:  h = x + attn(attn_norm(x));  x = h + down(silu(gate(ffn_norm(h))) * up(ffn_norm(h))).
Grouped-query attention with rotary embedding, scale head_dim^-0.5.  `llama` GGUF files
store q/k rows permuted for interleaved-pair ("NORM") rotary; `qwen2` uses the halves ("NEOX")
layout and adds q/k/v biases.  A missing `output.weight` means the output is tied to the
embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from compiler.architectures.layers import (
    RMSNorm,
    RotaryEmbedding,
    cached_attention,
    embedding_from_gguf,
    embedding_weight,
    float_tensor,
    linear_from_gguf,
    silu_gated,
    split_heads,
)
from compiler.architectures.metadata import MetadataReader

# Defaults of the reference implementation for keys older files leave out.
DEFAULT_ROPE_BASE = 10_000.0

# architecture -> (rotary pairs interleaved, q/k/v carry biases)
VARIANTS: dict[str, tuple[bool, bool]] = {
    "llama": (True, False),
    "qwen2": (False, True),
}


@dataclass(frozen=True)
class LlamaConfig:
    architecture: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    ffn_size: int
    rms_eps: float
    rope_base: float
    rope_scale: float
    context_length: int

    @classmethod
    def from_gguf(cls, gguf_file, architecture: str) -> LlamaConfig:
        meta = MetadataReader(gguf_file, architecture)
        hidden = meta.int("embedding_length")
        heads = meta.int("attention.head_count")
        return cls(
            architecture=architecture,
            vocab_size=gguf_file.tensors["token_embd.weight"].shape[0],
            hidden_size=hidden,
            num_layers=meta.int("block_count"),
            num_heads=heads,
            num_kv_heads=meta.int("attention.head_count_kv", default=heads),
            head_dim=meta.int("attention.key_length", default=hidden // heads),
            ffn_size=meta.int("feed_forward_length"),
            rms_eps=meta.float("attention.layer_norm_rms_epsilon"),
            rope_base=meta.float("rope.freq_base", default=DEFAULT_ROPE_BASE),
            rope_scale=meta.float("rope.scaling.factor", default=1.0),
            context_length=meta.int("context_length"),
        )


class LlamaLayer(nn.Module):
    def __init__(self, config: LlamaConfig, tensors, prefix: str):
        super().__init__()
        self.config = config
        interleaved, has_bias = VARIANTS[config.architecture]

        def bias(name):
            key = f"{prefix}.{name}.bias"
            return float_tensor(tensors[key]) if has_bias and key in tensors else None

        eps = config.rms_eps
        self.attn_norm = RMSNorm(float_tensor(tensors[f"{prefix}.attn_norm.weight"]), eps)
        self.attn_q = linear_from_gguf(tensors[f"{prefix}.attn_q.weight"], bias("attn_q"))
        self.attn_k = linear_from_gguf(tensors[f"{prefix}.attn_k.weight"], bias("attn_k"))
        self.attn_v = linear_from_gguf(tensors[f"{prefix}.attn_v.weight"], bias("attn_v"))
        self.attn_output = linear_from_gguf(tensors[f"{prefix}.attn_output.weight"])
        self.ffn_norm = RMSNorm(float_tensor(tensors[f"{prefix}.ffn_norm.weight"]), eps)
        self.ffn_gate = linear_from_gguf(tensors[f"{prefix}.ffn_gate.weight"])
        self.ffn_up = linear_from_gguf(tensors[f"{prefix}.ffn_up.weight"])
        self.ffn_down = linear_from_gguf(tensors[f"{prefix}.ffn_down.weight"])
        self.rope = RotaryEmbedding(
            config.head_dim, config.rope_base, config.rope_scale, interleaved=interleaved
        )

    def forward(self, x, positions, k_cache, v_cache):
        c = self.config
        h = self.attn_norm(x)
        q = self.rope(split_heads(self.attn_q(h), c.num_heads, c.head_dim), positions)
        k = self.rope(split_heads(self.attn_k(h), c.num_kv_heads, c.head_dim), positions)
        v = split_heads(self.attn_v(h), c.num_kv_heads, c.head_dim)
        attn, k_cache, v_cache = cached_attention(
            q, k, v, k_cache, v_cache, positions, c.head_dim**-0.5, None
        )
        x = x + self.attn_output(attn)
        h = self.ffn_norm(x)
        return x + self.ffn_down(silu_gated(self.ffn_gate(h), self.ffn_up(h))), k_cache, v_cache


class LlamaModel(nn.Module):
    """forward(tokens [1, M], positions [M], *k_caches, *v_caches) ->
    (logits [1, M, vocab], *new_k_caches, *new_v_caches)."""

    def __init__(self, config: LlamaConfig, gguf_file):
        super().__init__()
        tensors = gguf_file.tensors
        self.config = config
        self.architecture = config.architecture
        self.token_embd = embedding_from_gguf(tensors["token_embd.weight"])
        self.blk = nn.ModuleList(
            LlamaLayer(config, tensors, f"blk.{i}") for i in range(config.num_layers)
        )
        self.output_norm = RMSNorm(float_tensor(tensors["output_norm.weight"]), config.rms_eps)
        self.output = (
            linear_from_gguf(tensors["output.weight"]) if "output.weight" in tensors else None
        )

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    def cache_shape(self, max_seq: int) -> tuple[int, int, int]:
        return (self.config.num_kv_heads, max_seq, self.config.head_dim)

    def forward(self, tokens, positions, *caches):
        n = self.config.num_layers
        x = self.token_embd(tokens)
        new_k, new_v = [], []
        for layer, k_cache, v_cache in zip(self.blk, caches[:n], caches[n:]):
            x, k_cache, v_cache = layer(x, positions, k_cache, v_cache)
            new_k.append(k_cache)
            new_v.append(v_cache)
        x = self.output_norm(x)
        if self.output is not None:
            logits = self.output(x)
        else:
            logits = torch.nn.functional.linear(x, embedding_weight(self.token_embd, x.dtype))
        return (logits, *new_k, *new_v)


def build(gguf_file, architecture: str) -> LlamaModel:
    return LlamaModel(LlamaConfig.from_gguf(gguf_file, architecture), gguf_file)
