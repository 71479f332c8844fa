"""Pipeline text: parsing, printing, the round trip, and errors that point at the column."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.errors import PassError, PipelineParseError
from passes import DEFAULT_PIPELINE_TEXT, Pass, default_pipeline, option, parse_pipeline
from passes.canonicalize import Canonicalize
from passes.cse import CommonSubexpressionElimination
from passes.pipeline import Pipeline
from passes.registry import register_pass, unregister_pass


@dataclass(frozen=True)
class AllOptionTypes(Pass):
    """A pass with one option of every supported type."""

    name: ClassVar[str] = "test-all-option-types"
    count: int = option(3, "an int")
    ratio: float = option(0.5, "a float")
    enabled: bool = option(True, "a bool")
    label: str = option("x", "a str")
    formats: tuple[str, ...] = option(("Q6_K", "Q4_K"), "a list of str")
    sizes: tuple[int, ...] = option((), "a list of int")


@pytest.fixture(autouse=True)
def all_option_types():
    register_pass(AllOptionTypes)
    yield
    unregister_pass(AllOptionTypes.name)


def test_parse_builds_configured_pass_instances():
    pipeline = parse_pipeline(
        " canonicalize{max-iterations=3, disable-patterns=fold-mul-one,fold-div-one} , cse,dce"
    )
    assert pipeline.passes[0] == Canonicalize(
        max_iterations=3, disable_patterns=("fold-mul-one", "fold-div-one")
    )
    assert pipeline.passes[1] == CommonSubexpressionElimination()
    assert str(pipeline) == (
        "canonicalize{max-iterations=3,disable-patterns=fold-mul-one,fold-div-one},cse,dce"
    )


def test_every_option_type_parses_and_prints():
    text = (
        'test-all-option-types{count=-7,ratio=1e-3,enabled=false,label="a,b}=c \\"q\\"",'
        "formats={},sizes=0x10,2}"
    )
    (p,) = parse_pipeline(text)
    assert p == AllOptionTypes(-7, 1e-3, False, 'a,b}=c "q"', (), (16, 2))
    assert parse_pipeline(p.to_text()) == Pipeline((p,))
    assert AllOptionTypes().to_text() == "test-all-option-types"


def test_empty_pipeline_and_empty_braces():
    assert len(parse_pipeline("")) == 0
    assert parse_pipeline("cse{}").passes == (CommonSubexpressionElimination(),)


def test_default_pipeline_parses_and_ends_with_cleanup():
    pipeline = default_pipeline()
    assert pipeline.to_text() == DEFAULT_PIPELINE_TEXT
    names = [p.name for p in pipeline]
    assert {"canonicalize", "cse"} <= set(names) and names[-1] == "dce"


words = st.text(alphabet=string.ascii_letters + string.digits + '_.-/:+*,{}=" \\', max_size=8)
option_values = st.builds(
    AllOptionTypes,
    count=st.integers(-(2**40), 2**40),
    ratio=st.floats(allow_nan=False),
    enabled=st.booleans(),
    label=words,
    formats=st.lists(words, max_size=3).map(tuple),
    sizes=st.lists(st.integers(-5, 5), max_size=3).map(tuple),
)
passes_strategy = st.one_of(
    option_values,
    st.builds(
        Canonicalize,
        st.integers(1, 50),
        st.booleans(),
        st.lists(st.sampled_from(["fold-mul-one", "fold-alias"]), max_size=2).map(tuple),
    ),
    st.just(CommonSubexpressionElimination()),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(passes_strategy, max_size=4))
def test_round_trip_pipeline_text_pipeline(items):
    pipeline = Pipeline(tuple(items))
    text = pipeline.to_text()
    assert parse_pipeline(text) == pipeline
    assert parse_pipeline(text).to_text() == text


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("cse,canonicalise", 5, "unknown pass 'canonicalise'"),
        ("canonicalize{max-iteration=3}", 14, "has no option 'max-iteration'"),
        ("canonicalize{max-iterations=three}", 29, "expected an integer, got 'three'"),
        ("canonicalize{test-convergence=yes}", 31, "expected true or false"),
        ("canonicalize{max-iterations=1,2}", 29, "expected one int value, got 2"),
        ("canonicalize{max-iterations=1,max-iterations=2}", 31, "given twice"),
        ("canonicalize{max-iterations=1", 30, "expected ',' or '}'"),
        ("cse dce", 5, "expected ',' or end of pipeline"),
        ("cse,", 5, "expected a pass name"),
        ('test-all-option-types{label="abc}', 29, "unterminated string"),
        ("dce{x=1}", 5, "it takes no options"),
        ("canonicalize{max-iterations=}", 29, "expected a value"),
        ("cse,canonicalize{max-iterations=0}", 5, "max-iterations must be at least 1"),
        ("canonicalize{disable-patterns=fold-nothing}", 1, "unknown pattern(s) fold-nothing"),
    ],
)
def test_errors_point_at_the_column(text, column, message):
    with pytest.raises(PipelineParseError) as info:
        parse_pipeline(text)
    error = str(info.value)
    assert f"column {column}:" in error and message in error
    lines = error.splitlines()
    assert lines[1] == f"  {text}"
    assert lines[2] == "  " + " " * (column - 1) + "^"


def test_pipeline_of_instances_and_text():
    pipeline = Pipeline.of([Canonicalize(max_iterations=2), CommonSubexpressionElimination()])
    assert pipeline.to_text() == "canonicalize{max-iterations=2},cse"
    assert Pipeline.of("cse") == Pipeline((CommonSubexpressionElimination(),))
    with pytest.raises(PassError, match="not a pass instance"):
        Pipeline.of(["cse"])
