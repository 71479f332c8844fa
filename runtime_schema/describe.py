"""What a program file holds, as a dict (``ggufc inspect PROGRAM.ggufc --json``) or text.

``describe_program(path | Program | LoadedProgram) -> dict`` with the keys

* ``file``: path, bytes, format and schema versions, flatbuffer and segment bytes;
* ``inputs`` / ``outputs``: name, dtype, shape (symbolic dims by name);
* ``symbols``: SymInts that come from input shapes, with their ranges;
* ``chains``: per chain its name and counts of each instruction type;
* ``kernels``: count, per "format/kind", per backend, distinct sources, sources marked for
  dependent launch (CUDA);
* ``if_nodes``: the condition and branch chains of each IfNode;
* ``aten_ops``: count per schema name;
* ``constants``: count, bytes the program references, bytes stored in the segment, bytes
  saved by deduplication (``referenced - stored - external``), external bytes and files;
* ``strings``: unique, references, bytes stored, bytes a non-interning writer would store,
  bytes saved; the same for kernel sources and headers alone;
* ``metadata``: the program's key/value pairs; a value longer than
  `METADATA_PREVIEW_CHARS` characters (the compiled Gemma program stores its tokenizer as
  a ~6 MB JSON value) is shortened to its first `METADATA_PREVIEW_CHARS` characters plus
  ``"... (N bytes)"`` (N: its UTF-8 size), unless ``full_metadata=True``.

A `Program` that was never saved is encoded in memory first (the string figures are those
of the file it would become).
"""

from __future__ import annotations

import json
import os
from collections import Counter

from runtime_schema.loader import LoadedProgram, load_program, load_program_bytes
from runtime_schema.program import (
    AtenNode,
    Dim,
    IfNode,
    KernelNode,
    OpKind,
    Program,
    SymIntInfo,
    SymNode,
    TensorInfo,
)
from runtime_schema.writer import program_to_bytes

# Longest metadata value `describe_program` shows in full (text and --json alike).
METADATA_PREVIEW_CHARS = 80
# Kernel ops that are not GGUF ops: their KernelNodes' format is unused, counted by kind alone
NON_GGUF_OPS = (OpKind.ATTENTION, OpKind.RMS_NORM, OpKind.ROTARY, OpKind.GATED_GELU)
_COMPARE_TEXT = {"LT": "<", "LE": "<=", "EQ": "==", "NE": "!=", "GT": ">", "GE": ">="}


def _load(subject) -> LoadedProgram:
    if isinstance(subject, LoadedProgram):
        return subject
    if isinstance(subject, Program):
        return load_program_bytes(program_to_bytes(subject))
    return load_program(subject)


def metadata_preview(value: str, limit: int = METADATA_PREVIEW_CHARS) -> str:
    """`value` if at most `limit` characters, else its first `limit` characters followed by
    ``"... (N bytes)"`` with N the UTF-8 size of the whole value."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}... ({len(value.encode('utf-8'))} bytes)"


def describe_program(
    subject: str | os.PathLike | Program | LoadedProgram, *, full_metadata: bool = False
) -> dict:
    loaded = _load(subject)
    p = loaded.program
    names = [v.name for v in p.values]

    def dim_text(d: Dim):
        return names[d.value] if d.is_symbolic else d.size

    def value_entry(i: int) -> dict:
        info = p.values[i].info
        if isinstance(info, TensorInfo):
            return {
                "name": names[i],
                "dtype": info.dtype.name.lower(),
                "shape": [dim_text(d) for d in info.shape],
            }
        return {"name": names[i], "symint": [info.min, info.max]}

    symbols = {}
    for i in p.inputs:
        for d in p.values[i].info.shape:
            if d.is_symbolic:
                info = p.values[d.value].info
                symbols[names[d.value]] = {"min": info.min, "max": info.max}

    chains, if_nodes = [], []
    by_kind, by_backend, aten_ops = Counter(), Counter(), Counter()
    sources = set()
    kernel_count = 0
    dependent_sources = 0  # source references a CUDA runtime may launch dependently
    mapped_sources = 0  # source references taking tensor maps (the 16-bit CUDA matmul)
    # the most dynamic shared memory a kernel launch asks for: a card with less a block cannot
    # run every path of the program (the 256-row CUDA matmul tile takes ~200-220 KB)
    shared_memory = 0
    for c, chain in enumerate(p.chains):
        counts = Counter(type(n).__name__ for n in chain.instructions)
        chains.append(
            {
                "index": c,
                "name": chain.name,
                "main": c == p.main_chain,
                "instructions": len(chain.instructions),
                **{
                    kind: counts.get(kind, 0)
                    for kind in ("KernelNode", "AtenNode", "IfNode", "SymNode")
                },
            }
        )
        for node in chain.instructions:
            if isinstance(node, KernelNode):
                kernel_count += 1
                shared_memory = max(shared_memory, node.shared_memory_bytes)
                kind = node.kind.name.lower()
                # a GGUF op's kernels by format; the others have none (format unused)
                gguf = node.op not in NON_GGUF_OPS
                by_kind[f"{node.format.name}/{kind}" if gguf else kind] += 1
                for s in node.sources:
                    by_backend[s.backend.name.lower()] += 1
                    dependent_sources += s.dependent_launch
                    mapped_sources += bool(s.tensor_maps)
                    sources.add((s.backend, s.entry, s.source, s.header))
            elif isinstance(node, AtenNode):
                aten_ops[node.op] += 1
            elif isinstance(node, IfNode):
                op = _COMPARE_TEXT[node.compare.name]
                if_nodes.append(
                    {
                        "chain": chain.name,
                        "condition": f"{names[node.condition]} {op} {node.constant}",
                        "then": p.chains[node.then_chain].name,
                        "else": p.chains[node.else_chain].name,
                    }
                )
            else:
                assert isinstance(node, SymNode)

    referenced = sum(c.data.nbytes for c in p.constants)
    external = sum(c.data.nbytes for c in p.constants if c.source is not None)
    stored = sum(size for _, size in {(off, size) for _, off, size in loaded.segment_constants})
    s = loaded.strings
    header = loaded.header
    return {
        "file": {
            "path": loaded.path,
            "bytes": header.file_size,
            "format_version": header.format_version,
            "schema_version": p.schema_version,
            "flatbuffer_bytes": header.flatbuffer_size,
            "segment_bytes": header.segment_size,
        },
        "metadata": {
            key: value if full_metadata else metadata_preview(value) for key, value in p.metadata
        },
        "values": {
            "count": len(p.values),
            "tensors": sum(isinstance(v.info, TensorInfo) for v in p.values),
            "symints": sum(isinstance(v.info, SymIntInfo) for v in p.values),
        },
        "inputs": [value_entry(i) for i in p.inputs],
        "outputs": [value_entry(i) for i in p.outputs],
        "symbols": symbols,
        "chains": chains,
        "kernels": {
            "count": kernel_count,
            "by_format_and_kind": dict(sorted(by_kind.items())),
            "sources_by_backend": dict(sorted(by_backend.items())),
            "distinct_sources": len(sources),
            "dependent_launch_sources": dependent_sources,
            "tensor_map_sources": mapped_sources,
            "max_shared_memory_bytes": shared_memory,
        },
        "if_nodes": if_nodes,
        "aten_ops": dict(sorted(aten_ops.items())),
        "constants": {
            "count": len(p.constants),
            "referenced_bytes": referenced,
            "stored_bytes": stored,
            "dedup_saved_bytes": referenced - external - stored,
            "external_bytes": external,
            "external_files": list(loaded.external_files),
        },
        "strings": {
            "unique": s.unique,
            "references": s.references,
            "stored_bytes": s.stored_bytes,
            "uninterned_bytes": s.uninterned_bytes,
            "saved_bytes": s.uninterned_bytes - s.stored_bytes,
            "kernel_unique": s.kernel_unique,
            "kernel_references": s.kernel_references,
            "kernel_stored_bytes": s.kernel_stored_bytes,
            "kernel_uninterned_bytes": s.kernel_uninterned_bytes,
        },
    }


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def render_description(d: dict) -> str:
    """The text `ggufc inspect PROGRAM.ggufc` prints."""
    f, k, c, s = d["file"], d["kernels"], d["constants"], d["strings"]
    lines = [
        (
            f"program {f['path'] or '(in memory)'}: {f['bytes']} bytes "
            f"(format v{f['format_version']}, schema v{f['schema_version']}; "
            f"flatbuffer {f['flatbuffer_bytes']}, constant segment {f['segment_bytes']})"
        ),
    ]
    for key, value in d["metadata"].items():
        lines.append(f"  {key}: {value}")

    def io_text(e):
        if "shape" in e:
            return f"{e['name']}: {e['dtype']}[{', '.join(str(x) for x in e['shape'])}]"
        return f"{e['name']}: SymInt{e['symint']}"

    lines.append("inputs:  " + "; ".join(io_text(e) for e in d["inputs"]))
    lines.append("outputs: " + "; ".join(io_text(e) for e in d["outputs"]))
    for name, r in d["symbols"].items():
        lines.append(f"symbol {name} in [{r['min']}, {r['max']}]")
    lines.append(f"chains: {len(d['chains'])}")
    for ch in d["chains"]:
        mark = " (main)" if ch["main"] else ""
        lines.append(
            f"  [{ch['index']}] {ch['name']}{mark}: {ch['instructions']} instructions - "
            f"{ch['KernelNode']} kernels, {ch['AtenNode']} aten, {ch['IfNode']} if, "
            f"{ch['SymNode']} sym"
        )
    lines.append(f"if nodes: {len(d['if_nodes'])}")
    for node in d["if_nodes"]:
        lines.append(
            f"  in {node['chain']}: if {node['condition']} then {node['then']} else {node['else']}"
        )
    lines.append(
        f"kernels: {k['count']} ({k['distinct_sources']} distinct sources; "
        + ", ".join(f"{b} {n}" for b, n in k["sources_by_backend"].items())
        + (
            f"; {k['dependent_launch_sources']} launched dependently on CUDA sm_90+"
            if k["dependent_launch_sources"]
            else ""
        )
        + (f"; {k['tensor_map_sources']} taking tensor maps" if k.get("tensor_map_sources") else "")
        + ")"
    )
    if k.get("max_shared_memory_bytes"):
        lines.append(
            f"  shared memory a block: up to {k['max_shared_memory_bytes']} bytes "
            f"({k['max_shared_memory_bytes'] / 1024:.1f} KB; a card with less a block cannot "
            "launch that kernel: compile with --tuning from `ggufc tune` on it)"
        )
    for key, n in k["by_format_and_kind"].items():
        lines.append(f"  {key}: {n}")
    lines.append(f"aten ops: {sum(d['aten_ops'].values())}")
    for key, n in d["aten_ops"].items():
        lines.append(f"  {key}: {n}")
    lines.append(
        f"constants: {c['count']}, {c['referenced_bytes']} bytes referenced, "
        f"{c['stored_bytes']} stored, {c['dedup_saved_bytes']} saved by dedup, "
        f"{c['external_bytes']} external"
    )
    for path in c["external_files"]:
        lines.append(f"  external: {path}")
    lines.append(
        f"strings: {s['unique']} unique, {s['references']} references, {s['stored_bytes']} "
        f"bytes stored vs {s['uninterned_bytes']} without interning "
        f"({_percent(s['saved_bytes'], s['uninterned_bytes'])} saved)"
    )
    lines.append(
        f"  kernel sources+headers: {s['kernel_unique']} unique, {s['kernel_references']} "
        f"references, {s['kernel_stored_bytes']} bytes stored vs "
        f"{s['kernel_uninterned_bytes']} without interning"
    )
    return "\n".join(lines)


def inspect_program(path: str | os.PathLike, *, as_json: bool = False) -> str:
    """The output of ``ggufc inspect PROGRAM.ggufc [--json]``."""
    description = describe_program(path)
    if as_json:
        return json.dumps(description, indent=2)
    return render_description(description)


# ---- the `ggufc inspect` summary-module interface (compiler/cli/inspect_cmd.py) -----------


def summarize(path: str | os.PathLike, args=None) -> dict:
    """``ggufc inspect PROGRAM.ggufc``: the JSON-ready description (`args` unused)."""
    return describe_program(path)


def render_text(summary: dict) -> str:
    return render_description(summary)
