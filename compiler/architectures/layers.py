"""Decoder building blocks shared by the architectures: RMSNorm, rotary embedding, attention
over a functional KV cache, and the loader that turns a GGUF tensor into a module.

KV cache convention (one exported program serves prefill and decode):
  inputs  tokens [1, M] int64, positions [M] int64 (absolute positions of the M tokens),
          k_cache_i, v_cache_i [kv_heads, max_seq, head_dim] for each layer i;
  outputs logits [1, M, vocab], then the updated caches (out-of-place `index_copy` at
          `positions`), k_0..k_{L-1}, v_0..v_{L-1}.
Attention reads the whole cache and masks keys by position (key j is visible to the query at
position p when j <= p, and, for sliding-window layers, p - j < window), so cache slots not yet
written never contribute.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from compiler.errors import UnsupportedError


def as_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`x.to(dtype)`, but no node at all in the exported graph when it is already `dtype`."""
    return x if x.dtype == dtype else x.to(dtype)


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight, computed in float32.

    GGUF stores Gemma's `(1 + w)` norm weights already shifted, so one formula serves both."""

    def __init__(self, weight: torch.Tensor, eps: float):
        super().__init__()
        self.weight = nn.Parameter(weight.float().clone(), requires_grad=False)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = as_dtype(x, torch.float32)
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return as_dtype(normed * self.weight, x.dtype)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding.

    `interleaved=False` (GGUF "NEOX" type: gemma3, qwen2) rotates the two halves of each head:
    (x[i], x[i + D/2]).  `interleaved=True` (GGUF "NORM" type: llama, whose converter permutes
    the q/k rows for it) rotates adjacent pairs (x[2i], x[2i+1]).  Angle of pair i at position
    p: p * base^(-2i/D) / scale."""

    def __init__(self, head_dim: int, base: float, scale: float = 1.0, interleaved: bool = False):
        super().__init__()
        exponent = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
        inv_freq = (1.0 / (base**exponent)) / scale
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)
        self.interleaved = interleaved

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x: [1, heads, M, head_dim]; positions: [M].

        Computed as ``x * cos_full + partner(x) * sin_signed``: ``partner`` swaps each pair's
        two elements (a roll by half a head for halves, a flip of each adjacent pair when
        interleaved) and the tables repeat cos and sin with the sign of sin that the rotation
        needs, so a rotation is three ops (partner, mul, addcmul) instead of seven, and the
        tables, which depend on the positions only, are built once for all layers sharing a
        base (the compiler merges equal ones)."""
        angles = positions.float()[:, None] * self.inv_freq[None, :]  # [M, head_dim/2]
        cos = as_dtype(torch.cos(angles), x.dtype)
        sin = as_dtype(torch.sin(angles), x.dtype)
        if self.interleaved:
            cos_full = torch.stack((cos, cos), dim=-1).flatten(-2)
            sin_signed = torch.stack((-sin, sin), dim=-1).flatten(-2)
            partner = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
        else:
            cos_full = torch.cat((cos, cos), dim=-1)
            sin_signed = torch.cat((-sin, sin), dim=-1)
            partner = x.roll(x.shape[-1] // 2, dims=-1)
        return torch.addcmul(x * cos_full, partner, sin_signed)


def cached_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    positions: torch.Tensor,
    scale: float,
    window: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q: [1, H, M, D]; k, v: [1, KV, M, D]; caches [KV, S, D].

    Returns (out [1, M, H*D], new_k_cache, new_v_cache)."""
    new_k = k_cache.index_copy(1, positions, as_dtype(k[0], k_cache.dtype))
    new_v = v_cache.index_copy(1, positions, as_dtype(v[0], v_cache.dtype))
    heads, kv_heads = q.shape[1], new_k.shape[0]
    group = heads // kv_heads
    m, head_dim, seq = q.shape[2], q.shape[3], new_k.shape[1]
    f32 = torch.float32
    # query heads h = g * group + r share key/value head g: as [KV, group * M, D] the queries
    # of one KV head are one matrix against its [S, D] keys, so the cache is never repeated
    # per query head (no copy of it a step)
    queries = as_dtype(q, f32).reshape(kv_heads, group * m, head_dim)
    scores = torch.matmul(queries, as_dtype(new_k, f32).transpose(-1, -2)) * scale
    key_pos = torch.arange(seq, device=q.device)
    query_pos = positions[:, None]
    visible = key_pos[None, :] <= query_pos
    if window is not None:
        visible = visible & (query_pos - key_pos[None, :] < window)
    scores = scores.view(kv_heads, group, m, seq).masked_fill(~visible, float("-inf"))
    probs = torch.softmax(scores, dim=-1).view(kv_heads, group * m, seq)
    out = as_dtype(torch.matmul(probs, as_dtype(new_v, f32)), q.dtype)  # [KV, group * M, D]
    # [KV, group, M, D] -> [1, M, H * D] (h = g * group + r); a view straight to [H, M, D]
    # makes torch.export guard Eq(M * Min(D, G * M * D), D * M) on some head shapes (true for
    # every M, not proven), which fails an export with a dynamic M
    out = out.view(kv_heads, group, m, head_dim).permute(2, 0, 1, 3)
    out = out.reshape(1, m, heads * head_dim)
    return out, new_k, new_v


def split_heads(x: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """[1, M, heads*head_dim] -> [1, heads, M, head_dim]."""
    return x.view(1, x.shape[1], heads, head_dim).transpose(1, 2)


def default_attention_scale(head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim)


# Tensor formats a front end can load: quantized ones stay packed, float ones load as tensors.
FLOAT_FORMATS = ("F32", "F16", "BF16")


def linear_from_gguf(tensor, bias: torch.Tensor | None = None) -> nn.Module:
    """`GGUFLinear` on the packed blocks of a quantized tensor, `nn.Linear` for a float one."""
    from compiler import formats
    from compiler.modules import GGUFLinear

    out_features, in_features = tensor.shape
    if tensor.format in formats.FORMATS:
        return GGUFLinear(tensor.data, tensor.format, in_features, out_features, bias=bias)
    if tensor.format in FLOAT_FORMATS:
        layer = nn.Linear(in_features, out_features, bias=bias is not None)
        with torch.no_grad():
            layer.weight.copy_(tensor.data.float())
            if bias is not None:
                layer.bias.copy_(bias)
        layer.requires_grad_(False)
        return layer
    raise UnsupportedError(
        f"tensor {tensor.name}: format {tensor.format} is not supported for a linear layer "
        f"(supported: {', '.join((*formats.FORMATS, *FLOAT_FORMATS))})"
    )


def embedding_from_gguf(tensor) -> nn.Module:
    from compiler import formats
    from compiler.modules import GGUFEmbedding

    rows, dim = tensor.shape
    if tensor.format in formats.FORMATS:
        return GGUFEmbedding(tensor.data, tensor.format, rows, dim)
    if tensor.format in FLOAT_FORMATS:
        layer = nn.Embedding(rows, dim)
        with torch.no_grad():
            layer.weight.copy_(tensor.data.float())
        layer.requires_grad_(False)
        return layer
    raise UnsupportedError(
        f"tensor {tensor.name}: format {tensor.format} is not supported for an embedding "
        f"(supported: {', '.join((*formats.FORMATS, *FLOAT_FORMATS))})"
    )


def embedding_weight(embedding: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """The full weight of an embedding, for an output projection tied to it.  For a packed one
    this is a `ggufc.dequantize` of the same blob, so export shows one constant with two uses."""
    from compiler.modules import GGUFEmbedding

    if isinstance(embedding, GGUFEmbedding):
        return torch.ops.ggufc.dequantize(
            embedding.blocks,
            embedding.fmt,
            embedding.num_embeddings,
            embedding.embedding_dim,
            dtype,
        )
    return embedding.weight.to(dtype)


def float_tensor(tensor) -> torch.Tensor:
    if tensor.format not in FLOAT_FORMATS:
        raise UnsupportedError(
            f"tensor {tensor.name}: expected a float tensor ({', '.join(FLOAT_FORMATS)}), "
            f"got {tensor.format}"
        )
    return tensor.data.float()


def gelu_tanh_gated(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.gelu(gate, approximate="tanh") * up


def silu_gated(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up
