"""Programmatic dependent launch: ``cuLaunchKernelEx`` through ctypes on the CUDA driver.

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
sizes, the dynamic shared memory, the stream, the attribute array and its length.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np

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
    """Launches CUfunctions with programmatic stream serialization allowed."""

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
        params: Sequence[np.generic],
        name: str,
    ) -> None:
        """Launches CUfunction ``function`` on CUstream ``stream``; ``params`` are the kernel's
        arguments as numpy scalars of their C types (`cuda_launcher`'s convention)."""
        # one contiguous copy of each argument, alive for the call
        values = [np.array(p) for p in params]
        pointers = (ctypes.c_void_p * len(values))(*(v.ctypes.data for v in values))
        config = _LaunchConfig(
            grid=(ctypes.c_uint32 * 3)(*grid),
            block=(ctypes.c_uint32 * 3)(*block),
            shared_memory_bytes=shared_memory_bytes,
            stream=stream,
            attributes=ctypes.pointer(self._attribute),
            attribute_count=1,
        )
        status = self._launch(ctypes.byref(config), function, pointers, None)
        if status != CUDA_SUCCESS:
            raise DriverLaunchError(f"cuLaunchKernelEx of {name!r}: CUresult {status}")


__all__ = ["PROGRAMMATIC_STREAM_SERIALIZATION", "DependentLauncher", "DriverLaunchError"]
