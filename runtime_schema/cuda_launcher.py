"""Compile a KernelNode's CUDA source with NVRTC (through CuPy) and launch it.

* One compiled function per distinct (header, source, entry), keyed by their SHA-256 and
  kept for the life of the launcher; 62 layers sharing a source compile it once.  The
  digest of a source object is remembered too, so a launch hashes nothing.
* Code compiled = ``header + "\\n" + source``; ``entry`` must name an ``extern "C"``
  ``__global__`` function, or a template instance (``name<...>``), which is passed to
  NVRTC as a name expression.
* Parameters, in order (the contract with `codegen`): one device pointer per tensor
  (inputs, then outputs), then the scalar arguments: ints as int64, floats as float32,
  bools as int32, then one 128-byte tensor map per entry of the source's ``tensor_maps``
  (encoded here for the tensor it names, `runtime_schema.cuda_driver.TensorMapEncoder`;
  such a kernel is launched through ``cuLaunchKernelEx``, with or without the dependent
  launch's attribute).
* Launched on PyTorch's current CUDA stream, so it is ordered with the torch ops around it.
* A source marked ``dependent_launch`` (every ggufc CUDA kernel: it waits for the kernels
  before it, ``prelude.cuh``) is launched on a compute capability 9.0+ device with
  programmatic stream serialization (`runtime_schema.cuda_driver`): it starts during the
  previous kernel's last wave, so its first weight loads overlap that kernel's tail
  (1.2-2 us a launch on an H100; BENCHMARKS.md).  ``GGUFC_DEPENDENT_LAUNCH=0`` or
  ``CudaLauncher(dependent_launch=False)`` launches every kernel plainly.
* On a compute capability 9.0 device (H100, H200) sources are compiled for ``sm_90a``, whose
  architecture-specific instructions (wgmma: the 16-bit matmul's warpgroup path) the portable
  ``sm_90`` target lacks; kernels test ``__CUDA_ARCH_FEAT_SM90_ALL`` and keep a portable path.
  ``CudaLauncher(arch_specific=False)`` compiles for the plain target (tests of that path).

CuPy is an optional dependency (``pip install ggufc[cuda]``); importing this module
without it fails only when a launcher is created.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import torch

from compiler.errors import GgufcError
from runtime_schema.program import KernelSource

NVRTC_OPTIONS = ("--std=c++17",)
# compute capability -> the NVRTC target with its architecture-specific features
ARCH_SPECIFIC_TARGETS = {(9, 0): "sm_90a"}
TEMPLATE_MARK = "<"
# Dynamic shared memory a launch may ask for without opting the function in first; a kernel
# that needs more (the CUDA 16-bit matmul's stages) gets the function attribute raised once.
DEFAULT_DYNAMIC_SHARED_BYTES = 48 * 1024
# griddepcontrol (the kernels' side of a dependent launch) needs compute capability 9.0
DEPENDENT_LAUNCH_MIN_CAPABILITY = (9, 0)
# "0" turns dependent launches off (A/B measurements, a driver that refuses them)
DEPENDENT_LAUNCH_ENV = "GGUFC_DEPENDENT_LAUNCH"


class CudaLaunchError(GgufcError):
    """A CUDA kernel could not be compiled or launched."""


def source_digest(source: KernelSource) -> str:
    h = hashlib.sha256()
    for part in (source.header, source.source, source.entry):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _scalar(value) -> np.generic:
    if isinstance(value, bool):
        return np.int32(value)
    if isinstance(value, int):
        return np.int64(value)
    if isinstance(value, float):
        return np.float32(value)
    raise CudaLaunchError(f"kernel argument {value!r} is not an int, float or bool")


def architecture_options(arch_specific: bool) -> tuple[str, ...]:
    """NVRTC's target option for the current device: its arch-specific target where
    ARCH_SPECIFIC_TARGETS has one (and ``arch_specific``), else none (CuPy then targets the
    device's plain architecture)."""
    if not arch_specific:
        return ()
    target = ARCH_SPECIFIC_TARGETS.get(torch.cuda.get_device_capability())
    return (f"--gpu-architecture={target}",) if target else ()


def function_handle(fn) -> int:
    """The CUfunction of a compiled kernel: CuPy's RawKernel holds it as ``kernel.ptr`` (a
    ``cupy.cuda.function.Function``, which older CuPy returned directly)."""
    return getattr(fn, "kernel", fn).ptr


def tensor_map_parameters(encoder, source: KernelSource, tensors) -> tuple[np.ndarray, ...]:
    """The 128-byte tensor maps ``source`` takes after its scalars, encoded by ``encoder`` (a
    `runtime_schema.cuda_driver.TensorMapEncoder`) for this launch's ``tensors``: an optional
    map of a tensor no map can describe as zeros (the kernel then copies that tensor itself)."""
    from runtime_schema.cuda_driver import TENSOR_MAP_BYTES

    maps = []
    for i, m in enumerate(source.tensor_maps):
        where = f"{source.entry!r} tensor map {i} (tensor {m.tensor})"
        if not 0 <= m.tensor < len(tensors):
            raise CudaLaunchError(f"{where}: the launch has {len(tensors)} tensors")
        tensor = tensors[m.tensor]
        if m.optional and not encoder.describable(tensor):
            maps.append(np.zeros(TENSOR_MAP_BYTES, dtype=np.uint8))
            continue
        maps.append(
            encoder.encode(tensor, m.box_inner, m.box_rows, where, m.swizzle, m.element_bytes)
        )
    return tuple(maps)


class CudaLauncher:
    """Compiles KernelSources with NVRTC (through CuPy) and launches them on PyTorch's current
    stream.  ``target`` (an NVRTC ``--gpu-architecture`` value) overrides the device's own:
    ``compute_80`` makes PTX the driver compiles for the device, running kernels' pre-sm_90
    paths on an H100 (tests of those paths).  ``dependent_launch``: launch sources marked
    ``dependent_launch`` with programmatic stream serialization; by default where the device
    has compute capability 9.0+, ``GGUFC_DEPENDENT_LAUNCH`` is not ``0`` and no ``target`` is
    given (a build for an older target, ``compute_80``, has no wait in its kernels)."""

    def __init__(
        self,
        arch_specific: bool = True,
        target: str | None = None,
        dependent_launch: bool | None = None,
    ):
        try:
            import cupy
        except ImportError as exc:
            raise CudaLaunchError(
                "running KernelNodes on CUDA needs CuPy: pip install 'ggufc[cuda]'"
            ) from exc
        self._cupy = cupy
        self._options = NVRTC_OPTIONS + (
            (f"--gpu-architecture={target}",) if target else architecture_options(arch_specific)
        )
        self._functions: dict[str, object] = {}
        # id(source) -> (source, function); holding the source keeps its id from being reused
        self._by_object: dict[int, tuple[KernelSource, object]] = {}
        self._streams: dict[int, object] = {}
        # id(function) -> dynamic shared memory it has been allowed (functions live as long)
        self._shared_allowed: dict[int, int] = {}
        if dependent_launch is None:
            dependent_launch = (
                target is None
                and os.environ.get(DEPENDENT_LAUNCH_ENV, "1") != "0"
                and torch.cuda.get_device_capability() >= DEPENDENT_LAUNCH_MIN_CAPABILITY
            )
        self._dependent = bool(dependent_launch)
        self._driver = None  # cuLaunchKernelEx, for dependent launches and tensor maps
        self._tensor_maps = None  # cuTensorMapEncodeTiled, once a source takes a tensor map
        if self._dependent:
            self._driver_launcher()  # a driver without cuLaunchKernelEx fails here, not later

    @property
    def dependent_launch(self) -> bool:
        """Whether sources marked ``dependent_launch`` are launched dependently."""
        return self._dependent

    def function(self, source: KernelSource):
        known = self._by_object.get(id(source))
        if known is not None and known[0] is source:
            return known[1]
        fn = self._compiled(source)
        self._by_object[id(source)] = (source, fn)
        return fn

    def _compiled(self, source: KernelSource):
        key = source_digest(source)
        fn = self._functions.get(key)
        if fn is None:
            cupy = self._cupy
            templated = TEMPLATE_MARK in source.entry
            try:
                module = cupy.RawModule(
                    code=source.header + "\n" + source.source,
                    options=self._options,
                    name_expressions=(source.entry,) if templated else None,
                )
                fn = module.get_function(source.entry)
            except Exception as exc:  # NVRTC and driver errors have no common base class
                raise CudaLaunchError(f"compiling {source.entry!r}: {exc}") from exc
            self._functions[key] = fn
        return fn

    def _torch_stream(self):
        """PyTorch's current stream as a CuPy stream (CuPy 14 takes the CUDA stream
        protocol; older CuPy only the raw handle)."""
        current = torch.cuda.current_stream()
        stream = self._streams.get(current.cuda_stream)
        if stream is None:
            stream = self._streams[current.cuda_stream] = self._cupy_stream(current)
        return stream

    def _cupy_stream(self, current):
        from_external = getattr(self._cupy.cuda.Stream, "from_external", None)
        if from_external is not None and hasattr(current, "__cuda_stream__"):
            return from_external(current)
        return self._cupy.cuda.ExternalStream(current.cuda_stream)

    def _allow_shared_memory(self, source: KernelSource, fn, nbytes: int) -> None:
        """Raises the function's dynamic shared memory limit to ``nbytes`` (cuFuncSetAttribute
        through CuPy's ``Function.max_dynamic_shared_size_bytes``); fails, naming the kernel,
        where the device or CuPy cannot."""
        if self._shared_allowed.get(id(fn), 0) >= nbytes:
            return
        try:
            fn.max_dynamic_shared_size_bytes = nbytes
        except Exception as exc:  # an old CuPy without the attribute, or a device with less
            raise CudaLaunchError(
                f"{source.entry!r} needs {nbytes} bytes of shared memory per block: {exc} "
                "(the lowering assumes an H100's 227 KB unless told the card: compile with "
                "--tuning, a file `ggufc tune` wrote on this device)"
            ) from exc
        self._shared_allowed[id(fn)] = nbytes

    def _driver_launcher(self):
        if self._driver is None:
            from runtime_schema.cuda_driver import DependentLauncher

            self._driver = DependentLauncher()
        return self._driver

    def _encode_tensor_maps(self, source: KernelSource, tensors) -> tuple[np.ndarray, ...]:
        """The tensor maps ``source`` takes after its scalars, for this launch's tensors."""
        if self._tensor_maps is None:
            from runtime_schema.cuda_driver import TensorMapEncoder

            self._tensor_maps = TensorMapEncoder()
        return tensor_map_parameters(self._tensor_maps, source, tensors)

    def launch(
        self, source, *, grid, block, shared_memory_bytes, tensors, scalars, dependent=True
    ) -> None:
        """Launches ``source`` on torch's current stream; ``dependent=False`` launches a
        source marked ``dependent_launch`` plainly (its weight blocks are not constants)."""
        if 0 in grid:
            return  # nothing to compute (an empty dimension)
        fn = self.function(source)
        if shared_memory_bytes > DEFAULT_DYNAMIC_SHARED_BYTES:
            self._allow_shared_memory(source, fn, shared_memory_bytes)
        params = tuple(np.uint64(t.data_ptr()) for t in tensors) + tuple(
            _scalar(s) for s in scalars
        )
        dependent = dependent and self._dependent and source.dependent_launch
        if source.tensor_maps:
            params += self._encode_tensor_maps(source, tensors)
        if dependent or source.tensor_maps:
            self._driver_launcher().launch(
                function_handle(fn),
                grid,
                block,
                shared_memory_bytes,
                torch.cuda.current_stream().cuda_stream,
                params,
                source.entry,
                dependent=dependent,
            )
            return
        stream = self._torch_stream()
        try:
            with stream:
                fn(grid, block, params, shared_mem=shared_memory_bytes)
        except Exception as exc:  # CUDA driver errors
            raise CudaLaunchError(f"launching {source.entry!r}: {exc}") from exc
