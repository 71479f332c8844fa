"""The CUDA matvec's geometries against each other: where does each win?

    python benchmarks/cuda_matvec_geometry.py [--formats Q4_0,Q5_0,Q4_K,Q8_0]
        [--dtypes float32,float16] [--group-warps-formats Q4_K,Q5_K,Q6_K,Q8_0]
        [--tables narrow,split_k,group_warps,stream,quad_stream]

Five tables, the measurements behind the geometry rules of codegen/kernels/emitter.py, to
rerun on another GPU:

* narrow vs default, per format, dtype and N x K from Gemma-3-270M-sized weights up to
  8192x4096: the default matvec against the narrow one (one row a warp) that the lowering
  picks for N * K <= MATVEC_NARROW_MAX_WEIGHTS[dtype];
* split-K vs default, for the formats of MATVEC_SPLIT_K_FORMATS from K = 640 to 28672: the
  split-K kernels (`cuda/matvec_split_k.cu`, 4 and 2 warps a block) against the warp-staged
  default (`cuda/matvec.cu`), beside the one `split_k_geometry_of` picks: the measurements
  behind MATVEC_SPLIT_K_MIN_K and the choice between the two split-K geometries;
* warps a row group, for the formats of --group-warps-formats on the large shapes: the
  default geometry with 1, 2 and 4 warps sharing each row group (the paired and quad
  geometries), beside the G the lowering picks (`matvec_group_warps`: the measurements
  behind MATVEC_GROUP_WARPS);
* streamed row groups, for short rows (K <= 2048) and many of them: the default geometry
  against the streamed one with 2 to 16 row groups a warp (the lowering's is
  MATVEC_STREAM_GROUPS, from N = MATVEC_STREAM_MIN_N up to K = MATVEC_STREAM_MAX_K);
* streamed quads, for the formats of MATVEC_QUAD_STREAM_FORMATS at K = 4096 (and two
  shapes the rule leaves out): 1 and 2 warps a row group against 4 warps taking 2, 4 or 7 row
  groups in turn (the lowering's quad_stream is MATVEC_QUAD_STREAM_GROUPS; the K-quants
  also take other counts, `quad_stream_geometry`), beside the lowering's pick and its
  kernel's time (where `takes_lane_words`, the
  lane-word kernel `matvec_lanes.cu`, not the staged ones of the other columns).

Each cell is checked against a float64 reference before it is timed.  Timing:
codegen.cuda_timing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen.cuda_run import TORCH_DTYPES, CudaKernelRunner
from codegen.cuda_timing import copy_bandwidth, rotated_copies, time_launches
from codegen.kernels import emit
from codegen.kernels.emitter import (
    MATVEC_NARROW_MAX_WEIGHTS,
    MATVEC_QUAD_STREAM_CHUNKS,
    MATVEC_QUAD_STREAM_FORMATS,
    MATVEC_QUAD_STREAM_GROUPS,
    MATVEC_QUAD_STREAM_MIN_FILL,
    MATVEC_SPLIT_K_FORMATS,
    MATVEC_SPLIT_K_MIN_K,
    MATVEC_SPLIT_K_WARPS,
    MATVEC_STREAM_GROUPS,
    MATVEC_STREAM_MAX_K,
    MATVEC_STREAM_MIN_N,
    cuda_matvec_streamed,
    cuda_matvec_with_group_warps,
    matvec_group_warps,
    pick_geometry,
    split_k_geometry_of,
)
from compiler import formats

SHAPES = ((640, 2048), (2048, 1024), (2048, 2048), (4096, 2048), (4096, 4096), (8192, 4096))
GROUP_WARPS_SHAPES = (
    (4096, 14336),
    (14336, 4096),
    (5376, 21504),
    *((n, k) for k in (8192, 16384) for n in (2048, 4096, 8192)),
    *((n, 21504) for n in (3072, 4096, 8192)),
    (4096, 28672),
    (8192, 28672),
    (2048, 4096),
    (4096, 2048),
    (32768, 1024),
)
SPLIT_K_SHAPES = (
    (262144, 640),
    (16384, 2048),
    (8192, 3072),
    (4096, 4096),
    (8192, 4096),
    (11008, 4096),
    (14336, 4096),
    (128256, 4096),
    (8192, 8192),
    (28672, 8192),
    (4096, 11008),
    (4096, 14336),
    (5376, 21504),
    (8192, 28672),
)
STREAM_SHAPES = (
    (262144, 640),
    (262144, 1024),
    (131072, 640),
    (65536, 1024),
    (32768, 640),
    (65536, 2048),
    (16384, 1024),
)
STREAM_GROUP_CHOICES = (2, 4, 8, 16)
QUAD_STREAM_SHAPES = (
    (4096, 4096),
    (8192, 4096),
    (11008, 4096),
    (14336, 4096),
    (28672, 4096),
    (128256, 4096),
    (14336, 8192),
    (4096, 14336),
)
QUAD_STREAM_GROUP_CHOICES = (2, 4, 7)
TABLES = ("narrow", "split_k", "group_warps", "stream", "quad_stream")
ERROR_BOUNDS = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}


def time_cell(
    runner, kernels, fmt: str, dtype: str, n: int, k: int, generator, m: int = 1
) -> list[float]:
    """Each kernel's time on the same rotated weights and ``m`` activation rows, after a check
    against float64 (output poisoned with NaN first)."""
    torch_dtype = TORCH_DTYPES[dtype]
    blocks = formats.random_blocks(fmt, n, k, generator=generator).cuda()
    copies = rotated_copies(blocks)
    xs = [torch.randn(m, k, generator=generator).to(torch_dtype).cuda() for _ in copies]
    outs = [torch.empty(m, n, dtype=torch_dtype, device="cuda") for _ in copies]
    ref = xs[0].double() @ formats.dequantize(blocks.cpu(), fmt, torch.float64).cuda().T
    times = []
    for kernel in kernels:
        outs[0].fill_(float("nan"))
        runner.linear(kernel, xs[0], blocks, None, n, k, out=outs[0])
        error = float((outs[0].double() - ref).norm() / ref.norm())
        if not error <= ERROR_BOUNDS[dtype]:
            raise SystemExit(f"{kernel.entry} {n}x{k}: relative error {error:.3g}")
        times.append(
            time_launches(
                lambda i, kernel=kernel: runner.linear(
                    kernel, xs[i], copies[i], None, n, k, out=outs[i]
                ),
                len(copies),
            )
        )
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", default="Q4_0,Q5_0,Q4_K,Q8_0")
    parser.add_argument("--dtypes", default="float32,float16")
    parser.add_argument("--group-warps-formats", default="Q4_K,Q5_K,Q6_K,Q8_0")
    parser.add_argument("--tables", default=",".join(TABLES), help="which tables to measure")
    args = parser.parse_args()
    tables = args.tables.split(",")
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        parser.error(f"--tables: unknown {unknown}; expected some of {','.join(TABLES)}")
    if not torch.cuda.is_available():
        print("cuda_matvec_geometry.py: needs a CUDA device", file=sys.stderr)
        return 2
    runner = CudaKernelRunner()
    generator = torch.Generator().manual_seed(0)
    bandwidth = copy_bandwidth()
    print(
        f"Card: {torch.cuda.get_device_name()}; device copy {bandwidth / 1e9:.0f} GB/s; "
        f"the lowering picks the narrow geometry up to {MATVEC_NARROW_MAX_WEIGHTS} weights\n"
    )

    def table_formats(table: str, listed: str, keep=lambda fmt: True) -> list[str]:
        """The formats of ``listed`` that ``table`` measures (none when it is not asked for)."""
        return [fmt for fmt in listed.split(",") if fmt and table in tables and keep(fmt)]

    narrow_formats = table_formats("narrow", args.formats)
    if narrow_formats:
        print(
            "| format | dtype | N x K | weights (Mi) | default us | narrow us | narrow / default |"
        )
        print("|---|---|---|---:|---:|---:|---:|")
    for fmt in narrow_formats:
        for dtype in args.dtypes.split(","):
            for n, k in SHAPES:
                kernels = [emit("cuda", fmt, "matvec", dtype, g) for g in ("default", "narrow")]
                wide, narrow = time_cell(runner, kernels, fmt, dtype, n, k, generator)
                print(
                    f"| {fmt} | {dtype} | {n}x{k} | {n * k / 2**20:.1f} | {wide:.2f} | "
                    f"{narrow:.2f} | {narrow / wide:.2f} |",
                    flush=True,
                )
    split_formats = table_formats(
        "split_k", args.formats, lambda fmt: fmt in MATVEC_SPLIT_K_FORMATS
    )
    if split_formats:
        print(
            f"\nThe lowering picks split-K from K = {MATVEC_SPLIT_K_MIN_K} (when not narrow), "
            "4 or 2 warps a block by split_k_geometry_of\n"
        )
        split_columns = " | ".join(f"{g} us" for g in MATVEC_SPLIT_K_WARPS)
        print(f"| format | dtype | N x K | {split_columns} | default us | picked / default |")
        print("|---|---|---|" + "---:|" * (len(MATVEC_SPLIT_K_WARPS) + 2))
    for fmt in split_formats:
        for dtype in args.dtypes.split(","):
            for n, k in SPLIT_K_SHAPES:
                names = (*MATVEC_SPLIT_K_WARPS, "default")
                kernels = [emit("cuda", fmt, "matvec", dtype, g) for g in names]
                times = dict(zip(names, time_cell(runner, kernels, fmt, dtype, n, k, generator)))
                picked = split_k_geometry_of(fmt, dtype, n, k)
                cells = " | ".join(
                    f"**{times[g]:.2f}**" if g == picked else f"{times[g]:.2f}"
                    for g in MATVEC_SPLIT_K_WARPS
                )
                print(
                    f"| {fmt} | {dtype} | {n}x{k} | {cells} | {times['default']:.2f} | "
                    f"{times[picked] / times['default']:.2f} |",
                    flush=True,
                )
    group_warps_formats = table_formats("group_warps", args.group_warps_formats)
    if group_warps_formats:
        print(
            "\nlowering: the warps a row group matvec_group_warps picks (where the lowering "
            "takes the narrow or streamed geometry instead, that one runs)\n"
        )
        print("| format | dtype | N x K | 1 warp us | 2 warps us | 4 warps us | lowering |")
        print("|---|---|---|---:|---:|---:|---:|")
    for fmt in group_warps_formats:
        for dtype in args.dtypes.split(","):
            for n, k in GROUP_WARPS_SHAPES:
                kernels = [cuda_matvec_with_group_warps(fmt, dtype, s) for s in (1, 2, 4)]
                times = time_cell(runner, kernels, fmt, dtype, n, k, generator)
                cells = " | ".join(f"{t:.2f}" for t in times)
                picked = matvec_group_warps(fmt, dtype, n, k)
                print(f"| {fmt} | {dtype} | {n}x{k} | {cells} | {picked} |", flush=True)
    stream_formats = table_formats("stream", args.formats)
    if stream_formats:
        print(
            f"\nThe lowering streams {MATVEC_STREAM_GROUPS} row groups a warp for K <= "
            f"{MATVEC_STREAM_MAX_K} and N >= {MATVEC_STREAM_MIN_N} (floor: the packed bytes "
            "at the copy bandwidth)\n"
        )
        choices = " | ".join(f"{g} groups us" for g in STREAM_GROUP_CHOICES)
        print(f"| format | dtype | N x K | floor us | default us | {choices} |")
        print("|---|---|---|---:|---:|" + "---:|" * len(STREAM_GROUP_CHOICES))
    for fmt in stream_formats:
        for dtype in args.dtypes.split(","):
            for n, k in STREAM_SHAPES:
                if k % formats.get_format(fmt).block_weights:
                    continue
                kernels = [emit("cuda", fmt, "matvec", dtype)] + [
                    cuda_matvec_streamed(fmt, dtype, g) for g in STREAM_GROUP_CHOICES
                ]
                times = time_cell(runner, kernels, fmt, dtype, n, k, generator)
                floor = n * formats.row_bytes(fmt, k) / bandwidth * 1e6
                cells = " | ".join(f"{t:.2f}" for t in times)
                print(f"| {fmt} | {dtype} | {n}x{k} | {floor:.2f} | {cells} |", flush=True)
    quad_formats = table_formats(
        "quad_stream", args.formats, lambda fmt: fmt in MATVEC_QUAD_STREAM_FORMATS
    )
    if quad_formats:
        print(
            f"\nThe lowering streams row groups of 4 warps (groups a block by format: "
            f"{MATVEC_QUAD_STREAM_GROUPS}) for rows of {MATVEC_QUAD_STREAM_CHUNKS} chunks where "
            f"the grid's waves fill {MATVEC_QUAD_STREAM_MIN_FILL} of the whole waves they take "
            "(takes_quad_stream; the K-quants with int16 activations only, other counts of "
            "row groups by quad_stream_geometry)\n"
        )
        choices = " | ".join(f"4 warps x {g} groups us" for g in QUAD_STREAM_GROUP_CHOICES)
        print(
            f"| format | dtype | N x K | default us | paired us | {choices} | lowering | "
            "lowering us |"
        )
        print("|---|---|---|---:|---:|" + "---:|" * len(QUAD_STREAM_GROUP_CHOICES) + "---|---:|")
    for fmt in quad_formats:
        for dtype in args.dtypes.split(","):
            for n, k in QUAD_STREAM_SHAPES:
                picked = pick_geometry("cuda", fmt, "matvec", dtype, n, k)
                kernels = [cuda_matvec_with_group_warps(fmt, dtype, g) for g in (1, 2)] + [
                    cuda_matvec_streamed(fmt, dtype, g, group_warps=4)
                    for g in QUAD_STREAM_GROUP_CHOICES
                ]
                kernels.append(emit("cuda", fmt, "matvec", dtype, picked))
                *times, lowering = time_cell(runner, kernels, fmt, dtype, n, k, generator)
                cells = " | ".join(f"{t:.2f}" for t in times)
                print(
                    f"| {fmt} | {dtype} | {n}x{k} | {cells} | {picked} | {lowering:.2f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
