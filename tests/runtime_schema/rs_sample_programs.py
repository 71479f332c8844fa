"""Hand-built programs for the runtime_schema tests, with what running them must give.

`kitchen_sink()` uses every instruction type, every KernelNode op kind, every kernel kind
(in nested IfNodes on M: M == 1, M <= 8, else), SymNodes, constants deduplicated by
content, and AtenNodes with most argument types.  `kitchen_sink_reference` computes the
same outputs by calling the ops directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import compiler.ops  # noqa: F401  (registers torch.ops.ggufc)
from compiler import formats
from runtime_schema.builder import ProgramBuilder
from runtime_schema.program import (
    Argument,
    AtenNode,
    Backend,
    BoolValue,
    CompareOp,
    Dim,
    DType,
    DTypeValue,
    FloatValue,
    IfNode,
    IntListValue,
    IntValue,
    KernelKind,
    KernelNode,
    KernelSource,
    NoneValue,
    OpKind,
    Program,
    QuantFormat,
    StringValue,
    SymIntRef,
    SymNode,
    SymOp,
    TensorListRef,
    TensorRef,
)

HIDDEN = 64
OUT = 32
VOCAB = 16
MAX_M = 64
BATCHED_MAX_M = 8
LINEAR_FORMAT = "Q8_0"
EMBED_FORMAT = "Q4_0"


def cuda_source(tag: str) -> tuple[KernelSource, ...]:
    return (
        KernelSource(Backend.CUDA, f"k_{tag}", f'extern "C" __global__ void k_{tag}() {{}}\n'),
        KernelSource(Backend.METAL, f"k_{tag}", f"kernel void k_{tag}() {{}}\n", "// header\n"),
    )


@dataclass
class KitchenSinkData:
    w1: torch.Tensor
    emb: torch.Tensor
    bias: torch.Tensor


def kitchen_sink_data(seed: int | None = None) -> KitchenSinkData:
    gen = torch.Generator()
    gen.manual_seed(seed if seed is not None else torch.seed())
    return KitchenSinkData(
        w1=formats.random_blocks(LINEAR_FORMAT, OUT, HIDDEN, gen),
        emb=formats.random_blocks(EMBED_FORMAT, VOCAB, HIDDEN, gen),
        bias=torch.randn(OUT, generator=gen),
    )


def _kernel(name, fmt, op, kind, inputs, outputs, n, k, grid=None, extra_args=()):
    return KernelNode(
        name=name,
        format=QuantFormat[fmt],
        op=op,
        kind=kind,
        sources=cuda_source(f"{fmt}_{kind.name}"),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        grid=grid or (Dim(OUT), Dim(1), Dim(1)),
        block=(Dim(32), Dim(1), Dim(1)),
        args=(Argument(IntValue(n), "n"), *extra_args),
        template_args=(Argument(IntValue(k), "k"),),
    )


def kitchen_sink(data: KitchenSinkData) -> Program:
    b = ProgramBuilder()
    b.metadata.append(("model", "kitchen-sink"))
    m = b.symint("M", 1, MAX_M)
    rows = Dim.symbolic(m)
    x = b.input("x", DType.FLOAT32, [rows, HIDDEN])
    tokens = b.input("tokens", DType.INT64, [rows])
    w1 = b.constant("w1", data.w1)
    w1_again = b.constant("w1_tied", data.w1.clone())  # same bytes: stored once
    emb = b.constant("emb", data.emb)
    bias = b.constant("bias", data.bias)

    m_blocks = b.symint("m_blocks", 1, MAX_M)
    b.emit(b.main, SymNode(SymOp.CEIL_DIV, (rows, Dim(4)), m_blocks))
    two_m = b.symint("two_m", 2, 2 * MAX_M)
    b.emit(b.main, SymNode(SymOp.MUL, (rows, Dim(2)), two_m))

    e = b.tensor("e", DType.FLOAT32, [rows, HIDDEN])
    b.emit(
        b.main,
        _kernel(
            "embed",
            EMBED_FORMAT,
            OpKind.EMBEDDING,
            KernelKind.EMBEDDING,
            (emb, tokens),
            (e,),
            VOCAB,
            HIDDEN,
        ),
    )
    h = b.tensor("h", DType.FLOAT32, [rows, HIDDEN])
    b.emit(
        b.main, AtenNode("aten::add.Tensor", (Argument(TensorRef(x)), Argument(TensorRef(e))), (h,))
    )

    # Buckets: M == 1 -> matvec(+bias); M <= 8 -> matvec_batched then aten add bias;
    # else matmul on the tied copy (+bias).
    y = b.tensor("y", DType.FLOAT32, [rows, OUT])
    m1 = b.chain("m1")
    y1 = b.tensor("m1.y", DType.FLOAT32, [rows, OUT])
    b.emit(
        m1,
        _kernel(
            "lin",
            LINEAR_FORMAT,
            OpKind.LINEAR,
            KernelKind.MATVEC,
            (h, w1, bias),
            (y1,),
            OUT,
            HIDDEN,
            extra_args=(Argument(SymIntRef(m), "m"),),
        ),
    )
    b.results(m1, [y1])

    rest = b.chain("m2_max")
    y_rest = b.tensor("m2_max.y", DType.FLOAT32, [rows, OUT])
    batched = b.chain("m2_8")
    y2a = b.tensor("m2_8.y_nobias", DType.FLOAT32, [rows, OUT])
    y2 = b.tensor("m2_8.y", DType.FLOAT32, [rows, OUT])
    b.emit(
        batched,
        _kernel(
            "lin",
            LINEAR_FORMAT,
            OpKind.LINEAR,
            KernelKind.MATVEC_BATCHED,
            (h, w1),
            (y2a,),
            OUT,
            HIDDEN,
        ),
    )
    b.emit(
        batched,
        AtenNode("aten::add.Tensor", (Argument(TensorRef(y2a)), Argument(TensorRef(bias))), (y2,)),
    )
    b.results(batched, [y2])
    big = b.chain("m9_max")
    y3 = b.tensor("m9_max.y", DType.FLOAT32, [rows, OUT])
    b.emit(
        big,
        _kernel(
            "lin",
            LINEAR_FORMAT,
            OpKind.LINEAR,
            KernelKind.MATMUL,
            (h, w1_again, bias),
            (y3,),
            OUT,
            HIDDEN,
            grid=(Dim(OUT), Dim.symbolic(m_blocks), Dim(1)),
        ),
    )
    b.results(big, [y3])
    b.emit(rest, IfNode(m, CompareOp.LE, BATCHED_MAX_M, batched, big, (y_rest,)))
    b.results(rest, [y_rest])
    b.emit(b.main, IfNode(m, CompareOp.EQ, 1, m1, rest, (y,)))

    # The same linear through dequantize + aten ops.
    w = b.tensor("w", DType.FLOAT32, [OUT, HIDDEN])
    b.emit(
        b.main,
        _kernel(
            "deq", LINEAR_FORMAT, OpKind.DEQUANTIZE, KernelKind.DEQUANTIZE, (w1,), (w,), OUT, HIDDEN
        ),
    )
    wt = b.tensor("wt", DType.FLOAT32, [HIDDEN, OUT])
    b.emit(b.main, AtenNode("aten::t", (Argument(TensorRef(w)),), (wt,)))
    z = b.tensor("z", DType.FLOAT32, [rows, OUT])
    b.emit(b.main, AtenNode("aten::mm", (Argument(TensorRef(h)), Argument(TensorRef(wt))), (z,)))

    # Argument types: float scalar, string kwarg, tensor list, int list with a SymInt,
    # bool, dtype, None, SymInt ref (factory op: device comes from the interpreter).
    half = b.tensor("half", DType.FLOAT32, [rows, OUT])
    b.emit(
        b.main,
        AtenNode("aten::mul.Scalar", (Argument(TensorRef(z)), Argument(FloatValue(0.5))), (half,)),
    )
    act = b.tensor("act", DType.FLOAT32, [rows, OUT])
    b.emit(
        b.main,
        AtenNode(
            "aten::gelu",
            (Argument(TensorRef(half)), Argument(StringValue("tanh"), "approximate")),
            (act,),
        ),
    )
    both = b.tensor("both", DType.FLOAT32, [rows, 2 * OUT])
    b.emit(
        b.main,
        AtenNode("aten::cat", (Argument(TensorListRef((y, act))), Argument(IntValue(1))), (both,)),
    )
    flat = b.tensor("flat", DType.FLOAT32, [Dim.symbolic(two_m), OUT])
    b.emit(
        b.main,
        AtenNode(
            "aten::reshape",
            (Argument(TensorRef(both)), Argument(IntListValue((Dim.symbolic(two_m), Dim(OUT))))),
            (flat,),
        ),
    )
    total = b.tensor("total", DType.FLOAT32, [Dim.symbolic(two_m), 1])
    b.emit(
        b.main,
        AtenNode(
            "aten::sum.dim_IntList",
            (
                Argument(TensorRef(flat)),
                Argument(IntListValue((Dim(-1),))),
                Argument(BoolValue(True)),
            ),
            (total,),
        ),
    )
    total16 = b.tensor("total16", DType.FLOAT16, [Dim.symbolic(two_m), 1])
    b.emit(
        b.main,
        AtenNode(
            "aten::_to_copy",
            (
                Argument(TensorRef(total)),
                Argument(DTypeValue(DType.FLOAT16), "dtype"),
                Argument(NoneValue(), "layout"),
            ),
            (total16,),
        ),
    )
    positions = b.tensor("positions", DType.INT64, [rows])
    b.emit(b.main, AtenNode("aten::arange", (Argument(SymIntRef(m)),), (positions,)))
    return b.build(outputs=[y, z, act, total16, positions])


def kitchen_sink_reference(data: KitchenSinkData, x: torch.Tensor, tokens: torch.Tensor):
    ops = torch.ops.ggufc
    m = x.shape[0]
    e = ops.embedding(data.emb, tokens, EMBED_FORMAT, VOCAB, HIDDEN, torch.float32)
    h = x + e
    if m == 1:
        y = ops.linear(h, data.w1, data.bias, LINEAR_FORMAT, OUT, HIDDEN, kernel="matvec")
    elif m <= BATCHED_MAX_M:
        y = ops.linear(h, data.w1, None, LINEAR_FORMAT, OUT, HIDDEN, kernel="matvec_batched")
        y = y + data.bias
    else:
        y = ops.linear(h, data.w1, data.bias, LINEAR_FORMAT, OUT, HIDDEN, kernel="matmul")
    w = ops.dequantize(data.w1, LINEAR_FORMAT, OUT, HIDDEN, torch.float32)
    z = h @ w.t()
    act = torch.nn.functional.gelu(z * 0.5, approximate="tanh")
    flat = torch.cat([y, act], 1).reshape(2 * m, OUT)
    total16 = flat.sum(-1, keepdim=True).to(torch.float16)
    return [y, z, act, total16, torch.arange(m)]
