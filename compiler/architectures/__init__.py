"""Model front ends: build a torch module from a GGUF file's metadata and tensors.

Quantized tensors stay packed (`GGUFLinear` / `GGUFEmbedding`, so export shows
`ggufc.dequantize -> aten.linear` for the passes to fuse); F32/F16 tensors load as tensors.
Every model has the same calling convention (see `layers.py`): tokens, positions and a
functional KV cache in; logits and the updated cache out.
"""

from __future__ import annotations

import importlib

from compiler.errors import UnsupportedError

# GGUF `general.architecture` -> module of this package whose `build(gguf_file, architecture)`
# makes the model (imported on use)
ARCHITECTURES: dict[str, str] = {
    "gemma3": "gemma3",
    "llama": "llama",
    "qwen2": "llama",
}


def build_model(gguf_file):
    """The torch module for an open GGUF file (see `compiler.open_gguf`)."""
    architecture = gguf_file.architecture
    if architecture not in ARCHITECTURES:
        raise UnsupportedError(
            f"{gguf_file.path}: architecture {architecture!r} is not supported "
            f"(supported: {', '.join(sorted(ARCHITECTURES))})"
        )
    module = importlib.import_module(f"compiler.architectures.{ARCHITECTURES[architecture]}")
    return module.build(gguf_file, architecture)
