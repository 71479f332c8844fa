"""Small llama-architecture GGUF files written with gguf.GGUFWriter and compiler.formats.quantize.

Every GGUF block format appears (`LAYER_FORMATS` rotates them over the projections), dims are
multiples of 256 (the K-quants' block), and the vocabulary is a SentencePiece `llama` one:
control tokens, the 256 byte tokens, then letters and a few words, so text round trips.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import torch

from compiler import formats

HIDDEN = 256
HEADS = 2
KV_HEADS = 1
HEAD_DIM = HIDDEN // HEADS
FFN = 512
CONTEXT = 128
WEIGHT_SCALE = 0.08
PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
# one row per layer: the format of each projection, in PROJECTIONS order
LAYER_FORMATS = (
    ("Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "Q4_K"),
    ("Q6_K", "Q5_K", "Q4_K", "Q8_0", "Q5_0", "Q4_0", "Q6_K"),
)
EMBEDDING_FORMAT = "Q4_K"
OUTPUT_FORMAT = "Q8_0"

CONTROL_TOKENS = ("<unk>", "<s>", "</s>")
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_CONTROL, TOKEN_TYPE_BYTE = 1, 2, 3, 6
WORDS = ("\u2581the", "\u2581of", "\u2581is", "\u2581capital", "\u2581France", "\u2581a")


def vocabulary(size: int) -> tuple[list[str], list[float], list[int]]:
    tokens = list(CONTROL_TOKENS) + [f"<0x{b:02X}>" for b in range(256)]
    types = [TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_CONTROL, TOKEN_TYPE_CONTROL] + [TOKEN_TYPE_BYTE] * 256
    pieces = list(WORDS) + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["\u2581"]
    pieces += [f"\u2581w{i}" for i in range(size - len(tokens) - len(pieces))]
    tokens += pieces
    types += [TOKEN_TYPE_NORMAL] * len(pieces)
    scores = [0.0] * (len(CONTROL_TOKENS) + 256) + [-float(i) for i in range(len(pieces))]
    return tokens[:size], scores[:size], types[:size]


def _quantized(fmt: str, rows: int, cols: int, generator: torch.Generator) -> np.ndarray:
    weights = torch.randn(rows, cols, generator=generator) * WEIGHT_SCALE
    return formats.quantize(weights, fmt).numpy()


def write_synthetic_model(
    path: Path, architecture: str = "llama", vocab: int = 512, seed: int = 0
) -> Path:
    """A `len(LAYER_FORMATS)`-layer model; `qwen2` adds F32 q/k/v biases."""
    generator = torch.Generator().manual_seed(seed)
    writer = gguf.GGUFWriter(str(path), arch=architecture)
    writer.add_name(f"synthetic {architecture}")
    writer.add_uint32(f"{architecture}.block_count", len(LAYER_FORMATS))
    writer.add_uint32(f"{architecture}.embedding_length", HIDDEN)
    writer.add_uint32(f"{architecture}.feed_forward_length", FFN)
    writer.add_uint32(f"{architecture}.attention.head_count", HEADS)
    writer.add_uint32(f"{architecture}.attention.head_count_kv", KV_HEADS)
    writer.add_uint32(f"{architecture}.context_length", CONTEXT)
    writer.add_float32(f"{architecture}.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_float32(f"{architecture}.rope.freq_base", 10000.0)
    tokens, scores, types = vocabulary(vocab)
    writer.add_string("tokenizer.ggml.model", "llama")
    writer.add_array("tokenizer.ggml.tokens", tokens)
    writer.add_array("tokenizer.ggml.scores", scores)
    writer.add_array("tokenizer.ggml.token_type", types)
    writer.add_uint32("tokenizer.ggml.bos_token_id", BOS_ID)
    writer.add_uint32("tokenizer.ggml.eos_token_id", EOS_ID)
    writer.add_uint32("tokenizer.ggml.unknown_token_id", UNK_ID)
    writer.add_bool("tokenizer.ggml.add_bos_token", True)

    def quantized(name: str, fmt: str, rows: int, cols: int) -> None:
        writer.add_tensor(
            name, _quantized(fmt, rows, cols, generator), raw_dtype=gguf.GGMLQuantizationType[fmt]
        )

    def norm(name: str, size: int) -> None:
        writer.add_tensor(name, (1.0 + 0.1 * torch.randn(size, generator=generator)).numpy())

    quantized("token_embd.weight", EMBEDDING_FORMAT, vocab, HIDDEN)
    shapes = {
        "attn_q": (HEADS * HEAD_DIM, HIDDEN),
        "attn_k": (KV_HEADS * HEAD_DIM, HIDDEN),
        "attn_v": (KV_HEADS * HEAD_DIM, HIDDEN),
        "attn_output": (HIDDEN, HEADS * HEAD_DIM),
        "ffn_gate": (FFN, HIDDEN),
        "ffn_up": (FFN, HIDDEN),
        "ffn_down": (HIDDEN, FFN),
    }
    for layer, layer_formats in enumerate(LAYER_FORMATS):
        prefix = f"blk.{layer}"
        norm(f"{prefix}.attn_norm.weight", HIDDEN)
        norm(f"{prefix}.ffn_norm.weight", HIDDEN)
        for projection, fmt in zip(PROJECTIONS, layer_formats):
            quantized(f"{prefix}.{projection}.weight", fmt, *shapes[projection])
        if architecture == "qwen2":
            for projection in ("attn_q", "attn_k", "attn_v"):
                bias = 0.1 * torch.randn(shapes[projection][0], generator=generator)
                writer.add_tensor(f"{prefix}.{projection}.bias", bias.numpy())
    norm("output_norm.weight", HIDDEN)
    quantized("output.weight", OUTPUT_FORMAT, vocab, HIDDEN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
