"""Property tests: any well-formed program survives save -> load unchanged."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime_schema import load_program_bytes, program_to_bytes
from runtime_schema.builder import ProgramBuilder
from runtime_schema.program import (
    Argument,
    AtenNode,
    BoolValue,
    Dim,
    DType,
    DTypeValue,
    FloatListValue,
    FloatValue,
    IntListValue,
    IntValue,
    NoneValue,
    StringValue,
    SymIntRef,
    TensorListRef,
    TensorRef,
)

INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=40)  # any Unicode, empty included
FLOATS = st.floats(allow_nan=False)


@st.composite
def programs(draw):
    """A program of one AtenNode per drawn argument list; every argument type appears."""
    b = ProgramBuilder()
    lo = draw(st.integers(0, 100))
    m = b.symint(draw(TEXT), lo, lo + draw(st.integers(0, 2**40)))
    x = b.input(
        draw(TEXT),
        draw(st.sampled_from(list(DType))),
        [Dim.symbolic(m), draw(st.integers(0, 2**31))],
    )
    b.metadata.extend(draw(st.lists(st.tuples(TEXT, TEXT), max_size=3)))
    arg_values = st.one_of(
        st.just(TensorRef(x)),
        st.just(TensorListRef((x, x))),
        INT64.map(IntValue),
        FLOATS.map(FloatValue),
        st.booleans().map(BoolValue),
        TEXT.map(StringValue),
        st.lists(st.one_of(INT64.map(Dim), st.just(Dim.symbolic(m))), max_size=4).map(
            lambda items: IntListValue(tuple(items))
        ),
        st.lists(FLOATS, max_size=4).map(lambda items: FloatListValue(tuple(items))),
        st.just(SymIntRef(m)),
        st.just(NoneValue()),
        st.sampled_from(list(DType)).map(DTypeValue),
    )
    outputs = []
    for _ in range(draw(st.integers(1, 4))):
        positional = draw(st.lists(arg_values, max_size=4))
        named = draw(st.lists(st.tuples(TEXT.filter(bool), arg_values), max_size=3))
        args = tuple(Argument(v) for v in positional) + tuple(Argument(v, n) for n, v in named)
        out = b.tensor(draw(TEXT), DType.FLOAT32, [Dim.symbolic(m)])
        b.emit(b.main, AtenNode("aten::add.Tensor", args, (out,)))
        outputs.append(out)
    return b.build(outputs=outputs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_round_trip_is_identity(program):
    loaded = load_program_bytes(program_to_bytes(program)).program
    assert loaded == program
    # and again: writing what was loaded gives the same bytes
    assert program_to_bytes(loaded) == program_to_bytes(program)


def test_negative_zero_keeps_its_sign():
    b = ProgramBuilder()
    x = b.input("x", DType.FLOAT32, [2])
    y = b.tensor("y", DType.FLOAT32, [2])
    b.emit(
        b.main,
        AtenNode("aten::mul.Scalar", (Argument(TensorRef(x)), Argument(FloatValue(-0.0))), (y,)),
    )
    loaded = load_program_bytes(program_to_bytes(b.build(outputs=[y]))).program
    assert math.copysign(1.0, loaded.main.instructions[0].args[1].value.value) == -1.0
