"""The staged mma matvec in other forms and rings than the lowering's (an experiment, figures in
BENCHMARKS.md and codegen/kernels/cuda/PERFORMANCE.md, sessions 37-39):

    python benchmarks/cuda_matvec_rings.py --cells CELL[,CELL...] [--dtype float16]

    CELL = FORMAT:NxK:M:VARIANT[;VARIANT...]     VARIANT = FORM@W/X[e][gSTEPS]

For each cell it times the kernel the lowering picks for M rows (M = 1: the matvec, its
one-row staged form where its rule takes one; M = 2..8: matvec_batched) and each variant: the
staged form FORM (any of emitter.MATVEC_MMA_FORMS, whether or not the format's rules take
it) with its copies W weight groups and X activation steps ahead (X matters to forms taking
their activations a step at a time only), and with ``e`` its next weight group asked for
before a warp waits for the group it decodes (WEIGHTS_BEFORE_WAIT), else after, and with
``gSTEPS`` (M = 1 only) weight groups of STEPS K steps (the one-row kernel's
MATVEC_ONE_ROW_MMA_GROUP_STEPS; else the form's own).  Example:
``Q4_0:5376x21504:1:mma_six_warps@1/3;mma_four_warps_x_by_group@2/3eg8``.

A variant is made by overriding, for the one emission, the emitter's tables the lowering reads
(MATVEC_MMA_FORMS' aheads, MATVEC_ONE_ROW_MMA's forms, MATVEC_ONE_ROW_MMA_AHEAD,
MATVEC_ONE_ROW_MMA_GROUP_STEPS); they are restored after it.  Its launch's shared memory is
the emitter's for those rings, so a deeper ring may hold fewer blocks an SM than its form's
launch bounds ask (the shared column says).
Every kernel is checked against a float64 reference on fresh random valid blocks, its output
poisoned with NaN first; timing: codegen.cuda_timing (device events after warm-up, median of
many runs, weights rotated past the L2 cache).  Floor = packed weight bytes / copy bandwidth.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import sys
from fractions import Fraction
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen.cuda_run import CudaKernelRunner
from codegen.cuda_timing import copy_bandwidth, rotated_copies
from codegen.kernels import emitter
from compiler import formats

# the breakdown benchmark's timing of one kernel on rotated weights (a sibling script)
from cuda_matvec_breakdown import time_kernel  # isort: skip

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
TOLERANCE = 3e-3  # relative Frobenius error against float64, as the GPU tests' 16-bit bound


RING = re.compile(r"(\d+)/(\d+)(e?)(?:g(\d+))?")


@dataclasses.dataclass(frozen=True)
class Variant:
    form: str
    w_ahead: int
    x_ahead: int
    weights_before_wait: bool
    group_steps: int | None = None  # the one-row kernel's own weight groups (None: the form's)

    @classmethod
    def parse(cls, text: str) -> Variant:
        form, _, ring = text.partition("@")
        matched = RING.fullmatch(ring)
        if not matched:
            raise argparse.ArgumentTypeError(
                f"variant {text!r}: expected FORM@W/X, FORM@W/Xe or either with gSTEPS"
            )
        if form not in emitter.MATVEC_MMA_FORMS:
            known = ", ".join(emitter.MATVEC_MMA_FORMS)
            raise argparse.ArgumentTypeError(f"variant {text!r}: unknown form; expected {known}")
        w_ahead, x_ahead, early, steps = matched.groups()
        return cls(form, int(w_ahead), int(x_ahead), early == "e", steps and int(steps))

    def __str__(self) -> str:
        early = "e" if self.weights_before_wait else ""
        steps = f"g{self.group_steps}" if self.group_steps else ""
        return f"{self.form}@{self.w_ahead}/{self.x_ahead}{early}{steps}"


@contextlib.contextmanager
def overridden_tables(fmt: str, kind: str, variant: Variant):
    """The emitter's tables as the variant needs them for ``fmt`` and ``kind``, restored after."""
    forms = dict(emitter.MATVEC_MMA_FORMS)
    rules = dict(emitter.MATVEC_ONE_ROW_MMA)
    one_row_aheads = dict(emitter.MATVEC_ONE_ROW_MMA_AHEAD)
    one_row_steps = dict(emitter.MATVEC_ONE_ROW_MMA_GROUP_STEPS)
    rule_formats = emitter.MATVEC_ONE_ROW_MMA_FORMATS
    try:
        # the form's rings (the batched kernel's, and the one-row kernel's unless listed below)
        form = forms[variant.form]
        ring = (variant.w_ahead, variant.x_ahead)
        emitter.MATVEC_MMA_FORMS[variant.form] = dataclasses.replace(
            form, aheads={**form.aheads, fmt: ring}
        )
        if kind == "matvec":
            rule = rules.get(fmt) or emitter.OneRowMmaRule(0, Fraction(0), ())
            if variant.form not in rule.forms:
                rule = dataclasses.replace(rule, forms=(*rule.forms, variant.form))
            emitter.MATVEC_ONE_ROW_MMA[fmt] = rule
            emitter.MATVEC_ONE_ROW_MMA_FORMATS = tuple(emitter.MATVEC_ONE_ROW_MMA)
            emitter.MATVEC_ONE_ROW_MMA_AHEAD.pop((fmt, variant.form), None)
            if variant.weights_before_wait:
                emitter.MATVEC_ONE_ROW_MMA_AHEAD[(fmt, variant.form)] = ring
            emitter.MATVEC_ONE_ROW_MMA_GROUP_STEPS.pop((fmt, variant.form), None)
            if variant.group_steps:
                emitter.MATVEC_ONE_ROW_MMA_GROUP_STEPS[(fmt, variant.form)] = variant.group_steps
        emitter.emit.cache_clear()
        yield
    finally:
        for table, saved in (
            (emitter.MATVEC_MMA_FORMS, forms),
            (emitter.MATVEC_ONE_ROW_MMA, rules),
            (emitter.MATVEC_ONE_ROW_MMA_AHEAD, one_row_aheads),
            (emitter.MATVEC_ONE_ROW_MMA_GROUP_STEPS, one_row_steps),
        ):
            table.clear()
            table.update(saved)
        emitter.MATVEC_ONE_ROW_MMA_FORMATS = rule_formats
        emitter.emit.cache_clear()


def variant_kernel(fmt: str, kind: str, dtype: str, variant: Variant):
    """The staged kernel of ``variant`` (its source and launch rule)."""
    with overridden_tables(fmt, kind, variant):
        kernel = emitter.emit("cuda", fmt, kind, dtype, variant.form)
    before = "true" if variant.weights_before_wait else "false"
    steps = variant.group_steps or emitter.MATMUL_GROUP_STEPS[fmt]
    expected = (
        f"constexpr int W_AHEAD = {variant.w_ahead};",
        f"constexpr bool WEIGHTS_BEFORE_WAIT = {before};",
        f"constexpr int GROUP_STEPS = {steps};",
    )
    for line in expected:
        if line not in kernel.source:
            raise SystemExit(f"{fmt} {variant}: the emitted kernel lacks {line!r}")
    return kernel


def parse_cell(text: str) -> tuple[str, int, int, int, list[Variant]]:
    try:
        fmt, shape, m, variants = text.split(":", 3)
        n, k = (int(v) for v in shape.split("x"))
        rows = int(m)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cell {text!r}: expected FORMAT:NxK:M:VARIANT[;...]")
    if fmt not in formats.FORMATS:
        raise argparse.ArgumentTypeError(f"cell {text!r}: unknown format {fmt!r}")
    if not 1 <= rows <= emitter.MATVEC_MMA_MAX_M:
        raise argparse.ArgumentTypeError(f"cell {text!r}: M must be 1..{emitter.MATVEC_MMA_MAX_M}")
    parsed = [Variant.parse(v) for v in variants.split(";") if v]
    if rows > 1 and any(v.weights_before_wait or v.group_steps for v in parsed):
        # the template's WEIGHTS_BEFORE_WAIT and own groups are set for one-row kernels only
        raise argparse.ArgumentTypeError(
            f"cell {text!r}: 'e' (before the wait) and 'g' (group steps) are for M = 1 only"
        )
    return fmt, n, k, rows, parsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", required=True, help="FORMAT:NxK:M:VARIANT[;...],...")
    parser.add_argument("--dtype", default="float16", choices=sorted(DTYPES))
    args = parser.parse_args()
    try:
        cells = [parse_cell(c) for c in args.cells.split(",")]
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if not torch.cuda.is_available():
        print("cuda_matvec_rings.py: needs a CUDA device", file=sys.stderr)
        return 2
    runner = CudaKernelRunner()
    generator = torch.Generator().manual_seed(0)
    bandwidth = copy_bandwidth()
    dtype = DTYPES[args.dtype]
    print(f"{torch.cuda.get_device_name()}; copy {bandwidth / 1e9:.0f} GB/s; us, {args.dtype}")
    print("| format | N x K | M | floor | kernel | rings | shared bytes | us | / floor |")
    print("|---|---|---:|---:|---|---|---:|---:|---:|")
    for fmt, n, k, m, variants in cells:
        kind = "matvec" if m == 1 else "matvec_batched"
        pick = emitter.pick_geometry("cuda", fmt, kind, args.dtype, n, k, m)
        kernels = [("pick " + pick, "", emitter.emit("cuda", fmt, kind, args.dtype, pick))]
        for variant in variants:
            kernel = variant_kernel(fmt, kind, args.dtype, variant)
            kernels.append((variant.form, str(variant).partition("@")[2], kernel))
        blocks = formats.random_blocks(fmt, n, k, generator=generator).cuda()
        weights = rotated_copies(blocks)
        floor = blocks.numel() / bandwidth * 1e6
        reference = torch.randn(m, k, generator=generator)
        xs = [reference.to(dtype).cuda()] + [
            torch.randn(m, k, device="cuda", dtype=dtype) for _ in weights[1:]
        ]
        outs = [torch.empty(m, n, device="cuda", dtype=dtype) for _ in weights]
        expected = xs[0].cpu().double() @ formats.dequantize(blocks.cpu(), fmt, torch.float64).T
        for name, rings, kernel in kernels:
            outs[0].fill_(float("nan"))
            runner.linear(kernel, xs[0], weights[0], None, n, k, out=outs[0])
            error = float((outs[0].cpu().double() - expected).norm() / expected.norm())
            if not error < TOLERANCE:
                raise SystemExit(f"{fmt} {n}x{k} M={m} {name} {rings}: error {error:.2e}")

            us = time_kernel(runner, kernel, xs, weights, outs, n, k)
            shared = kernel.launch.shared_memory_bytes
            print(
                f"| {fmt} | {n}x{k} | {m} | {floor:.1f} | {name} | {rings} | {shared} | "
                f"{us:.1f} | {us / floor:.2f} |",
                flush=True,
            )
        del weights, blocks
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
