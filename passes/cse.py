"""`cse`: common subexpression elimination.  Two nodes with the same target and the same
arguments compute the same value, so the later one is replaced by the earlier.

One forward sweep with a hash table keyed by (op, target, arguments), where an argument node
stands for itself (its replacement already happened: arguments come before their users).
Scalars are keyed with their type and, for floats, their exact bits, so `x + 1` and `x + 1.0`
(different result dtypes) and `x * 0.0` and `x * -0.0` stay apart.  Impure and random ops are
never merged.

Constants are keyed by their contents when they hold at most MERGE_CONSTANT_BYTES: two
`get_attr` of bit-identical tensors (same dtype, shape and strides) are one value, so what is
computed from them merges too (a front end that builds a rotary table per layer from equal
`inv_freq` buffers gets one cos/sin per distinct table instead of one per layer).  A constant
some op may write to is never merged."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.fx

from passes.effects import is_pure, is_random
from passes.pass_base import Pass, option


class _Unhashable(Exception):
    pass


_TAGGED_TYPES = frozenset(
    {bool, int, str, type(None), torch.dtype, torch.device, torch.layout, torch.memory_format}
)


def _key(value: Any) -> Any:
    kind = type(value)
    if kind is torch.fx.Node:
        return value
    if kind in _TAGGED_TYPES:
        return (kind, value)
    if kind is float:
        return (float, value.hex())  # distinguishes -0.0 from 0.0; all NaNs alike
    if kind is tuple or kind is list:
        return (kind, tuple(map(_key, value)))
    if kind is dict:
        return (dict, tuple(sorted((k, _key(v)) for k, v in value.items()))) if value else ()
    if kind is slice:
        return (slice, _key(value.start), _key(value.stop), _key(value.step))
    # FX stores arguments in its immutable_list / immutable_dict subclasses.
    if isinstance(value, torch.fx.Node):
        return value
    if isinstance(value, (list, tuple)):
        return (list if isinstance(value, list) else tuple, tuple(map(_key, value)))
    if isinstance(value, dict):
        return (dict, tuple(sorted((k, _key(v)) for k, v in value.items()))) if value else ()
    raise _Unhashable


def _mergeable(node: torch.fx.Node) -> bool:
    return is_pure(node) and not (node.op == "call_function" and is_random(node))


# Larger constants are weights, unique in practice: not worth reading to hash.
MERGE_CONSTANT_BYTES = 1 << 20


def _constant_key(program, node: torch.fx.Node) -> Any:
    """The contents key of a small constant only pure ops read, else None (keyed by name)."""
    value = program.get_constant(node.target)
    if not isinstance(value, torch.Tensor) or value.device.type == "meta":
        return None
    if value.numel() * value.element_size() > MERGE_CONSTANT_BYTES:
        return None
    if not all(_mergeable(user) for user in node.users):
        return None
    raw = value.detach().contiguous().view(-1).view(torch.uint8).cpu().numpy().tobytes()
    return (
        "constant",
        value.dtype,
        tuple(value.shape),
        value.stride(),
        hashlib.sha256(raw).digest(),
    )


@dataclass(frozen=True)
class CommonSubexpressionElimination(Pass):
    """Merge nodes that apply the same op to the same arguments."""

    name: ClassVar[str] = "cse"
    merge_constants: bool = option(True, "merge small constants with equal contents")

    def run(self, program, context) -> bool:
        rewriter = context.rewriter(program, self.name)
        seen: dict[Any, torch.fx.Node] = {}
        merged = merged_constants = 0
        for node in list(program.graph.nodes):
            if not _mergeable(node):
                continue
            key = None
            if node.op == "get_attr" and self.merge_constants:
                key = _constant_key(program, node)
            if key is None:
                try:
                    key = (node.op, node.target, _key(node.args), _key(node.kwargs))
                    hash(key)
                except (_Unhashable, TypeError):
                    continue
            earlier = seen.get(key)
            if earlier is None:
                seen[key] = node
                continue
            rewriter.replace_node(node, earlier)
            merged += 1
            merged_constants += node.op == "get_attr"
        context.count("merged-nodes", merged)
        if merged_constants:  # most programs have none: keep their report short
            context.count("merged-constants", merged_constants)
        return merged > 0
