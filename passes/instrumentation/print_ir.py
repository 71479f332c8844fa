"""IR printing around passes (`--print-ir-before=P,Q`, `--print-ir-after=P,Q`,
`--print-ir-before-all`, `--print-ir-after-all`, `--print-ir-after-change`,
`--print-ir-after-failure`).

Each dump is a header comment and the text IR:

    // ----- IR after cse (pass 2 of 3) ----- //
    ...

`after-change` prints after a pass only if the program's structural hash changed (so it
prints nothing for a pass that changed nothing, whatever the pass reported), and applies to
the passes selected by `after`/`after-all` or, if none is selected, to every pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from passes.instrumentation.base import PassInstrumentation
from passes.instrumentation.files import render_program


def _header(when: str, pass_name: str, index: int, total: int) -> str:
    return f"// ----- IR {when} {pass_name} (pass {index} of {total}) ----- //"


class PrintIRInstrumentation(PassInstrumentation):
    def __init__(
        self,
        stream: TextIO,
        before: Iterable[str] = (),
        after: Iterable[str] = (),
        before_all: bool = False,
        after_all: bool = False,
        after_change: bool = False,
        after_failure: bool = False,
    ):
        self.stream = stream
        self.before = frozenset(before)
        self.after = frozenset(after)
        self.before_all = before_all
        self.after_all = after_all
        self.after_change = after_change
        self.after_failure = after_failure
        self._total = 0
        self._hash_before: str | None = None

    def _selected_after(self, name: str) -> bool:
        if self.after_all or name in self.after:
            return True
        return self.after_change and not self.after

    def before_pipeline(self, program, pipeline) -> None:
        self._total = len(pipeline)

    def before_pass(self, index, pass_, program, context) -> None:
        if self.before_all or pass_.name in self.before:
            self._emit(_header("before", pass_.name, index, self._total), program)
        if self.after_change and self._selected_after(pass_.name):
            from compiler.ir.printer import structural_hash

            self._hash_before = structural_hash(program)

    def after_pass(self, index, pass_, program, changed) -> None:
        if not self._selected_after(pass_.name):
            return
        if self.after_change:
            from compiler.ir.printer import structural_hash

            if structural_hash(program) == self._hash_before:
                return
        self._emit(_header("after", pass_.name, index, self._total), program)

    def after_pass_failed(self, index, pass_, program, error) -> None:
        if self.after_failure:
            self._emit(_header("after failure of", pass_.name, index, self._total), program)

    def _emit(self, header: str, program) -> None:
        self.stream.write(header + "\n" + render_program(program))
        self.stream.flush()


__all__ = ["PrintIRInstrumentation"]
