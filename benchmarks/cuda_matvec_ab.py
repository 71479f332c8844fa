"""The CUDA matvec (M = 1) or matvec_batched (M = 2..8) of this checkout against that of an
earlier commit, in one run.

    python benchmarks/cuda_matvec_ab.py --baseline REV | --baseline-tree DIR
        [--dtypes float16,float32] [--formats Q4_0,...] [--shapes NxK,... | gemma] [--ms 1,2,8]
        [--out FILE]

For issue 6's shapes (default M = 1), each format, dtype and M: the kernel the lowering of this
checkout picks and the one the lowering of REV picked (matvec at M = 1, matvec_batched with
that M above), timed back to back on the same weights
(codegen.cuda_timing), each checked against a float64 reference first (the cells of
`cuda_matvec_geometry.py`).  REV's kernels come
from its own emitter: ``git archive REV`` is unpacked into a temporary directory (or
--baseline-tree names such a tree, e.g. where git is not at hand) and a Python process
started there prints them (entry, header, source, launch rule) as JSON; they
are launched by this checkout's launcher (the kernel signature has not changed).  Floor =
(packed weights + x + out) / measured device copy bandwidth (x and out of M rows).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codegen.cuda_run import TORCH_DTYPES, CudaKernelRunner
from codegen.cuda_timing import copy_bandwidth
from codegen.kernels import FORMAT_NAMES, KernelSource, emit, pick_geometry
from codegen.kernels.launch import GridExtent, LaunchRule, TensorMapRule
from compiler import formats

# the geometry benchmark's cell (a sibling script): each kernel checked against float64, timed
from cuda_matvec_geometry import time_cell  # isort: skip

SHAPES = ((4096, 4096), (14336, 4096), (4096, 14336), (5376, 21504), (262144, 640))
# The N x K of Gemma 3 270M's linears after fuse-sibling-linears (q/k/v stacked: 1536 or, where
# v is Q8_0, 1280 rows; gate/up stacked: 4096), its lm_head (the tied embedding) included.
GEMMA_SHAPES = ((1536, 640), (1280, 640), (640, 1024), (4096, 640), (640, 2048), (262144, 640))


def parse_shapes(text: str) -> tuple[tuple[int, int], ...]:
    """The shapes ``gemma`` names, or comma-separated NxK."""
    if text == "gemma":
        return GEMMA_SHAPES
    try:
        return tuple(tuple(int(v) for v in item.split("x")) for item in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shapes: expected NxK,NxK,... or gemma, got {text!r}")


# Run inside the baseline's tree: its lowering's pick for each cell, as JSON.  Older trees
# chose between two geometries with uses_narrow_variant(...) -> bool (M = 1 only).
BASELINE_DUMP = """
import dataclasses, json, sys
from codegen.kernels import emit
try:
    from codegen.kernels import pick_geometry
except ImportError:
    from codegen.kernels import uses_narrow_variant
    def pick_geometry(backend, fmt, kind, dtype, n, k, m=None):
        return uses_narrow_variant(backend, kind, dtype, n, k)
out = {}
for fmt, dtype, n, k, m in json.loads(sys.argv[1]):
    kind = "matvec" if m == 1 else "matvec_batched"
    pick = pick_geometry("cuda", fmt, kind, dtype, n, k) if m == 1 else pick_geometry(
        "cuda", fmt, kind, dtype, n, k, m)
    out[f"{fmt} {dtype} {n} {k} {m}"] = dataclasses.asdict(emit("cuda", fmt, kind, dtype, pick))
print(json.dumps(out))
"""


def kind_of(m: int) -> str:
    """The kernel kind the lowering takes for ``m`` activation rows (up to 8)."""
    return "matvec" if m == 1 else "matvec_batched"


def baseline_kernels(revision: str, cells: list[tuple[str, str, int, int, int]]) -> dict:
    """REV's kernels for ``cells`` (format, dtype, N, K, M), by key "format dtype N K M"."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryDirectory() as tree:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        return tree_kernels(Path(tree), cells)


def tree_kernels(tree: Path, cells: list[tuple[str, str, int, int, int]]) -> dict:
    """The kernels the emitter of the source tree ``tree`` gives for ``cells``."""
    result = subprocess.run(
        [sys.executable, "-c", BASELINE_DUMP, json.dumps(cells)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), *sys.path[1:]])},
        check=True,
        capture_output=True,
        text=True,
    )
    kernels = {}
    for key, fields in json.loads(result.stdout).items():
        rule = fields.pop("launch")
        grid = tuple(
            GridExtent(tuple(e["sizes"]), e["per_block"], e.get("times", 1)) for e in rule["grid"]
        )
        # older trees' rules lack the later fields (the staged kernels' shared memory and maps)
        maps = tuple(TensorMapRule(**m) for m in rule.get("tensor_maps", ()))
        launch = LaunchRule(rule["threads"], grid, rule.get("shared_memory_bytes", 0), maps)
        kernels[key] = KernelSource(**fields, launch=launch)
    return kernels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--baseline", help="a git revision of this repository")
    which.add_argument("--baseline-tree", type=Path, help="an unpacked source tree instead")
    parser.add_argument("--formats", default=",".join(FORMAT_NAMES))
    parser.add_argument("--dtypes", default="float16,float32")
    parser.add_argument(
        "--shapes",
        type=parse_shapes,
        default=SHAPES,
        help="N x K cells: comma-separated NxK, or gemma (Gemma 3 270M's linears); "
        "default: issue 6's shapes",
    )
    parser.add_argument(
        "--ms", default="1", help="activation rows, comma-separated: 1 (matvec) or 2..8"
    )
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("cuda_matvec_ab.py: needs a CUDA device", file=sys.stderr)
        return 2
    ms = [int(v) for v in args.ms.split(",")]
    if not all(1 <= m <= 8 for m in ms):
        parser.error(f"--ms: expected rows 1..8, got {args.ms!r}")
    cells = [
        (fmt, dtype, n, k, m)
        for dtype in args.dtypes.split(",")
        for fmt in args.formats.split(",")
        for n, k in args.shapes
        for m in ms
        if k % formats.get_format(fmt).block_weights == 0
    ]
    if args.baseline:
        baseline = baseline_kernels(args.baseline, cells)
    else:
        baseline = tree_kernels(args.baseline_tree.resolve(), cells)
    baseline_name = args.baseline or str(args.baseline_tree)
    runner = CudaKernelRunner()
    generator = torch.Generator().manual_seed(int(time.time()))
    bandwidth = copy_bandwidth()
    card = torch.cuda.get_device_name()
    header = (
        "| dtype | format | N x K | M | floor | baseline | now | baseline/floor | now/floor "
        "| now/baseline | kernel now |"
    )
    title = f"Card: {card}; device copy {bandwidth / 1e9:.0f} GB/s; baseline {baseline_name}"
    lines = [
        f"{title}; times in us (median)",
        "",
        header,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    print("\n".join(lines), flush=True)
    for fmt, dtype, n, k, m in cells:
        kind = kind_of(m)
        now = emit("cuda", fmt, kind, dtype, pick_geometry("cuda", fmt, kind, dtype, n, k, m))
        before = baseline[f"{fmt} {dtype} {n} {k} {m}"]
        t_before, t_now = time_cell(runner, (before, now), fmt, dtype, n, k, generator, m)
        moved = formats.row_bytes(fmt, k) * n + m * (n + k) * TORCH_DTYPES[dtype].itemsize
        floor = moved / bandwidth * 1e6
        line = (
            f"| {dtype} | {fmt} | {n}x{k} | {m} | {floor:.1f} | {t_before:.1f} | {t_now:.1f} | "
            f"{t_before / floor:.2f} | {t_now / floor:.2f} | {t_now / t_before:.2f} | "
            f"{now.entry} |"
        )
        lines.append(line)
        print(line, flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
