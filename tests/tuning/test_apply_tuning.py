"""Applying tuned thresholds to a pipeline: split-dynamic-m gets them as `buckets`; a pipeline
that sets its own buckets, or has no split-dynamic-m, is refused."""

from __future__ import annotations

import pytest

from compiler.tuning import (
    DEFAULT_BUCKETS,
    TuningError,
    check_pipeline_takes_tuning,
    tuned_pipeline,
)
from passes import default_pipeline, parse_pipeline


def test_default_pipeline_gets_the_buckets():
    tuned = tuned_pipeline(default_pipeline(), (3, 12), "t.json")
    assert (
        str(tuned) == "fuse-gguf,canonicalize,fuse-rms-norm,fuse-attention,cse,fuse-rotary,"
        "fuse-sibling-linears,fuse-gated-gelu,"
        "split-dynamic-m{buckets=3,12},dce"
    )
    assert str(tuned_pipeline(default_pipeline(), (), "t.json")).count("buckets={}") == 1


def test_other_options_and_every_split_pass_are_kept():
    pipeline = parse_pipeline("fuse-gguf,split-dynamic-m{region=op},dce,split-dynamic-m")
    tuned = tuned_pipeline(pipeline, (2,), "t.json")
    assert str(tuned) == (
        "fuse-gguf,split-dynamic-m{buckets=2,region=op},dce,split-dynamic-m{buckets=2}"
    )


def test_buckets_equal_to_the_default_count_as_unset():
    # the canonical pipeline text drops default options, so the default buckets written out
    # cannot be told apart from no buckets option
    default = ",".join(map(str, DEFAULT_BUCKETS))
    pipeline = parse_pipeline(f"split-dynamic-m{{buckets={default}}}")
    assert str(tuned_pipeline(pipeline, (4, 16), "t.json")) == "split-dynamic-m{buckets=4,16}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fuse-gguf,split-dynamic-m{buckets=2,4},dce", "already sets split-dynamic-m{buckets=2,4}"),
        ("split-dynamic-m{buckets=4}", "not both"),
        ("fuse-gguf,dce", "has no split-dynamic-m pass"),
        ("", "has no split-dynamic-m pass"),
    ],
)
def test_pipelines_that_cannot_take_a_tuning(text, message):
    pipeline = parse_pipeline(text)
    for apply in (
        lambda: check_pipeline_takes_tuning(pipeline, "t.json"),
        lambda: tuned_pipeline(pipeline, (3, 12), "t.json"),
    ):
        with pytest.raises(TuningError, match=message) as caught:
            apply()
        assert str(caught.value).startswith("t.json: ")


@pytest.mark.parametrize(
    ("dtype", "option"),
    [("float16", "buckets"), ("bfloat16", "buckets"), ("float32", "float32-buckets")],
)
def test_the_files_dtype_picks_the_option(dtype, option):
    tuned = tuned_pipeline(parse_pipeline("split-dynamic-m"), (3, 12), "t.json", dtype)
    assert str(tuned) == f"split-dynamic-m{{{option}=3,12}}"


def test_only_the_tuned_dtypes_option_may_not_be_set():
    pipeline = parse_pipeline("split-dynamic-m{buckets=2,4}")
    # a float32 tuning leaves the 16-bit buckets as the pipeline sets them
    tuned = tuned_pipeline(pipeline, (8,), "t.json", "float32")
    assert str(tuned) == "split-dynamic-m{buckets=2,4,float32-buckets=8}"
    pipeline = parse_pipeline("split-dynamic-m{float32-buckets=2}")
    with pytest.raises(TuningError, match=r"float32 buckets \(float32-buckets=\)"):
        check_pipeline_takes_tuning(pipeline, "t.json", "float32")
    assert str(tuned_pipeline(pipeline, (5,), "t.json")) == (
        "split-dynamic-m{buckets=5,float32-buckets=2}"
    )
