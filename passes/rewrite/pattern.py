"""`RewritePattern`: one local rewrite, matched on a node whose target is one of
`root_targets`.

    class FoldMulOne(RewritePattern):
        name = "fold-mul-one"
        root_targets = (torch.ops.aten.mul.Tensor,)

        def match_and_rewrite(self, node, rewriter) -> bool:
            if node.args[1] != 1 or not same_type(node, node.args[0]):
                return False                       # no match: nothing may have been edited
            rewriter.replace_node(node, node.args[0])
            return True

Rules: edit the graph only through `rewriter` (so listeners, statistics and the debug
counter see every edit); make no edit before the match is certain; return True exactly when
something was edited.  `root_targets` may hold `OpOverload`s (`aten.view.default`),
`OpOverloadPacket`s (`aten.view`, every overload) or plain callables (`operator.getitem`).
Higher `benefit` is tried first among the patterns rooted at the same target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch.fx

    from passes.rewrite.rewriter import Rewriter


class RewritePattern:
    name: ClassVar[str] = ""
    root_targets: ClassVar[tuple[Any, ...]] = ()
    benefit: ClassVar[int] = 1

    def match_and_rewrite(self, node: torch.fx.Node, rewriter: Rewriter) -> bool:
        raise NotImplementedError(f"pattern {self.name!r} does not implement match_and_rewrite")

    def __repr__(self) -> str:
        return f"<pattern {self.name}>"


__all__ = ["RewritePattern"]
