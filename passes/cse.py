"""`cse`: common subexpression elimination.  Two nodes with the same target and the same
arguments compute the same value, so the later one is replaced by the earlier.

One forward sweep with a hash table keyed by (op, target, arguments), where an argument node
stands for itself (its replacement already happened: arguments come before their users).
Scalars are keyed with their type and, for floats, their exact bits, so `x + 1` and `x + 1.0`
(different result dtypes) and `x * 0.0` and `x * -0.0` stay apart.  Impure and random ops are
never merged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.fx

from passes.effects import is_pure, is_random
from passes.pass_base import Pass


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


@dataclass(frozen=True)
class CommonSubexpressionElimination(Pass):
    """Merge nodes that apply the same op to the same arguments."""

    name: ClassVar[str] = "cse"

    def run(self, program, context) -> bool:
        rewriter = context.rewriter(program, self.name)
        seen: dict[Any, torch.fx.Node] = {}
        merged = 0
        for node in list(program.graph.nodes):
            if not _mergeable(node):
                continue
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
        context.count("merged-nodes", merged)
        return merged > 0
