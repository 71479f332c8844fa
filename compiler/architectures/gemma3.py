"""Gemma 3 (GGUF architecture `gemma3`) as a torch module with packed GGUF weights.

Per layer (pre- and post-norms around both blocks, as in the reference):
    h = x + post_attention_norm(attn(attn_norm(x)))
    x = h + post_ffw_norm(down(gelu_tanh(gate(ffn_norm(h))) * up(ffn_norm(h))))
Attention: grouped-query, q/k RMS-normed per head, NEOX rotary embedding, scale
head_dim^-0.5.  Every `SLIDING_WINDOW_PATTERN`-th layer (5, 11, 17, ...) is global, with rope
base `rope.freq_base` (and linear `rope.scaling.factor`); the others attend to the last
`attention.sliding_window` positions with rope base `LOCAL_ROPE_BASE`.  The embedding is
scaled by sqrt(hidden) and tied to the output projection (the lm_head reads the same blob).
"""

from __future__ import annotations

import math
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
    gelu_tanh_gated,
    linear_from_gguf,
    split_heads,
)
from compiler.architectures.metadata import MetadataReader

ARCHITECTURE = "gemma3"
# Facts of the architecture that GGUF does not store (llama.cpp hard-codes the same values).
SLIDING_WINDOW_PATTERN = 6
LOCAL_ROPE_BASE = 10_000.0


@dataclass(frozen=True)
class Gemma3Config:
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
    sliding_window: int
    context_length: int

    @classmethod
    def from_gguf(cls, gguf_file) -> Gemma3Config:
        meta = MetadataReader(gguf_file, ARCHITECTURE)
        embedding = gguf_file.tensors["token_embd.weight"]
        return cls(
            vocab_size=embedding.shape[0],
            hidden_size=meta.int("embedding_length"),
            num_layers=meta.int("block_count"),
            num_heads=meta.int("attention.head_count"),
            num_kv_heads=meta.int("attention.head_count_kv"),
            head_dim=meta.int("attention.key_length"),
            ffn_size=meta.int("feed_forward_length"),
            rms_eps=meta.float("attention.layer_norm_rms_epsilon"),
            rope_base=meta.float("rope.freq_base"),
            rope_scale=meta.float("rope.scaling.factor", default=1.0),
            sliding_window=meta.int("attention.sliding_window"),
            context_length=meta.int("context_length"),
        )

    def is_global_layer(self, index: int) -> bool:
        return index % SLIDING_WINDOW_PATTERN == SLIDING_WINDOW_PATTERN - 1


class Gemma3Layer(nn.Module):
    def __init__(self, config: Gemma3Config, tensors, prefix: str, is_global: bool):
        super().__init__()
        self.config = config
        eps = config.rms_eps
        self.attn_norm = RMSNorm(float_tensor(tensors[f"{prefix}.attn_norm.weight"]), eps)
        self.attn_q = linear_from_gguf(tensors[f"{prefix}.attn_q.weight"])
        self.attn_k = linear_from_gguf(tensors[f"{prefix}.attn_k.weight"])
        self.attn_v = linear_from_gguf(tensors[f"{prefix}.attn_v.weight"])
        self.attn_output = linear_from_gguf(tensors[f"{prefix}.attn_output.weight"])
        self.attn_q_norm = RMSNorm(float_tensor(tensors[f"{prefix}.attn_q_norm.weight"]), eps)
        self.attn_k_norm = RMSNorm(float_tensor(tensors[f"{prefix}.attn_k_norm.weight"]), eps)
        self.post_attention_norm = RMSNorm(
            float_tensor(tensors[f"{prefix}.post_attention_norm.weight"]), eps
        )
        self.ffn_norm = RMSNorm(float_tensor(tensors[f"{prefix}.ffn_norm.weight"]), eps)
        self.ffn_gate = linear_from_gguf(tensors[f"{prefix}.ffn_gate.weight"])
        self.ffn_up = linear_from_gguf(tensors[f"{prefix}.ffn_up.weight"])
        self.ffn_down = linear_from_gguf(tensors[f"{prefix}.ffn_down.weight"])
        self.post_ffw_norm = RMSNorm(float_tensor(tensors[f"{prefix}.post_ffw_norm.weight"]), eps)
        if is_global:
            self.rope = RotaryEmbedding(config.head_dim, config.rope_base, config.rope_scale)
            self.window = None
        else:
            self.rope = RotaryEmbedding(config.head_dim, LOCAL_ROPE_BASE)
            self.window = config.sliding_window

    def forward(self, x, positions, k_cache, v_cache):
        c = self.config
        h = self.attn_norm(x)
        q = self.attn_q_norm(split_heads(self.attn_q(h), c.num_heads, c.head_dim))
        k = self.attn_k_norm(split_heads(self.attn_k(h), c.num_kv_heads, c.head_dim))
        v = split_heads(self.attn_v(h), c.num_kv_heads, c.head_dim)
        q = self.rope(q, positions)
        k = self.rope(k, positions)
        attn, k_cache, v_cache = cached_attention(
            q, k, v, k_cache, v_cache, positions, c.head_dim**-0.5, self.window
        )
        x = x + self.post_attention_norm(self.attn_output(attn))
        h = self.ffn_norm(x)
        ffn = self.ffn_down(gelu_tanh_gated(self.ffn_gate(h), self.ffn_up(h)))
        return x + self.post_ffw_norm(ffn), k_cache, v_cache


class TiedOutput(nn.Module):
    """The output projection that reuses the embedding's packed blob (one constant, two uses)."""

    def __init__(self, embedding: nn.Module):
        super().__init__()
        self.embedding = [embedding]  # a list, so the blob is not registered twice

    def forward(self, x):
        return torch.nn.functional.linear(x, embedding_weight(self.embedding[0], x.dtype))


class Gemma3Model(nn.Module):
    """forward(tokens [1, M], positions [M], *k_caches, *v_caches) ->
    (logits [1, M, vocab], *new_k_caches, *new_v_caches)."""

    architecture = ARCHITECTURE

    def __init__(self, config: Gemma3Config, gguf_file):
        super().__init__()
        tensors = gguf_file.tensors
        self.config = config
        self.token_embd = embedding_from_gguf(tensors["token_embd.weight"])
        self.blk = nn.ModuleList(
            Gemma3Layer(config, tensors, f"blk.{i}", config.is_global_layer(i))
            for i in range(config.num_layers)
        )
        self.output_norm = RMSNorm(float_tensor(tensors["output_norm.weight"]), config.rms_eps)
        if "output.weight" in tensors:
            self.output = linear_from_gguf(tensors["output.weight"])
        else:
            self.output = TiedOutput(self.token_embd)
        self.embedding_scale = math.sqrt(config.hidden_size)

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    def cache_shape(self, max_seq: int) -> tuple[int, int, int]:
        return (self.config.num_kv_heads, max_seq, self.config.head_dim)

    def forward(self, tokens, positions, *caches):
        n = self.config.num_layers
        k_caches, v_caches = caches[:n], caches[n:]
        x = self.token_embd(tokens) * self.embedding_scale
        new_k, new_v = [], []
        for layer, k_cache, v_cache in zip(self.blk, k_caches, v_caches):
            x, k_cache, v_cache = layer(x, positions, k_cache, v_cache)
            new_k.append(k_cache)
            new_v.append(v_cache)
        logits = self.output(self.output_norm(x))
        return (logits, *new_k, *new_v)


def build(gguf_file, architecture: str = ARCHITECTURE) -> Gemma3Model:
    return Gemma3Model(Gemma3Config.from_gguf(gguf_file), gguf_file)
