"""Fast, lazy, memory-mapped GGUF reader.

    f = open_gguf("model.gguf")          # parses the header only; also a context manager
    f.version, f.alignment, f.architecture
    f.metadata["gemma3.block_count"]     # scalars and short arrays decoded at open
    f.metadata["tokenizer.ggml.tokens"]  # long arrays: lazy Sequence, decoded on access
    t = f.tensors["token_embd.weight"]   # name -> GGUFTensor, in file order
    t.format, t.shape, t.offset, t.nbytes
    t.data                               # zero-copy torch view over the mmap
    t.check(); f.check_tensors()         # finite scales / float values

Modules: `layout` (format facts), `mapped` (the mmap), `header` (bounded header parser),
`arrays` (lazy metadata arrays), `reader` (tensors, `open_gguf`), `summary` (`ggufc inspect`).
"""

from __future__ import annotations

from compiler.gguf_file.arrays import LazyArray, LazyScalarArray, LazyStringArray
from compiler.gguf_file.layout import QUANT_FORMATS, SUPPORTED_FORMATS
from compiler.gguf_file.reader import GGUFFile, GGUFTensor, open_gguf

__all__ = [
    "QUANT_FORMATS",
    "SUPPORTED_FORMATS",
    "GGUFFile",
    "GGUFTensor",
    "LazyArray",
    "LazyScalarArray",
    "LazyStringArray",
    "open_gguf",
]
