"""`compile --tuning`: the buckets of the format holding most linear-weight bytes end up in
split-dynamic-m's torch.cond predicates and in the program's pipeline metadata (as the
buckets of the file's dtype: the synthetic model runs float32, so float32-buckets=); bad
tuning files and conflicting pipelines fail before anything is compiled, and a file tuned
for another dtype than the model's linears fails once the model is exported."""

from __future__ import annotations

import dataclasses
import operator

import pytest
from synthetic_models import write_synthetic_model

from compiler import compile_gguf, open_gguf
from compiler.architectures import build_model
from compiler.cli import main
from compiler.export import export_model
from compiler.generate import KEY_PIPELINE
from compiler.tuning import (
    TUNING_VERSION,
    FormatTuning,
    Tuning,
    TuningError,
    linear_weight_bytes,
)
from runtime_schema import load_program

MAX_SEQ = 16
# distinct per format, every threshold inside [1, MAX_SEQ] so each bucket is reachable
THRESHOLDS = {
    "Q4_0": (1, 3),
    "Q5_0": (1, 4),
    "Q8_0": (2, 4),
    "Q4_K": (3, 6),
    "Q5_K": (1, 2),
    "Q6_K": (2, 5),
}
OVERALL = (4, 9)


def make_tuning(formats, dtype: str = "float32") -> Tuning:
    m_values = (1, 2)
    timings = {"256x256": {kernel: (1.0, 2.0) for kernel in ("matvec", "matvec_batched", "matmul")}}
    return Tuning(
        device="test",
        dtype=dtype,
        date="2026-11-25",
        m_values=m_values,
        shapes=((256, 256),),
        formats={fmt: FormatTuning(THRESHOLDS[fmt], timings) for fmt in formats},
        thresholds=OVERALL,
    )


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory):
    return write_synthetic_model(tmp_path_factory.mktemp("tuning") / "model.gguf")


def expected_linear_bytes(path) -> dict[str, int]:
    """Bytes per format of the file's quantized weights other than the token embedding (the
    synthetic llama's output projection has its own tensor)."""
    totals: dict[str, int] = {}
    for name, tensor in open_gguf(path).tensors.items():
        if tensor.format in THRESHOLDS and name != "token_embd.weight":
            totals[tensor.format] = totals.get(tensor.format, 0) + tensor.nbytes
    return totals


def cond_thresholds(graph_module) -> list[int]:
    """The constants M is compared with by split-dynamic-m's predicates, in every branch."""
    found = []
    for _, module in graph_module.named_modules():
        graph = getattr(module, "graph", None)
        for node in graph.nodes if graph is not None else ():
            if node.op == "call_function" and node.target is operator.le:
                found.append(node.args[1])
    return sorted(found)


def test_linear_weight_bytes_of_the_exported_model(gguf_path):
    program = export_model(build_model(open_gguf(gguf_path)), MAX_SEQ)
    assert linear_weight_bytes(program) == expected_linear_bytes(gguf_path)


def test_compile_uses_the_dominant_formats_buckets(gguf_path):
    totals = expected_linear_bytes(gguf_path)
    dominant = max(totals, key=totals.get)
    result = compile_gguf(gguf_path, backends=(), max_seq=MAX_SEQ, tuning=make_tuning(THRESHOLDS))
    t1, t2 = THRESHOLDS[dominant]
    # region=max: one region for every linear, a cond on t1 holding a cond on t2
    assert cond_thresholds(result.graph_program.graph_module) == [t1, t2]
    metadata = dict(result.program.metadata)
    assert f"split-dynamic-m{{float32-buckets={t1},{t2}}}" in metadata[KEY_PIPELINE]


def test_cli_compile_with_a_tuning_file(gguf_path, tmp_path, capsys):
    # no entry for the model's formats: the file's overall thresholds apply
    tuning_path = make_tuning(["Q4_0"]).save(tmp_path / "tuning.json")
    output = tmp_path / "model.ggufc"
    argv = [
        "compile",
        str(gguf_path),
        "-o",
        str(output),
        "--max-seq",
        str(MAX_SEQ),
        "--backends",
        "cuda",
        "--tuning",
        str(tuning_path),
        "--no-progress",
    ]
    capsys.readouterr()
    assert main(argv) == 0
    assert f"split-dynamic-m{{float32-buckets=4,9}},dce (buckets from {tuning_path})" in (
        capsys.readouterr().err
    )
    metadata = dict(load_program(output).program.metadata)
    assert metadata[KEY_PIPELINE] == (
        "fuse-gguf,canonicalize,fuse-rms-norm,fuse-attention,cse,fuse-rotary,"
        "fuse-sibling-linears,fuse-gated-gelu,"
        "split-dynamic-m{float32-buckets=4,9},dce"
    )


def test_bad_tuning_input_fails_before_compiling(gguf_path, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    text = make_tuning(["Q4_K"]).to_json()
    assert f'"version": {TUNING_VERSION}' in text
    bad.write_text(text.replace(f'"version": {TUNING_VERSION}', '"version": 7'))
    output = tmp_path / "never.ggufc"
    cases = [
        (["--tuning", str(bad)], f"{bad}: field version: expected one of 1, 2, 3"),
        (["--tuning", str(tmp_path / "none.json")], "none.json: cannot read the tuning file"),
        (
            ["--tuning", str(bad), "--pipeline", "fuse-gguf,dce"],
            "field version",  # the file is checked first
        ),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main(["compile", str(gguf_path), "-o", str(output), "--no-progress", *extra]) == 1
        err = capsys.readouterr().err
        assert err.startswith("ggufc compile: error:") and message in err, err
        assert "Traceback" not in err
    assert not output.exists()


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (
            "fuse-gguf,split-dynamic-m{float32-buckets=2,4},dce",
            "already sets split-dynamic-m{float32-buckets=2,4}",
        ),
        ("fuse-gguf,dce", "no split-dynamic-m pass"),
    ],
)
def test_conflicting_pipeline_is_refused(gguf_path, tmp_path, pipeline, message):
    tuning_path = make_tuning(THRESHOLDS).save(tmp_path / "t.json")
    with pytest.raises(TuningError, match=message):
        compile_gguf(gguf_path, backends=(), pipeline=pipeline, tuning=tuning_path)


def test_a_pipeline_setting_the_other_dtypes_buckets_takes_the_tuning(gguf_path):
    # the 16-bit buckets set by hand do not conflict with a float32 tuning
    result = compile_gguf(
        gguf_path,
        backends=(),
        max_seq=MAX_SEQ,
        pipeline="fuse-gguf,split-dynamic-m{buckets=2,4},dce",
        tuning=make_tuning(["Q4_0"]),
    )
    assert cond_thresholds(result.graph_program.graph_module) == list(OVERALL)


def test_a_tuning_of_another_dtype_is_refused(gguf_path, tmp_path):
    tuning_path = make_tuning(THRESHOLDS, dtype="float16").save(tmp_path / "half.json")
    message = (
        f"{tuning_path}: tuned with float16 activations, but the model's linears run float32"
        ".*ggufc tune --dtype float32"
    )
    with pytest.raises(TuningError, match=message):
        compile_gguf(gguf_path, backends=(), max_seq=MAX_SEQ, tuning=tuning_path)


def test_the_route_model_reaches_the_lowering_and_the_metadata(gguf_path, monkeypatch):
    """A file's route model is what the lowering routes 16-bit CUDA matmuls with (this float32
    model has none to route) and what the program's metadata names; without CUDA among the
    backends, or without routes in the file, the metadata has no entry."""
    import codegen
    from compiler.generate import KEY_ROUTE_MODEL
    from compiler.tuning import RouteTuning

    timing = {"dequantize": 3.0, "matmul": (10.0,), "dense": (12.0,)}
    routes = RouteTuning((64,), {"Q4_0": {"256x256": timing}}, {"Q4_0": 1.5}, 0.75, 0.5)
    tuning = dataclasses.replace(make_tuning(["Q4_0"]), routes=routes)
    seen = []
    lower = codegen.lower

    def recording_lower(*args, **kwargs):
        seen.append(kwargs.get("route_model"))
        return lower(*args, **kwargs)

    monkeypatch.setattr(codegen, "lower", recording_lower)
    result = compile_gguf(gguf_path, backends=("cuda",), max_seq=MAX_SEQ, tuning=tuning)
    model = tuning.route_model()
    assert seen == [model] and model.matmul_scale("Q4_0") == 1.5
    assert dict(result.program.metadata)[KEY_ROUTE_MODEL] == model.describe()
    for backends, given in (((), tuning), (("cuda",), make_tuning(["Q4_0"]))):
        result = compile_gguf(gguf_path, backends=backends, max_seq=MAX_SEQ, tuning=given)
        assert KEY_ROUTE_MODEL not in dict(result.program.metadata)
