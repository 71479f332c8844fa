"""The CUDA path of the interpreter: skipped without an NVIDIA GPU and CuPy."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from runtime_schema import run_program
from runtime_schema.builder import ProgramBuilder
from runtime_schema.cuda_launcher import source_digest
from runtime_schema.program import (
    Argument,
    Backend,
    Dim,
    DType,
    IntValue,
    KernelKind,
    KernelNode,
    KernelSource,
    OpKind,
    QuantFormat,
)

HAS_CUDA = torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None
_needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs an NVIDIA GPU and CuPy")


def gpu(test):
    """Marked `gpu` (benchmarks/gpu_check.sh selects these) and skipped without CUDA."""
    return pytest.mark.gpu(_needs_cuda(test))


# A dequantize kernel for Q8_0 written for this test (the generated ones come from codegen):
# one thread per weight; params: blocks, out, n, k.
Q8_0_DEQUANTIZE = r"""
#include <cuda_fp16.h>
extern "C" __global__ void deq_q8_0(const unsigned char* blocks, float* out, long long n,
                                    long long k) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= n * k) return;
    long long row = i / k, col = i % k;
    const unsigned char* block = blocks + row * (k / 32) * 34 + (col / 32) * 34;
    __half d = *reinterpret_cast<const __half*>(block);
    signed char q = reinterpret_cast<const signed char*>(block + 2)[col % 32];
    out[i] = __half2float(d) * (float)q;
}
"""


def _program(blocks: torch.Tensor, n: int, k: int):
    b = ProgramBuilder()
    w = b.constant("w", blocks)
    x = b.input("x", DType.FLOAT32, [1])  # unused: programs need not read every input
    out = b.tensor("w_f32", DType.FLOAT32, [n, k])
    threads = 128
    b.emit(
        b.main,
        KernelNode(
            name="deq",
            format=QuantFormat.Q8_0,
            op=OpKind.DEQUANTIZE,
            kind=KernelKind.DEQUANTIZE,
            sources=(KernelSource(Backend.CUDA, "deq_q8_0", Q8_0_DEQUANTIZE),),
            inputs=(w,),
            outputs=(out,),
            grid=(Dim(-(-n * k // threads)), Dim(1), Dim(1)),
            block=(Dim(threads), Dim(1), Dim(1)),
            args=(Argument(IntValue(n), "n"), Argument(IntValue(k), "k")),
        ),
    )
    del x
    return b.build(outputs=[out])


def test_source_digest_covers_every_part():
    a = KernelSource(Backend.CUDA, "f", "src", "hdr")
    assert source_digest(a) != source_digest(KernelSource(Backend.CUDA, "g", "src", "hdr"))
    assert source_digest(a) != source_digest(KernelSource(Backend.CUDA, "f", "src2", "hdr"))
    assert source_digest(a) != source_digest(KernelSource(Backend.CUDA, "f", "src", ""))


@gpu
def test_cuda_kernel_matches_cpu_reference():
    from compiler import formats

    n, k = 96, 256
    program = _program(formats.random_blocks("Q8_0", n, k), n, k)
    (cpu,) = run_program(program, [torch.zeros(1)], device="cpu")
    (gpu_out,) = run_program(program, [torch.zeros(1)], device="cuda")
    torch.testing.assert_close(gpu_out.cpu(), cpu, rtol=0, atol=0)


@gpu
def test_aten_and_sym_nodes_run_on_cuda():
    """Every instruction type but KernelNode, on CUDA, matches CPU (factory ops included)."""
    from runtime_schema.program import (
        AtenNode,
        CompareOp,
        FloatValue,
        IfNode,
        SymIntRef,
        SymNode,
        SymOp,
        TensorRef,
    )

    b = ProgramBuilder()
    m = b.symint("M", 1, 100)
    x = b.input("x", DType.FLOAT32, [Dim.symbolic(m)])
    half = b.symint("half", 0, 100)
    b.emit(b.main, SymNode(SymOp.CEIL_DIV, (Dim.symbolic(m), Dim(2)), half))
    positions = b.tensor("positions", DType.INT64, [Dim.symbolic(m)])
    b.emit(b.main, AtenNode("aten::arange", (Argument(SymIntRef(m)),), (positions,)))
    out = b.tensor("out", DType.FLOAT32, [Dim.symbolic(m)])
    small, large = b.chain("small"), b.chain("large")
    for chain, scale in ((small, 2.0), (large, -1.0)):
        y = b.tensor(f"{chain}.y", DType.FLOAT32, [Dim.symbolic(m)])
        b.emit(
            chain,
            AtenNode(
                "aten::mul.Scalar", (Argument(TensorRef(x)), Argument(FloatValue(scale))), (y,)
            ),
        )
        b.results(chain, [y])
    b.emit(b.main, IfNode(half, CompareOp.LE, 4, small, large, (out,)))
    program = b.build(outputs=[out, positions])
    for rows in (3, 40):
        x_in = torch.randn(rows)
        cpu = run_program(program, [x_in], device="cpu")
        cuda = run_program(program, [x_in], device="cuda")
        for c, g in zip(cpu, cuda):
            assert g.device.type == "cuda"
            torch.testing.assert_close(g.cpu(), c, rtol=0, atol=0)


# a batched Q4_K linear of float16 activations with a symbolic M: the lowering branches on M
# (codegen.kernels.emitter.MATVEC_MMA_MAX_M) between the mma matvec and the split-K matmul
SYMBOLIC_BATCHED_IR = """
const @b.blocks : u8[300, 2304] gguf Q4_K

symbol s0 : [2, 16]
graph @main(%x : f16[s0, 4096]) {
  %b : f16[s0, 300] = ggufc.linear(%x, @b.blocks, None, "Q4_K", 300, 4096, "matvec_batched")
  return (%b)
}
"""


@gpu
def test_both_sides_of_a_lowered_m_branch_run_on_cuda():
    """The IfNode the lowering makes for a batched Q4_K linear: M = 3 (the mma matvec) and
    M = 12 (the split-K matmul) on CUDA against the CPU reference of the same program."""
    from codegen import lower
    from compiler.ir.parser import parse_program

    program = lower(parse_program(SYMBOLIC_BATCHED_IR), backends=("cuda",))
    generator = torch.Generator().manual_seed(3)
    for rows in (3, 12):
        x = torch.randn(rows, 4096, generator=generator).half()
        (cpu,) = run_program(program, [x], device="cpu")
        (cuda,) = run_program(program, [x], device="cuda")
        error = float((cuda.cpu().double() - cpu.double()).norm() / cpu.double().norm())
        assert error < 2e-3, f"M = {rows}: relative error {error:.3g}"


# Q4_0 at M = 1 on rows of K = 10240: the lowering gives the matvec the staged mma kernel
ONE_ROW_MMA_IR = """
const @w.blocks : u8[2560, 5760] gguf Q4_0

graph @main(%x : f16[1, 10240]) {
  %y : f16[1, 2560] = ggufc.linear(%x, @w.blocks, None, "Q4_0", 2560, 10240, "matvec")
  return (%y)
}
"""


@gpu
def test_a_saved_one_row_matvec_on_the_staged_mma_kernel_runs_on_cuda(tmp_path):
    """A matvec KernelNode whose CUDA source is the staged mma matvec (weights by tensor map
    on sm_90a), saved and loaded back, on CUDA against the CPU reference."""
    from codegen import lower
    from compiler.ir.parser import parse_program
    from runtime_schema import load_program, save_program

    program = lower(parse_program(ONE_ROW_MMA_IR), backends=("cuda",))
    [node] = [n for n in program.instructions() if isinstance(n, KernelNode)]
    assert node.source_for(Backend.CUDA).entry == "ggufc_matvec_mma_q4_0_f16"
    save_program(program, tmp_path / "one_row.ggufc")
    loaded = load_program(tmp_path / "one_row.ggufc")
    x = torch.randn(1, 10240, generator=torch.Generator().manual_seed(7)).half()
    (cpu,) = run_program(loaded, [x], device="cpu")
    (cuda,) = run_program(loaded, [x], device="cuda")
    assert bool(torch.isfinite(cuda).all()), "non-finite outputs"
    error = float((cuda.cpu().double() - cpu.double()).norm() / cpu.double().norm())
    assert error < 2e-3, f"relative error {error:.3g}"


DENSE_ROUTE_IR = """
const @w.blocks : u8[2048, 576] gguf Q4_K

symbol s0 : [17, 4096]
graph @main(%x : f16[s0, 1024]) {
  %y : f16[s0, 2048] = ggufc.linear(%x, @w.blocks, None, "Q4_K", 2048, 1024, "matmul")
  return (%y)
}
"""


@gpu
def test_both_sides_of_the_dense_route_branch_run_on_cuda():
    """A matmul linear whose M may pass its dense threshold (codegen.dense_linear): at the
    threshold the matmul kernel, one row above it the dequantize kernel and cuBLAS, on CUDA
    against the CPU reference of the same program."""
    from codegen import dense_linear, lower
    from compiler.ir.parser import parse_program

    program = lower(parse_program(DENSE_ROUTE_IR), backends=("cuda",))
    threshold = dense_linear.dense_threshold("Q4_K", 2048, 1024)
    generator = torch.Generator().manual_seed(5)
    for rows in (threshold, threshold + 1):
        x = torch.randn(rows, 1024, generator=generator).half()
        (cpu,) = run_program(program, [x], device="cpu")
        (cuda,) = run_program(program, [x], device="cuda")
        assert bool(torch.isfinite(cuda).all()), f"M = {rows}: non-finite outputs"
        error = float((cuda.cpu().double() - cpu.double()).norm() / cpu.double().norm())
        assert error < 2e-3, f"M = {rows}: relative error {error:.3g}"
