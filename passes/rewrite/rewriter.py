"""`Rewriter`: the only way passes and patterns edit a graph program.

Each edit is reported to the listener (see `listener`) with the rewriter's current `origin`.
Before the first edit of each pattern application the driver's `first_edit_hook` runs; it
is how the debug counter vetoes a rewrite and how the convergence check asks "would this
pattern edit anything?" without editing.

Erasing the last `get_attr` of a constant also deletes the constant from the graph module,
so no pass leaves a dangling constant behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch.fx

from compiler.errors import PassError

if TYPE_CHECKING:
    from compiler.ir.program import GraphProgram
    from passes.rewrite.listener import RewriteListener


class Rewriter:
    def __init__(
        self,
        program: GraphProgram,
        listener: RewriteListener | None = None,
        origin: str = "",
    ):
        self.program = program
        self.graph: torch.fx.Graph = program.graph
        self.listener = listener
        self.origin = origin
        # Called once before the first edit after it is (re)armed; may raise to veto.
        self.first_edit_hook: Callable[[], None] | None = None

    # ---- edits ---------------------------------------------------------------------------
    def call_function(
        self,
        target: Any,
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        before: torch.fx.Node,
        meta_from: torch.fx.Node | None = None,
        val: Any = None,
    ) -> torch.fx.Node:
        """Insert `target(*args, **kwargs)` just before `before`.  Its `meta` is copied from
        `meta_from` (a node computing the same value) or set to `{"val": val}`."""
        self._before_edit()
        with self.graph.inserting_before(before):
            node = self.graph.call_function(target, tuple(args), dict(kwargs or {}))
        if meta_from is not None:
            node.meta = dict(meta_from.meta)
        else:
            node.meta["val"] = val
        if self.listener is not None:
            self.listener.node_inserted(self.origin, node)
        return node

    def constant(
        self, name: str, tensor: torch.Tensor, *, before: torch.fx.Node, val: Any
    ) -> torch.fx.Node:
        """Register ``tensor`` on the graph module as a new constant (``name``, or ``name`` with
        a numeric suffix when taken) and insert a ``get_attr`` of it just before ``before``,
        with ``meta["val"] = val`` (its fake tensor)."""
        self._before_edit()
        root = self.program.graph_module
        target, suffix = name, 1
        while _has_attribute(root, target):
            target, suffix = f"{name}_{suffix}", suffix + 1
        owner, _, leaf = target.rpartition(".")
        module = root
        for part in owner.split(".") if owner else ():
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        module.register_buffer(leaf, tensor)
        with self.graph.inserting_before(before):
            node = self.graph.get_attr(target)
        node.meta["val"] = val
        if self.listener is not None:
            self.listener.node_inserted(self.origin, node)
        return node

    def replace_all_uses(self, old: torch.fx.Node, new: torch.fx.Node) -> None:
        if old is new:
            raise PassError(f"{self.origin}: cannot replace %{old.name} with itself")
        self._before_edit()
        old.replace_all_uses_with(new)
        if self.listener is not None:
            self.listener.node_replaced(self.origin, old, new)

    def replace_node(self, old: torch.fx.Node, new: torch.fx.Node) -> None:
        """Replace every use of `old` with `new`, then erase `old`."""
        self.replace_all_uses(old, new)
        self.erase_node(old)

    def erase_node(self, node: torch.fx.Node) -> None:
        if node.users:
            users = ", ".join(f"%{u.name}" for u in node.users)
            raise PassError(f"{self.origin}: cannot erase %{node.name}, still used by {users}")
        self._before_edit()
        if self.listener is not None:
            self.listener.node_erased(self.origin, node)
        self.graph.erase_node(node)
        if node.op == "get_attr":
            self._release_constant(node.target)

    def update_args(self, node: torch.fx.Node, args: tuple, kwargs: dict | None = None) -> None:
        self._before_edit()
        node.args = tuple(args)
        if kwargs is not None:
            node.kwargs = dict(kwargs)
        if self.listener is not None:
            self.listener.node_modified(self.origin, node)

    # ---- internals -----------------------------------------------------------------------
    def _before_edit(self) -> None:
        hook = self.first_edit_hook
        if hook is not None:
            self.first_edit_hook = None
            hook()

    def _release_constant(self, target: str) -> None:
        """Called after the erase of a get_attr of `target`: drop the constant if no
        get_attr reads it any more (FX's op/target index answers without a graph walk)."""
        if not self.graph.find_nodes(op="get_attr", target=target, sort=False):
            delete_attribute(self.program.graph_module, target)


def _has_attribute(root: torch.nn.Module, path: str) -> bool:
    value = root
    for part in path.split("."):
        if not hasattr(value, part):
            return False
        value = getattr(value, part)
    return True


def delete_attribute(root: torch.nn.Module, path: str) -> None:
    """Delete the tensor at dotted `path`, and the submodules that become empty."""
    parts = path.split(".")
    owners = [root]
    for part in parts[:-1]:
        if not hasattr(owners[-1], part):
            return
        owners.append(getattr(owners[-1], part))
    if hasattr(owners[-1], parts[-1]) and isinstance(getattr(owners[-1], parts[-1]), torch.Tensor):
        delattr(owners[-1], parts[-1])
    for depth in range(len(parts) - 1, 0, -1):
        module = owners[depth]
        if isinstance(module, torch.fx.GraphModule) or not isinstance(module, torch.nn.Module):
            break
        if module._parameters or module._buffers or module._modules or _tensor_attrs(module):
            break
        delattr(owners[depth - 1], parts[depth - 1])


def _tensor_attrs(module: torch.nn.Module) -> list[str]:
    return [k for k, v in vars(module).items() if isinstance(v, torch.Tensor)]


__all__ = ["Rewriter", "delete_attribute"]
