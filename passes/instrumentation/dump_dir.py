"""`--dump-dir DIR`: the program before the pipeline and after every pass, one numbered
file each, as text IR and Graphviz DOT:

    DIR/00-input.ir   DIR/00-input.dot
    DIR/01-canonicalize.ir   DIR/01-canonicalize.dot
    DIR/02-cse.ir ...
    DIR/03-dce.failed.ir      (the program as the failing pass left it)

Numbers have at least two digits (more for pipelines of 100 passes or more)."""

from __future__ import annotations

from pathlib import Path

from passes.instrumentation.base import PassInstrumentation
from passes.instrumentation.files import render_program, write_atomic

MIN_INDEX_DIGITS = 2


class DumpDirInstrumentation(PassInstrumentation):
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._digits = MIN_INDEX_DIGITS
        self.written: list[Path] = []

    def _write(self, stem: str, program, with_dot: bool = True) -> None:
        self.written.append(write_atomic(self.directory / f"{stem}.ir", render_program(program)))
        if with_dot:
            from compiler.ir.dot import to_dot

            self.written.append(write_atomic(self.directory / f"{stem}.dot", to_dot(program)))

    def _stem(self, index: int, name: str) -> str:
        return f"{index:0{self._digits}d}-{name}"

    def before_pipeline(self, program, pipeline) -> None:
        self._digits = max(MIN_INDEX_DIGITS, len(str(len(pipeline))))
        self._write(self._stem(0, "input"), program)

    def after_pass(self, index, pass_, program, changed) -> None:
        self._write(self._stem(index, pass_.name), program)

    def after_pass_failed(self, index, pass_, program, error) -> None:
        self._write(self._stem(index, pass_.name) + ".failed", program, with_dot=False)


__all__ = ["DumpDirInstrumentation"]
