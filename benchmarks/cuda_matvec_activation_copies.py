"""What the staged mma matvec's activation copies and its copy pipeline cost (an experiment,
figures in BENCHMARKS.md and codegen/kernels/cuda/PERFORMANCE.md, sessions 36-37):

    python benchmarks/cuda_matvec_activation_copies.py [--formats Q4_0,Q6_K]
        [--shapes 14336x4096,5376x21504] [--ms 2,8] [--dtype float16] [--form FORM]
        [--variants through-l1,two-rows] [--kind matvec_batched]

For each format, shape and M it times the `matvec_batched` kernel the lowering picks (or
--form; with --kind matvec, the M = 1 matvec where its pick is a one-row staged form) as
emitted, and variants made by editing its generated source text:

- ``through-l1``: every activation copy through L1 (``cp.async.ca``, the template's
  ``cp_async_16<true>``) where the kernel as emitted copies them through L2 only (``.cg``), or
  the other way round where the pick has X_THROUGH_L1 (emitter.MATVEC_MMA_X_THROUGH_L1).  The
  weights' copies are left as they are.  It computes the right sums and is checked.
- ``two-rows``: each step's (or group's) activation copies cut to the tile's first 2 rows; the
  slots' other rows keep stale bytes, so the sums are wrong and only the time is read.  Its
  time against M = 2's says how much of M = 8's growth is the copies (session 36).
- ``pipeline-only``: every step's decode and mma skipped (a run-time test the compiler cannot
  fold), the copies, waits and final reduction kept: the time of the pipeline alone, against
  the floor (sums zero, only the time).
- ``group-zero`` (by-group forms only): every group copies group 0's activations, so they stay
  in L1 / L2 (wrong sums, only the time): an upper bound of what caching the copies could give.

Every variant that computes the right sums, and the kernel as emitted, is checked against a
float64 reference on fresh random valid blocks, its output poisoned with NaN first; a variant
whose sums are wrong on purpose is marked "(timing only)".  Timing: codegen.cuda_timing (device
events after warm-up, median of many runs, weights rotated past the L2 cache).  Floor = packed
weight bytes / copy bandwidth, as issue 8's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen.cuda_run import CudaKernelRunner
from codegen.cuda_timing import copy_bandwidth, rotated_copies
from codegen.kernels import emitter
from compiler import formats

# the breakdown benchmark's timing of one kernel on rotated weights (a sibling script)
from cuda_matvec_breakdown import time_kernel  # isort: skip

# The generated source's activation copy sites (codegen/kernels/cuda/matvec_mma_staged.cu).
STEP_COPY = "ggufc::cp_async_16(slot + x_target[r]"
STEP_COPY_L1 = "ggufc::cp_async_16<true>(slot + x_target[r]"
GROUP_COPY = "ggufc::cp_async_16<X_THROUGH_L1>("
GROUP_COPY_L1 = "ggufc::cp_async_16<!X_THROUGH_L1>("
STEP_ROWS = "x_steps[r] = row < x_rows ?"
STEP_TWO_ROWS = "x_steps[r] = row < (x_rows < 2 ? x_rows : 2) ?"
GROUP_ROWS = "if (c < X_GROUP_CHUNKS && row < x_rows && k < k_weights) {"
GROUP_TWO_ROWS = "if (c < X_GROUP_CHUNKS && row < (x_rows < 2 ? x_rows : 2) && k < k_weights) {"
GROUP_K = "const int k = (group * GROUP_STEPS + step_row / X_STEP_ROWS) * STEP_K"
GROUP_ZERO_K = "const int k = (0 * GROUP_STEPS + step_row / X_STEP_ROWS) * STEP_K"
# K is never negative, but the compiler cannot know it: the steps' decode and mma stay in the
# text and are skipped at run time
K_GROUP = "if (k_group < k_groups) {"
NO_K_GROUP = "if (k_group < k_groups && K < 0) {"

# variant: (edits by form kind, whether its sums are right)
VARIANTS = {
    "through-l1": (
        {"step": ((STEP_COPY, STEP_COPY_L1),), "group": ((GROUP_COPY, GROUP_COPY_L1),)},
        True,
    ),
    "two-rows": (
        {"step": ((STEP_ROWS, STEP_TWO_ROWS),), "group": ((GROUP_ROWS, GROUP_TWO_ROWS),)},
        False,
    ),
    "group-zero": ({"group": ((GROUP_K, GROUP_ZERO_K),)}, False),
    "pipeline-only": ({"step": ((K_GROUP, NO_K_GROUP),), "group": ((K_GROUP, NO_K_GROUP),)}, False),
}
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
TOLERANCE = 3e-3  # relative Frobenius error against float64, as the GPU tests' 16-bit bound


class VariantNotApplicable(Exception):
    """The variant has no meaning for this form (e.g. group-zero on a step form)."""


def variant(kernel, name: str, by_group: bool):
    """The kernel with the variant's edits applied to its source; each edit must match once."""
    edits_by_kind, _ = VARIANTS[name]
    edits = edits_by_kind.get("group" if by_group else "step")
    if edits is None:
        raise VariantNotApplicable(name)
    source = kernel.source
    for old, new in edits:
        if source.count(old) != 1:
            raise SystemExit(f"{kernel.entry}: expected one {old!r} in the generated source")
        source = source.replace(old, new)
    return dataclasses.replace(kernel, source=source)


def parse_shapes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in s.split("x")) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", default="Q4_0,Q5_0,Q6_K,Q4_K,Q5_K")
    parser.add_argument("--shapes", default="14336x4096,5376x21504", help="N x K, comma-separated")
    parser.add_argument("--ms", default="2,8", help="activation rows, comma-separated (1..8)")
    parser.add_argument("--dtype", default="float16", choices=sorted(DTYPES))
    parser.add_argument("--form", default=None, help="a staged mma form instead of the pick")
    parser.add_argument("--kind", default="matvec_batched", choices=("matvec_batched", "matvec"))
    parser.add_argument("--variants", default="through-l1,two-rows", help=", ".join(VARIANTS))
    args = parser.parse_args()
    names = args.variants.split(",")
    for name in names:
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}; expected one of {', '.join(VARIANTS)}")
    dtype = DTYPES[args.dtype]
    if not torch.cuda.is_available():
        print("cuda_matvec_activation_copies.py: needs a CUDA device", file=sys.stderr)
        raise SystemExit(2)

    runner = CudaKernelRunner()
    generator = torch.Generator().manual_seed(0)
    bandwidth = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()}; copy {bandwidth / 1e9:.0f} GB/s; us, {args.dtype}")
    print("| format | N x K | M | form | floor | " + " | ".join(["as emitted", *names]) + " |")
    print("|---|---|---:|---|---:|" + "---:|" * (1 + len(names)))
    for fmt in args.formats.split(","):
        for n, k in parse_shapes(args.shapes):
            blocks = formats.random_blocks(fmt, n, k, generator=generator).cuda()
            weights = rotated_copies(blocks)
            floor = blocks.numel() / bandwidth * 1e6
            w64 = formats.dequantize(blocks.cpu(), fmt, torch.float64)
            ms = [1] if args.kind == "matvec" else [int(v) for v in args.ms.split(",")]
            for m in ms:
                form = args.form or emitter.pick_geometry(
                    "cuda", fmt, args.kind, args.dtype, n, k, m
                )
                if form not in emitter.MATVEC_MMA_FORMS:
                    print(f"| {fmt} | {n}x{k} | {m} | {form} (not a staged mma form) | | |")
                    continue
                # the one-row kernel (kind matvec) always takes its activations by group
                by_group = args.kind == "matvec" or emitter.MATVEC_MMA_FORMS[form].x_by_group
                kernel = emitter.emit("cuda", fmt, args.kind, args.dtype, form)
                xs = [torch.randn(m, k, device="cuda", dtype=dtype) for _ in weights]
                outs = [torch.empty(m, n, device="cuda", dtype=dtype) for _ in weights]
                reference = xs[0].cpu().double() @ w64.T
                cells = []
                for name in ["as emitted", *names]:
                    try:
                        candidate = (
                            kernel if name == "as emitted" else variant(kernel, name, by_group)
                        )
                    except VariantNotApplicable:
                        cells.append("-")
                        continue
                    right_sums = name == "as emitted" or VARIANTS[name][1]
                    if right_sums:
                        outs[0].fill_(float("nan"))
                        runner.linear(candidate, xs[0], weights[0], None, n, k, out=outs[0])
                        got = outs[0].cpu().double()
                        error = float((got - reference).norm() / reference.norm())
                        if not error < TOLERANCE:
                            raise SystemExit(
                                f"{fmt} {n}x{k} M={m} {form} {name}: error {error:.2e}"
                            )

                    us = time_kernel(runner, candidate, xs, weights, outs, n, k)
                    note = "" if right_sums else " (timing only)"
                    cells.append(f"{us:.1f} ({us / floor:.2f}x){note}")
                print(
                    f"| {fmt} | {n}x{k} | {m} | {form} | {floor:.1f} | " + " | ".join(cells) + " |",
                    flush=True,
                )
            del weights, blocks
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
