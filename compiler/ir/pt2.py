"""Load and save graph programs as `.pt2` files (`torch.export.save` archives).

Saving re-exports the program's GraphModule: each input dim that is a plain symbol becomes a
`torch.export.Dim` with the symbol's range from `symbol_ranges` (one Dim per symbol, shared by
every input that uses it); other dims are static.  Example inputs come from
`GraphProgram.example_inputs()` (symbols at their defaults).  The archive is written to a
temporary file next to `path` and renamed, so a failed save leaves no partial file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import sympy
import torch

from compiler.errors import GgufcError, ProgramFormatError, VerificationError
from compiler.ir.program import _UNBOUNDED, GraphProgram

PT2_SUFFIX = ".pt2"


def load_pt2(path: str | os.PathLike) -> GraphProgram:
    """`torch.export.load` + `GraphProgram.from_exported`."""
    path = Path(path)
    if not path.is_file():
        raise ProgramFormatError(f"{path}: no such .pt2 file")
    try:
        exported = torch.export.load(path)
    # torch raises many exception types for a damaged archive.
    except Exception as exc:  # noqa: BLE001
        raise ProgramFormatError(f"{path}: not a torch.export archive: {exc}") from None
    return GraphProgram.from_exported(exported)


def save_pt2(gp: GraphProgram, path: str | os.PathLike) -> None:
    """Re-export `gp` with dynamic shapes from its symbol ranges and save it atomically."""
    path = Path(path)
    exported = export_program(gp)
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + PT2_SUFFIX, dir=directory
    )
    os.close(handle)
    try:
        torch.export.save(exported, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def export_program(gp: GraphProgram) -> torch.export.ExportedProgram:
    """`torch.export.export` of the program's GraphModule with its dynamic dims."""
    inputs = gp.example_inputs()
    dims: dict[str, torch.export.Dim] = {}
    dynamic_shapes = []
    for node in gp.inputs:
        fake = node.meta.get("val")
        spec = None
        if isinstance(fake, torch.Tensor):
            spec = {}
            for index, size in enumerate(fake.shape):
                symbol = _plain_symbol(size)
                if symbol is not None and symbol in gp.symbol_ranges:
                    spec[index] = dims.setdefault(symbol, _dim(symbol, gp.symbol_ranges[symbol]))
            spec = spec or None
        dynamic_shapes.append(spec)
    try:
        return torch.export.export(
            gp.graph_module, inputs, dynamic_shapes=tuple(dynamic_shapes), strict=False
        )
    except GgufcError:
        raise
    except Exception as exc:  # export reports constraint violations etc. with many types
        raise VerificationError(f"cannot re-export the graph program: {exc}") from exc


def _plain_symbol(size) -> str | None:
    if not isinstance(size, torch.SymInt):
        return None
    expr = size.node.expr
    shape_env = getattr(size.node, "shape_env", None)
    if shape_env is not None:
        expr = shape_env.replace(expr)
    return str(expr) if isinstance(expr, sympy.Symbol) else None


def _dim(symbol: str, bounds: tuple[int, int]) -> torch.export.Dim:
    low, high = bounds
    if high >= _UNBOUNDED:
        return torch.export.Dim(f"dim_{symbol}", min=low)
    return torch.export.Dim(f"dim_{symbol}", min=low, max=high)


__all__ = ["export_program", "load_pt2", "save_pt2"]
