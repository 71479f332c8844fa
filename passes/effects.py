"""Which nodes may be erased when unused or merged with an identical node: those whose op
has no side effect (no mutation, no effect token, no RNG use).  torch decides this per
op (`Node.is_impure`); the answer for an `OpOverload` depends only on the op, so it is
cached per op, which keeps dead-code and CSE sweeps over 50,000 nodes cheap."""

from __future__ import annotations

import torch
import torch.fx

_PURE_BY_OVERLOAD: dict[torch._ops.OpOverload, bool] = {}


def is_pure(node: torch.fx.Node) -> bool:
    """True for `get_attr` nodes and for calls without side effects."""
    op = node.op
    if op == "get_attr":
        return True
    if op != "call_function":
        return False
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        cached = _PURE_BY_OVERLOAD.get(target)
        if cached is None:
            cached = _PURE_BY_OVERLOAD[target] = not node.is_impure()
        return cached
    return not node.is_impure()


_RANDOM_BY_TARGET: dict[object, bool] = {}


def is_random(node: torch.fx.Node) -> bool:
    """Does the node's op draw random numbers (so two calls differ)?"""
    target = node.target
    try:
        return _RANDOM_BY_TARGET[target]
    except KeyError:
        pass
    except TypeError:  # unhashable target
        return False
    random = torch.Tag.nondeterministic_seeded in getattr(target, "tags", ())
    _RANDOM_BY_TARGET[target] = random
    return random


__all__ = ["is_pure", "is_random"]
