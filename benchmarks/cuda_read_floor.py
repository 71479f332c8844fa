"""How fast can any kernel merely read the packed weights of each M = 1 shape?

    python benchmarks/cuda_read_floor.py [--formats Q4_0,Q6_K] [--out results.md]

The memory floor of `cuda_matmul.py` (bytes / device-copy bandwidth) leaves out what every
kernel launch pays on top of moving its bytes: the launch gap, the ramp until enough loads are
in flight, the tail of the last blocks.  This benchmark launches a kernel that only streams the
same bytes (coalesced 16-byte loads that bypass L1, four in flight per thread, 256-thread
blocks of 8 rows, the values XOR-folded so the loads are not optimized away) and times it with
the method of `codegen.cuda_timing`, launched two ways:

* plainly (one kernel after the other: each launch's gap, ramp and tail in its time);
* dependently, as ggufc launches its own kernels on a compute capability 9.0+ device
  (programmatic dependent launch, `runtime_schema.cuda_launcher`): the kernel lets the next one
  start at once (``griddepcontrol.launch_dependents``) and waits for the one before only to
  write (``griddepcontrol.wait``), so a launch's loads overlap the previous launch's tail.

Its ratio to the floor is the least a real matvec can reach at that size with that launch;
issue 8's M = 1 target (<= 1.18x the floor) is measured against the floor, so this says how
much of the margin is left for decoding.  A read alone moves more bytes a second than a copy,
which also writes, so the dependent ratio can be below 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen.cuda_timing import copy_bandwidth, rotated_copies, time_launches
from compiler import formats

M1_SHAPES = ((4096, 4096), (14336, 4096), (4096, 14336), (5376, 21504), (262144, 640))
THREADS = 256
ROWS_PER_BLOCK = 8
LOADS_IN_FLIGHT = 4
WORD_BYTES = 16

READ_ONLY_SOURCE = r"""
extern "C" __global__ void __launch_bounds__(THREADS) read_rows(
        const unsigned char* __restrict__ rows, long long total_words, long long words_per_block,
        unsigned int* sink) {
#if __CUDA_ARCH__ >= 900
    // a dependent launch's next kernel may start now (no-op in a plain launch)
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
    const long long first = (long long)blockIdx.x * words_per_block;
    const long long end = min(first + words_per_block, total_words);
    const uint4* base = reinterpret_cast<const uint4*>(rows);
    unsigned int fold = 0;
    for (long long i0 = first + threadIdx.x; i0 < end; i0 += (long long)THREADS * LOADS) {
        uint4 v[LOADS];
#pragma unroll
        for (int u = 0; u < LOADS; ++u) {
            const long long i = i0 + (long long)u * THREADS;
            v[u] = make_uint4(0u, 0u, 0u, 0u);
            if (i < end) {
                asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                             : "=r"(v[u].x), "=r"(v[u].y), "=r"(v[u].z), "=r"(v[u].w)
                             : "l"(base + i));
            }
        }
#pragma unroll
        for (int u = 0; u < LOADS; ++u) {
            fold ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
        }
    }
#if __CUDA_ARCH__ >= 900
    // a dependent launch writes only once the kernel before it has finished
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
    if (fold == 0x9e3779b9u) {  // practically never: keeps the loads without writing
        sink[0] = fold;
    }
}
"""


def read_kernel():
    import cupy

    source = READ_ONLY_SOURCE.replace("THREADS", str(THREADS)).replace(
        "LOADS", str(LOADS_IN_FLIGHT)
    )
    return cupy.RawModule(code=source, options=("--std=c++17",)).get_function("read_rows")


class ReadLaunches:
    """Launches of the read-only kernel over the packed bytes of an N x K ``fmt`` weight (random
    bytes: the kernel does not decode, so they need not be valid blocks), each on copy ``i`` of
    `rotated_copies`; ``launcher``: a `runtime_schema.cuda_driver.DependentLauncher`, None where
    the device has no dependent launch."""

    def __init__(self, kernel, launcher, fmt: str, n: int, k: int) -> None:
        import cupy

        from runtime_schema.cuda_launcher import function_handle

        row_bytes = k // formats.FORMATS[fmt].block_weights * formats.FORMATS[fmt].block_bytes
        self.packed = n * row_bytes
        self.total_words = -(-self.packed // WORD_BYTES)
        data = torch.randint(
            0, 256, (self.total_words * WORD_BYTES,), dtype=torch.uint8, device="cuda"
        )
        self.copies = rotated_copies(data)
        self.words_per_block = ROWS_PER_BLOCK * row_bytes // WORD_BYTES
        self.grid = -(-self.total_words // self.words_per_block)
        self.sink = cupy.zeros(1, dtype=cupy.uint32)
        self.kernel = kernel
        self.launcher = launcher
        # looked up once, not in the timed launches
        self.function = function_handle(kernel)
        self.stream = torch.cuda.current_stream().cuda_stream

    def plain(self, i: int) -> None:
        arguments = (self.copies[i].data_ptr(), self.total_words, self.words_per_block, self.sink)
        self.kernel((self.grid,), (THREADS,), arguments)

    def dependent(self, i: int) -> None:
        params = (
            np.uint64(self.copies[i].data_ptr()),
            np.int64(self.total_words),
            np.int64(self.words_per_block),
            np.uint64(self.sink.data.ptr),
        )
        self.launcher.launch(
            self.function, (self.grid, 1, 1), (THREADS, 1, 1), 0, self.stream, params, "read_rows"
        )


def bench_shape(kernel, launcher, fmt: str, n: int, k: int, bandwidth: float) -> dict:
    """Microseconds a launch of the read of an N x K ``fmt`` weight, plain and dependent
    (``launcher``: a `runtime_schema.cuda_driver.DependentLauncher`, None where the device
    has no dependent launch)."""
    reads = ReadLaunches(kernel, launcher, fmt, n, k)
    read_us = time_launches(reads.plain, len(reads.copies))
    dependent_us = time_launches(reads.dependent, len(reads.copies)) if launcher else None
    floor_us = reads.packed / bandwidth * 1e6
    return {
        "format": fmt,
        "shape": f"{n}x{k}",
        "read_us": read_us,
        "dependent_us": dependent_us,
        "floor_us": floor_us,
    }


def dependent_launcher():
    """The driver launcher ggufc's kernels go through, where the device takes dependent
    launches (compute capability 9.0+), else None."""
    from runtime_schema.cuda_launcher import DEPENDENT_LAUNCH_MIN_CAPABILITY

    if torch.cuda.get_device_capability() < DEPENDENT_LAUNCH_MIN_CAPABILITY:
        return None
    from runtime_schema.cuda_driver import DependentLauncher

    return DependentLauncher()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", default=",".join(formats.FORMATS))
    parser.add_argument("--out", help="also write the markdown table here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("cuda_read_floor.py: needs a CUDA device", file=sys.stderr)
        return 2
    kernel = read_kernel()
    launcher = dependent_launcher()
    bandwidth = copy_bandwidth()
    lines = [
        (
            f"Card: {torch.cuda.get_device_name()}; device copy {bandwidth / 1e9:.0f} GB/s "
            "(read + written); floor = packed weight bytes / copy bandwidth"
        ),
        "",
        (
            "| format | N x K | floor us | read, plain launches, us | / floor "
            "| read, dependent launches, us | / floor |"
        ),
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for fmt in args.formats.split(","):
        for n, k in M1_SHAPES:
            if k % formats.FORMATS[fmt].block_weights:
                continue
            r = bench_shape(kernel, launcher, fmt, n, k, bandwidth)
            dependent = (
                f"{r['dependent_us']:.1f} | {r['dependent_us'] / r['floor_us']:.2f}"
                if r["dependent_us"] is not None
                else "- | -"
            )
            lines.append(
                f"| {fmt} | {r['shape']} | {r['floor_us']:.1f} | {r['read_us']:.1f} | "
                f"{r['read_us'] / r['floor_us']:.2f} | {dependent} |"
            )
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
