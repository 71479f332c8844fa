"""Run a generated CUDA kernel directly on torch tensors (tests, benchmarks, tuning).

A thin layer over `runtime_schema.cuda_launcher.CudaLauncher` (NVRTC through CuPy, launched
on torch's current stream): it flattens the activation's leading dims to M rows, checks
shapes, dtypes and alignment, evaluates the kernel's launch rule and passes the arguments
in the order of the kernel signature (see `codegen.kernels.emitter`).
"""

from __future__ import annotations

from functools import cache

import torch

from codegen.kernels import KernelSource
from codegen.program_source import program_source as _program_source
from compiler.errors import UnsupportedError
from compiler.formats import get_format, row_bytes

# the CUDA kernels use 16-byte loads of activations and (for Q4_K/Q5_K) of blocks
REQUIRED_ALIGNMENT = 16
TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@cache
def program_source(kernel: KernelSource):
    """The `runtime_schema.program.KernelSource` of a generated CUDA kernel (one object per
    kernel, so the launcher finds its compiled function by identity, hashing nothing)."""
    return _program_source("cuda", kernel)


def _check_tensor(name: str, tensor: torch.Tensor, kernel: KernelSource) -> None:
    if not tensor.is_cuda or not tensor.is_contiguous():
        raise UnsupportedError(f"{kernel.entry}: {name} must be a contiguous CUDA tensor")
    if tensor.data_ptr() % REQUIRED_ALIGNMENT:
        raise UnsupportedError(f"{kernel.entry}: {name} must be {REQUIRED_ALIGNMENT}-byte aligned")


def _check_blocks(kernel: KernelSource, blocks: torch.Tensor, n: int, k: int) -> None:
    get_format(kernel.format)
    expected = (n, row_bytes(kernel.format, k))
    if blocks.dtype != torch.uint8 or tuple(blocks.shape) != expected:
        raise UnsupportedError(
            f"{kernel.entry}: blocks must be uint8 {list(expected)}, got "
            f"{blocks.dtype} {list(blocks.shape)}"
        )
    _check_tensor("blocks", blocks, kernel)


class CudaKernelRunner:
    """Launches generated kernels; one NVRTC compile per distinct kernel."""

    def __init__(self, arch_specific: bool = True, dependent_launch: bool | None = None):
        """``arch_specific``: compile for the device's architecture-specific target (sm_90a
        on an H100; see `runtime_schema.cuda_launcher`), else for its portable one.
        ``dependent_launch``: launch kernels with programmatic stream serialization, so each
        starts during the previous one's last wave (`runtime_schema.cuda_launcher`; by
        default on compute capability 9.0+).  A kernel reads its weight blocks before it
        waits for the kernels before it: blocks must not be written by the kernel just
        before the launch (weights are constants in a program)."""
        from runtime_schema.cuda_launcher import CudaLauncher

        self._launcher = CudaLauncher(
            arch_specific=arch_specific, dependent_launch=dependent_launch
        )

    @property
    def dependent_launch(self) -> bool:
        return self._launcher.dependent_launch

    def prepare(self, kernel: KernelSource) -> None:
        """Compiles ``kernel`` now (NVRTC), so that its first launch reaches the device
        without a compile's delay after the launch before it."""
        self._launcher.function(program_source(kernel))

    def _launch(self, kernel: KernelSource, sizes, tensors, scalars) -> None:
        """Launches ``kernel`` by its launch rule at ``sizes`` = (M, N, K)."""
        self._launcher.launch(
            program_source(kernel),
            grid=kernel.launch.grid_size(*sizes),
            block=kernel.launch.block_size(),
            shared_memory_bytes=kernel.launch.shared_memory_bytes,
            tensors=tensors,
            scalars=scalars,
        )

    def linear(
        self,
        kernel: KernelSource,
        x: torch.Tensor,
        blocks: torch.Tensor,
        bias: torch.Tensor | None,
        n: int,
        k: int,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x[..., K] @ dequantize(blocks)^T (+ bias) -> [..., N] in x's dtype."""
        if kernel.kind == "embedding" or x.dtype != TORCH_DTYPES[kernel.dtype]:
            raise UnsupportedError(f"{kernel.entry}: not a linear kernel for {x.dtype}")
        if x.shape[-1] != k:
            raise UnsupportedError(f"{kernel.entry}: x has K={x.shape[-1]}, expected {k}")
        get_format(kernel.format)
        _check_blocks(kernel, blocks, n, k)
        rows = x.reshape(-1, k)
        m = rows.shape[0]
        if out is None:
            out = torch.empty(*x.shape[:-1], n, dtype=x.dtype, device=x.device)
        for name, tensor in (("x", rows), ("out", out)):
            _check_tensor(name, tensor, kernel)
        if bias is not None:
            if bias.shape != (n,) or bias.dtype != x.dtype:
                raise UnsupportedError(f"{kernel.entry}: bias must be {x.dtype} [{n}]")
            _check_tensor("bias", bias, kernel)
        self._launch(
            kernel,
            (m, n, k),
            # an unused bias slot still needs a valid pointer: pass x
            tensors=(rows, blocks, rows if bias is None else bias, out),
            scalars=(m, n, k, bias is not None),
        )
        return out

    def embedding(
        self,
        kernel: KernelSource,
        blocks: torch.Tensor,
        indices: torch.Tensor,
        n: int,
        k: int,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """dequantize(blocks)[indices] -> [*indices.shape, K] in the kernel's dtype."""
        if kernel.kind != "embedding":
            raise UnsupportedError(f"{kernel.entry}: not an embedding kernel")
        _check_blocks(kernel, blocks, n, k)
        flat = indices.reshape(-1).to(torch.int64).contiguous()
        m = flat.shape[0]
        if out is None:
            out = torch.empty(
                *indices.shape, k, dtype=TORCH_DTYPES[kernel.dtype], device=blocks.device
            )
        _check_tensor("out", out, kernel)
        self._launch(
            kernel,
            (m, n, k),
            tensors=(blocks, flat, out),
            scalars=(m, n, k),
        )
        return out

    def dequantize(
        self,
        kernel: KernelSource,
        blocks: torch.Tensor,
        n: int,
        k: int,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """dequantize(blocks) -> [N, K] in the kernel's dtype."""
        if kernel.kind != "dequantize":
            raise UnsupportedError(f"{kernel.entry}: not a dequantize kernel")
        _check_blocks(kernel, blocks, n, k)
        if out is None:
            out = torch.empty(n, k, dtype=TORCH_DTYPES[kernel.dtype], device=blocks.device)
        if tuple(out.shape) != (n, k) or out.dtype != TORCH_DTYPES[kernel.dtype]:
            raise UnsupportedError(f"{kernel.entry}: out must be {kernel.dtype} [{n}, {k}]")
        _check_tensor("out", out, kernel)
        self._launch(
            kernel,
            (n, n, k),
            tensors=(blocks, out),
            scalars=(n, k),
        )
        return out

    def dense_linear(
        self,
        kernel: KernelSource,
        x: torch.Tensor,
        blocks: torch.Tensor,
        bias: torch.Tensor | None,
        n: int,
        k: int,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The dense route of a linear as a program runs it (`codegen.dense_linear`): the
        ``dequantize`` kernel writes the N x K weight into ``weight``, then
        ``torch.nn.functional.linear`` (cuBLAS, the program's aten::linear) multiplies."""
        weight = self.dequantize(kernel, blocks, n, k, out=weight)
        return torch.nn.functional.linear(x, weight, bias)
