"""Code generation: lowering of the final FX graph to a runtime Program (`codegen.lower`,
in `codegen.lowering`) and the Metal / CUDA kernel templates with their emitter
(`codegen.kernels`).

Names are imported lazily so `import codegen` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"lower": "codegen.lowering"}

__all__ = ["lower"]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'codegen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
