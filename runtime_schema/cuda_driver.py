"""The CUDA driver through ctypes: ``cuLaunchKernelEx`` (programmatic dependent launch, and
kernels that take tensor maps) and ``cuTensorMapEncodeTiled``.

A kernel launched with the launch attribute ``CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION``
may start before the kernel ahead of it in the stream has finished: its blocks are scheduled
once every block of that kernel has run ``griddepcontrol.launch_dependents`` (or exited), and
it must itself run ``griddepcontrol.wait`` before it reads that kernel's results (ggufc's
CUDA kernels: ``prelude.cuh``, a program's ``KernelSource.dependent_launch``).  Captured in a
CUDA graph the attribute becomes a programmatic edge.  Compute capability 9.0 and later.

CuPy launches through ``cuLaunchKernel``, which takes no attributes, so this module calls
``cuLaunchKernelEx`` itself on the function CuPy compiled (``Function.ptr``).  The structures
are those of ``cuda.h`` (CUDA 12 and 13), their sizes checked below: ``CUlaunchAttribute`` is
an id and a 64-byte value union at offset 8; ``CUlaunchConfig`` three grid and three block
sizes, the dynamic shared memory, the stream, the attribute array and its length.  CuPy's
launch takes no argument that is not a pointer or a scalar either, so a kernel taking a tensor
map (a 128-byte ``CUtensorMap`` by value, ``KernelSource.tensor_maps``) is launched here too,
with or without the attribute.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np
import torch

from runtime_schema.cuda_launcher import CudaLaunchError

# cuda.h: CUlaunchAttributeID
PROGRAMMATIC_STREAM_SERIALIZATION = 6
# cuda.h: CUresult CUDA_SUCCESS
CUDA_SUCCESS = 0
LAUNCH_ATTRIBUTE_VALUE_BYTES = 64


class DriverLaunchError(CudaLaunchError):
    """The CUDA driver refused a launch."""


class _LaunchAttribute(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("pad", ctypes.c_uint8 * 4),
        ("value", ctypes.c_uint8 * LAUNCH_ATTRIBUTE_VALUE_BYTES),
    ]


class _LaunchConfig(ctypes.Structure):
    _fields_ = [
        ("grid", ctypes.c_uint32 * 3),
        ("block", ctypes.c_uint32 * 3),
        ("shared_memory_bytes", ctypes.c_uint32),
        ("stream", ctypes.c_void_p),
        ("attributes", ctypes.POINTER(_LaunchAttribute)),
        ("attribute_count", ctypes.c_uint32),
    ]


# the layouts of cuda.h on a 64-bit host
assert ctypes.sizeof(_LaunchAttribute) == 72 and _LaunchAttribute.value.offset == 8
assert ctypes.sizeof(_LaunchConfig) == 56 and _LaunchConfig.stream.offset == 32


class DependentLauncher:
    """Launches CUfunctions through ``cuLaunchKernelEx``, with programmatic stream
    serialization allowed unless a launch says otherwise."""

    def __init__(self):
        try:
            driver = ctypes.CDLL("libcuda.so.1")
            launch = driver.cuLaunchKernelEx
        except (OSError, AttributeError) as exc:
            raise DriverLaunchError(
                f"dependent launch needs cuLaunchKernelEx (CUDA 11.8+ driver): {exc}"
            ) from exc
        launch.argtypes = [
            ctypes.POINTER(_LaunchConfig),
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_void_p,
        ]
        launch.restype = ctypes.c_int
        self._launch = launch
        self._attribute = _LaunchAttribute(id=PROGRAMMATIC_STREAM_SERIALIZATION)
        self._attribute.value[0] = 1  # programmaticStreamSerializationAllowed

    def launch(
        self,
        function: int,
        grid: Sequence[int],
        block: Sequence[int],
        shared_memory_bytes: int,
        stream: int,
        params: Sequence[np.generic | np.ndarray],
        name: str,
        dependent: bool = True,
    ) -> None:
        """Launches CUfunction ``function`` on CUstream ``stream``; ``params`` are the kernel's
        arguments as numpy scalars of their C types (`cuda_launcher`'s convention), or arrays
        of an argument's bytes (a tensor map).  ``dependent=False``: without the attribute."""
        # one contiguous copy of each argument, alive for the call
        values = [np.array(p) for p in params]
        pointers = (ctypes.c_void_p * len(values))(*(v.ctypes.data for v in values))
        config = _LaunchConfig(
            grid=(ctypes.c_uint32 * 3)(*grid),
            block=(ctypes.c_uint32 * 3)(*block),
            shared_memory_bytes=shared_memory_bytes,
            stream=stream,
            attributes=ctypes.pointer(self._attribute),
            attribute_count=1 if dependent else 0,
        )
        status = self._launch(ctypes.byref(config), function, pointers, None)
        if status != CUDA_SUCCESS:
            raise DriverLaunchError(f"cuLaunchKernelEx of {name!r}: CUresult {status}")


# cuda.h: CUtensorMapDataType by torch dtype, and the fixed choices of ggufc's tensor maps
TENSOR_MAP_DATA_TYPES = {
    torch.uint8: 0,
    torch.uint16: 1,
    torch.uint32: 2,
    torch.float16: 6,
    torch.float32: 7,
    torch.bfloat16: 9,
}
# a uint8 tensor read as wider elements (TensorMap.element_bytes 2 / 4): boxes past 256 bytes
WIDE_ELEMENTS = {2: torch.uint16, 4: torch.uint32}
TENSOR_MAP_BYTES = 128
TENSOR_MAP_ALIGNMENT = 16  # bytes: the global address and every row stride
TENSOR_MAP_INTERLEAVE_NONE = 0
# by swizzle bytes: none (bytes as they are), or the 128-byte swizzle wgmma reads
# (codegen/kernels/cuda/matmul_wgmma.cuh)
TENSOR_MAP_SWIZZLES = {0: 0, 128: 3}
TENSOR_MAP_L2_PROMOTION_256B = 3
TENSOR_MAP_OOB_FILL_ZEROS = 0  # CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE: zeros past the edges


class TensorMapEncoder:
    """``cuTensorMapEncodeTiled``: the 128 bytes of a 2-D tensor map (CUDA 12+ driver)."""

    def __init__(self):
        try:
            encode = ctypes.CDLL("libcuda.so.1").cuTensorMapEncodeTiled
        except (OSError, AttributeError) as exc:
            raise DriverLaunchError(
                f"tensor maps need cuTensorMapEncodeTiled (CUDA 12+ driver): {exc}"
            ) from exc
        u64s, u32s = ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint32)
        encode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_uint32,
            ctypes.c_void_p,
            u64s,
            u64s,
            u32s,
            u32s,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
        ]
        encode.restype = ctypes.c_int
        self._encode = encode

    @staticmethod
    def describable(tensor: torch.Tensor) -> bool:
        """Whether a map can describe ``tensor``: its address and rows on 16-byte boundaries
        (an optional map of another is passed as zeros, `cuda_launcher`; a kernel taking one
        tests `ggufc::encoded`)."""
        inner = tensor.shape[-1] if tensor.dim() else 1
        return (
            tensor.data_ptr() % TENSOR_MAP_ALIGNMENT == 0
            and inner * tensor.element_size() % TENSOR_MAP_ALIGNMENT == 0
        )

    def encode(
        self,
        tensor: torch.Tensor,
        box_inner: int,
        box_rows: int,
        where: str,
        swizzle: int = 128,
        element_bytes: int = 1,
    ) -> np.ndarray:
        """The map of contiguous ``tensor`` as a [rows, last dim] matrix with boxes of
        ``box_rows`` x ``box_inner`` elements (``swizzle``: 128-byte swizzle or 0, none; zeros
        past the edges); ``element_bytes`` 2 or 4 reads a uint8 tensor as elements that wide
        (1: its own elements); ``where`` names the kernel and parameter in errors."""
        if element_bytes != 1:
            if tensor.dtype != torch.uint8 or element_bytes not in WIDE_ELEMENTS:
                raise DriverLaunchError(
                    f"{where}: elements of {element_bytes} bytes need a uint8 tensor and 2 or "
                    f"4 bytes, got {tensor.dtype} and {element_bytes}"
                )
            if self.describable(tensor):  # rows of 16-byte words: whole wider elements
                tensor = tensor.view(WIDE_ELEMENTS[element_bytes])
        data_type = TENSOR_MAP_DATA_TYPES.get(tensor.dtype)
        inner = tensor.shape[-1] if tensor.dim() else 1
        row_bytes = inner * tensor.element_size()
        if swizzle not in TENSOR_MAP_SWIZZLES:
            raise DriverLaunchError(
                f"{where}: swizzle {swizzle}, expected one of {sorted(TENSOR_MAP_SWIZZLES)}"
            )
        if data_type is None or not tensor.is_contiguous() or tensor.numel() == 0:
            raise DriverLaunchError(
                f"{where}: a tensor map needs a non-empty contiguous tensor of "
                f"{sorted(str(d) for d in TENSOR_MAP_DATA_TYPES)}, got {tensor.dtype} "
                f"{tuple(tensor.shape)} (contiguous: {tensor.is_contiguous()})"
            )
        if not self.describable(tensor):
            raise DriverLaunchError(
                f"{where}: a tensor map needs its address and rows ({row_bytes} bytes) on "
                f"{TENSOR_MAP_ALIGNMENT}-byte boundaries (address {tensor.data_ptr():#x})"
            )
        result = np.zeros(TENSOR_MAP_BYTES, dtype=np.uint8)
        status = self._encode(
            result.ctypes.data,
            data_type,
            2,
            tensor.data_ptr(),
            (ctypes.c_uint64 * 2)(inner, tensor.numel() // inner),
            (ctypes.c_uint64 * 1)(row_bytes),
            (ctypes.c_uint32 * 2)(box_inner, box_rows),
            (ctypes.c_uint32 * 2)(1, 1),
            TENSOR_MAP_INTERLEAVE_NONE,
            TENSOR_MAP_SWIZZLES[swizzle],
            TENSOR_MAP_L2_PROMOTION_256B,
            TENSOR_MAP_OOB_FILL_ZEROS,
        )
        if status != CUDA_SUCCESS:
            raise DriverLaunchError(
                f"{where}: cuTensorMapEncodeTiled of a {tuple(tensor.shape)} {tensor.dtype} "
                f"tensor with {box_rows} x {box_inner} boxes: CUresult {status}"
            )
        return result


__all__ = [
    "PROGRAMMATIC_STREAM_SERIALIZATION",
    "TENSOR_MAP_DATA_TYPES",
    "DependentLauncher",
    "DriverLaunchError",
    "TensorMapEncoder",
]
