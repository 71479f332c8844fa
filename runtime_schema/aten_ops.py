"""The allow-list of ATen ops a program may run, by schema name.

A program names each `AtenNode` op by its schema name, ``"aten::<op>.<overload>"`` (the
overload is ``default`` when the schema has none: ``"aten::view"`` means
``torch.ops.aten.view.default``).  The loader refuses a program naming an op that is not in
`ALLOWED_ATEN_OPS`, and the interpreter resolves only names from it, so a program file can
never make the interpreter call an arbitrary function.

The list covers what the models ggufc compiles leave in their graphs besides the GGUF ops:
elementwise arithmetic, activations, normalisation pieces, views, indexing, attention and
the factory ops that build masks and positions.  Extending it is a deliberate act: add the
schema name here (one line, sorted).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ALLOWED_ATEN_OPS: frozenset[str] = frozenset(
    {
        "aten::__and__.Tensor",
        "aten::_softmax",
        "aten::_to_copy",
        "aten::abs",
        "aten::add.Scalar",
        "aten::add.Tensor",
        "aten::addcmul",
        "aten::alias",
        "aten::arange",
        "aten::arange.start",
        "aten::arange.start_step",
        "aten::bitwise_not",
        "aten::bmm",
        "aten::cat",
        "aten::clamp",
        "aten::clone",
        "aten::contiguous",
        "aten::cos",
        "aten::cumsum",
        "aten::div.Scalar",
        "aten::div.Tensor",
        "aten::embedding",
        "aten::eq.Scalar",
        "aten::eq.Tensor",
        "aten::exp",
        "aten::expand",
        "aten::flatten.using_ints",
        "aten::flip",
        "aten::full",
        "aten::ge.Scalar",
        "aten::ge.Tensor",
        "aten::gelu",
        "aten::gt.Scalar",
        "aten::gt.Tensor",
        "aten::index.Tensor",
        "aten::index_copy",
        "aten::index_select",
        "aten::le.Scalar",
        "aten::le.Tensor",
        "aten::linear",
        "aten::logical_and",
        "aten::lt.Scalar",
        "aten::lt.Tensor",
        "aten::masked_fill.Scalar",
        "aten::matmul",
        "aten::maximum",
        "aten::mean.dim",
        "aten::minimum",
        "aten::mm",
        "aten::mul.Scalar",
        "aten::mul.Tensor",
        "aten::neg",
        "aten::ones",
        "aten::permute",
        "aten::pow.Tensor_Scalar",
        "aten::pow.Tensor_Tensor",
        "aten::reciprocal",
        "aten::relu",
        "aten::repeat_interleave.self_int",
        "aten::reshape",
        "aten::rms_norm",
        "aten::roll",
        "aten::rsqrt",
        "aten::scaled_dot_product_attention",
        "aten::select.int",
        "aten::sigmoid",
        "aten::silu",
        "aten::sin",
        "aten::slice.Tensor",
        "aten::softmax.int",
        "aten::sqrt",
        "aten::squeeze.dim",
        "aten::stack",
        "aten::sub.Scalar",
        "aten::sub.Tensor",
        "aten::sum.dim_IntList",
        "aten::t",
        "aten::tanh",
        "aten::to.dtype",
        "aten::transpose.int",
        "aten::tril",
        "aten::triu",
        "aten::unflatten.int",
        "aten::unsqueeze",
        "aten::view",
        "aten::where.self",
        "aten::zeros",
    }
)

# Ops that create a tensor from nothing: the interpreter passes `device=` (the device it
# runs on) unless the program names one, so program files stay device-agnostic.
FACTORY_ATEN_OPS: frozenset[str] = frozenset(
    {
        "aten::arange",
        "aten::arange.start",
        "aten::arange.start_step",
        "aten::full",
        "aten::ones",
        "aten::zeros",
    }
)

ATEN_PREFIX = "aten::"
DEFAULT_OVERLOAD = "default"


def resolve_aten_op(schema_name: str) -> Callable:
    """``"aten::add.Tensor"`` -> ``torch.ops.aten.add.Tensor``; only allow-listed names."""
    if schema_name not in ALLOWED_ATEN_OPS:
        raise KeyError(f"{schema_name!r} is not on the ATen allow-list")
    op_name, _, overload = schema_name.removeprefix(ATEN_PREFIX).partition(".")
    packet = getattr(torch.ops.aten, op_name)
    return getattr(packet, overload or DEFAULT_OVERLOAD)
