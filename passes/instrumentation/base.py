"""The hook interface of pass instrumentation.  `index` is the pass's 1-based position in
the pipeline; `context` is the PassContext the pass will run with (an instrumentation may
add listeners or a statistics sink to it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compiler.ir.program import GraphProgram
    from passes.context import PassContext
    from passes.pass_base import Pass
    from passes.pipeline import Pipeline


class PassInstrumentation:
    def before_pipeline(self, program: GraphProgram, pipeline: Pipeline) -> None:
        """Called once before the first pass."""

    def before_pass(
        self, index: int, pass_: Pass, program: GraphProgram, context: PassContext
    ) -> None:
        """Called before each pass."""

    def after_pass(self, index: int, pass_: Pass, program: GraphProgram, changed: bool) -> None:
        """Called after each pass that succeeded; may raise to fail the pass."""

    def after_pass_failed(
        self, index: int, pass_: Pass, program: GraphProgram, error: BaseException
    ) -> None:
        """Called when the pass raised, or an after_pass hook rejected its result."""

    def after_pipeline(self, program: GraphProgram, succeeded: bool) -> None:
        """Called once at the end, also after a failure."""


__all__ = ["PassInstrumentation"]
