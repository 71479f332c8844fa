"""The dependent launch's ctypes marshalling (runtime_schema.cuda_driver), without a GPU: a
stand-in for cuLaunchKernelEx receives what the driver would."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from runtime_schema import cuda_driver
from runtime_schema.cuda_driver import (
    PROGRAMMATIC_STREAM_SERIALIZATION,
    DependentLauncher,
    DriverLaunchError,
)
from runtime_schema.cuda_launcher import CudaLaunchError


class FakeDriver:
    """libcuda with a cuLaunchKernelEx that records its arguments and returns ``status``."""

    def __init__(self, status=0):
        self.status = status
        self.calls = []
        driver = self

        class Function:
            argtypes = restype = None

            def __call__(self, config, function, params, extra):
                c = ctypes.cast(config, ctypes.POINTER(cuda_driver._LaunchConfig)).contents
                attribute = c.attributes[0]
                values = [params[i] for i in range(len(driver.expect))]
                driver.calls.append(
                    {
                        "grid": tuple(c.grid),
                        "block": tuple(c.block),
                        "shared": c.shared_memory_bytes,
                        "stream": c.stream,
                        "attributes": (c.attribute_count, attribute.id, attribute.value[0]),
                        "function": function,
                        "params": [
                            ctypes.cast(v, ctypes.POINTER(t)).contents.value
                            for v, t in zip(values, driver.expect, strict=True)
                        ],
                        "extra": extra,
                    }
                )
                return driver.status

        self.cuLaunchKernelEx = Function()


def launcher_with(monkeypatch, driver):
    monkeypatch.setattr(cuda_driver.ctypes, "CDLL", lambda name: driver)
    return DependentLauncher()


def test_launch_passes_config_attribute_and_arguments(monkeypatch):
    driver = FakeDriver()
    launcher = launcher_with(monkeypatch, driver)
    params = (np.uint64(0x7F0000001000), np.int64(-3), np.float32(0.5), np.int32(1))
    driver.expect = (ctypes.c_uint64, ctypes.c_int64, ctypes.c_float, ctypes.c_int32)
    launcher.launch(0xABC, (7, 2, 1), (128, 1, 1), 4096, 0x55, params, "k")
    (call,) = driver.calls
    assert call["grid"] == (7, 2, 1) and call["block"] == (128, 1, 1)
    assert call["shared"] == 4096 and call["stream"] == 0x55 and call["function"] == 0xABC
    assert call["attributes"] == (1, PROGRAMMATIC_STREAM_SERIALIZATION, 1)
    assert call["params"] == [0x7F0000001000, -3, 0.5, 1] and call["extra"] is None


def test_a_refused_launch_names_the_kernel_and_the_status(monkeypatch):
    driver = FakeDriver(status=1)
    driver.expect = ()
    launcher = launcher_with(monkeypatch, driver)
    with pytest.raises(DriverLaunchError, match=r"cuLaunchKernelEx of 'ggufc_k': CUresult 1"):
        launcher.launch(1, (1, 1, 1), (32, 1, 1), 0, 0, (), "ggufc_k")
    assert issubclass(DriverLaunchError, CudaLaunchError)


def test_a_driver_without_the_entry_point_is_named(monkeypatch):
    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(cuda_driver.ctypes, "CDLL", missing)
    with pytest.raises(DriverLaunchError, match="cuLaunchKernelEx"):
        DependentLauncher()
