"""Summaries of a GGUF file for `ggufc inspect`: one JSON-ready dict, and its text rendering.

The summary holds: file, size, version, alignment, architecture, every metadata entry as
`{"type", "value"}` (arrays longer than `layout.SHORT_ARRAY_MAX_LEN` as `{"type", "count",
"first"}` with their first `FIRST_ITEMS` items), tensor count, tensors / bytes / parameters per
format, totals, and with `--tensors` one row per tensor (name, format, shape, offset, nbytes).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from compiler.gguf_file.arrays import LazyArray
from compiler.gguf_file.reader import open_gguf

# Long metadata arrays and long values show this many leading items / characters.
FIRST_ITEMS = 5
TEXT_VALUE_MAX_CHARS = 100
# float32 metadata with magnitudes in this range prints positionally (1000000.0), else 1e-06
POSITIONAL_FLOAT_RANGE = (1e-4, 1e16)
# bytes -> MiB in the human-readable size
BYTES_PER_MIB = 1 << 20


def _json_scalar(value: Any) -> Any:
    """JSON has no NaN/inf: non-finite floats become their repr.  A long array nested in an
    array is cut to its first items."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, LazyArray):
        value = value[:FIRST_ITEMS]
    if isinstance(value, (tuple, list)):
        return [_json_scalar(item) for item in value]
    return value


def _metadata_entry(value: Any, type_name: str) -> dict[str, Any]:
    if isinstance(value, LazyArray):
        return {
            "type": type_name,
            "count": len(value),
            "first": _json_scalar(list(value[:FIRST_ITEMS])),
        }
    if isinstance(value, tuple):
        return {"type": type_name, "count": len(value), "value": _json_scalar(value)}
    return {"type": type_name, "value": _json_scalar(value)}


def summarize(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    with open_gguf(path) as gguf:
        formats: dict[str, dict[str, int]] = {}
        for tensor in gguf.tensors.values():
            entry = formats.setdefault(tensor.format, {"tensors": 0, "bytes": 0, "params": 0})
            entry["tensors"] += 1
            entry["bytes"] += tensor.nbytes
            entry["params"] += tensor.n_elements
        by_count = sorted(formats.items(), key=lambda item: (-item[1]["tensors"], item[0]))
        summary: dict[str, Any] = {
            "kind": "gguf",
            "file": str(path),
            "size": gguf.size,
            "version": gguf.version,
            "alignment": gguf.alignment,
            "architecture": gguf.metadata.get("general.architecture"),
            "metadata": {
                key: _metadata_entry(value, gguf.value_types[key])
                for key, value in gguf.metadata.items()
            },
            "tensor_count": len(gguf.tensors),
            "formats": dict(by_count),
            "total_bytes": sum(entry["bytes"] for entry in formats.values()),
            "total_params": sum(entry["params"] for entry in formats.values()),
        }
        if getattr(args, "tensors", False):
            summary["tensors"] = [
                {
                    "name": t.name,
                    "format": t.format,
                    "shape": list(t.shape),
                    "offset": t.offset,
                    "nbytes": t.nbytes,
                }
                for t in gguf.tensors.values()
            ]
    return summary


def _clip(text: str) -> str:
    if len(text) <= TEXT_VALUE_MAX_CHARS:
        return text
    return f"{text[:TEXT_VALUE_MAX_CHARS]}... ({len(text)} chars)"


def _text_type(entry: dict[str, Any]) -> str:
    """Type column: an "array[string]" of 262144 items shows as "string[262144]"."""
    type_name = entry["type"]
    if "count" in entry and type_name.startswith("array[") and type_name.endswith("]"):
        return f"{type_name[len('array[') : -1]}[{entry['count']}]"
    return type_name


def _text_value(entry: dict[str, Any]) -> str:
    if "first" in entry:
        items = ", ".join(repr(item) for item in entry["first"])
        return _clip(f"[{items}, ...]")
    value = entry["value"]
    if entry["type"] == "float32" and isinstance(value, float):
        # the shortest text that reads back as the same float32 (1e-06, not 9.99999997e-07)
        single = np.float32(value)
        if POSITIONAL_FLOAT_RANGE[0] <= abs(single) < POSITIONAL_FLOAT_RANGE[1]:
            return np.format_float_positional(single, unique=True, trim="0")
        return str(single)
    if isinstance(value, list) and len(value) > FIRST_ITEMS:
        items = ", ".join(repr(item) for item in value[:FIRST_ITEMS])
        return _clip(f"[{items}, ...]")
    return _clip(repr(value) if not isinstance(value, str) else value)


def render_text(summary: dict[str, Any]) -> str:
    size = summary["size"]
    lines = [
        f"file:          {summary['file']}",
        f"size:          {size:,} bytes ({size / BYTES_PER_MIB:.1f} MiB)",
        f"version:       GGUF v{summary['version']}",
        f"alignment:     {summary['alignment']}",
        f"architecture:  {summary['architecture']}",
        f"tensors:       {summary['tensor_count']}",
        f"parameters:    {summary['total_params']:,}",
        "",
        f"metadata ({len(summary['metadata'])} keys):",
    ]
    metadata = summary["metadata"]
    key_width = max((len(key) for key in metadata), default=0)
    types = {key: _text_type(entry) for key, entry in metadata.items()}
    type_width = max((len(t) for t in types.values()), default=0)
    for key, entry in metadata.items():
        lines.append(f"  {key:<{key_width}}  {types[key]:<{type_width}}  {_text_value(entry)}")
    lines += ["", "tensors by format:", f"  {'format':<8}{'tensors':>8}{'bytes':>16}{'params':>16}"]
    for name, entry in summary["formats"].items():
        lines.append(f"  {name:<8}{entry['tensors']:>8}{entry['bytes']:>16,}{entry['params']:>16,}")
    lines.append(
        f"  {'total':<8}{summary['tensor_count']:>8}{summary['total_bytes']:>16,}"
        f"{summary['total_params']:>16,}"
    )
    if "tensors" in summary:
        lines += ["", "tensors:"]
        name_width = max((len(t["name"]) for t in summary["tensors"]), default=0)
        for t in summary["tensors"]:
            shape = "x".join(str(d) for d in t["shape"])
            lines.append(
                f"  {t['name']:<{name_width}}  {t['format']:<5} {shape:<14} "
                f"offset {t['offset']:>12,}  {t['nbytes']:>12,} bytes"
            )
    return "\n".join(lines)
