"""Tuning files: JSON round trip, atomic save, every validation error (each names the file and
the field), the per-model choice of thresholds and the summary table."""

from __future__ import annotations

import copy
import json

import pytest

from codegen.kernels.emitter import PORTABLE_SHARED_MEMORY_PER_BLOCK, matmul_geometry_of
from compiler.tuning import (
    FormatTuning,
    RouteTuning,
    Tuning,
    TuningError,
    TuningFileError,
    as_tuning,
    choose_thresholds,
    load_tuning,
    summary_table,
)

M_VALUES = (1, 2, 3, 4, 8, 16)
SHAPES = ((512, 256), (256, 512))


def curve(scale: float, crossover: int) -> dict[str, tuple[float, ...]]:
    """matvec grows with M, matvec_batched is flat, matmul flatter and higher."""
    return {
        "matvec": tuple(scale * m for m in M_VALUES),
        "matvec_batched": tuple(scale * crossover + 0.125 * m for m in M_VALUES),
        "matmul": tuple(scale * 2 * crossover + 0.001 * m for m in M_VALUES),
    }


def sample_tuning() -> Tuning:
    formats = {}
    for fmt, scale, crossover in (("Q4_K", 1.5, 3), ("Q8_0", 2.25, 2), ("Q6_K", 3.0, 4)):
        timings = {f"{n}x{k}": curve(scale * (i + 1), crossover) for i, (n, k) in enumerate(SHAPES)}
        formats[fmt] = FormatTuning(choose_thresholds(list(timings.values()), M_VALUES), timings)
    return Tuning(
        device="NVIDIA Test Card, 80 GB",
        dtype="float16",
        date="2026-11-25",
        m_values=M_VALUES,
        shapes=SHAPES,
        formats=formats,
        thresholds=(2, 8),
        routes=sample_routes(),
    )


def sample_routes() -> RouteTuning:
    timing = {"dequantize": 3.5, "matmul": (10.0, 11.0), "dense": (9.0, 12.5)}
    return RouteTuning(
        m_values=(64, 128),
        timings_us={"Q4_K": {f"{n}x{k}": timing for n, k in SHAPES}},
        matmul_scales={"Q4_K": 1.1},
        dequantize_scale=0.9,
        product_scale=1.05,
        shared_memory_per_block=227 * 1024,
    )


def test_json_round_trip(tmp_path):
    tuning = sample_tuning()
    text = tuning.to_json()
    assert Tuning.from_json(text) == tuning
    data = json.loads(text)
    assert data["version"] == 3 and data["device"] == tuning.device
    assert data["routes"]["timings_us"]["Q4_K"]["256x512"]["dense"] == [9.0, 12.5]
    assert data["formats"]["Q4_K"]["timings_us"]["512x256"]["matvec"] == list(
        tuning.formats["Q4_K"].timings_us["512x256"]["matvec"]
    )
    assert '"m_values": [1, 2, 3, 4, 8, 16]' in text  # lists of numbers stay on one line
    path = tuning.save(tmp_path / "tuning.json")
    assert load_tuning(path) == tuning
    assert as_tuning(path) == (tuning, str(path))
    assert as_tuning(tuning) == (tuning, "tuning")


def test_save_replaces_atomically(tmp_path):
    path = tmp_path / "tuning.json"
    path.write_text("old contents")
    sample_tuning().save(path)
    assert load_tuning(path) == sample_tuning()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tuning.json"]  # no temporary left


def test_save_into_a_missing_folder_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        sample_tuning().save(tmp_path / "missing" / "tuning.json")
    assert list(tmp_path.iterdir()) == []


def _set(path: str, value):
    """A mutation of the file's dict: set (or with value DELETE, delete) the field at `path`
    (dot-separated keys, [i] for list items)."""

    def apply(data):
        keys = path.replace("[", ".[").split(".")
        target = data
        for key in keys[:-1]:
            target = target[int(key[1:-1])] if key.startswith("[") else target[key]
        last = keys[-1]
        last = int(last[1:-1]) if last.startswith("[") else last
        if value is DELETE:
            del target[last]
        else:
            target[last] = value

    return apply


DELETE = object()
TIMES = "formats.Q4_K.timings_us.512x256.matvec"
ROUTE = "routes.timings_us.Q4_K.512x256"

BAD_FIELDS = [
    (_set("version", 4), "field version: expected one of 1, 2, 3"),
    (_set("version", "1"), "field version: expected one of 1, 2, 3"),
    (_set("version", True), "field version: expected one of 1, 2, 3"),
    (_set("version", DELETE), "field version: expected a value, it is missing"),
    (_set("device", ""), "field device: expected the device name"),
    (_set("device", 7), "field device: expected the device name"),
    (_set("dtype", "float64"), "field dtype: expected one of float16"),
    (_set("date", "yesterday"), "field date: expected an ISO date"),
    (_set("date", 20261125), "field date: expected an ISO date"),
    (_set("m_values", []), "field m_values: expected a non-empty list"),
    (_set("m_values", [1, 3, 2, 4, 8, 16]), "field m_values: expected a non-empty list"),
    (_set("m_values", [0, 2, 3, 4, 8, 16]), "field m_values"),
    (_set("m_values", [1, 2, 3, 4, 8, 16.5]), "field m_values"),
    (_set("shapes", []), "field shapes: expected a non-empty list"),
    (_set("shapes", {"512": 256}), "field shapes: expected a non-empty list"),
    (_set("shapes[1]", [256]), "field shapes[1]: expected [N, K]"),
    (_set("shapes[1]", [256, 0]), "field shapes[1]: expected [N, K]"),
    (_set("shapes[1]", [256, "512"]), "field shapes[1]: expected [N, K]"),
    (_set("shapes[1]", [512, 256]), "field shapes[1]: expected a shape not listed before"),
    (_set("formats", []), "field formats: expected a JSON object"),
    (_set("formats.Q9_K", {}), "field formats.Q9_K: unknown format"),
    (_set("formats.Q4_K.thresholds", DELETE), "field formats.Q4_K.thresholds: expected a value"),
    (_set("formats.Q4_K.speed", 1), "field formats.Q4_K.speed: unknown field"),
    (_set("formats.Q4_K.thresholds", [3, 2]), "field formats.Q4_K.thresholds: expected split"),
    (_set("formats.Q4_K.thresholds", [0]), "field formats.Q4_K.thresholds"),
    (_set("formats.Q4_K.thresholds", [1, 2, 3]), "field formats.Q4_K.thresholds"),
    (_set("formats.Q4_K.thresholds", [65536]), "field formats.Q4_K.thresholds"),
    (_set("formats.Q4_K.thresholds", [1, 524281]), "field formats.Q4_K.thresholds"),
    (_set("formats.Q4_K.thresholds", "1,8"), "field formats.Q4_K.thresholds"),
    (_set("formats.Q4_K.timings_us", []), "field formats.Q4_K.timings_us: expected a JSON"),
    (
        _set("formats.Q4_K.timings_us.256x512", DELETE),
        "field formats.Q4_K.timings_us.256x512: expected a value, it is missing",
    ),
    (_set("formats.Q4_K.timings_us.64x64", {}), "field formats.Q4_K.timings_us.64x64: unknown"),
    (
        _set("formats.Q4_K.timings_us.512x256.matmul", DELETE),
        "field formats.Q4_K.timings_us.512x256.matmul: expected a value",
    ),
    (_set(TIMES, [1.0, 2.0]), f"field {TIMES}: expected a list of 6 times"),
    (_set(TIMES, "fast"), f"field {TIMES}: expected a list of 6 times"),
    (_set(f"{TIMES}[3]", -1.0), f"field {TIMES}[3]: expected a positive number"),
    (_set(f"{TIMES}[0]", 0), f"field {TIMES}[0]: expected a positive number"),
    (_set(f"{TIMES}[5]", None), f"field {TIMES}[5]: expected a positive number"),
    (_set(f"{TIMES}[2]", True), f"field {TIMES}[2]: expected a positive number"),
    (_set("thresholds", DELETE), "field thresholds: expected a value, it is missing"),
    (_set("thresholds", [8, 8]), "field thresholds: expected split-dynamic-m buckets"),
    (_set("thresholds", None), "field thresholds: expected split-dynamic-m buckets"),
    (_set("comment", "hi"), "field comment: unknown field"),
    (_set("routes", DELETE), "field routes: expected a value, it is missing"),
    (_set("routes", [1]), "field routes: expected a JSON object"),
    (_set("routes.m_values", [128, 64]), "field routes.m_values: expected a non-empty list"),
    (_set("routes.matmul_scales.Q9_K", 1.0), "field routes.matmul_scales.Q9_K: unknown format"),
    (_set("routes.matmul_scales.Q4_K", 0), "field routes.matmul_scales.Q4_K: expected a positive"),
    (_set("routes.dequantize_scale", "1"), "field routes.dequantize_scale: expected a positive"),
    (_set("routes.product_scale", DELETE), "field routes.product_scale: expected a value"),
    (_set("routes.speed", 2), "field routes.speed: unknown field"),
    (_set("routes.shared_memory_per_block", DELETE), "routes.shared_memory_per_block: expected a"),
    (
        _set("routes.shared_memory_per_block", 0),
        "field routes.shared_memory_per_block: expected the card's shared memory a block",
    ),
    (
        _set("routes.shared_memory_per_block", 1.5e5),
        "field routes.shared_memory_per_block: expected the card's shared memory a block",
    ),
    (_set("routes.timings_us.Q8_0", {}), "field routes.timings_us.Q8_0: a format with no"),
    (_set(f"{ROUTE}.dense", [1.0]), f"field {ROUTE}.dense: expected a list of 2 times"),
    (_set(f"{ROUTE}.matmul[1]", -3), f"field {ROUTE}.matmul[1]: expected a positive number"),
    (_set(f"{ROUTE}.dequantize", None), f"field {ROUTE}.dequantize: expected a positive"),
    (_set(f"{ROUTE}.cublas", [1.0, 2.0]), f"field {ROUTE}.cublas: unknown field"),
    (
        _set("routes.timings_us.Q4_K.256x512", DELETE),
        "field routes.timings_us.Q4_K.256x512: expected a value, it is missing",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), BAD_FIELDS)
def test_every_bad_field_is_named(tmp_path, mutate, message):
    data = copy.deepcopy(sample_tuning().to_dict())
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TuningFileError) as caught:
        load_tuning(path)
    assert str(caught.value).startswith(f"{path}: "), caught.value
    assert message in str(caught.value), caught.value


def test_version_1_files_are_read_without_routes():
    data = sample_tuning().to_dict()
    del data["routes"]
    data["version"] = 1
    tuning = Tuning.from_json(json.dumps(data), "old.json")
    assert tuning.routes is None and tuning.route_model() is None
    assert tuning.formats == sample_tuning().formats
    data["routes"] = None
    with pytest.raises(TuningFileError, match="old.json: field routes: unknown field"):
        Tuning.from_json(json.dumps(data), "old.json")


def test_version_2_files_are_read_as_from_a_card_of_portable_shared_memory():
    """A version 2 file's routes do not say how much shared memory a block its card has: the
    route model then assumes an A100's 163 KB, so the lowering takes none of the matmul
    geometries that need more (the 256-row tile), and the file reads back as version 3."""
    data = sample_tuning().to_dict()
    data["version"] = 2
    del data["routes"]["shared_memory_per_block"]
    tuning = Tuning.from_json(json.dumps(data), "v2.json")
    assert tuning.routes.shared_memory_per_block == PORTABLE_SHARED_MEMORY_PER_BLOCK
    model = tuning.route_model()
    assert model.shared_memory_per_block == PORTABLE_SHARED_MEMORY_PER_BLOCK
    assert "163 KB of shared memory a block" in model.describe()
    fmt, n, k = "Q4_0", 4096, 14336
    assert matmul_geometry_of(fmt, n, k, 512) == "rows256_split_k2"
    assert matmul_geometry_of(fmt, n, k, 512, model.shared_memory_per_block) != "rows256_split_k2"
    assert json.loads(tuning.to_json())["version"] == 3
    assert Tuning.from_json(tuning.to_json()) == tuning
    data["version"] = 3
    with pytest.raises(TuningFileError, match="v2.json: field routes.shared_memory_per_block"):
        Tuning.from_json(json.dumps(data), "v2.json")


def test_route_model_of_a_file():
    model = sample_tuning().route_model()
    assert model.matmul_scale("Q4_K") == 1.1 and model.matmul_scale("Q8_0") == 1.0
    assert (model.dequantize_scale, model.product_scale) == (0.9, 1.05)
    assert model.device == "NVIDIA Test Card, 80 GB (tuned 2026-11-25)"
    assert "matmul Q4_K x1.1; dequantize x0.9; cuBLAS x1.05" in model.describe()
    # the samples it was fitted on: the product is the dense route less the dequantize pass
    samples = list(sample_routes().samples())
    assert len(samples) == 4
    first = samples[0]
    assert (first.fmt, first.n, first.k, first.m) == ("Q4_K", 512, 256, 64)
    assert (first.matmul_us, first.dequantize_us, first.product_us) == (10.0, 3.5, 5.5)


@pytest.mark.parametrize("word", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_times_are_refused(word):
    text = sample_tuning().to_json()
    first = str(sample_tuning().formats["Q4_K"].timings_us["512x256"]["matvec"][0])
    bad = text.replace(f'"matvec": [{first},', f'"matvec": [{word},', 1)
    assert bad != text
    with pytest.raises(TuningFileError, match=rf"t\.json: field {TIMES}\[0\]: expected a posit"):
        Tuning.from_json(bad, "t.json")


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (b"", "not a JSON document"),
        (b'{"version": 1,', "not a JSON document"),
        (b"[1, 8]", "field : expected a JSON object"),
        (b"\xff\xfe\x00", "not a UTF-8 text file"),
    ],
)
def test_files_that_are_not_tuning_documents(tmp_path, contents, message):
    path = tmp_path / "weird.json"
    path.write_bytes(contents)
    with pytest.raises(TuningFileError, match=message) as caught:
        load_tuning(path)
    assert str(path) in str(caught.value)


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(TuningFileError, match="missing.json: cannot read the tuning file"):
        load_tuning(tmp_path / "missing.json")
    with pytest.raises(TuningError, match="a Tuning or a file path, got dict"):
        as_tuning({"thresholds": [1, 8]})


def test_a_file_without_formats_is_just_its_thresholds():
    data = sample_tuning().to_dict()
    data["formats"] = {}
    tuning = Tuning.from_json(json.dumps(data))
    assert tuning.thresholds_for({"Q4_K": 100}) == (2, 8)
    assert "all" in summary_table(tuning)


def test_thresholds_for_a_model_follow_its_dominant_format():
    tuning = sample_tuning()
    per_format = {fmt: entry.thresholds for fmt, entry in tuning.formats.items()}
    assert len(set(per_format.values())) == 3  # the sample's formats differ
    assert tuning.thresholds_for({"Q4_K": 10, "Q6_K": 30, "Q8_0": 20}) == per_format["Q6_K"]
    assert tuning.thresholds_for({"Q4_K": 10, "Q8_0": 11}) == per_format["Q8_0"]
    # a tie goes to the earlier name, so the choice does not depend on dict order
    assert tuning.thresholds_for({"Q8_0": 5, "Q4_K": 5}) == per_format["Q4_K"]
    # a dominant format the file has no entry for: the overall thresholds
    assert tuning.thresholds_for({"Q4_0": 50, "Q4_K": 10}) == (2, 8)
    assert tuning.thresholds_for({}) == (2, 8)


def test_summary_table_names_every_format_and_bucket():
    tuning = sample_tuning()
    table = summary_table(tuning)
    assert tuning.device in table and "512x256, 256x512" in table
    buckets_table, routes_table = table.split("Routes of")
    for fmt, entry in tuning.formats.items():
        (row,) = [line for line in buckets_table.splitlines() if line.startswith(fmt)]
        assert ",".join(map(str, entry.thresholds)) in row
        assert f"M <= {entry.thresholds[0]}" in row
    (overall,) = [line for line in table.splitlines() if line.startswith("all")]
    assert "2,8" in overall and "3 <= M <= 8" in overall and "M > 8" in overall
    # the routes: the factors, and per format and shape the threshold and the picked route's
    # cost (here the matmul up to M = 128 at both shapes: 10 / 11 us against 9 / 12.5)
    assert "matmul Q4_K x1.10; dequantize x0.90; cuBLAS x1.05" in routes_table
    route_rows = [line.split() for line in routes_table.splitlines() if line.startswith("Q4_K")]
    assert [row[1] for row in route_rows] == ["512x256", "256x512"]
    for row in route_rows:
        assert row[2:5] == ["M", ">", row[4]] and row[4].isdigit()
