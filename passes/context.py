"""`PassContext`: what a running pass may use besides the program: a `Rewriter` factory
wired to the active listeners, the debug counter, the statistics sink and the output stream
for diagnostics.  The pass manager makes one per pass run; calling a pass directly with
`PassContext()` works too (no listeners, no statistics)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from passes.rewrite.listener import RewriteListener, combine_listeners
from passes.rewrite.rewriter import Rewriter

if TYPE_CHECKING:
    from compiler.ir.program import GraphProgram
    from passes.rewrite.debug_counter import DebugCounter
    from passes.statistics import PassStatistics


@dataclass
class PassContext:
    listeners: list[RewriteListener] = field(default_factory=list)
    debug_counter: DebugCounter | None = None
    statistics: PassStatistics | None = None
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    pass_name: str = ""

    def rewriter(self, program: GraphProgram, origin: str | None = None) -> Rewriter:
        """A rewriter whose edits reach every active listener."""
        return Rewriter(program, combine_listeners(self.listeners), origin or self.pass_name)

    def count(self, counter: str, amount: int = 1) -> None:
        """Add to a pass-level statistic (shown by `--pass-statistics`)."""
        if self.statistics is not None:
            self.statistics.count(counter, amount)


__all__ = ["PassContext"]
