"""A synthetic layered program: the shape of a quantized decoder, for tests and benchmarks.

``layered_program(layers)`` builds, with `ProgramBuilder`::

    tokens: int64 [M]                       M: SymInt in [1, max_m]
    x = embedding(tok_embd, tokens)          KernelNode EMBEDDING
    if M == 1:      chain "m1"      (every linear a MATVEC kernel)
    elif M <= 8:    chain "m2_8"    (MATVEC_BATCHED)
    else:           chain "m9_max"  (MATMUL, grid from SymNode ceil_div(M, tile))
        per layer:  q, k, v, o = linear chain on x;   x1 = x + o     (tanh after each linear)
                    g, u = linear(x1);  d = linear(g * u);  x = x1 + d
        logits = linear(x, output.weight)    output.weight has the bytes of tok_embd
                                             (a tied lm_head: stored once)

Seven KernelNodes per layer per bucket (``3 * 7 * layers`` in all) share a handful of
kernel sources: one per (format, kernel kind, backend) plus one header per (format,
backend).  By default the sources are stand-in text of realistic size (`SOURCE_BYTES`), so
interning can be measured without `codegen` (which this package must not import); pass
``kernel_sources(fmt, kind) -> tuple[KernelSource, ...]`` to carry real generated ones (the
program-file benchmark passes `codegen.kernels.emit`'s).  On CPU the interpreter runs the
reference ops and never reads them.

``layer_formats(i) -> {linear: format}`` (linears `LINEAR_NAMES`) gives a per-layer format
mix such as Q4_K_M's; by default attention linears are ``attn_format`` and FFN linears
``ffn_format``.  ``weight_rows``, when given, stores only that many rows of each weight (a
small dummy constant) while the kernels' ``n`` / ``k`` arguments and activation shapes keep
the full sizes: metadata and strings are those of a large model, constants stay small, and
such a program is for measuring the file, not for running.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from compiler import formats
from runtime_schema.builder import ProgramBuilder
from runtime_schema.program import (
    Argument,
    AtenNode,
    Backend,
    CompareOp,
    Dim,
    DType,
    IfNode,
    IntValue,
    KernelKind,
    KernelNode,
    KernelSource,
    OpKind,
    Program,
    QuantFormat,
    SymIntRef,
    SymNode,
    SymOp,
    TensorRef,
)

# Approximate size of one stand-in kernel source / header, in bytes.
SOURCE_BYTES = 6000
HEADER_BYTES = 3000
ROWS_PER_BLOCK = 4  # stand-in launch geometry: output rows per thread block
THREADS_PER_BLOCK = 128
MATMUL_TILE = 64
BATCHED_MAX_M = 8
LINEARS_PER_LAYER = 7
ATTENTION_LINEARS = ("attn_q", "attn_k", "attn_v", "attn_output")
FFN_LINEARS = ("ffn_gate", "ffn_up", "ffn_down")
LINEAR_NAMES = ATTENTION_LINEARS + FFN_LINEARS
BUCKETS = (
    ("m1", KernelKind.MATVEC),
    ("m2_8", KernelKind.MATVEC_BATCHED),
    ("m9_max", KernelKind.MATMUL),
)


def stand_in_source(backend: Backend, fmt: str, kind: str, size: int) -> str:
    """Deterministic text of about `size` bytes standing in for a generated kernel."""
    lines = [f"// ggufc stand-in {backend.name.lower()} kernel: {fmt} {kind}"]
    i = 0
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(f"    acc_{i % 16} += dequant_{fmt.lower()}(block, lane + {i}) * x[{i}];")
        i += 1
    return "\n".join(lines) + "\n"


def stand_in_sources(fmt: str, kind: KernelKind) -> tuple[KernelSource, ...]:
    out = []
    for backend in (Backend.METAL, Backend.CUDA):
        entry = f"ggufc_{kind.name.lower()}_{fmt.lower()}_f32"
        out.append(
            KernelSource(
                backend=backend,
                entry=entry,
                source=stand_in_source(backend, fmt, kind.name.lower(), SOURCE_BYTES),
                header=stand_in_source(backend, fmt, "header", HEADER_BYTES),
            )
        )
    return tuple(out)


def layered_program(
    layers: int,
    *,
    hidden: int = 256,
    ffn: int = 512,
    vocab: int = 512,
    max_m: int = 512,
    attn_format: str = "Q4_K",
    ffn_format: str = "Q6_K",
    embedding_format: str | None = None,
    layer_formats: Callable[[int], Mapping[str, str]] | None = None,
    kernel_sources: Callable[[str, KernelKind], tuple[KernelSource, ...]] | None = None,
    weight_rows: int | None = None,
    seed: int = 0,
) -> Program:
    gen = torch.Generator().manual_seed(seed)
    embedding_format = attn_format if embedding_format is None else embedding_format
    make_sources = stand_in_sources if kernel_sources is None else kernel_sources
    source_cache: dict[tuple[str, KernelKind], tuple[KernelSource, ...]] = {}

    def sources_of(fmt: str, kind: KernelKind) -> tuple[KernelSource, ...]:
        if (fmt, kind) not in source_cache:
            source_cache[(fmt, kind)] = tuple(make_sources(fmt, kind))
        return source_cache[(fmt, kind)]

    def formats_of_layer(i: int) -> Mapping[str, str]:
        if layer_formats is not None:
            return layer_formats(i)
        return {
            **{name: attn_format for name in ATTENTION_LINEARS},
            **{name: ffn_format for name in FFN_LINEARS},
        }

    def weight_blocks(fmt: str, n: int, k: int) -> torch.Tensor:
        rows = n if weight_rows is None else min(n, weight_rows)
        return formats.random_blocks(fmt, rows, k, gen)

    b = ProgramBuilder()
    b.metadata.append(("model", f"synthetic-{layers}-layers"))
    m = b.symint("M", 1, max_m)
    tokens = b.input("tokens", DType.INT64, [Dim.symbolic(m)])
    tok_embd = weight_blocks(embedding_format, vocab, hidden)
    w_embd = b.constant("token_embd.weight", tok_embd)
    w_out = b.constant("output.weight", tok_embd.clone())  # tied: same bytes, stored once

    def linear_weights(prefix: str, fmt: str, n: int, k: int) -> tuple[int, str, int, int]:
        return b.constant(prefix, weight_blocks(fmt, n, k)), fmt, n, k

    per_layer = []
    for i in range(layers):
        fmts = formats_of_layer(i)
        attn = [
            linear_weights(f"blk.{i}.{name}.weight", fmts[name], hidden, hidden)
            for name in ATTENTION_LINEARS
        ]
        gate = linear_weights(f"blk.{i}.ffn_gate.weight", fmts["ffn_gate"], ffn, hidden)
        up = linear_weights(f"blk.{i}.ffn_up.weight", fmts["ffn_up"], ffn, hidden)
        down = linear_weights(f"blk.{i}.ffn_down.weight", fmts["ffn_down"], hidden, ffn)
        per_layer.append((attn, gate, up, down))

    rows = Dim.symbolic(m)
    x = b.tensor("x", DType.FLOAT32, [rows, hidden])
    embed_sources = sources_of(embedding_format, KernelKind.EMBEDDING)
    b.emit(
        b.main,
        KernelNode(
            name="token_embd",
            format=QuantFormat[embedding_format],
            op=OpKind.EMBEDDING,
            kind=KernelKind.EMBEDDING,
            sources=embed_sources,
            inputs=(w_embd, tokens),
            outputs=(x,),
            grid=(rows, Dim(1), Dim(1)),
            block=(Dim(THREADS_PER_BLOCK), Dim(1), Dim(1)),
            args=(Argument(IntValue(vocab), "n"), Argument(IntValue(hidden), "k")),
        ),
    )
    logits = b.tensor("logits", DType.FLOAT32, [rows, vocab])

    def bucket_chain(name: str, kind: KernelKind) -> int:
        c = b.chain(name)
        if kind == KernelKind.MATMUL:
            m_tiles = b.symint(f"{name}.m_tiles", 1, -(-max_m // MATMUL_TILE))
            b.emit(c, SymNode(SymOp.CEIL_DIV, (rows, Dim(MATMUL_TILE)), m_tiles))
            grid_y = Dim.symbolic(m_tiles)
        else:
            grid_y = Dim(1)

        def linear(label: str, inp: int, weights, width: int) -> int:
            w, fmt, n, k = weights
            out = b.tensor(f"{name}.{label}", DType.FLOAT32, [rows, width])
            b.emit(
                c,
                KernelNode(
                    name=label,
                    format=QuantFormat[fmt],
                    op=OpKind.LINEAR,
                    kind=kind,
                    sources=sources_of(fmt, kind),
                    inputs=(inp, w),
                    outputs=(out,),
                    grid=(Dim(-(-n // ROWS_PER_BLOCK)), grid_y, Dim(1)),
                    block=(Dim(THREADS_PER_BLOCK), Dim(1), Dim(1)),
                    args=(
                        Argument(SymIntRef(m), "m"),
                        Argument(IntValue(n), "n"),
                        Argument(IntValue(k), "k"),
                    ),
                ),
            )
            # tanh keeps activations of random weights bounded through many layers
            bounded = b.tensor(f"{name}.{label}.tanh", DType.FLOAT32, [rows, width])
            b.emit(c, AtenNode("aten::tanh", (Argument(TensorRef(out)),), (bounded,)))
            return bounded

        def aten(op: str, label: str, lhs: int, rhs: int, width: int) -> int:
            out = b.tensor(f"{name}.{label}", DType.FLOAT32, [rows, width])
            b.emit(c, AtenNode(op, (Argument(TensorRef(lhs)), Argument(TensorRef(rhs))), (out,)))
            return out

        h = x
        for i, (attn, gate, up, down) in enumerate(per_layer):
            a = h
            for p, weights in zip(("q", "k", "v", "output"), attn):
                a = linear(f"blk.{i}.attn_{p}", a, weights, hidden)
            h1 = aten("aten::add.Tensor", f"blk.{i}.attn_residual", h, a, hidden)
            g = linear(f"blk.{i}.ffn_gate", h1, gate, ffn)
            u = linear(f"blk.{i}.ffn_up", h1, up, ffn)
            gu = aten("aten::mul.Tensor", f"blk.{i}.ffn_gate_up", g, u, ffn)
            d = linear(f"blk.{i}.ffn_down", gu, down, hidden)
            h = aten("aten::add.Tensor", f"blk.{i}.ffn_residual", h1, d, hidden)
        out = linear("output", h, (w_out, embedding_format, vocab, hidden), vocab)
        b.results(c, [out])
        return c

    m1, batched, matmul = (bucket_chain(name, kind) for name, kind in BUCKETS)
    rest = b.chain("m2_max")
    rest_logits = b.tensor("m2_max.logits", DType.FLOAT32, [rows, vocab])
    b.emit(rest, IfNode(m, CompareOp.LE, BATCHED_MAX_M, batched, matmul, (rest_logits,)))
    b.results(rest, [rest_logits])
    b.emit(b.main, IfNode(m, CompareOp.EQ, 1, m1, rest, (logits,)))
    return b.build(outputs=[logits])
