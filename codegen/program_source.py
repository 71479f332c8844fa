"""A generated kernel (`codegen.kernels`: a GGUF kernel's KernelSource or another kernel's
GeneratedKernel) as a program's `runtime_schema.program.KernelSource`: what the lowering puts
in a KernelNode and what `codegen.cuda_run` launches."""

from __future__ import annotations

from dataclasses import asdict

from runtime_schema.program import Backend, KernelSource, TensorMap

BACKEND_ENUMS = {"metal": Backend.METAL, "cuda": Backend.CUDA}


def program_source(backend: str, generated) -> KernelSource:
    """The program's KernelSource of ``generated`` for ``backend``: entry, source, header,
    whether it launches dependently, and on CUDA the tensor maps of its launch rule."""
    launch = getattr(generated, "launch", None)  # a GeneratedKernel (attention, ...) has none
    maps = launch.tensor_maps if backend == "cuda" and launch is not None else ()
    return KernelSource(
        backend=BACKEND_ENUMS[backend],
        entry=generated.entry,
        source=generated.source,
        header=generated.header,
        dependent_launch=generated.dependent_launch,
        # a launch rule's TensorMapRule has the program's TensorMap fields, by name
        tensor_maps=tuple(TensorMap(**asdict(m)) for m in maps),
    )


__all__ = ["BACKEND_ENUMS", "program_source"]
