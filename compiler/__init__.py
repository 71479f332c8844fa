"""ggufc's core: GGUF formats, the `ggufc` torch op library, the GGUF reader and model front
ends, the graph-program IR, the compile driver and the CLI.

Public names are imported lazily so that `import compiler` stays cheap (the CLI starts fast
and `compiler.errors` can be used without importing torch).
"""

from __future__ import annotations

import importlib
from typing import Any

from compiler.errors import (
    FormatError,
    GgufcError,
    GgufFileError,
    IRParseError,
    PassError,
    PipelineParseError,
    ProgramFormatError,
    UnsupportedError,
    VerificationError,
)

# public name -> module that defines it
_LAZY = {
    "formats": "compiler.formats",
    "open_gguf": "compiler.gguf_file",
    "GGUFLinear": "compiler.modules",
    "GGUFEmbedding": "compiler.modules",
    "quantize_module": "compiler.modules",
    "GraphProgram": "compiler.ir.program",
    "compile_gguf": "compiler.driver",
}

# the error classes and the names of _LAZY, as literal strings (what linters read)
__all__ = [
    "FormatError",
    "GGUFEmbedding",
    "GGUFLinear",
    "GgufFileError",
    "GgufcError",
    "GraphProgram",
    "IRParseError",
    "PassError",
    "PipelineParseError",
    "ProgramFormatError",
    "UnsupportedError",
    "VerificationError",
    "compile_gguf",
    "formats",
    "open_gguf",
    "quantize_module",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'compiler' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value
