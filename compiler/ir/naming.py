"""How the textual IR spells ops and dtypes, in both directions.

Ops (the callee of a node line):

* `torch.ops.<ns>.<op>.<overload>`  ->  `<ns>.<op>` for the `default` overload, else
  `<ns>.<op>.<overload>` (`aten.linear`, `aten.mul.Tensor`, `ggufc.linear`);
* higher-order operators  ->  `higher_order.<name>` (`higher_order.cond`);
* Python functions FX graphs call on SymInts and tuples  ->  their module and name
  (`operator.getitem`, `operator.mul`, `math.ceil`, `torch.sym_max`);
* `call_method` nodes  ->  `method.<name>` (the receiver is the first argument).

Dtypes in types use short names (`f32`, `f16`, `bf16`, `i64`, `u8`, `b8`, ...); a dtype with no
short name is written as its `torch` attribute name (`float8_e4m3fn`).  Dtypes appearing as
*arguments* are written `torch.float16`, exactly as Python prints them.
"""

from __future__ import annotations

import importlib
import math
import operator

import torch

DTYPE_SHORT_NAMES: dict[torch.dtype, str] = {
    torch.float64: "f64",
    torch.float32: "f32",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
    torch.int64: "i64",
    torch.int32: "i32",
    torch.int16: "i16",
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.uint16: "u16",
    torch.uint32: "u32",
    torch.uint64: "u64",
    torch.bool: "b8",
    torch.complex64: "c64",
    torch.complex128: "c128",
}
_DTYPES_BY_SHORT_NAME = {short: dtype for dtype, short in DTYPE_SHORT_NAMES.items()}

# Modules whose plain functions may be node targets, as the text names them.
_FUNCTION_MODULES = {"operator": operator, "math": math, "torch": torch}

HIGHER_ORDER_PREFIX = "higher_order"
METHOD_PREFIX = "method"
# Op packages other than these are imported on demand when a text names them.
_OP_LIBRARIES = {"ggufc": "compiler.ops"}


def dtype_text(dtype: torch.dtype) -> str:
    short = DTYPE_SHORT_NAMES.get(dtype)
    return short if short is not None else str(dtype).removeprefix("torch.")


def dtype_from_text(text: str) -> torch.dtype | None:
    """The dtype a type names (`f16`, or a long name like `float8_e4m3fn`), or None."""
    dtype = _DTYPES_BY_SHORT_NAME.get(text)
    if dtype is not None:
        return dtype
    candidate = getattr(torch, text, None)
    return candidate if isinstance(candidate, torch.dtype) else None


def op_text(target) -> str | None:
    """The text name of a `call_function` target, or None if the IR cannot name it."""
    if isinstance(target, torch._ops.OpOverload):
        packet = target.overloadpacket
        namespace = target.namespace
        op_name = packet.__name__.split(".")[-1]
        overload = target._overloadname
        base = f"{namespace}.{op_name}"
        return base if overload == "default" else f"{base}.{overload}"
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"{HIGHER_ORDER_PREFIX}.{target.name()}"
    name = getattr(target, "__name__", None)
    if name is None:
        return None
    for module_name, module in _FUNCTION_MODULES.items():
        if getattr(module, name, None) is target:
            return f"{module_name}.{name}"
    return None


def resolve_op(text: str):
    """The node target `text` names, or None if there is none.  `method.<name>` is not a
    target; callers handle it before calling this."""
    parts = text.split(".")
    if len(parts) < 2 or not all(parts):
        return None
    head = parts[0]
    if head == HIGHER_ORDER_PREFIX:
        if len(parts) != 2:
            return None
        try:
            return getattr(torch.ops.higher_order, parts[1])
        except AttributeError:
            return None
    if head in _FUNCTION_MODULES and len(parts) == 2:
        function = getattr(_FUNCTION_MODULES[head], parts[1], None)
        if callable(function) and not isinstance(function, type):
            return function
        if head != "torch":
            return None
    if len(parts) not in (2, 3):
        return None
    if head in _OP_LIBRARIES:
        importlib.import_module(_OP_LIBRARIES[head])
    overload = parts[2] if len(parts) == 3 else "default"
    if overload == "default" and len(parts) == 3:
        return None  # the default overload is always written without its name
    try:
        packet = getattr(getattr(torch.ops, head), parts[1])
        resolved = getattr(packet, overload)
    except (AttributeError, RuntimeError):
        return None
    return resolved if isinstance(resolved, torch._ops.OpOverload) else None
