"""GGUF kernel templates for Metal and CUDA and the emitter that specialises them.

``emit(backend, fmt, kind, dtype, geometry="default") -> KernelSource`` (entry, header,
source, launch rule; ``geometry``: one of `geometries`, picked by `pick_geometry`);
see :mod:`codegen.kernels.emitter` for the template-constant / kernel-argument rule and the
kernel signatures, :mod:`codegen.kernels.launch` for grid and block.
"""

from codegen.kernels.emitter import (
    BACKENDS,
    DTYPES,
    FORMAT_NAMES,
    KINDS,
    LINEAR_KINDS,
    KernelSource,
    all_kernels,
    emit,
    emit_header,
    entry_name,
    geometries,
    pick_geometry,
    translation_unit,
)
from codegen.kernels.launch import GridExtent, LaunchRule, TensorMapRule

__all__ = [
    "BACKENDS",
    "DTYPES",
    "FORMAT_NAMES",
    "KINDS",
    "LINEAR_KINDS",
    "GridExtent",
    "KernelSource",
    "LaunchRule",
    "TensorMapRule",
    "all_kernels",
    "emit",
    "emit_header",
    "entry_name",
    "geometries",
    "pick_geometry",
    "translation_unit",
]
