"""`ggufc inspect FILE [--json] [--tensors]`: what is inside a model file.

FILE is a path or the name of a bundled model (`ggufc inspect gemma3-270m`).  The file's kind is
found by its magic bytes, then by its suffix (`FILE_KINDS`).  Each kind names a summary module,
imported only when used, with `summarize(path, args) -> dict` (JSON-ready) and
`render_text(summary) -> str`; `--json` prints the dict as one JSON document.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from compiler.errors import GgufFileError


@dataclass(frozen=True)
class FileKind:
    """One kind of file `inspect` understands: its magic, suffix and summary module."""

    name: str
    magic: bytes
    suffix: str
    summary_module: str

    def summary(self) -> ModuleType:
        return importlib.import_module(self.summary_module)


# Kinds are tried in order.  The program file's magic is runtime_schema.container.MAGIC (not
# imported here so that inspecting a .gguf never loads the program-file code).
FILE_KINDS: tuple[FileKind, ...] = (
    FileKind("gguf", b"GGUF", ".gguf", "compiler.gguf_file.summary"),
    FileKind("ggufc", b"GGUFCPRG", ".ggufc", "runtime_schema.describe"),
)


def file_kind(path: Path, kinds: Sequence[FileKind] = FILE_KINDS) -> FileKind:
    """The kind of `path`: by its leading magic bytes, else by its suffix."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(max(len(kind.magic) for kind in kinds))
    except OSError as exc:
        raise GgufFileError(f"{path}: cannot read: {exc.strerror}") from None
    # Longest magic first: a program file's b"GGUFCPRG" also starts with b"GGUF".
    for kind in sorted(kinds, key=lambda kind: len(kind.magic), reverse=True):
        if head.startswith(kind.magic):
            return kind
    for kind in kinds:
        if path.suffix == kind.suffix:
            return kind
    expected = ", ".join(f"{kind.name} (magic {kind.magic!r})" for kind in kinds)
    raise GgufFileError(f"{path}: unknown file kind: starts with {head!r}; expected {expected}")


def _kind_and_summary(
    path_or_name: str | Path, args: argparse.Namespace
) -> tuple[FileKind, dict[str, Any]]:
    from compiler.bundled import resolve_model_path

    path = resolve_model_path(path_or_name)
    kind = file_kind(path)
    return kind, kind.summary().summarize(path, args)


def summarize(path_or_name: str | Path, args: argparse.Namespace | None = None) -> dict[str, Any]:
    """The summary `inspect` prints, for a path or a bundled model name."""
    return _kind_and_summary(path_or_name, args or argparse.Namespace())[1]


def run(args: argparse.Namespace) -> int:
    kind, summary = _kind_and_summary(args.file, args)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print(kind.summary().render_text(summary))
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "inspect",
        help="show what is inside a .gguf model or a .ggufc program",
        description=(
            "For a .gguf model: version, architecture, metadata (long arrays summarized), "
            "tensor count, bytes and parameters per format.  For a .ggufc program: chains, "
            "kernels per format and kind, IfNodes, constants (bytes saved by dedup) and "
            "strings (bytes saved by interning)."
        ),
    )
    parser.add_argument(
        "file", metavar="FILE", help="a .gguf or .ggufc file, or a bundled model name"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--tensors", action="store_true", help="also list every tensor")
    parser.set_defaults(run=run)
    return parser
