"""The ggufc program file and its runtime.

`schema.fbs` (FlatBuffers, append-only) and its flatc-generated module `generated/`; the
in-memory model `program` (what code generation lowers into); the serializer `writer`
(every string interned, constants deduplicated in a 64-byte aligned segment, atomic
writes); the loader `loader` with its bounds-checked `reader` and `validate`; the reference
interpreter `interpreter` (CPU reference ops, or CUDA kernels via `cuda_launcher`); and
`describe` (what `ggufc inspect PROGRAM.ggufc` prints).

Public names are imported lazily so `import runtime_schema` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from compiler.errors import ProgramFormatError

_LAZY = {
    "save_program": "runtime_schema.writer",
    "program_to_bytes": "runtime_schema.writer",
    "load_program": "runtime_schema.loader",
    "load_program_bytes": "runtime_schema.loader",
    "LoadedProgram": "runtime_schema.loader",
    "run_program": "runtime_schema.interpreter",
    "ProgramRunError": "runtime_schema.interpreter",
    "describe_program": "runtime_schema.describe",
    "render_description": "runtime_schema.describe",
    "validate_program": "runtime_schema.validate",
}

__all__ = [  # noqa: PLE0604 (the names are the keys of _LAZY)
    "ProgramFormatError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'runtime_schema' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
