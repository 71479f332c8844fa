"""Where the tensor-core matvec's time goes at M = 1 (an experiment, figures in
codegen/kernels/cuda/PERFORMANCE.md):

    python benchmarks/cuda_matvec_breakdown.py [Q4_0,Q4_K,Q6_K]

Times, per format on 4096x14336 and 14336x4096, float16, M = 1: the CUDA-core matvec, the
tensor-core matvec_batched kernel as generated, the same source with the decode replaced by
raw shared-memory words ("no decode": staging + activation loads + mma), and with the mma
removed too ("staging only": the cp.async ring and one read per part), against the copy
floor.  The variants are made by editing the generated source text, so they compute nothing
meaningful: only their times are printed.  Timing: codegen.cuda_timing.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen.cuda_run import CudaKernelRunner
from codegen.cuda_timing import copy_bandwidth, rotated_copies, time_launches
from codegen.kernels import emit
from compiler import formats

SHAPES = ((4096, 14336), (14336, 4096))
DECODE_START = "                const auto words =\n"
DECODE_END = "            } else {"
MMA = "                mma(acc[j % ACCUMULATORS], a, b);"
RAW_WORDS = (
    "#pragma unroll\n                for (int j = 0; j < 16; ++j) {\n"
    "                    b_pairs[j] = *reinterpret_cast<const unsigned short*>(row_stage + "
    "block_in_step * Format::BLOCK_BYTES + 2 * j);\n                }\n"
)
KEEP_ALIVE = (
    "                acc[0][0] += __int_as_float(b_pairs[0] ^ b_pairs[5] ^ b_pairs[10] ^ "
    "b_pairs[15]) * 0.0f;\n"
)


def variant(source: str, mode: str) -> str:
    """The kernel source with its decode (and, for "staging", its mma) cut out."""
    if mode == "as generated":
        return source
    start = source.index(DECODE_START)
    end = source.index(DECODE_END, start)
    if mode == "no decode":
        return source[:start] + RAW_WORDS + source[end:]
    cut = source[:start] + RAW_WORDS + KEEP_ALIVE + source[end:]
    return cut.replace(MMA, "                (void)a; (void)b;")


def time_kernel(runner, kernel, xs, weights, outs, n: int, k: int) -> float:
    def launch(i):
        runner.linear(kernel, xs[i], weights[i], None, n, k, out=outs[i])

    return time_launches(launch, len(weights))


def main() -> None:
    fmts = (sys.argv[1] if len(sys.argv) > 1 else "Q4_0,Q4_K,Q6_K").split(",")
    runner = CudaKernelRunner()
    generator = torch.Generator().manual_seed(0)
    bandwidth = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()}; copy {bandwidth / 1e9:.0f} GB/s; us, M = 1, float16")
    print(
        "| format | shape | floor | CUDA-core matvec | TC as generated | TC no decode | staging only |"
    )
    print("|---|---|---|---|---|---|---|")
    for fmt in fmts:
        for n, k in SHAPES:
            blocks = formats.random_blocks(fmt, n, k, generator=generator).cuda()
            weights = rotated_copies(blocks)
            xs = [torch.randn(1, k, device="cuda", dtype=torch.float16) for _ in weights]
            outs = [torch.empty(1, n, device="cuda", dtype=torch.float16) for _ in weights]
            kernels = [emit("cuda", fmt, "matvec", "float16")]
            batched = emit("cuda", fmt, "matvec_batched", "float16")
            for mode in ("as generated", "no decode", "staging"):
                kernels.append(dataclasses.replace(batched, source=variant(batched.source, mode)))
            row = [f"{blocks.numel() / bandwidth * 1e6:.1f}"]
            for kernel in kernels:
                us = time_kernel(runner, kernel, xs, weights, outs, n, k)
                row.append(f"{us:.1f}")
            print(f"| {fmt} | {n}x{k} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
