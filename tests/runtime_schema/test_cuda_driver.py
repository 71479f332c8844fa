"""The CUDA driver's ctypes marshalling (runtime_schema.cuda_driver), without a GPU: stand-ins
for cuLaunchKernelEx and cuTensorMapEncodeTiled receive what the driver would."""

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
from runtime_schema.cuda_launcher import CudaLaunchError, tensor_map_parameters


def _value(c_object):
    """A ctypes scalar's value, or an array's bytes."""
    return bytes(c_object) if isinstance(c_object, ctypes.Array) else c_object.value


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
                            _value(ctypes.cast(v, ctypes.POINTER(t)).contents)
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


def test_a_launch_may_leave_out_the_dependent_attribute(monkeypatch):
    """A kernel that takes a tensor map is launched here whether or not it may start early;
    the map's 128 bytes pass by value like any argument."""
    driver = FakeDriver()
    launcher = launcher_with(monkeypatch, driver)
    tensor_map = np.arange(128, dtype=np.uint8)
    driver.expect = (ctypes.c_int32, ctypes.c_uint8 * 128)
    launcher.launch(1, (1, 1, 1), (32, 1, 1), 0, 0, (np.int32(7), tensor_map), "k", dependent=False)
    (call,) = driver.calls
    assert call["attributes"][0] == 0
    assert call["params"] == [7, bytes(range(128))]


class FakeEncoder:
    """libcuda with a cuTensorMapEncodeTiled that records its arguments and fills the map."""

    def __init__(self, status=0):
        self.status, self.calls = status, []
        encoder = self

        class Function:
            argtypes = restype = None

            def __call__(self, out, dtype, rank, address, dims, strides, box, steps, *modes):
                encoder.calls.append(
                    {
                        "dtype": dtype,
                        "rank": rank,
                        "address": address,
                        "dims": tuple(dims[i] for i in range(rank)),
                        "strides": tuple(strides[i] for i in range(rank - 1)),
                        "box": tuple(box[i] for i in range(rank)),
                        "steps": tuple(steps[i] for i in range(rank)),
                        "modes": modes,
                    }
                )
                ctypes.memset(out, 0xAB, cuda_driver.TENSOR_MAP_BYTES)
                return encoder.status

        self.cuTensorMapEncodeTiled = Function()


def encoder_with(monkeypatch, library):
    monkeypatch.setattr(cuda_driver.ctypes, "CDLL", lambda name: library)
    return cuda_driver.TensorMapEncoder()


def test_a_tensor_map_is_the_tensor_as_rows_of_its_last_dim(monkeypatch):
    import torch

    library = FakeEncoder()
    encoder = encoder_with(monkeypatch, library)
    x = torch.zeros(3, 5, 64, dtype=torch.float16)
    encoded = encoder.encode(x, 64, 256, "k tensor map 0")
    assert encoded.dtype == np.uint8 and bytes(encoded) == b"\xab" * 128
    (call,) = library.calls
    assert call["dtype"] == cuda_driver.TENSOR_MAP_DATA_TYPES[torch.float16]
    assert call["rank"] == 2 and call["address"] == x.data_ptr()
    assert call["dims"] == (64, 15) and call["strides"] == (128,)
    assert call["box"] == (64, 256) and call["steps"] == (1, 1)
    assert call["modes"] == (
        cuda_driver.TENSOR_MAP_INTERLEAVE_NONE,
        cuda_driver.TENSOR_MAP_SWIZZLES[128],
        cuda_driver.TENSOR_MAP_L2_PROMOTION_256B,
        cuda_driver.TENSOR_MAP_OOB_FILL_ZEROS,
    )
    # weight blocks: bytes, rows of a whole number of 16-byte words, copied as they are
    blocks = torch.zeros(300, 8064, dtype=torch.uint8)
    encoder.encode(blocks, 176, 128, "k tensor map 1", swizzle=0)
    call = library.calls[-1]
    assert call["dtype"] == cuda_driver.TENSOR_MAP_DATA_TYPES[torch.uint8]
    assert call["dims"] == (8064, 300) and call["strides"] == (8064,) and call["box"] == (176, 128)
    assert call["modes"][1] == cuda_driver.TENSOR_MAP_SWIZZLES[0]
    assert encoder.describable(blocks)
    assert not encoder.describable(torch.zeros(300, 8066, dtype=torch.uint8))
    # the same bytes as 2-byte elements: a box of 272 bytes a row is 136 of them
    encoder.encode(blocks, 136, 16, "k tensor map 1", swizzle=0, element_bytes=2)
    call = library.calls[-1]
    assert call["dtype"] == cuda_driver.TENSOR_MAP_DATA_TYPES[torch.uint16]
    assert call["address"] == blocks.data_ptr()
    assert call["dims"] == (4032, 300) and call["strides"] == (8064,) and call["box"] == (136, 16)
    encoder.encode(blocks, 68, 16, "k tensor map 1", swizzle=0, element_bytes=4)
    assert library.calls[-1]["dtype"] == cuda_driver.TENSOR_MAP_DATA_TYPES[torch.uint32]
    assert library.calls[-1]["dims"] == (2016, 300)


def test_tensors_a_map_cannot_describe_are_refused_by_name(monkeypatch):
    import torch

    library = FakeEncoder()
    encoder = encoder_with(monkeypatch, library)
    with pytest.raises(DriverLaunchError, match="'k' tensor map 0: .*contiguous"):
        encoder.encode(torch.zeros(64, 8, dtype=torch.float16).T, 64, 8, "'k' tensor map 0")
    with pytest.raises(DriverLaunchError, match="'k' tensor map 0: .*torch.int64"):
        encoder.encode(torch.zeros(8, 64, dtype=torch.int64), 64, 8, "'k' tensor map 0")
    with pytest.raises(DriverLaunchError, match="elements of 2 bytes need a uint8 tensor"):
        encoder.encode(torch.zeros(8, 64, dtype=torch.float16), 32, 8, "'k' tensor map 0", 0, 2)
    with pytest.raises(DriverLaunchError, match="elements of 8 bytes need .* 2 or 4"):
        encoder.encode(torch.zeros(8, 64, dtype=torch.uint8), 8, 8, "'k' tensor map 0", 0, 8)
    with pytest.raises(DriverLaunchError, match=r"rows \(6 bytes\) on 16-byte boundaries"):
        encoder.encode(torch.zeros(8, 3, dtype=torch.float16), 64, 8, "'k' tensor map 0")
    shifted = torch.zeros(8 * 64 + 1, dtype=torch.float16)[1:].view(8, 64)
    with pytest.raises(DriverLaunchError, match="16-byte boundaries"):
        encoder.encode(shifted, 64, 8, "'k' tensor map 0")
    assert not library.calls
    library.status = 1
    with pytest.raises(DriverLaunchError, match=r"cuTensorMapEncodeTiled .* CUresult 1"):
        encoder.encode(torch.zeros(8, 64, dtype=torch.float16), 64, 8, "'k' tensor map 0")


def test_a_driver_without_the_tensor_map_entry_point_is_named(monkeypatch):
    monkeypatch.setattr(cuda_driver.ctypes, "CDLL", lambda name: object())
    with pytest.raises(DriverLaunchError, match="cuTensorMapEncodeTiled"):
        cuda_driver.TensorMapEncoder()


def test_an_optional_map_of_a_tensor_no_map_describes_is_passed_as_zeros(monkeypatch):
    """The matmul's weight blocks come by tensor map where their rows are whole 16-byte words
    and as 128 zero bytes elsewhere (the kernel tests `ggufc::encoded` and copies them); a
    map that is not optional is refused instead, naming the kernel and map."""
    import torch

    from runtime_schema.program import Backend, KernelSource, TensorMap

    library = FakeEncoder()
    encoder = encoder_with(monkeypatch, library)
    source = KernelSource(
        Backend.CUDA,
        "k",
        "",
        tensor_maps=(TensorMap(0, 64, 128), TensorMap(1, 176, 128, swizzle=0, optional=True)),
    )
    x = torch.zeros(300, 2048, dtype=torch.float16)
    whole_words = torch.zeros(300, 8064, dtype=torch.uint8)  # Q4_0, K = 14336
    ragged = torch.zeros(300, 8066, dtype=torch.uint8)
    mapped = tensor_map_parameters(encoder, source, (x, whole_words))
    assert [bytes(m) for m in mapped] == [b"\xab" * 128] * 2
    assert library.calls[-1]["dims"] == (8064, 300) and library.calls[-1]["box"] == (176, 128)
    calls = len(library.calls)
    x_only = tensor_map_parameters(encoder, source, (x, ragged))
    assert bytes(x_only[0]) == b"\xab" * 128 and bytes(x_only[1]) == bytes(128)
    assert len(library.calls) == calls + 1  # the optional map was not encoded
    required = KernelSource(Backend.CUDA, "k", "", tensor_maps=(TensorMap(1, 176, 128, 0),))
    with pytest.raises(DriverLaunchError, match=r"'k' tensor map 0 \(tensor 1\): .*16-byte"):
        tensor_map_parameters(encoder, required, (x, ragged))
    with pytest.raises(CudaLaunchError, match=r"'k' tensor map 1 \(tensor 1\): .* 1 tensors"):
        tensor_map_parameters(encoder, source, (x,))


def test_a_kernel_needing_more_shared_memory_than_the_device_has_says_how_to_compile():
    """A program lowered for the built-in H100 model may hold the 256-row matmul tile (220 KB
    of shared memory); on a card of less the launch fails naming the kernel, the bytes and the
    way out (a tuning file from that card)."""
    from runtime_schema.cuda_launcher import CudaLauncher
    from runtime_schema.program import Backend, KernelSource

    class SmallCard:
        @property
        def max_dynamic_shared_size_bytes(self):
            return 0

        @max_dynamic_shared_size_bytes.setter
        def max_dynamic_shared_size_bytes(self, nbytes):
            raise RuntimeError("CUDA_ERROR_INVALID_VALUE")

    launcher = object.__new__(CudaLauncher)  # no CuPy here: only the limit's bookkeeping
    launcher._shared_allowed = {}
    source = KernelSource(Backend.CUDA, "ggufc_matmul_rows256_split_k2_q8_0_f16", "")
    with pytest.raises(CudaLaunchError) as caught:
        launcher._allow_shared_memory(source, SmallCard(), 199680)
    message = str(caught.value)
    assert "'ggufc_matmul_rows256_split_k2_q8_0_f16' needs 199680 bytes" in message
    assert "CUDA_ERROR_INVALID_VALUE" in message and "ggufc tune" in message
