"""M-bucket tuning: time the CUDA linear kernels over M and choose `split-dynamic-m`'s buckets
(and, with 16-bit activations, fit the route model of a matmul's two routes to the card).

`split-dynamic-m{buckets=t1,t2}` sends a ``ggufc.linear`` with ``M <= t1`` rows to the
``matvec`` kernel, ``t1 < M <= t2`` to ``matvec_batched`` and larger M to ``matmul``.
Where one kernel overtakes the next depends on the card, the format and the dtype, so
``ggufc tune`` measures it and ``ggufc compile --tuning FILE`` uses the result.

Measuring (`tune`, `measure_kernels`; needs a CUDA device and CuPy)
    For each format and weight shape ``N x K`` (default `DEFAULT_SHAPES`, float16
    activations), each of the three kernels, in the geometry lowering picks for the shape
    (`codegen.kernels.pick_geometry`), at every M of `m_grid` (1..16, then 24, 32, 48, 64,
    ... up to ``m_max``), timed by `codegen.cuda_timing` (the method of
    benchmarks/cuda_matmul.py: device events, median of batches after warm-up, random
    weights rotated over copies larger than the L2), each point in `ROUNDS` rounds over the
    grid and the fastest round kept.  The kernels accept any M: matvec runs
    one block row per activation row, matvec_batched one per 8 rows (past 8 it reads the
    weights once more per 8 rows, which the timings show), matmul one per tile of 64 or
    128 rows.  So the only limit on a threshold is CUDA's grid.y of 65535 blocks
    (`MAX_THRESHOLDS`), far above any measured M.

Choosing (`choose_thresholds`, a pure function of the timings)
    Every bucket layout split-dynamic-m can express is scored: none (matmul only), one
    threshold ``t`` (matvec up to t, matmul above), two (matvec, matvec_batched, matmul),
    with thresholds among the measured M.  The score is the mean over the curves (one per
    format and shape) and the measured M of ``time(kernel the layout picks) / time(fastest
    kernel)``, so each (shape, M) counts alike whatever its absolute time.  The lowest score
    wins; among layouts within `TIE_TOLERANCE` of it, fewer thresholds first (fewer
    ``torch.cond`` levels), then smaller ones.  When two curves cross once this is that
    crossover (rounded to a measured M); when one kernel never overtakes the next within
    the measured range the threshold sits at the last measured M, and matmul, which serves
    every M, takes over beyond it.

Routes (`measure_routes`, `fitted_routes`, `Tuning.route_model`; 16-bit activations)
    Past the matmul bucket the lowering sends a 16-bit CUDA matmul with many rows to the
    dense route (dequantize, then cuBLAS) from a threshold per format and weight shape that
    a cost model of both routes picks (`codegen.dense_linear`, built on an H100).  Unless
    ``routes=False`` (``--no-routes``), `tune` times, per format and shape the route serves,
    the dequantize pass alone and at each of `ROUTE_M_VALUES` the matmul (in the geometry
    the lowering picks) and the whole dense route, and fits the model's three factors
    (measured / modelled time: the matmul per format, the dequantize pass, cuBLAS's product
    = dense route - dequantize pass) as medians (`codegen.dense_linear.fit_route_model`).
    Compile lowers with that model (`codegen.lower(..., route_model=...)`); the program's
    metadata names it (``ggufc.route_model``).

One set of thresholds per model (`Tuning.thresholds_for`)
    A split-dynamic-m region puts several linears, possibly of different formats, under one
    ``torch.cond``, so a compile needs one set.  The rule: the thresholds tuned for the
    format holding the most bytes of linear weights in the model (`linear_weight_bytes`:
    the weights ``ggufc.dequantize`` feeds to something other than an embedding, a tied
    output head included), since time goes with the bytes a kernel streams.  If that format
    was not tuned, the file's ``thresholds``: the choice over every tuned format together.

The file (`Tuning.to_json`, `Tuning.from_json`, `load_tuning`, `Tuning.save`)::

    {"version": 3, "device": "NVIDIA H100 80GB HBM3", "dtype": "float16", "date": "2026-11-25",
     "m_values": [1, 2, ..., 64], "shapes": [[4096, 4096], ...],
     "formats": {"Q4_K": {"thresholds": [3, 12],
                          "timings_us": {"4096x4096": {"matvec": [...], "matvec_batched": [...],
                                                       "matmul": [...]}, ...}}, ...},
     "thresholds": [3, 12],
     "routes": {"m_values": [64, 128, 256, 512, 1024],
                "matmul_scales": {"Q4_K": 1.02, ...}, "dequantize_scale": 0.98,
                "product_scale": 1.01, "shared_memory_per_block": 232448,
                "timings_us": {"Q4_K": {"4096x4096": {"dequantize": 14.2, "matmul": [...],
                                                      "dense": [...]}, ...}, ...}}}

``timings_us[shape][kernel][i]`` is the median time in microseconds at ``m_values[i]``
(the routes' at ``routes.m_values[i]``); ``routes`` is null where nothing was timed (float32,
``--no-routes``).  ``routes.shared_memory_per_block`` is the card's shared memory a block
(bytes, the most a kernel may opt in to): the lowering takes no matmul geometry needing more
(`codegen.kernels.emitter.matmul_geometry_of`).  Version 1 files (no ``routes``) are read
as such; version 2 files (routes without the card's shared memory) as from a card of
`codegen.kernels.emitter.PORTABLE_SHARED_MEMORY_PER_BLOCK` (an A100's 163 KB).  Every
field is checked on load; an error (`TuningFileError`) names the file and the field.  The
thresholds and the route factors may be edited by hand; they are not recomputed from the
timings.

Compile applies the chosen thresholds to every ``split-dynamic-m`` in the pipeline
(`tuned_pipeline`) as the buckets of the file's activation dtype: ``buckets`` for float16 and
bfloat16, ``float32-buckets`` for float32 (`BUCKETS_OPTION_BY_DTYPE`; the defaults differ,
`DEFAULT_BUCKETS_BY_DTYPE`).  A pipeline whose split-dynamic-m already sets that option to
something other than the pass default is an error rather than a silent choice between two
sources of thresholds; so is a pipeline without split-dynamic-m, or a model none of whose
linears runs the file's dtype (`check_tuning_fits`), where the file would do nothing.  (An
option equal to its default is indistinguishable from not setting it: the pipeline's
canonical text leaves default options out.)

This module imports only the standard library at import time; torch, the kernels and the
passes are imported by the functions that need them.
"""

from __future__ import annotations

import datetime
import itertools
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codegen.kernels.emitter import PORTABLE_SHARED_MEMORY_PER_BLOCK
from compiler.errors import GgufcError

# Thresholds split-dynamic-m uses without a tuning file: the `all` row of `ggufc tune --m-max
# 64` (every format, the three default shapes, float16) on an NVIDIA H100 80GB HBM3.  Set
# 2026-11-26 from the kernels of commit e145578 (session 12: the warp-specialized matmul, 111
# us for Q4_0 4096x14336 at any M up to its 128-row tile where session 8's took 162) and
# confirmed on session 15's (the v19 matmul, the v20 matvecs): matvec wins at M = 1 (Q5_K,
# Q6_K: up to 2); the tensor-core matvec_batched stays ahead of the matmul up to M = 16
# (Q4_K, Q5_K: 32); the matmul wins from M = 24 on.  Sessions 6 and 8 (slower matmul) had
# chosen 1,24 (BENCHMARKS.md, "M buckets").  Sessions 18-21 (dependent launches, the mma
# matvec, int16 activations and lane words in the M = 1 matvecs) moved single formats' rows
# (Q4_0 and Q6_K to 2,16, Q4_K and Q5_K to 1,32), never the `all` row; session 22's mma
# matvec for the other formats took Q4_0, Q5_0 and Q6_K back to 1,16.  Session 24's matmul
# geometries (64-row tiles, K split over a cluster: the matmul 2x faster below a wave of
# tiles) moved the `all` row to 1,9 and 1,12 in two runs; 1,9 scored best over both (mean
# slowdown against the fastest kernel 13.1%, 1,16 17.2%; BENCHMARKS.md, "M buckets").
DEFAULT_BUCKETS: tuple[int, ...] = (1, 9)
# The same for float32 activations (`ggufc tune --dtype float32`, H100, session 24): the batched
# kernel lost to the matvec at every M measured (Q8_0 4096x4096 at M = 8: 161 us against 53),
# so matvec up to 16 rows and the matmul above, for every format (+5.1% over the fastest
# kernel, against +123% for 1,9).  Gemma 3 270M runs float32.
FLOAT32_DEFAULT_BUCKETS: tuple[int, ...] = (16,)
# split-dynamic-m's option holding the buckets of linears with these activations, and its
# default: where one kernel overtakes the next differs by dtype (the two tunes above)
BUCKETS_OPTION_BY_DTYPE = {
    "float16": "buckets",
    "bfloat16": "buckets",
    "float32": "float32_buckets",
}
DEFAULT_BUCKETS_BY_DTYPE = {
    "float16": DEFAULT_BUCKETS,
    "bfloat16": DEFAULT_BUCKETS,
    "float32": FLOAT32_DEFAULT_BUCKETS,
}

# 2 added ``routes`` (version 1 files, without it, are still read)
TUNING_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
DEFAULT_DTYPE = "float16"
# A square projection and the two MLP shapes of an 8B-class llama (hidden 4096, FFN 14336).
DEFAULT_SHAPES: tuple[tuple[int, int], ...] = ((4096, 4096), (14336, 4096), (4096, 14336))
DEFAULT_M_MAX = 64
# matvec's time grows linearly with M (one pass over the weights per row); at 256 rows one
# point of the largest default shape already takes about a second to time.
M_MAX_LIMIT = 256
# Every M up to here is measured; beyond it, 16 and 24 times powers of two.
DENSE_M = 16
# The kernels of split-dynamic-m's buckets, by the number of thresholds (its `buckets=`).
BUCKET_KERNELS = ("matvec", "matvec_batched", "matmul")
KERNELS_BY_THRESHOLD_COUNT = {0: ("matmul",), 1: ("matvec", "matmul"), 2: BUCKET_KERNELS}
# The largest M each bucket's kernel can launch for: CUDA's grid.y is at most 65535 blocks,
# and matvec has one block row per activation row, matvec_batched one per 8
# (codegen.kernels.emitter.MATVEC_BATCHED_ROWS).
CUDA_MAX_GRID_Y = 65535
MAX_THRESHOLDS = {"matvec": CUDA_MAX_GRID_Y, "matvec_batched": CUDA_MAX_GRID_Y * 8}
# Relative score difference below which two bucket layouts count as equally fast.
TIE_TOLERANCE = 1e-9
FILE_FIELDS_V1 = (
    "version",
    "device",
    "dtype",
    "date",
    "m_values",
    "shapes",
    "formats",
    "thresholds",
)
FILE_FIELDS = (*FILE_FIELDS_V1, "routes")
FORMAT_FIELDS = ("thresholds", "timings_us")
# Routes (`measure_routes`): the rows at which a 16-bit matmul's two routes are timed, to fit
# the route model (`codegen.dense_linear.fit_route_model`) around where they cross on an H100
ROUTE_M_VALUES = (64, 128, 256, 512, 1024)
# Each point is timed in this many rounds over the whole M grid, and the fastest round's
# median kept: on the H100 of the device tool a point now and then measured 2-3x its
# neighbours for a whole time_launches call (session 25: Q5_K 4096x4096's matmul at M = 256
# 140.8 us between 26.6 at 128 and 46.8 at 512), which a second round away in time does not
# repeat.
ROUNDS = 2
ROUTE_FIELDS = ("m_values", "matmul_scales", "dequantize_scale", "product_scale", "timings_us")
# and since version 3 the card's shared memory a block
ROUTE_FIELDS_V3 = ROUTE_FIELDS + ("shared_memory_per_block",)
# a shape's route timings: the dequantize pass once, both routes at each route M
ROUTE_TIMING_FIELDS = ("dequantize", "matmul", "dense")

# One curve: kernel -> microseconds at each measured M.
Curve = Mapping[str, Sequence[float]]


class TuningError(GgufcError):
    """`ggufc tune` cannot run here, or a tuning cannot be applied to a pipeline."""


class TuningFileError(TuningError):
    """A tuning file is not one ggufc wrote or can read; names the file and the field."""


# ---- choosing thresholds ----------------------------------------------------------------------


def kernel_for(thresholds: Sequence[int], m: int) -> str:
    """The kernel split-dynamic-m with ``buckets=thresholds`` gives a linear of M rows."""
    kernels = KERNELS_BY_THRESHOLD_COUNT[len(thresholds)]
    for threshold, kernel in zip(thresholds, kernels):
        if m <= threshold:
            return kernel
    return kernels[-1]


def _check_curves(curves: Sequence[Curve], m_values: Sequence[int]) -> None:
    if not curves:
        raise TuningError("choosing thresholds needs at least one timing curve")
    for index, curve in enumerate(curves):
        for kernel in BUCKET_KERNELS:
            times = curve.get(kernel)
            if times is None or len(times) != len(m_values):
                raise TuningError(
                    f"timing curve {index}: expected {len(m_values)} times for {kernel}, got "
                    f"{'none' if times is None else len(times)}"
                )
            if not all(_is_positive_number(t) for t in times):
                raise TuningError(
                    f"timing curve {index}: {kernel} times must be positive finite numbers"
                )


def relative_score(
    curves: Sequence[Curve], m_values: Sequence[int], thresholds: Sequence[int]
) -> float:
    """Mean over curves and measured M of time(kernel ``thresholds`` picks) / time(fastest
    kernel): 1.0 when the buckets always pick the fastest kernel."""
    _check_curves(curves, m_values)
    return _score(_ratios(curves, m_values), m_values, tuple(thresholds))


def _ratios(curves: Sequence[Curve], m_values: Sequence[int]) -> dict[str, list[float]]:
    """kernel -> time / fastest time, summed over the curves, at each measured M."""
    sums = {kernel: [0.0] * len(m_values) for kernel in BUCKET_KERNELS}
    for curve in curves:
        for i in range(len(m_values)):
            fastest = min(curve[kernel][i] for kernel in BUCKET_KERNELS)
            for kernel in BUCKET_KERNELS:
                sums[kernel][i] += curve[kernel][i] / fastest
    count = len(curves) * len(m_values)
    return {kernel: [value / count for value in values] for kernel, values in sums.items()}


def _score(ratios: dict[str, list[float]], m_values: Sequence[int], thresholds) -> float:
    return sum(ratios[kernel_for(thresholds, m)][i] for i, m in enumerate(m_values))


def _layouts(m_values: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every bucket layout with thresholds among `m_values`, in order of preference on a tie:
    fewer thresholds first, then smaller ones."""
    yield ()
    for t1 in m_values:
        if t1 <= MAX_THRESHOLDS["matvec"]:
            yield (t1,)
    for i, t1 in enumerate(m_values):
        for t2 in m_values[i + 1 :]:
            if t1 <= MAX_THRESHOLDS["matvec"] and t2 <= MAX_THRESHOLDS["matvec_batched"]:
                yield (t1, t2)


def choose_thresholds(curves: Sequence[Curve], m_values: Sequence[int]) -> tuple[int, ...]:
    """split-dynamic-m's ``buckets`` for these timing curves (see the module docstring).

    ``curves``: one mapping per measured shape (and format), kernel -> microseconds at each
    of ``m_values`` (increasing positive row counts)."""
    m_values = tuple(m_values)
    if not m_values or list(m_values) != sorted(set(m_values)) or m_values[0] < 1:
        raise TuningError(f"M values must be increasing positive integers, got {list(m_values)}")
    _check_curves(curves, m_values)
    ratios = _ratios(curves, m_values)
    best, best_score = (), math.inf
    for layout in _layouts(m_values):
        score = _score(ratios, m_values, layout)
        if score < best_score * (1.0 - TIE_TOLERANCE):
            best, best_score = layout, score
    return best


def m_grid(m_max: int) -> tuple[int, ...]:
    """The M values `tune` measures: every M up to `DENSE_M`, then 16 and 24 times powers of
    two, and `m_max` itself."""
    if not isinstance(m_max, int) or not 1 <= m_max <= M_MAX_LIMIT:
        raise TuningError(f"m_max must be an integer in 1..{M_MAX_LIMIT}, got {m_max!r}")
    sparse = {base << shift for base in (2, 3) for shift in range(3, M_MAX_LIMIT.bit_length())}
    values = set(range(1, min(m_max, DENSE_M) + 1))
    values |= {m for m in sparse if m <= m_max}
    values.add(m_max)
    return tuple(sorted(values))


# ---- the tuning record ------------------------------------------------------------------------


def shape_label(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


@dataclass(frozen=True)
class FormatTuning:
    """One format: its chosen thresholds and ``timings_us[shape label][kernel]`` (us per M)."""

    thresholds: tuple[int, ...]
    timings_us: Mapping[str, Mapping[str, tuple[float, ...]]]

    def curves(self) -> list[Curve]:
        return list(self.timings_us.values())


@dataclass(frozen=True)
class RouteTuning:
    """A 16-bit matmul's routes on one device: at each of ``m_values``, per format and shape
    label, the matmul's and the dense route's (dequantize, then cuBLAS) microseconds and the
    dequantize pass's alone (``timings_us[fmt][shape] = {"dequantize": us, "matmul": [...],
    "dense": [...]}``), and the route model's factors fitted on them (editable by hand, not
    recomputed on load); the card's shared memory a block (a version 2 file's, not recorded
    there: `PORTABLE_SHARED_MEMORY_PER_BLOCK`)."""

    m_values: tuple[int, ...]
    timings_us: Mapping[str, Mapping[str, Mapping]]
    matmul_scales: Mapping[str, float]
    dequantize_scale: float
    product_scale: float
    shared_memory_per_block: int = PORTABLE_SHARED_MEMORY_PER_BLOCK

    def samples(self):
        """The timings as `codegen.dense_linear.RouteSample`s."""
        return route_samples(self.timings_us, self.m_values)


def route_samples(timings_us: Mapping[str, Mapping[str, Mapping]], m_values: Sequence[int]):
    """`RouteTuning.timings_us`-shaped route timings at ``m_values`` as
    `codegen.dense_linear.RouteSample`s: cuBLAS's product is the dense route less the
    dequantize pass."""
    from codegen.dense_linear import RouteSample

    for fmt, by_shape in timings_us.items():
        for label, timing in by_shape.items():
            n, k = (int(size) for size in label.split("x"))
            for i, m in enumerate(m_values):
                product = timing["dense"][i] - timing["dequantize"]
                yield RouteSample(fmt, n, k, m, timing["matmul"][i], timing["dequantize"], product)


@dataclass(frozen=True)
class Tuning:
    """What `ggufc tune` measured and chose on one device (see the module docstring)."""

    device: str
    dtype: str
    date: str
    m_values: tuple[int, ...]
    shapes: tuple[tuple[int, int], ...]
    formats: Mapping[str, FormatTuning]
    thresholds: tuple[int, ...]
    routes: RouteTuning | None = None

    def route_model(self):
        """The `codegen.dense_linear.RouteModel` of this device (None: not measured, the
        lowering keeps its H100 model)."""
        if self.routes is None:
            return None
        from codegen.dense_linear import RouteModel

        return RouteModel(
            matmul_scales=tuple(sorted(self.routes.matmul_scales.items())),
            dequantize_scale=self.routes.dequantize_scale,
            product_scale=self.routes.product_scale,
            device=f"{self.device} (tuned {self.date})",
            shared_memory_per_block=self.routes.shared_memory_per_block,
        )

    def dominant_format(self, linear_bytes: Mapping[str, int]) -> str | None:
        """The format holding the most linear-weight bytes (ties: the earlier name)."""
        if not linear_bytes:
            return None
        return max(sorted(linear_bytes), key=lambda fmt: linear_bytes[fmt])

    def thresholds_for(self, linear_bytes: Mapping[str, int]) -> tuple[int, ...]:
        """The buckets to compile a model with, given its bytes of linear weights per format:
        its dominant format's thresholds if tuned, else the file's overall ones."""
        fmt = self.dominant_format(linear_bytes)
        if fmt is not None and fmt in self.formats:
            return self.formats[fmt].thresholds
        return self.thresholds

    # ---- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "version": TUNING_VERSION,
            "device": self.device,
            "dtype": self.dtype,
            "date": self.date,
            "m_values": list(self.m_values),
            "shapes": [list(shape) for shape in self.shapes],
            "formats": {
                fmt: {
                    "thresholds": list(entry.thresholds),
                    "timings_us": {
                        label: {kernel: list(times) for kernel, times in by_kernel.items()}
                        for label, by_kernel in entry.timings_us.items()
                    },
                }
                for fmt, entry in self.formats.items()
            },
            "thresholds": list(self.thresholds),
            "routes": None if self.routes is None else _routes_dict(self.routes),
        }

    def to_json(self) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        # one line per list of numbers: a timing curve reads across, not down
        return _SCALAR_LIST.sub(_join_scalar_list, text) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "<tuning>") -> Tuning:
        """Parse and check a tuning file's text; `source` names it in errors."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise TuningFileError(f"{source}: not a JSON document: {exc}") from None
        return _FileReader(source).tuning(data)

    def save(self, path) -> Path:
        """Write the JSON to `path` atomically (a temporary file beside it, then a rename), so
        an interrupted write never leaves half a file."""
        path = Path(path)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.to_json())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path


def _routes_dict(routes: RouteTuning) -> dict:
    return {
        "m_values": list(routes.m_values),
        "matmul_scales": dict(routes.matmul_scales),
        "dequantize_scale": routes.dequantize_scale,
        "product_scale": routes.product_scale,
        "shared_memory_per_block": routes.shared_memory_per_block,
        "timings_us": {
            fmt: {
                label: {
                    "dequantize": timing["dequantize"],
                    "matmul": list(timing["matmul"]),
                    "dense": list(timing["dense"]),
                }
                for label, timing in by_shape.items()
            }
            for fmt, by_shape in routes.timings_us.items()
        },
    }


_SCALAR_LIST = re.compile(r"\[\s*([-0-9.eE+,\s]*?)\s*\]")


def _join_scalar_list(match: re.Match) -> str:
    items = [item.strip() for item in match.group(1).split(",") if item.strip()]
    return "[" + ", ".join(items) + "]"


def load_tuning(path) -> Tuning:
    """Read and check a tuning file written by `ggufc tune`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TuningFileError(f"{path}: cannot read the tuning file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TuningFileError(f"{path}: not a UTF-8 text file") from None
    return Tuning.from_json(text, str(path))


def as_tuning(tuning) -> tuple[Tuning, str]:
    """(Tuning, name for messages) from a `Tuning` or the path of a tuning file."""
    if isinstance(tuning, Tuning):
        return tuning, "tuning"
    if isinstance(tuning, (str, os.PathLike)):
        return load_tuning(tuning), str(tuning)
    raise TuningError(f"tuning must be a Tuning or a file path, got {type(tuning).__name__}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_number(value) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _show(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _FileReader:
    """Checks a parsed tuning file, field by field; errors name the file and the field."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, expected: str, value=None, *, missing: bool = False):
        got = "it is missing" if missing else f"got {_show(value)}"
        raise TuningFileError(f"{self.source}: field {field}: expected {expected}, {got}")

    def object(self, field: str, value, keys: Sequence[str] | None) -> dict:
        if not isinstance(value, dict):
            self.fail(field, "a JSON object", value)
        if keys is not None:
            prefix = f"{field}." if field else ""
            for key in keys:
                if key not in value:
                    self.fail(f"{prefix}{key}", "a value", missing=True)
            for key in value:
                if key not in keys:
                    raise TuningFileError(
                        f"{self.source}: field {prefix}{key}: unknown field; a tuning file "
                        f"has {', '.join(keys)}"
                    )
        return value

    def tuning(self, data) -> Tuning:
        from codegen.kernels.emitter import DTYPES, FORMAT_NAMES

        version = data.get("version") if isinstance(data, dict) else None
        if not _is_int(version) or version not in READABLE_VERSIONS:
            self.object("", data, None)
            if "version" not in data:
                self.fail("version", "a value", missing=True)
            self.fail(
                "version",
                f"one of {', '.join(map(str, READABLE_VERSIONS))} (the versions this ggufc reads)",
                version,
            )
        self.object("", data, FILE_FIELDS if version >= 2 else FILE_FIELDS_V1)
        device = data["device"]
        if not isinstance(device, str) or not device.strip():
            self.fail("device", "the device name, a non-empty string", device)
        if data["dtype"] not in DTYPES:
            self.fail("dtype", f"one of {', '.join(DTYPES)}", data["dtype"])
        date = data["date"]
        try:
            datetime.date.fromisoformat(date)
        except (TypeError, ValueError):
            self.fail("date", "an ISO date YYYY-MM-DD", date)
        m_values = self.m_values(data["m_values"])
        shapes = self.shapes(data["shapes"])
        labels = [shape_label(shape) for shape in shapes]
        formats = {}
        for fmt, entry in self.object("formats", data["formats"], None).items():
            if fmt not in FORMAT_NAMES:
                raise TuningFileError(
                    f"{self.source}: field formats.{fmt}: unknown format; expected one of "
                    f"{', '.join(FORMAT_NAMES)}"
                )
            formats[fmt] = self.format_entry(f"formats.{fmt}", entry, labels, len(m_values))
        thresholds = self.thresholds("thresholds", data["thresholds"])
        routes = data.get("routes")
        return Tuning(
            device=device,
            dtype=data["dtype"],
            date=date,
            m_values=m_values,
            shapes=shapes,
            formats=formats,
            thresholds=thresholds,
            routes=None if routes is None else self.routes(routes, labels, version),
        )

    def routes(self, value, labels: list[str], version: int) -> RouteTuning:
        from codegen.kernels.emitter import FORMAT_NAMES

        self.object("routes", value, ROUTE_FIELDS_V3 if version >= 3 else ROUTE_FIELDS)
        m_values = self.m_values(value["m_values"], "routes.m_values")
        shared = value.get("shared_memory_per_block", PORTABLE_SHARED_MEMORY_PER_BLOCK)
        if not _is_int(shared) or shared <= 0:
            self.fail(
                "routes.shared_memory_per_block",
                "the card's shared memory a block, a positive number of bytes",
                shared,
            )
        scales = self.object("routes.matmul_scales", value["matmul_scales"], None)
        for fmt, scale in scales.items():
            if fmt not in FORMAT_NAMES:
                raise TuningFileError(
                    f"{self.source}: field routes.matmul_scales.{fmt}: unknown format; "
                    f"expected one of {', '.join(FORMAT_NAMES)}"
                )
            self.factor(f"routes.matmul_scales.{fmt}", scale)
        for field in ("dequantize_scale", "product_scale"):
            self.factor(f"routes.{field}", value[field])
        timings = {}
        by_format = self.object("routes.timings_us", value["timings_us"], None)
        for fmt, by_shape in by_format.items():
            if fmt not in scales:
                raise TuningFileError(
                    f"{self.source}: field routes.timings_us.{fmt}: a format with no "
                    "routes.matmul_scales entry"
                )
            self.object(f"routes.timings_us.{fmt}", by_shape, labels)
            timings[fmt] = {}
            for label in labels:
                where = f"routes.timings_us.{fmt}.{label}"
                timing = self.object(where, by_shape[label], ROUTE_TIMING_FIELDS)
                if not _is_positive_number(timing["dequantize"]):
                    self.fail(
                        f"{where}.dequantize",
                        "a positive number of microseconds",
                        timing["dequantize"],
                    )
                entry = {"dequantize": timing["dequantize"]}
                for route in ("matmul", "dense"):
                    times = timing[route]
                    if not isinstance(times, list) or len(times) != len(m_values):
                        self.fail(
                            f"{where}.{route}",
                            f"a list of {len(m_values)} times (one per routes.m_values entry)",
                            times,
                        )
                    for index, time in enumerate(times):
                        if not _is_positive_number(time):
                            self.fail(
                                f"{where}.{route}[{index}]",
                                "a positive number of microseconds",
                                time,
                            )
                    entry[route] = tuple(times)
                timings[fmt][label] = entry
        return RouteTuning(
            m_values=m_values,
            timings_us=timings,
            matmul_scales=dict(scales),
            dequantize_scale=value["dequantize_scale"],
            product_scale=value["product_scale"],
            shared_memory_per_block=shared,
        )

    def factor(self, field: str, value) -> None:
        if not _is_positive_number(value):
            self.fail(field, "a positive number (measured / modelled time)", value)

    def m_values(self, value, field: str = "m_values") -> tuple[int, ...]:
        expected = "a non-empty list of increasing positive integers"
        if (
            not isinstance(value, list)
            or not value
            or not all(_is_int(m) and m >= 1 for m in value)
            or any(a >= b for a, b in itertools.pairwise(value))
        ):
            self.fail(field, expected, value)
        return tuple(value)

    def shapes(self, value) -> tuple[tuple[int, int], ...]:
        if not isinstance(value, list) or not value:
            self.fail("shapes", "a non-empty list of [N, K] pairs", value)
        shapes = []
        for index, shape in enumerate(value):
            if not (
                isinstance(shape, list)
                and len(shape) == 2
                and all(_is_int(size) and size >= 1 for size in shape)
            ):
                self.fail(f"shapes[{index}]", "[N, K], two positive integers", shape)
            if tuple(shape) in shapes:
                self.fail(f"shapes[{index}]", "a shape not listed before", shape)
            shapes.append(tuple(shape))
        return tuple(shapes)

    def thresholds(self, field: str, value) -> tuple[int, ...]:
        expected = (
            "split-dynamic-m buckets: at most 2 increasing positive integers, the first at "
            f"most {MAX_THRESHOLDS['matvec']} and the second at most "
            f"{MAX_THRESHOLDS['matvec_batched']} (CUDA grid limits of matvec, matvec_batched)"
        )
        if (
            not isinstance(value, list)
            or len(value) > 2
            or not all(_is_int(t) and t >= 1 for t in value)
            or any(a >= b for a, b in itertools.pairwise(value))
            or any(t > MAX_THRESHOLDS[kernel] for t, kernel in zip(value, BUCKET_KERNELS))
        ):
            self.fail(field, expected, value)
        return tuple(value)

    def format_entry(self, field: str, entry, labels: list[str], count: int) -> FormatTuning:
        self.object(field, entry, FORMAT_FIELDS)
        thresholds = self.thresholds(f"{field}.thresholds", entry["thresholds"])
        timings = self.object(f"{field}.timings_us", entry["timings_us"], labels)
        curves = {}
        for label in labels:
            by_kernel = self.object(f"{field}.timings_us.{label}", timings[label], BUCKET_KERNELS)
            curve = {}
            for kernel in BUCKET_KERNELS:
                where = f"{field}.timings_us.{label}.{kernel}"
                times = by_kernel[kernel]
                if not isinstance(times, list) or len(times) != count:
                    self.fail(where, f"a list of {count} times (one per m_values entry)", times)
                for index, time in enumerate(times):
                    if not _is_positive_number(time):
                        self.fail(f"{where}[{index}]", "a positive number of microseconds", time)
                curve[kernel] = tuple(times)
            curves[label] = curve
        return FormatTuning(thresholds, curves)


# ---- applying a tuning to a compile -------------------------------------------------------------


def _linear_weight_nodes(graph_program):
    """The nodes standing for the model's linears: each ``ggufc.dequantize`` with a user other
    than ``aten.embedding`` (before fuse-gguf) and each ``ggufc.linear`` (after it)."""
    import torch

    from compiler import ops

    embedding = torch.ops.aten.embedding.default
    for node in graph_program.graph.nodes:
        if node.op != "call_function":
            continue
        if node.target is ops.dequantize:
            if all(user.target is embedding for user in node.users):
                continue
        elif node.target is not ops.linear:
            continue
        yield node


def linear_weight_bytes(graph_program) -> dict[str, int]:
    """Bytes of packed weights per format that the model's linears read: each
    ``ggufc.dequantize`` with a user other than ``aten.embedding`` (before fuse-gguf), and
    each ``ggufc.linear`` (after it)."""

    from compiler.formats import row_bytes
    from passes.fuse_gguf_patterns import bound_arguments

    totals: dict[str, int] = {}
    for node in _linear_weight_nodes(graph_program):
        arguments = bound_arguments(node)
        fmt, n, k = arguments.get("fmt"), arguments.get("n"), arguments.get("k")
        if isinstance(fmt, str) and _is_int(n) and _is_int(k):
            totals[fmt] = totals.get(fmt, 0) + n * row_bytes(fmt, k)
    return totals


def _split_passes(pipeline, source: str, dtype: str) -> list:
    """The split-dynamic-m passes of `pipeline`; raises TuningError if there are none or one
    sets its own buckets for ``dtype`` activations."""
    from passes.pass_base import pass_options
    from passes.split_dynamic_m import SplitDynamicM

    option = BUCKETS_OPTION_BY_DTYPE[dtype]
    default = {opt.name: opt.default for opt in pass_options(SplitDynamicM)}[option]
    found = [p for p in pipeline if isinstance(p, SplitDynamicM)]
    if not found:
        raise TuningError(
            f"{source}: the pipeline has no split-dynamic-m pass, so the tuned buckets would "
            f"do nothing; pipeline: {pipeline}"
        )
    for split in found:
        if getattr(split, option) != default:
            raise TuningError(
                f"{source}: the pipeline already sets {split}; give the {dtype} buckets "
                f"({option.replace('_', '-')}=) either in the pipeline or in the tuning file, "
                "not both"
            )
    return found


def check_pipeline_takes_tuning(pipeline, source: str, dtype: str = DEFAULT_DTYPE) -> None:
    """Raise TuningError now if `tuned_pipeline` would refuse `pipeline` later."""
    _split_passes(pipeline, source, dtype)


def tuned_pipeline(pipeline, thresholds: Sequence[int], source: str, dtype: str = DEFAULT_DTYPE):
    """`pipeline` with the thresholds as the buckets of ``dtype`` linears on each
    split-dynamic-m (``buckets=`` for float16 / bfloat16, ``float32-buckets=`` for float32;
    see the module docstring for the pipelines this refuses)."""
    import dataclasses

    from passes.pipeline import Pipeline
    from passes.split_dynamic_m import SplitDynamicM

    _split_passes(pipeline, source, dtype)
    option = BUCKETS_OPTION_BY_DTYPE[dtype]
    return Pipeline(
        tuple(
            dataclasses.replace(p, **{option: tuple(thresholds)})
            if isinstance(p, SplitDynamicM)
            else p
            for p in pipeline
        )
    )


def linear_activation_dtypes(graph_program) -> set[str]:
    """The activation dtypes (``"float32"``, ...) of the model's linears: the dtype of each
    ``ggufc.dequantize`` with a user other than ``aten.embedding`` (the weight F.linear
    takes has its activations' dtype), and of each ``ggufc.linear``'s output."""
    import torch

    found = set()
    for node in _linear_weight_nodes(graph_program):
        value = node.meta.get("val")
        if isinstance(value, torch.Tensor):
            found.add(str(value.dtype).removeprefix("torch."))
    return found


def check_tuning_fits(tuning: Tuning, source: str, graph_program) -> None:
    """Raise TuningError where the model has no linear whose buckets the tuning would set:
    a file tuned with float16 activations does nothing to a float32 model, and the reverse."""
    option = BUCKETS_OPTION_BY_DTYPE[tuning.dtype]
    dtypes = sorted(linear_activation_dtypes(graph_program))
    if dtypes and not any(BUCKETS_OPTION_BY_DTYPE.get(d) == option for d in dtypes):
        raise TuningError(
            f"{source}: tuned with {tuning.dtype} activations, but the model's linears run "
            f"{', '.join(dtypes)}, whose buckets it would not set; tune for them: ggufc tune "
            f"--dtype {dtypes[0]}"
        )


# ---- measuring ----------------------------------------------------------------------------------


def require_cuda() -> None:
    """Raise TuningError unless torch sees a CUDA device and CuPy is installed."""
    import importlib

    import torch

    if not torch.cuda.is_available():
        raise TuningError(
            "tuning times the generated CUDA kernels and torch sees no CUDA device here; "
            "run `ggufc tune` on the machine (and card) you will run the programs on"
        )
    try:
        importlib.import_module("cupy")
    except ImportError:
        raise TuningError(
            "tuning launches the generated CUDA kernels through CuPy, which is not installed: "
            "pip install 'ggufc[cuda]' (or 'ggufc[cuda13]' for CUDA 13 drivers)"
        ) from None


def check_tune_arguments(formats: Sequence[str], shapes, dtype: str) -> None:
    """Raise TuningError for a format, shape or dtype the kernels cannot be timed with."""
    from codegen.kernels.emitter import DTYPES, FORMAT_NAMES
    from compiler.formats import get_format

    unknown = [fmt for fmt in formats if fmt not in FORMAT_NAMES]
    if unknown or not formats:
        raise TuningError(
            f"formats {', '.join(unknown) or '(none)'}: expected some of {', '.join(FORMAT_NAMES)}"
        )
    if dtype not in DTYPES:
        raise TuningError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if not shapes:
        raise TuningError("no shapes to measure")
    for shape in shapes:
        if len(shape) != 2 or not all(_is_int(size) and size >= 1 for size in shape):
            raise TuningError(f"shape {shape!r}: expected (N, K), two positive integers")
        for fmt in formats:
            block_weights = get_format(fmt).block_weights
            if shape[1] % block_weights:
                raise TuningError(
                    f"shape {shape_label(shape)}: K={shape[1]} is not a multiple of {fmt}'s "
                    f"{block_weights}-weight blocks"
                )


def measure_kernels(
    runner,
    fmt: str,
    shape: tuple[int, int],
    m_values: Sequence[int],
    dtype: str = DEFAULT_DTYPE,
    generator=None,
    advance: Callable[[int], object] | None = None,
    shared_memory_per_block: int | None = None,
) -> dict[str, tuple[float, ...]]:
    """kernel -> median microseconds at each of `m_values` (the fastest of `ROUNDS` rounds),
    for random `fmt` weights of `shape` (N x K) and random activations, each kernel in the
    geometry the lowering picks for a card of ``shared_memory_per_block`` (None: the current
    device's); `advance(1)` after each timed point of each round."""
    from codegen.cuda_timing import copies_for
    from codegen.kernels import emit, pick_geometry

    n, k = shape
    if shared_memory_per_block is None:
        shared_memory_per_block = device_shared_memory_per_block()
    inputs = _TimingInputs(fmt, shape, max(m_values), dtype, generator, copies_for)

    # each kernel in the geometry lowering picks for this shape and M (the matvec's narrow,
    # streamed, split-K, paired or quad one; the batched matvec's mma one up to its rows, in
    # the form the shape calls for and the card's shared memory holds)
    def kernel_for_m(kernel: str, m: int):
        geometry = pick_geometry("cuda", fmt, kernel, dtype, n, k, m, shared_memory_per_block)
        return emit("cuda", fmt, kernel, dtype, geometry)

    times = {kernel: [math.inf] * len(m_values) for kernel in BUCKET_KERNELS}
    for _ in range(ROUNDS):
        for i, m in enumerate(m_values):
            for kernel_name in BUCKET_KERNELS:
                launch = inputs.linear_launch(runner, kernel_for_m(kernel_name, m), m)
                times[kernel_name][i] = inputs.faster(times[kernel_name][i], launch)
                if advance is not None:
                    advance(1)
    return {kernel: tuple(values) for kernel, values in times.items()}


def measure_routes(
    runner,
    fmt: str,
    shape: tuple[int, int],
    m_values: Sequence[int] = ROUTE_M_VALUES,
    dtype: str = DEFAULT_DTYPE,
    generator=None,
    advance: Callable[[int], object] | None = None,
    shared_memory_per_block: int | None = None,
) -> dict:
    """A 16-bit matmul's routes for random `fmt` weights of `shape` (N x K): microseconds of
    the dequantize pass alone (``"dequantize"``), and at each of `m_values` of the GGUF
    matmul in the geometry the lowering picks for a card of ``shared_memory_per_block``
    (None: the current device's) (``"matmul"``) and of the dense route as a program
    runs it (`codegen.cuda_run.CudaKernelRunner.dense_linear`, ``"dense"``; the product may
    find part of the weight it just wrote in the L2); each the fastest of `ROUNDS` rounds.
    `advance(2)` after each M of each round."""
    import torch

    from codegen.cuda_run import TORCH_DTYPES
    from codegen.cuda_timing import copies_for
    from codegen.kernels import emit, pick_geometry

    n, k = shape
    rows = max(m_values)
    act_dtype = TORCH_DTYPES[dtype]
    if shared_memory_per_block is None:
        shared_memory_per_block = device_shared_memory_per_block()
    # copies enough for a launch's weights, activations and output together to pass the L2
    # (at 1024 rows the activations can outweigh the weights)
    act_bytes = rows * (k + n) * torch.finfo(act_dtype).bits // 8
    inputs = _TimingInputs(
        fmt, shape, rows, dtype, generator, lambda nbytes: copies_for(nbytes + act_bytes)
    )
    dense_weight = torch.empty(n, k, device="cuda", dtype=act_dtype)
    dequantize = emit("cuda", fmt, "dequantize", dtype)

    def dequantize_copy(i: int):
        return runner.dequantize(dequantize, inputs.weights[i], n, k, out=dense_weight)

    dequantize_us = math.inf
    times = {route: [math.inf] * len(m_values) for route in ("matmul", "dense")}
    for _ in range(ROUNDS):
        dequantize_us = inputs.faster(dequantize_us, dequantize_copy)
        for index, m in enumerate(m_values):
            geometry = pick_geometry("cuda", fmt, "matmul", dtype, n, k, m, shared_memory_per_block)
            kernel = emit("cuda", fmt, "matmul", dtype, geometry)

            def dense(i: int, m=m):
                x = inputs.xs[i][:m]
                return runner.dense_linear(
                    dequantize, x, inputs.weights[i], None, n, k, dense_weight
                )

            launches = {"matmul": inputs.linear_launch(runner, kernel, m), "dense": dense}
            for route, launch in launches.items():
                times[route][index] = inputs.faster(times[route][index], launch)
            if advance is not None:
                advance(2)
    return {"dequantize": dequantize_us, **{route: tuple(v) for route, v in times.items()}}


class _TimingInputs:
    """Random `fmt` weights of `shape` and random activations / outputs of up to ``rows``
    rows, in ``copies_of(packed weight bytes)`` copies to rotate over (codegen.cuda_timing)."""

    def __init__(self, fmt: str, shape, rows: int, dtype: str, generator, copies_of):
        import torch

        from codegen.cuda_run import TORCH_DTYPES
        from compiler import formats

        self.n, self.k = shape
        blocks = formats.random_blocks(fmt, self.n, self.k, generator=generator).cuda()
        self.copies = copies_of(blocks.numel())
        self.weights = [blocks] + [blocks.clone() for _ in range(self.copies - 1)]
        act_dtype = TORCH_DTYPES[dtype]
        self.xs = [
            torch.randn(rows, self.k, device="cuda", dtype=act_dtype) for _ in range(self.copies)
        ]
        self.outs = [
            torch.empty(rows, self.n, device="cuda", dtype=act_dtype) for _ in range(self.copies)
        ]

    def linear_launch(self, runner, kernel, m: int) -> Callable[[int], object]:
        """``launch(i)``: `kernel` on the first ``m`` rows of copy ``i`` (leading rows of a
        contiguous tensor: contiguous)."""

        def launch(i: int):
            x, out = self.xs[i][:m], self.outs[i][:m]
            return runner.linear(kernel, x, self.weights[i], None, self.n, self.k, out=out)

        return launch

    def faster(self, previous: float, launch: Callable[[int], object]) -> float:
        """The lesser of ``previous`` and `launch`'s median time now (microseconds)."""
        from codegen.cuda_timing import time_launches

        return min(previous, round(time_launches(launch, self.copies), 3))


def tune(
    formats: Sequence[str] | None = None,
    shapes: Sequence[tuple[int, int]] = DEFAULT_SHAPES,
    m_max: int = DEFAULT_M_MAX,
    dtype: str = DEFAULT_DTYPE,
    progress: bool = False,
    stream=None,
    seed: int | None = None,
    routes: bool = True,
) -> Tuning:
    """Time every kernel for each format and shape over `m_grid(m_max)` on the current CUDA
    device and choose the thresholds.  ``formats`` default: every format with kernels;
    ``seed``: of the random weights (default: a fresh one); ``progress``: a tqdm bar on
    ``stream`` (default stderr).  ``routes``: also time the 16-bit matmul's two routes at
    `ROUTE_M_VALUES` (`measure_routes`, on the shapes the dense route serves) and fit the
    card's route model; float32 has no dense route, so nothing to time.  Raises TuningError
    before measuring anything if the arguments do not fit the kernels or there is no CUDA
    device or CuPy."""
    import sys

    from codegen import dense_linear
    from codegen.kernels.emitter import FORMAT_NAMES

    formats = tuple(FORMAT_NAMES if formats is None else formats)
    shapes = tuple(tuple(shape) for shape in shapes)
    m_values = m_grid(m_max)
    check_tune_arguments(formats, shapes, dtype)
    require_cuda()

    import torch
    from tqdm import tqdm

    from codegen.cuda_run import CudaKernelRunner

    runner = CudaKernelRunner()
    generator = torch.Generator().manual_seed(torch.seed() if seed is None else seed)
    points = len(formats) * len(shapes) * len(m_values) * len(BUCKET_KERNELS)
    route_shapes = {
        fmt: [s for s in shapes if routes and dense_linear.serves(fmt, dtype, *s)]
        for fmt in formats
    }
    points += sum(map(len, route_shapes.values())) * len(ROUTE_M_VALUES) * 2
    points *= ROUNDS
    bar = tqdm(
        total=points,
        disable=not progress,
        file=sys.stderr if stream is None else stream,
        unit="kernel",
        leave=False,
    )
    per_format: dict[str, FormatTuning] = {}
    route_timings: dict[str, dict] = {}
    # the card's shared memory a block: the geometries the kernels and routes are timed in,
    # and the file's
    shared = device_shared_memory_per_block()
    try:
        for fmt in formats:
            timings = {}
            for shape in shapes:
                bar.set_description(f"ggufc tune: {fmt} {shape_label(shape)}")
                timings[shape_label(shape)] = measure_kernels(
                    runner, fmt, shape, m_values, dtype, generator, bar.update, shared
                )
                torch.cuda.empty_cache()  # the next shape's copies need the room
            per_format[fmt] = FormatTuning(
                choose_thresholds(list(timings.values()), m_values), timings
            )
            for shape in route_shapes[fmt]:
                bar.set_description(f"ggufc tune: {fmt} {shape_label(shape)} routes")
                route_timings.setdefault(fmt, {})[shape_label(shape)] = measure_routes(
                    runner, fmt, shape, ROUTE_M_VALUES, dtype, generator, bar.update, shared
                )
                torch.cuda.empty_cache()
    finally:
        bar.close()
    every_curve = [curve for entry in per_format.values() for curve in entry.curves()]
    device = torch.cuda.get_device_name()
    return Tuning(
        device=device,
        dtype=dtype,
        date=datetime.date.today().isoformat(),
        m_values=m_values,
        shapes=shapes,
        formats=per_format,
        thresholds=choose_thresholds(every_curve, m_values),
        routes=(
            fitted_routes(route_timings, ROUTE_M_VALUES, device, shared) if route_timings else None
        ),
    )


def fitted_routes(
    timings: Mapping[str, Mapping[str, Mapping]],
    m_values,
    device: str,
    shared_memory_per_block: int,
):
    """A `RouteTuning` of these route timings (`measure_routes`' per format and shape label,
    on a card of ``shared_memory_per_block``) with the route model fitted on them
    (`codegen.dense_linear.fit_route_model`)."""
    from codegen.dense_linear import fit_route_model

    samples = route_samples(timings, m_values)
    model = fit_route_model(samples, device, shared_memory_per_block)
    return RouteTuning(
        m_values=tuple(m_values),
        timings_us=timings,
        matmul_scales=dict(model.matmul_scales),
        dequantize_scale=model.dequantize_scale,
        product_scale=model.product_scale,
        shared_memory_per_block=shared_memory_per_block,
    )


def device_shared_memory_per_block() -> int:
    """Bytes of shared memory a block of the current CUDA device may opt in to
    (cudaDevAttrMaxSharedMemoryPerBlockOptin, through CuPy)."""
    import cupy

    return int(cupy.cuda.Device().attributes["MaxSharedMemoryPerBlockOptin"])


# ---- reporting ----------------------------------------------------------------------------------


def describe_buckets(thresholds: Sequence[int]) -> tuple[str, str, str]:
    """The M range of matvec, matvec_batched and matmul for ``buckets=thresholds``."""
    if not thresholds:
        return "-", "-", "every M"
    if len(thresholds) == 1:
        (t1,) = thresholds
        return f"M <= {t1}", "-", f"M > {t1}"
    t1, t2 = thresholds
    middle = f"M = {t2}" if t2 == t1 + 1 else f"{t1 + 1} <= M <= {t2}"
    return f"M <= {t1}", middle, f"M > {t2}"


def _aligned(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    """The header and rows as lines of left-aligned columns."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in (header, *rows)
    ]


def summary_table(tuning: Tuning) -> str:
    """A readable table: per format the buckets, each kernel's M range, and how much slower
    than always picking the fastest kernel the buckets are over the measured points."""
    m_values = tuning.m_values
    header = ("format", "buckets", "matvec", "matvec_batched", "matmul", "vs fastest")
    rows = []
    entries = [(fmt, entry.thresholds, entry.curves()) for fmt, entry in tuning.formats.items()]
    every_curve = [curve for _, _, curves in entries for curve in curves]
    if every_curve:
        entries.append(("all", tuning.thresholds, every_curve))
    for name, thresholds, curves in entries:
        score = relative_score(curves, m_values, thresholds)
        rows.append(
            (
                name,
                ",".join(map(str, thresholds)) or "{}",
                *describe_buckets(thresholds),
                f"+{max(score - 1.0, 0.0) * 100:.1f}%",
            )
        )
    if not every_curve:
        rows.append(
            (
                "all",
                ",".join(map(str, tuning.thresholds)) or "{}",
                *describe_buckets(tuning.thresholds),
                "-",
            )
        )
    lines = [
        f"{tuning.device}, {tuning.dtype} activations, {tuning.date}; M measured at "
        f"{len(m_values)} values in {m_values[0]}..{m_values[-1]}; shapes (N x K) "
        + ", ".join(shape_label(shape) for shape in tuning.shapes),
        "",
    ]
    lines += _aligned(header, rows)
    lines += [
        "",
        (
            "vs fastest: the mean, over the measured shapes and M, of the time of the kernel "
            "the buckets pick over the time of the fastest kernel."
        ),
        (
            "`ggufc compile --tuning FILE` uses the row of the format holding the most bytes "
            "of the model's linear weights, or the `all` row for a format not measured here."
        ),
    ]
    if tuning.routes is not None:
        lines += ["", *route_summary(tuning)]
    return "\n".join(lines)


def route_summary(tuning: Tuning) -> list[str]:
    """Lines on the routes of a 16-bit matmul: the fitted factors, and per format and shape
    where the dense route takes over with them (and with the H100 model) and how much slower
    than the faster route the picked one is over the route M measured."""
    from codegen.dense_linear import DENSE_ROUTE, H100_ROUTE_MODEL, dense_threshold, matmul_route

    routes = tuning.routes
    model = tuning.route_model()
    scales = ", ".join(f"{fmt} x{scale:.2f}" for fmt, scale in sorted(routes.matmul_scales.items()))
    lines = [
        (
            "Routes of a 16-bit matmul by M: the GGUF matmul, or the dense route (dequantize, "
            f"then cuBLAS), timed at M = {', '.join(map(str, routes.m_values))}."
        ),
        (
            f"Route model (measured / H100 model time): matmul {scales}; dequantize "
            f"x{routes.dequantize_scale:.2f}; cuBLAS x{routes.product_scale:.2f}."
        ),
        "",
    ]
    header = ("format", "N x K", "dense route", "H100 model", "picked route vs faster")
    rows = []
    for fmt, by_shape in routes.timings_us.items():
        for label, timing in by_shape.items():
            n, k = (int(size) for size in label.split("x"))
            ratios = []
            for i, m in enumerate(routes.m_values):
                picked = matmul_route(fmt, tuning.dtype, n, k, m, model)
                times = {"matmul": timing["matmul"][i], "dense": timing["dense"][i]}
                chosen = times["dense"] if picked == DENSE_ROUTE else times["matmul"]
                ratios.append(chosen / min(times.values()))
            rows.append(
                (
                    fmt,
                    label,
                    f"M > {dense_threshold(fmt, n, k, model)}",
                    f"M > {dense_threshold(fmt, n, k, H100_ROUTE_MODEL)}",
                    f"+{(sum(ratios) / len(ratios) - 1.0) * 100:.1f}%",
                )
            )
    lines += _aligned(header, rows)
    lines += [
        "",
        (
            "`ggufc compile --tuning FILE` lowers each 16-bit CUDA matmul with this route model "
            "(the dense route's threshold per format and weight shape)."
        ),
    ]
    return lines


__all__ = [
    "BUCKETS_OPTION_BY_DTYPE",
    "DEFAULT_BUCKETS",
    "DEFAULT_BUCKETS_BY_DTYPE",
    "DEFAULT_SHAPES",
    "FLOAT32_DEFAULT_BUCKETS",
    "ROUTE_M_VALUES",
    "FormatTuning",
    "RouteTuning",
    "Tuning",
    "TuningError",
    "TuningFileError",
    "check_pipeline_takes_tuning",
    "check_tuning_fits",
    "choose_thresholds",
    "fitted_routes",
    "kernel_for",
    "linear_activation_dtypes",
    "linear_weight_bytes",
    "load_tuning",
    "m_grid",
    "measure_kernels",
    "measure_routes",
    "relative_score",
    "summary_table",
    "tune",
    "tuned_pipeline",
]
