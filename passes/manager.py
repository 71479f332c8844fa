"""`PassManager`: runs a pipeline over one graph program, with instrumentation.

    pm = PassManager("canonicalize,cse,dce", print_ir_after_change=True, time_passes=True)
    pm.run(program)          # edits program in place and returns it

Every instrumentation switch is a keyword argument (and a `ggufc opt` flag of the same
name); `add_instrumentation` takes any other `PassInstrumentation`.  Order of events for
pass #i: before-hooks (in order added), the pass, after-hooks (reverse order: timing stops,
verification, numerics, dumps and printing).  A pass that raises, or whose result an
after-hook rejects, gets the failure hooks (print-ir-after-failure, failure dump,
reproducer) and surfaces as PassError / VerificationError naming the pass; the reproducer's
path is appended to the message.  Timing and statistics reports print at the end, also after
a failure.  With every switch off, running through the manager costs one context object and
a few empty loops per pass.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from compiler.errors import GgufcError, PassError
from passes.context import PassContext
from passes.instrumentation.base import PassInstrumentation
from passes.pass_base import Pass
from passes.pipeline import Pipeline
from passes.rewrite.debug_counter import DebugCounter, parse_debug_counter

if TYPE_CHECKING:
    from compiler.ir.program import GraphProgram


class PassManager:
    def __init__(
        self,
        pipeline: str | Pipeline | Iterable[Pass],
        *,
        verify: bool = True,
        print_ir_before: Iterable[str] = (),
        print_ir_after: Iterable[str] = (),
        print_ir_before_all: bool = False,
        print_ir_after_all: bool = False,
        print_ir_after_change: bool = False,
        print_ir_after_failure: bool = False,
        print_rewrites: bool = False,
        dump_dir: str | Path | None = None,
        time_passes: bool = False,
        pass_statistics: bool = False,
        reproducer_dir: str | Path | None = None,
        verify_numerics: bool = False,
        numerics_atol: float | None = None,
        numerics_rtol: float | None = None,
        debug_counter: str | DebugCounter | None = None,
        load_passes: Iterable[str] = (),
        stream: TextIO | None = None,
    ):
        self.pipeline = Pipeline.of(pipeline)
        self.stream = stream if stream is not None else sys.stderr
        self.debug_counter = (
            debug_counter
            if isinstance(debug_counter, DebugCounter)
            else parse_debug_counter(debug_counter)
        )
        self.instrumentations: list[PassInstrumentation] = []
        self.reproducer = None
        self.timing = None
        self.statistics = None
        self._build(
            verify=verify,
            print_ir={
                "before": tuple(print_ir_before),
                "after": tuple(print_ir_after),
                "before_all": print_ir_before_all,
                "after_all": print_ir_after_all,
                "after_change": print_ir_after_change,
                "after_failure": print_ir_after_failure,
            },
            print_rewrites=print_rewrites,
            dump_dir=dump_dir,
            time_passes=time_passes,
            pass_statistics=pass_statistics,
            reproducer_dir=reproducer_dir,
            verify_numerics=verify_numerics,
            numerics_atol=numerics_atol,
            numerics_rtol=numerics_rtol,
            load_passes=tuple(load_passes),
        )

    def _build(
        self,
        *,
        verify,
        print_ir,
        print_rewrites,
        dump_dir,
        time_passes,
        pass_statistics,
        reproducer_dir,
        verify_numerics,
        numerics_atol,
        numerics_rtol,
        load_passes,
    ) -> None:
        # Added in this order: before-hooks run top to bottom, after-hooks bottom to top.
        if reproducer_dir is not None:
            from passes.instrumentation.reproducer import ReproducerInstrumentation

            self.reproducer = ReproducerInstrumentation(
                reproducer_dir, verify, verify_numerics, load_passes
            )
            self.add_instrumentation(self.reproducer)
        if any(print_ir.values()):
            from passes.instrumentation.print_ir import PrintIRInstrumentation

            self.add_instrumentation(PrintIRInstrumentation(self.stream, **print_ir))
        if dump_dir is not None:
            from passes.instrumentation.dump_dir import DumpDirInstrumentation

            self.add_instrumentation(DumpDirInstrumentation(dump_dir))
        if verify_numerics:
            from passes.instrumentation.numerics import (
                DEFAULT_ATOL,
                DEFAULT_RTOL,
                NumericsInstrumentation,
            )

            self.add_instrumentation(
                NumericsInstrumentation(
                    DEFAULT_ATOL if numerics_atol is None else numerics_atol,
                    DEFAULT_RTOL if numerics_rtol is None else numerics_rtol,
                )
            )
        if verify:
            from passes.instrumentation.verify import VerifyInstrumentation

            self.add_instrumentation(VerifyInstrumentation())
        if print_rewrites:
            from passes.instrumentation.print_rewrites import PrintRewritesInstrumentation

            self.add_instrumentation(PrintRewritesInstrumentation(self.stream))
        if pass_statistics:
            from passes.instrumentation.statistics import StatisticsInstrumentation

            self.statistics = StatisticsInstrumentation(self.stream)
            self.add_instrumentation(self.statistics)
        if time_passes:
            from passes.instrumentation.timing import TimingInstrumentation

            self.timing = TimingInstrumentation(self.stream)
            self.add_instrumentation(self.timing)

    def add_instrumentation(self, instrumentation: PassInstrumentation) -> PassManager:
        self.instrumentations.append(instrumentation)
        return self

    # ---- running -------------------------------------------------------------------------
    def run(self, program: GraphProgram) -> GraphProgram:
        instrumentations = self.instrumentations
        reverse = instrumentations[::-1]
        succeeded = False
        any_changed = False
        try:
            for inst in instrumentations:
                inst.before_pipeline(program, self.pipeline)
            for index, pass_ in enumerate(self.pipeline.passes, 1):
                context = PassContext(
                    debug_counter=self.debug_counter, stream=self.stream, pass_name=pass_.name
                )
                for inst in instrumentations:
                    inst.before_pass(index, pass_, program, context)
                try:
                    changed = pass_.run(program, context)
                    changed = True if changed is None else bool(changed)
                    any_changed |= changed
                    for inst in reverse:
                        inst.after_pass(index, pass_, program, changed)
                except Exception as exc:
                    error = _as_pass_error(exc, pass_, index)
                    for inst in reverse:
                        inst.after_pass_failed(index, pass_, program, error)
                    if self.reproducer is not None and self.reproducer.written is not None:
                        error.args = (f"{error}\nreproducer written to {self.reproducer.written}",)
                    if error is exc:
                        raise
                    raise error from exc
            if any_changed:
                # The module's generated forward no longer matches the edited graph; it is
                # regenerated when the program next runs (instrumentation runs graphs
                # through an Interpreter and needs no generated code).
                program.mark_graph_changed()
            succeeded = True
        finally:
            for inst in reverse:
                inst.after_pipeline(program, succeeded)
            self._warn_unused_counters()
        return program

    def _warn_unused_counters(self) -> None:
        if self.debug_counter is not None:
            for name in self.debug_counter.unused_names():
                self.stream.write(
                    f"// warning: debug counter {name!r} was never queried "
                    "(no pattern of that name matched)\n"
                )


def _as_pass_error(exc: Exception, pass_: Pass, index: int) -> GgufcError:
    """ggufc errors that already name the pass (verification, numerics, the driver's own
    errors start with the pass name) pass through; anything else is wrapped in a PassError
    that names the pass and its position."""
    text = str(exc)
    if isinstance(exc, GgufcError) and (f"'{pass_.name}'" in text or text.startswith(pass_.name)):
        return exc
    detail = text if isinstance(exc, GgufcError) else f"{type(exc).__name__}: {text}"
    return PassError(f"pass '{pass_.name}' (#{index}) failed: {detail}")


__all__ = ["PassManager"]
