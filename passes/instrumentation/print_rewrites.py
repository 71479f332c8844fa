"""`--print-rewrites`: log every edit of every pass, one line each, with the pattern or pass
that made it:

    // rewrite canonicalize/fold-mul-one: replace %mul with %view
    // rewrite canonicalize/fold-mul-one: erase %mul
"""

from __future__ import annotations

from typing import TextIO

from passes.instrumentation.base import PassInstrumentation
from passes.rewrite.listener import RewriteLogger


class PrintRewritesInstrumentation(PassInstrumentation):
    def __init__(self, stream: TextIO):
        self.stream = stream

    def before_pass(self, index, pass_, program, context) -> None:
        context.listeners.append(RewriteLogger(self.stream, pass_.name))


__all__ = ["PrintRewritesInstrumentation"]
