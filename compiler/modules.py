"""Quantized drop-in modules, and the policy that swaps them into any float torch model.

`GGUFLinear` and `GGUFEmbedding` hold a weight as raw GGUF blocks (a uint8 buffer
``[rows, row_bytes]``, see `compiler.formats`).  Their forward is deliberately unfused::

    GGUFLinear:     W = ggufc.dequantize(blocks, fmt, out_features, in_features, dtype)
                    y = F.linear(x, W, bias)                    # y = x @ W^T + bias
    GGUFEmbedding:  W = ggufc.dequantize(blocks, fmt, num_embeddings, embedding_dim, dtype)
                    y = F.embedding(indices, W)                 # y[...] = W[indices[...]]

so `torch.export` shows the ``ggufc.dequantize -> aten.linear / aten.embedding`` subgraph that
the `fuse-gguf` pass turns into ``ggufc.linear`` / ``ggufc.embedding`` on the raw blocks.

`quantize_module(model, policy)` replaces, in place, every submodule whose type is exactly
`nn.Linear` or `nn.Embedding` (subclasses may override ``forward`` and are left alone) for
which the policy names a format.

Policies
--------

A `QuantizationPolicy` is an ordered list of ``(pattern, format)`` rules matched against a
module's qualified name (``"blk.3.attn_v"``, ``"model.layers.3.self_attn.v_proj"``):

* a pattern is a shell glob (`fnmatch`, case-sensitive, matching the whole name), or, with
  the prefix ``re:``, a regular expression that must match the whole name;
* the first matching rule wins; its format ``None`` keeps the module float, and so does a
  name no rule matches;
* ``misaligned`` says what happens when a row is not a whole number of the format's blocks
  (``in_features`` of a linear, ``embedding_dim`` of an embedding):
  ``"error"`` raises `UnsupportedError` naming the module; ``"float"`` keeps it float;
  ``"fallback"`` uses llama.cpp's fallback format (`FALLBACK_FORMATS`) and keeps the module
  float when even that does not fit.

A plain mapping or sequence of pairs is accepted wherever a policy is, with
``misaligned="error"``.

The Q4_K_M mix
--------------

`q4_k_m_policy(num_layers)` reproduces llama.cpp's ``LLAMA_FTYPE_MOSTLY_Q4_K_M`` choice
(``llama_tensor_get_type``, dense non-Falcon models), stated as data in `Q4_K_M_MIX`:

* ``output`` / ``lm_head``: Q6_K; a token embedding tied to it (no separate output) too;
* ``attn_v`` and ``ffn_down``: Q6_K in the layers ``use_more_bits`` selects, Q4_K elsewhere,
  where ``use_more_bits(i, n) = i < n//8 or i >= 7*n//8 or (i - n//8) % 3 == 2``;
* fused ``attn_qkv``: Q5_K;
* everything else: Q4_K;
* rows that are not whole 256-weight super-blocks fall back: Q4_K -> Q5_0, Q6_K -> Q8_0,
  Q5_K -> Q8_0 (llama.cpp uses Q5_1, which ggufc does not handle; Q8_0 keeps more bits).

Role patterns cover GGUF tensor names and the usual Hugging Face names.  Applied to the names
and shapes of the published Gemma 3 270M Q4_K_M file, it gives that file's formats exactly.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compiler import formats
from compiler.errors import UnsupportedError
from compiler.ops import FLOAT_DTYPES, check_blocks, check_float_dtype, check_format

# ---- modules --------------------------------------------------------------------------------


class GGUFLinear(nn.Module):
    """``y = x @ dequant(blocks)^T + bias`` with the weight kept as GGUF blocks.

    `blocks` is uint8 ``[out_features, row_bytes(fmt, in_features)]``.  `compute_dtype` is the
    dtype the weight is dequantized to and the product computed in; ``None`` means the
    activation's dtype (so no casts appear in the exported graph).  The output has the
    activation's dtype.
    """

    def __init__(
        self,
        blocks: torch.Tensor,
        fmt: str,
        in_features: int,
        out_features: int,
        bias: torch.Tensor | None = None,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        where = f"GGUFLinear({fmt}, {in_features} -> {out_features})"
        check_blocks(where, fmt, blocks, out_features, in_features)
        if compute_dtype is not None:
            check_float_dtype(where, "compute", compute_dtype)
        if bias is not None:
            check_float_dtype(where, "bias", bias.dtype)
            if tuple(bias.shape) != (out_features,):
                raise UnsupportedError(
                    f"{where}: bias must be [{out_features}], got {list(bias.shape)}"
                )
            if compute_dtype is not None:
                bias = bias.to(compute_dtype)
        self.fmt = fmt
        self.in_features = in_features
        self.out_features = out_features
        self.compute_dtype = compute_dtype
        self.register_buffer("blocks", blocks)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_float(cls, linear: nn.Linear, fmt: str, *, name: str = "") -> GGUFLinear:
        """Quantize `linear`'s weight to `fmt` (bias kept as is).  `name` labels errors."""
        where = f"GGUFLinear.from_float({name or 'linear'}, {fmt})"
        _check_row_fits(where, fmt, linear.in_features, "in_features")
        weight = linear.weight.detach()
        blocks = formats.quantize(weight.to(torch.float32), fmt).to(weight.device)
        bias = None if linear.bias is None else linear.bias.detach()
        return cls(blocks, fmt, linear.in_features, linear.out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype if self.compute_dtype is None else self.compute_dtype
        weight = torch.ops.ggufc.dequantize(
            self.blocks, self.fmt, self.out_features, self.in_features, dtype
        )
        bias = self.bias
        if bias is not None and bias.dtype != dtype:
            bias = bias.to(dtype)
        out = F.linear(x if x.dtype == dtype else x.to(dtype), weight, bias)
        return out if out.dtype == x.dtype else out.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"fmt={self.fmt}, in_features={self.in_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}, "
            f"compute_dtype={self.compute_dtype}"
        )


class GGUFEmbedding(nn.Module):
    """``y[...] = dequant(blocks)[indices[...]]`` with the table kept as GGUF blocks.

    `blocks` is uint8 ``[num_embeddings, row_bytes(fmt, embedding_dim)]``; the output has
    `dtype`.
    """

    def __init__(
        self,
        blocks: torch.Tensor,
        fmt: str,
        num_embeddings: int,
        embedding_dim: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        where = f"GGUFEmbedding({fmt}, {num_embeddings} x {embedding_dim})"
        check_blocks(where, fmt, blocks, num_embeddings, embedding_dim)
        check_float_dtype(where, "output", dtype)
        self.fmt = fmt
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.dtype = dtype
        self.register_buffer("blocks", blocks)

    @classmethod
    def from_float(cls, embedding: nn.Embedding, fmt: str, *, name: str = "") -> GGUFEmbedding:
        """Quantize `embedding`'s table to `fmt`; the output dtype is the table's when it is a
        supported float dtype, else float32.  `name` labels errors."""
        where = f"GGUFEmbedding.from_float({name or 'embedding'}, {fmt})"
        if embedding.max_norm is not None:
            raise UnsupportedError(
                f"{where}: max_norm={embedding.max_norm} renormalizes rows in the forward pass; "
                "a quantized table cannot do that"
            )
        _check_row_fits(where, fmt, embedding.embedding_dim, "embedding_dim")
        weight = embedding.weight.detach()
        blocks = formats.quantize(weight.to(torch.float32), fmt).to(weight.device)
        dtype = weight.dtype if weight.dtype in FLOAT_DTYPES else torch.float32
        return cls(blocks, fmt, embedding.num_embeddings, embedding.embedding_dim, dtype=dtype)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        weight = torch.ops.ggufc.dequantize(
            self.blocks, self.fmt, self.num_embeddings, self.embedding_dim, self.dtype
        )
        return F.embedding(indices, weight)

    def extra_repr(self) -> str:
        return (
            f"fmt={self.fmt}, num_embeddings={self.num_embeddings}, "
            f"embedding_dim={self.embedding_dim}, dtype={self.dtype}"
        )


def _check_row_fits(where: str, fmt: str, row_weights: int, what: str) -> None:
    block_weights = check_format(where, fmt).block_weights
    if row_weights % block_weights != 0:
        raise UnsupportedError(
            f"{where}: {what}={row_weights} is not a multiple of the {fmt} block size "
            f"{block_weights}"
        )


# ---- policies -------------------------------------------------------------------------------

REGEX_PREFIX = "re:"
MISALIGNED_CHOICES = ("error", "fallback", "float")

# llama.cpp's replacement for a K-quant whose rows are not whole super-blocks.  llama.cpp maps
# Q5_K to Q5_1, which ggufc does not handle; Q8_0 is the supported format keeping more bits.
FALLBACK_FORMATS = {"Q4_K": "Q5_0", "Q5_K": "Q8_0", "Q6_K": "Q8_0"}


def _compile_pattern(pattern: str) -> re.Pattern:
    if pattern.startswith(REGEX_PREFIX):
        try:
            return re.compile(pattern[len(REGEX_PREFIX) :])
        except re.error as exc:
            raise UnsupportedError(
                f"quantization policy: pattern {pattern!r} is not a valid regular expression: {exc}"
            ) from exc
    return re.compile(fnmatch.translate(pattern))


@dataclass(frozen=True)
class QuantizationPolicy:
    """Ordered ``(pattern, format or None)`` rules plus what to do with misaligned rows."""

    rules: tuple[tuple[str, str | None], ...]
    misaligned: str = "error"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple((str(p), f) for p, f in self.rules))
        if self.misaligned not in MISALIGNED_CHOICES:
            raise UnsupportedError(
                f"quantization policy: misaligned={self.misaligned!r}; expected one of "
                f"{', '.join(MISALIGNED_CHOICES)}"
            )
        for pattern, fmt in self.rules:
            if fmt is not None:
                check_format(f"quantization policy rule {pattern!r}", fmt)
        # Compiled once; a frozen dataclass field would show up in ==/repr, so keep it aside.
        object.__setattr__(self, "_compiled", tuple(_compile_pattern(p) for p, _ in self.rules))

    def match(self, name: str) -> str | None:
        """The format of the first rule matching `name` (None: keep float or no match)."""
        for regex, (_, fmt) in zip(self._compiled, self.rules):
            if regex.fullmatch(name):
                return fmt
        return None

    def resolve(self, name: str, row_weights: int) -> str | None:
        """The format for module `name` whose rows hold `row_weights` weights, after the
        misaligned-row rule; None keeps it float."""
        fmt = self.match(name)
        if fmt is None or row_weights % formats.FORMATS[fmt].block_weights == 0:
            return fmt
        if self.misaligned == "error":
            raise UnsupportedError(
                f"quantize_module: {name!r} has rows of {row_weights} weights, not a multiple "
                f"of the {fmt} block size {formats.FORMATS[fmt].block_weights}; give it "
                "another format in the policy, or use misaligned='fallback' or 'float'"
            )
        if self.misaligned == "fallback":
            fallback = FALLBACK_FORMATS.get(fmt)
            if fallback is not None and row_weights % formats.FORMATS[fallback].block_weights == 0:
                return fallback
        return None


PolicyLike = QuantizationPolicy | Mapping[str, str | None] | Iterable[tuple[str, str | None]] | str


def as_policy(policy: PolicyLike) -> QuantizationPolicy:
    """A `QuantizationPolicy` from a policy, a mapping / pairs of rules, or a preset name."""
    if isinstance(policy, QuantizationPolicy):
        return policy
    if isinstance(policy, str):
        raise UnsupportedError(
            f"quantization policy: {policy!r} needs the model to resolve; "
            "pass it to quantize_module, or build it with q4_k_m_policy(num_layers)"
        )
    items = policy.items() if isinstance(policy, Mapping) else policy
    return QuantizationPolicy(rules=tuple(items))


# ---- the Q4_K_M mix (data, from llama.cpp's llama_tensor_get_type) --------------------------

# Where a block's index sits in a module name: GGUF "blk.3.", HF "model.layers.3.",
# GPT-style "h.3." and "blocks.3.".
LAYER_PREFIX = r"(?:.*\.)?(?:blk|layers|h|blocks)\.({layers})\."
LAYER_INDEX = re.compile(r"(?:^|\.)(?:blk|layers|h|blocks)\.(\d+)\.")

OUTPUT_ROLE = r"(?:.*\.)?(?:output|lm_head)"
TOKEN_EMBEDDING_ROLE = r"(?:.*\.)?(?:token_embd|embed_tokens|tok_embeddings|wte|word_embeddings)"


@dataclass(frozen=True)
class MixRule:
    """One line of a llama.cpp-style mix: modules whose name ends in `role` (a regex) get
    `fmt`; with `more_bits_layers_only`, only inside the layers `use_more_bits` selects."""

    role: str
    fmt: str
    more_bits_layers_only: bool = False


Q4_K_M_MIX = (
    MixRule(OUTPUT_ROLE, "Q6_K"),
    MixRule(r"(?:.*\.)?(?:attn_v|v_proj)", "Q6_K", more_bits_layers_only=True),
    MixRule(r"(?:.*\.)?(?:ffn_down|down_proj|w2)", "Q6_K", more_bits_layers_only=True),
    MixRule(r"(?:.*\.)?(?:attn_qkv|qkv_proj|query_key_value|Wqkv)", "Q5_K"),
    MixRule(r".*", "Q4_K"),
)
# A token embedding that doubles as the output projection is quantized like the output.
Q4_K_M_TIED_EMBEDDING_FORMAT = "Q6_K"


def use_more_bits(layer: int, num_layers: int) -> bool:
    """llama.cpp's choice of the layers that get more bits: the first and last eighth, and
    every third layer in between."""
    eighth = num_layers // 8
    return layer < eighth or layer >= 7 * num_layers // 8 or (layer - eighth) % 3 == 2


def q4_k_m_policy(num_layers: int, *, tied_embeddings: bool = False) -> QuantizationPolicy:
    """llama.cpp's Q4_K_M mix for a model of `num_layers` blocks, as explicit rules.

    `tied_embeddings`: the token embedding is also the output projection (no separate
    output module), so it gets the output's format.
    """
    rules: list[tuple[str, str | None]] = []
    if tied_embeddings:
        rules.append((REGEX_PREFIX + TOKEN_EMBEDDING_ROLE, Q4_K_M_TIED_EMBEDDING_FORMAT))
    more_bits = "|".join(str(i) for i in range(num_layers) if use_more_bits(i, num_layers))
    for rule in Q4_K_M_MIX:
        if not rule.more_bits_layers_only:
            rules.append((REGEX_PREFIX + rule.role, rule.fmt))
        elif more_bits:
            layer_prefix = LAYER_PREFIX.format(layers=more_bits)
            rules.append((REGEX_PREFIX + layer_prefix + rule.role, rule.fmt))
    return QuantizationPolicy(rules=tuple(rules), misaligned="fallback")


# Presets `quantize_module` accepts by name; each builder takes (num_layers, tied_embeddings).
PRESET_POLICIES = {"Q4_K_M": q4_k_m_policy}


def count_layers(names: Iterable[str]) -> int:
    """1 + the largest block index in `names` (module names such as "blk.17.attn_v")."""
    indices = [int(m.group(1)) for name in names if (m := LAYER_INDEX.search(name))]
    return max(indices) + 1 if indices else 0


def _has_tied_embedding(model: nn.Module) -> bool:
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return any(
        isinstance(m, nn.Linear) and id(m.weight) in embedding_weights for m in model.modules()
    )


def _resolve_preset(model: nn.Module, name: str) -> QuantizationPolicy:
    builder = PRESET_POLICIES.get(name)
    if builder is None:
        raise UnsupportedError(
            f"quantize_module: unknown policy preset {name!r}; known: {', '.join(PRESET_POLICIES)}"
        )
    num_layers = count_layers(module_name for module_name, _ in model.named_modules())
    return builder(num_layers, tied_embeddings=_has_tied_embedding(model))


# ---- swapping -------------------------------------------------------------------------------


def quantize_module(model: nn.Module, policy: PolicyLike) -> nn.Module:
    """Replace `model`'s nn.Linear / nn.Embedding submodules in place by GGUF ones, as
    `policy` says (a `QuantizationPolicy`, rules as a mapping or pairs, or a preset name in
    `PRESET_POLICIES`, whose layer count and embedding tying are read from `model`).

    Returns the model (a new module when `model` itself is a Linear/Embedding that is
    replaced).  Tied weights are quantized separately for each module that uses them.
    """
    resolved = _resolve_preset(model, policy) if isinstance(policy, str) else as_policy(policy)
    # A module reachable under several names is replaced once, by its first name's rule, and
    # stays shared.
    replacement_of: dict[int, nn.Module | None] = {}
    swaps: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules(remove_duplicate=False):
        if id(module) not in replacement_of:
            replacement_of[id(module)] = _quantized_replacement(name, module, resolved)
        replacement = replacement_of[id(module)]
        if replacement is not None:
            swaps.append((name, replacement))
    for name, replacement in swaps:
        if name == "":
            return replacement
        parent_name, _, child_name = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child_name, replacement)
    return model


def _quantized_replacement(
    name: str, module: nn.Module, policy: QuantizationPolicy
) -> nn.Module | None:
    if type(module) is nn.Linear:
        fmt = policy.resolve(name, module.in_features)
        return None if fmt is None else GGUFLinear.from_float(module, fmt, name=name)
    if type(module) is nn.Embedding:
        fmt = policy.resolve(name, module.embedding_dim)
        return None if fmt is None else GGUFEmbedding.from_float(module, fmt, name=name)
    return None
