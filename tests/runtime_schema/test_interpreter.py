"""The interpreter's own rules: SymNode arithmetic, IfNode buckets, inputs, allow-list."""

from __future__ import annotations

import operator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rs_sample_programs import HIDDEN, VOCAB, kitchen_sink, kitchen_sink_data

from compiler.errors import ProgramFormatError
from runtime_schema import ProgramRunError, load_program_bytes, program_to_bytes, run_program
from runtime_schema.aten_ops import ALLOWED_ATEN_OPS, resolve_aten_op
from runtime_schema.builder import ProgramBuilder
from runtime_schema.interpreter import ProgramRunner
from runtime_schema.program import (
    Argument,
    AtenNode,
    CompareOp,
    Dim,
    DType,
    FloatValue,
    IfNode,
    IntListValue,
    IntValue,
    KernelKind,
    KernelNode,
    OpKind,
    QuantFormat,
    SymIntRef,
    SymNode,
    SymOp,
    TensorRef,
)

SYM_REFERENCE = {
    SymOp.ADD: operator.add,
    SymOp.SUB: operator.sub,
    SymOp.MUL: operator.mul,
    SymOp.FLOOR_DIV: operator.floordiv,
    SymOp.CEIL_DIV: lambda a, b: -(-a // b),
    SymOp.MOD: operator.mod,
    SymOp.MIN: min,
    SymOp.MAX: max,
}
BIG = 10**6


def _sym_program(op: SymOp, constant: int):
    """out = shape of x (a [M] tensor) after `M <op> constant`, via aten::arange."""
    b = ProgramBuilder()
    m = b.symint("M", 1, BIG)
    x = b.input("x", DType.FLOAT32, [Dim.symbolic(m)])
    r = b.symint("r", -(BIG**2), BIG**2)
    b.emit(b.main, SymNode(op, (Dim.symbolic(m), Dim(constant)), r))
    out = b.tensor("out", DType.FLOAT32, [Dim.symbolic(m)])
    b.emit(
        b.main,
        AtenNode("aten::mul.Scalar", (Argument(TensorRef(x)), Argument(SymIntRef(r))), (out,)),
    )
    return b.build(outputs=[out])


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(list(SymOp)), m=st.integers(1, 50), c=st.integers(1, 1000))
def test_sym_nodes_compute_like_python(op, m, c):
    program = load_program_bytes(program_to_bytes(_sym_program(op, c))).program
    (out,) = run_program(program, [torch.ones(m)])
    assert out[0].item() == float(SYM_REFERENCE[op](m, c))


def test_division_by_zero_is_a_run_error():
    with pytest.raises(ProgramRunError, match="FLOOR_DIV by zero"):
        run_program(_sym_program(SymOp.FLOOR_DIV, 0), [torch.ones(3)])


def test_symint_outside_its_range_is_a_run_error():
    b = ProgramBuilder()
    m = b.symint("M", 1, 4)
    x = b.input("x", DType.FLOAT32, [Dim.symbolic(m)])
    program = b.build(outputs=[x])
    run_program(program, [torch.ones(4)])
    with pytest.raises(ProgramRunError, match=r"M = 5 is outside its range \[1, 4\]"):
        run_program(program, [torch.ones(5)])


def _bucket_program():
    """Returns M's bucket number: 0 for M < 4, 1 for 4 <= M < 16, 2 for M >= 16."""
    b = ProgramBuilder()
    m = b.symint("M", 1, 1000)
    x = b.input("x", DType.FLOAT32, [Dim.symbolic(m)])
    bucket = b.tensor("bucket", DType.FLOAT32, [Dim.symbolic(m)])
    chains = []
    for value in range(3):
        c = b.chain(f"b{value}")
        out = b.tensor(f"b{value}.out", DType.FLOAT32, [Dim.symbolic(m)])
        b.emit(
            c,
            AtenNode("aten::mul.Scalar", (Argument(TensorRef(x)), Argument(SymIntRef(m))), (out,)),
        )
        scaled = b.tensor(f"b{value}.scaled", DType.FLOAT32, [Dim.symbolic(m)])
        b.emit(
            c,
            AtenNode(
                "aten::mul.Scalar", (Argument(TensorRef(out)), Argument(FloatValue(0.0))), (scaled,)
            ),
        )
        marked = b.tensor(f"b{value}.marked", DType.FLOAT32, [Dim.symbolic(m)])
        b.emit(
            c,
            AtenNode(
                "aten::add.Scalar",
                (Argument(TensorRef(scaled)), Argument(FloatValue(float(value)))),
                (marked,),
            ),
        )
        b.results(c, [marked])
        chains.append(c)
    upper = b.chain("upper")
    upper_out = b.tensor("upper.out", DType.FLOAT32, [Dim.symbolic(m)])
    b.emit(upper, IfNode(m, CompareOp.LT, 16, chains[1], chains[2], (upper_out,)))
    b.results(upper, [upper_out])
    b.emit(b.main, IfNode(m, CompareOp.GE, 4, upper, chains[0], (bucket,)))
    return b.build(outputs=[bucket])


@pytest.mark.parametrize(("m", "bucket"), [(1, 0), (3, 0), (4, 1), (15, 1), (16, 2), (999, 2)])
def test_nested_if_nodes_pick_the_bucket(m, bucket):
    program = load_program_bytes(program_to_bytes(_bucket_program()))
    (out,) = run_program(program, [torch.ones(m)])
    assert torch.equal(out, torch.full((m,), float(bucket)))


def test_inputs_are_checked():
    program = kitchen_sink(kitchen_sink_data(seed=1))
    x, tokens = torch.randn(2, HIDDEN), torch.randint(0, VOCAB, (2,))
    with pytest.raises(ProgramRunError, match="takes 2 inputs"):
        run_program(program, [x])
    with pytest.raises(ProgramRunError, match="must be torch.float32"):
        run_program(program, [x.double(), tokens])
    with pytest.raises(ProgramRunError, match="M is 2 elsewhere, 3 here"):
        run_program(program, [x, torch.randint(0, VOCAB, (3,))])
    with pytest.raises(ProgramRunError, match=r"x.shape\[1\] is 5"):
        run_program(program, [torch.randn(2, 5), tokens])
    with pytest.raises(ProgramRunError, match="missing"):
        run_program(program, {"x": x})


def test_a_runner_binds_constants_once_and_runs_many_shapes():
    """`ProgramRunner` keeps the constants it bound (no copy per run) and gives each run the
    outputs a fresh `run_program` gives, across bucket changes of M."""
    program = kitchen_sink(kitchen_sink_data(seed=2))
    runner = ProgramRunner(program)
    bound = [id(data) for _, data in runner._constants]
    for m in (1, 3, 1, 7):
        gen = torch.Generator().manual_seed(m)
        x, tokens = (
            torch.randn(m, HIDDEN, generator=gen),
            torch.randint(0, VOCAB, (m,), generator=gen),
        )
        for got, want in zip(runner.run([x, tokens]), run_program(program, [x, tokens])):
            assert torch.equal(got, want)
    assert [id(data) for _, data in runner._constants] == bound


def test_reference_op_errors_name_the_node():
    program = kitchen_sink(kitchen_sink_data(seed=1))
    tokens = torch.full((2,), VOCAB + 5)  # out of the embedding's range
    with pytest.raises(ProgramRunError, match=r"KernelNode 'embed'.*indices must lie"):
        run_program(program, [torch.randn(2, HIDDEN), tokens])


def test_aten_runtime_failure_is_a_run_error():
    b = ProgramBuilder()
    x = b.input("x", DType.FLOAT32, [4])
    y = b.tensor("y", DType.FLOAT32, [3, 3])
    b.emit(
        b.main,
        AtenNode(
            "aten::view", (Argument(TensorRef(x)), Argument(IntListValue((Dim(3), Dim(3))))), (y,)
        ),
    )
    with pytest.raises(ProgramRunError, match="aten::view"):
        run_program(b.build(outputs=[y]), [torch.ones(4)])


def test_declared_output_shape_is_checked():
    b = ProgramBuilder()
    x = b.input("x", DType.FLOAT32, [4])
    y = b.tensor("y", DType.FLOAT32, [2, 3])  # wrong: the view gives [2, 2]
    b.emit(
        b.main,
        AtenNode(
            "aten::view", (Argument(TensorRef(x)), Argument(IntListValue((Dim(2), Dim(2))))), (y,)
        ),
    )
    with pytest.raises(ProgramRunError, match=r"y.shape\[1\] is 2, expected 3"):
        run_program(b.build(outputs=[y]), [torch.ones(4)])


def test_op_off_the_allow_list_refused_at_load(monkeypatch):
    from runtime_schema import writer

    b = ProgramBuilder()
    x = b.input("x", DType.FLOAT32, [2])
    y = b.tensor("y", DType.FLOAT32, [2])
    b.emit(b.main, AtenNode("aten::_local_scalar_dense", (Argument(TensorRef(x)),), (y,)))
    program = b.build(outputs=[y], validate=False)
    # write it anyway, bypassing the writer's validation, to check the loader's
    monkeypatch.setattr(writer, "validate_program", lambda p: None)
    blob = program_to_bytes(program)
    with pytest.raises(ProgramFormatError, match="not on the ATen allow-list"):
        load_program_bytes(blob)
    with pytest.raises(ProgramFormatError, match="allow-list"):
        run_program(program, [torch.ones(2)])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b, x, y: b.emit(b.main, IfNode(0, CompareOp.EQ, 1, 0, 0, ())), "main chain"),
        (lambda b, x, y: b.results(b.chain("orphan"), []), "no IfNode runs this chain"),
        (
            lambda b, x, y: b.emit(b.main, AtenNode("aten::neg", (Argument(TensorRef(99)),), (y,))),
            "out of range",
        ),
        (
            lambda b, x, y: b.emit(b.main, AtenNode("aten::neg", (Argument(TensorRef(y)),), (y,))),
            "before it is defined",
        ),
        (
            lambda b, x, y: b.emit(b.main, AtenNode("aten::neg", (Argument(TensorRef(x)),), (x,))),
            "defined twice",
        ),
    ],
)
def test_structural_mistakes_are_refused(mutate, message):
    b = ProgramBuilder()
    b.symint("M", 1, 2)
    x = b.input("x", DType.FLOAT32, [2])
    y = b.tensor("y", DType.FLOAT32, [2])
    mutate(b, x, y)
    with pytest.raises(ProgramFormatError, match=message):
        b.build(outputs=[x])


ROW, WEIGHT = [2, 8], [8]


def _rms_norm_program(inputs, residual_arg: int | None, next_norm: bool = False):
    """An RMS_NORM KernelNode over program inputs of the given shapes (an int: that many rows)."""
    b = ProgramBuilder()
    shapes = [ROW] * inputs if isinstance(inputs, int) else inputs
    tensors = [b.input(f"t{i}", DType.FLOAT32, shape) for i, shape in enumerate(shapes)]
    outputs = tuple(b.tensor(f"y{i}", DType.FLOAT32, [2, 8]) for i in range(1 + next_norm))
    template_args = (Argument(IntValue(8), "dim"),)
    args = (Argument(IntValue(2), "rows"), Argument(FloatValue(1e-6), "eps"))
    if residual_arg is not None:
        template_args += (Argument(IntValue(residual_arg), "residual"),)
    if next_norm:
        template_args += (Argument(IntValue(1), "next_norm"),)
        args += (Argument(FloatValue(1e-5), "next_eps"),)
    b.emit(
        b.main,
        KernelNode(
            name="norm",
            format=QuantFormat.Q4_0,
            op=OpKind.RMS_NORM,
            kind=KernelKind.RMS_NORM,
            sources=(),
            inputs=tuple(tensors),
            outputs=outputs,
            args=args,
            template_args=template_args,
        ),
    )
    return b


@pytest.mark.parametrize(("inputs", "residual"), [(3, None), (3, 0), (1, 1)])
def test_rms_norm_inputs_must_match_the_residual_template_arg(inputs, residual):
    with pytest.raises(ProgramFormatError, match="plus a residual when"):
        _rms_norm_program(inputs, residual).build(outputs=[])


def test_rms_norm_node_with_residual_runs_norm_then_add():
    b = _rms_norm_program(2, 1)  # x, residual (no weight)
    program = b.build(outputs=[len(b.values) - 1])  # y, the last value
    x, residual = torch.randn(2, 8), torch.randn(2, 8)
    (out,) = run_program(program, [x, residual])
    torch.testing.assert_close(out, residual + torch.rms_norm(x, [8], None, 1e-6))


@pytest.mark.parametrize(("inputs", "residual"), [(3, 1), (3, 0)])
def test_rms_norm_next_norm_needs_weight_and_residual(inputs, residual):
    with pytest.raises(ProgramFormatError, match="needs a weight and a residual"):
        _rms_norm_program(inputs, residual, next_norm=True).build(outputs=[])


def test_rms_norm_node_with_next_norm_gives_the_sum_and_its_norm():
    shapes = [ROW, WEIGHT, ROW, WEIGHT]  # x, weight, residual, next weight
    b = _rms_norm_program(shapes, 1, next_norm=True)
    program = b.build(outputs=[len(b.values) - 2, len(b.values) - 1])
    x, weight, residual, next_weight = (torch.randn(shape) for shape in shapes)
    total, normed = run_program(program, [x, weight, residual, next_weight])
    expected = residual + torch.rms_norm(x, [8], weight, 1e-6)
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(normed, torch.rms_norm(expected, [8], next_weight, 1e-5))


def test_allow_list_resolves_every_entry():
    for name in ALLOWED_ATEN_OPS:
        assert callable(resolve_aten_op(name))
    with pytest.raises(KeyError):
        resolve_aten_op("aten::_local_scalar_dense")


def test_only_constant_contiguous_weights_allow_a_dependent_launch():
    """A dependently launched kernel reads its weight blocks before it waits for the kernels
    before it: the interpreter allows it only where they are constants bound as they are."""
    from runtime_schema.interpreter import weights_are_constants
    from runtime_schema.program import KernelKind, KernelNode, OpKind, QuantFormat

    def node(op, inputs):
        return KernelNode("k", QuantFormat.Q8_0, op, KernelKind.MATVEC, (), inputs, (9,))

    x, blocks = torch.zeros(1, 32), torch.zeros(4, 34, dtype=torch.uint8)
    linear = node(OpKind.LINEAR, (0, 1))
    assert weights_are_constants(linear, [x, blocks], constant_values={1})
    assert not weights_are_constants(linear, [x, blocks], constant_values={0})  # computed
    assert not weights_are_constants(linear, [x, blocks.t()], constant_values={1})  # copied
    embedding = node(OpKind.EMBEDDING, (1, 0))
    assert weights_are_constants(embedding, [blocks, x], constant_values={1})
    assert not weights_are_constants(embedding, [blocks, x], constant_values={0})
    # ops without weight blocks read nothing before they wait
    assert weights_are_constants(node(OpKind.RMS_NORM, (0,)), [x], constant_values=set())
