"""Observers of graph edits.

Every edit a `Rewriter` makes is reported to its listeners with the `origin` that made it
(a pattern name, or a pass name for passes that edit the graph directly). The greedy driver
uses a listener to keep its worklist current; statistics count nodes added and erased; the
`print-rewrites` switch logs every edit.  Events are delivered before an erased node is
removed, so its name and target can still be read.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.fx


class RewriteListener:
    """Base class; override the events you care about."""

    def node_inserted(self, origin: str, node: torch.fx.Node) -> None:
        """`node` was created."""

    def node_erased(self, origin: str, node: torch.fx.Node) -> None:
        """`node` is about to be erased (it has no users)."""

    def node_replaced(self, origin: str, old: torch.fx.Node, new: torch.fx.Node) -> None:
        """Every use of `old` now uses `new` (`old` may be erased next)."""

    def node_modified(self, origin: str, node: torch.fx.Node) -> None:
        """`node`'s arguments changed in place."""


class ListenerGroup(RewriteListener):
    """Forwards each event to several listeners, in order."""

    def __init__(self, listeners: Sequence[RewriteListener]):
        self.listeners = tuple(listeners)

    def node_inserted(self, origin, node):
        for listener in self.listeners:
            listener.node_inserted(origin, node)

    def node_erased(self, origin, node):
        for listener in self.listeners:
            listener.node_erased(origin, node)

    def node_replaced(self, origin, old, new):
        for listener in self.listeners:
            listener.node_replaced(origin, old, new)

    def node_modified(self, origin, node):
        for listener in self.listeners:
            listener.node_modified(origin, node)


def combine_listeners(listeners: Sequence[RewriteListener]) -> RewriteListener | None:
    """None for no listener, the listener itself for one, else a group."""
    if not listeners:
        return None
    if len(listeners) == 1:
        return listeners[0]
    return ListenerGroup(listeners)


class CountingListener(RewriteListener):
    """Counts nodes inserted and erased (what pass statistics report)."""

    def __init__(self) -> None:
        self.inserted = 0
        self.erased = 0

    def node_inserted(self, origin, node):
        self.inserted += 1

    def node_erased(self, origin, node):
        self.erased += 1


class RewriteLogger(RewriteListener):
    """Prints one line per edit (`--print-rewrites`)."""

    def __init__(self, stream, pass_name: str = "") -> None:
        self.stream = stream
        self.pass_name = pass_name

    def _emit(self, origin: str, text: str) -> None:
        label = (
            origin
            if origin == self.pass_name or not self.pass_name
            else (f"{self.pass_name}/{origin}")
        )
        print(f"// rewrite {label}: {text}", file=self.stream)

    def node_inserted(self, origin, node):
        self._emit(origin, f"insert %{node.name} = {describe_target(node)}")

    def node_erased(self, origin, node):
        self._emit(origin, f"erase %{node.name}")

    def node_replaced(self, origin, old, new):
        self._emit(origin, f"replace %{old.name} with %{new.name}")

    def node_modified(self, origin, node):
        self._emit(origin, f"modify %{node.name}")


def describe_target(node: torch.fx.Node) -> str:
    """`aten.view.default`, `ggufc.linear.default`, `get_attr blk.0.w`, `operator.getitem`."""
    if node.op == "call_function":
        target = node.target
        name = getattr(target, "__name__", None)
        if hasattr(target, "_schema") or hasattr(target, "overloadpacket"):
            return str(target)
        module = getattr(target, "__module__", "") or ""
        if module in ("_operator", "operator"):
            module = "operator"
        return f"{module}.{name}" if name else str(target)
    return f"{node.op} {node.target}"


__all__ = [
    "CountingListener",
    "ListenerGroup",
    "RewriteListener",
    "RewriteLogger",
    "combine_listeners",
    "describe_target",
]
