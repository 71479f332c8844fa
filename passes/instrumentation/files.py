"""Writing instrumentation output: whole files via a temporary file and rename, so a crash
never leaves a half-written dump, reproducer or output."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "w" if isinstance(data, str) else "wb"
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return path


def render_program(program) -> str:
    """The program's text IR; if the printer cannot cope (a pass broke the graph), FX's own
    rendering, marked as such, so a failure dump never hides the failure."""
    from compiler.ir.printer import print_program

    try:
        text = print_program(program)
        return text if text.endswith("\n") else text + "\n"
    except Exception as exc:  # noqa: BLE001 -- any printer failure: the graph is broken
        return (
            f"// (text IR printer failed: {type(exc).__name__}: {exc}; FX graph follows)\n"
            + "\n".join(f"// {line}" for line in str(program.graph).splitlines())
            + "\n"
        )


__all__ = ["render_program", "write_atomic"]
