"""Facts about node values that rewrites may rely on, read from `meta["val"]`.

Symbolic dims are compared as sympy expressions: two dims are "the same" only when their
expressions are structurally equal after sympy's canonical form (`2*s0` == `s0*2`).  That is
a proof, never a guess: dims that might be equal for some inputs count as different.
"""

from __future__ import annotations

from typing import Any

import sympy
import torch
import torch.fx


def tensor_value(node: Any) -> torch.Tensor | None:
    """The FakeTensor of a node that computes one tensor, else None."""
    if not isinstance(node, torch.fx.Node):
        return None
    val = node.meta.get("val")
    return val if isinstance(val, torch.Tensor) else None


def dim_expr(dim: Any) -> sympy.Expr | None:
    """The sympy expression of a dim (`sympy.Integer` for a static one), or None."""
    if isinstance(dim, bool):
        return None
    if isinstance(dim, int):
        return sympy.Integer(dim)
    if isinstance(dim, torch.SymInt):
        return dim.node.expr
    return None


def _dim_key(dim: Any):
    """Like dim_expr but a plain int for static dims (cheaper; ints equal sympy Integers)."""
    if type(dim) is int:
        return dim
    if isinstance(dim, torch.SymInt):
        return dim.node.expr
    return None


def same_dims(a, b) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x is y:
            continue
        ex, ey = _dim_key(x), _dim_key(y)
        if ex is None or ey is None or ex != ey:
            return False
    return True


def same_tensor_type(a: torch.fx.Node, b: torch.fx.Node) -> bool:
    """Both nodes produce tensors of provably the same shape, dtype and device."""
    va, vb = tensor_value(a), tensor_value(b)
    return (
        va is not None
        and vb is not None
        and va.dtype == vb.dtype
        and va.device == vb.device
        and same_dims(va.shape, vb.shape)
    )


def same_layout(a: torch.fx.Node, b: torch.fx.Node) -> bool:
    """Same type and provably the same strides (a copy of `a` could be `a` itself)."""
    if not same_tensor_type(a, b):
        return False
    return same_dims(tensor_value(a).stride(), tensor_value(b).stride())


def rank(node: torch.fx.Node) -> int | None:
    val = tensor_value(node)
    return None if val is None else val.dim()


def normalize_dim(dim: Any, ndim: int) -> int | None:
    """`dim` in [0, ndim) or None if it is not a valid int dim for that rank."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        return None
    if -ndim <= dim < ndim:
        return dim % ndim
    return None


def is_scalar(value: Any, expected: float) -> bool:
    """`value` is a Python number equal to `expected` (bools excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == expected


def is_returned(node: torch.fx.Node) -> bool:
    return any(user.op == "output" for user in node.users)


def _is_view(node: torch.fx.Node) -> bool:
    schema = getattr(node.target, "_schema", None)
    return bool(schema and schema.returns and schema.returns[0].alias_info is not None)


def may_replace_fresh_result(node: torch.fx.Node, source: torch.fx.Node) -> bool:
    """May `node`, an op that returns a new tensor, be replaced by `source`?  Not when that
    would make a graph output alias an input, a constant or another output: `node` is
    returned and `source` is returned too, or `source` is (a view of) an input or constant."""
    if not is_returned(node):
        return True
    if is_returned(source):
        return False
    root = source
    while root.op == "call_function" and _is_view(root):
        base = root.args[0] if root.args else None
        if not isinstance(base, torch.fx.Node):
            return False
        if is_returned(base):
            return False
        root = base
    return root.op == "call_function"


__all__ = [
    "dim_expr",
    "is_returned",
    "is_scalar",
    "may_replace_fresh_result",
    "normalize_dim",
    "rank",
    "same_dims",
    "same_layout",
    "same_tensor_type",
    "tensor_value",
]
