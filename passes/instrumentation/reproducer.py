"""Crash reproducers: when a pass fails (raises, or its result fails verification or the
numerics check), write one `.ir` file holding the failing pass's *input* program and the
rest of the pipeline, starting with the failing pass:

    // ggufc-reproducer: pipeline=cse,dce
    // ggufc-reproducer: verify=true
    // ggufc-reproducer: verify-numerics=false
    // ggufc-reproducer: load-pass=tests/passes/broken_passes.py:BreakNumerics
    // ggufc-reproducer: error=pass 'cse' (#2) failed: ...
    <text IR of the program>

`ggufc opt --run-reproducer FILE` parses the header, loads the passes named by `load-pass`,
parses the program and runs the pipeline with the recorded switches, which replays the same
failure.  Constants are stored by name, dtype and shape only (the text IR does not carry
data), so a parsed reproducer runs on deterministic random constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from compiler.errors import IRParseError
from passes.instrumentation.base import PassInstrumentation
from passes.instrumentation.files import render_program, write_atomic

HEADER_PREFIX = "// ggufc-reproducer: "
REPRODUCER_FILE_NAME = "{index:02d}-{name}.reproducer.ir"


@dataclass
class Reproducer:
    pipeline: str
    program_text: str
    verify: bool = True
    verify_numerics: bool = False
    load_passes: list[str] = field(default_factory=list)
    error: str = ""

    def to_text(self) -> str:
        lines = [
            f"{HEADER_PREFIX}pipeline={self.pipeline}",
            f"{HEADER_PREFIX}verify={'true' if self.verify else 'false'}",
            f"{HEADER_PREFIX}verify-numerics={'true' if self.verify_numerics else 'false'}",
        ]
        lines += [f"{HEADER_PREFIX}load-pass={ref}" for ref in self.load_passes]
        if self.error:
            first_line = self.error.splitlines()[0] if self.error.splitlines() else ""
            lines.append(f"{HEADER_PREFIX}error={first_line}")
        return "\n".join(lines) + "\n" + self.program_text


def read_reproducer(path: str | Path) -> Reproducer:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise IRParseError(f"{path}: cannot read reproducer: {exc}") from exc
    values: dict[str, list[str]] = {}
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.startswith(HEADER_PREFIX):
            continue
        key, sep, value = line[len(HEADER_PREFIX) :].partition("=")
        if not sep:
            raise IRParseError(
                f"{path}:{line_number}:1: expected KEY=VALUE after '{HEADER_PREFIX.strip()}'"
            )
        values.setdefault(key.strip(), []).append(value)
    if "pipeline" not in values:
        raise IRParseError(
            f"{path}:1:1: not a ggufc reproducer: no '{HEADER_PREFIX}pipeline=...' line"
        )

    def flag(key: str, default: bool) -> bool:
        return values.get(key, ["true" if default else "false"])[-1].strip() == "true"

    return Reproducer(
        pipeline=values["pipeline"][-1],
        program_text=text,
        verify=flag("verify", True),
        verify_numerics=flag("verify-numerics", False),
        load_passes=values.get("load-pass", []),
        error=values.get("error", [""])[-1],
    )


class ReproducerInstrumentation(PassInstrumentation):
    def __init__(
        self,
        directory: str | Path,
        verify: bool = True,
        verify_numerics: bool = False,
        load_passes: tuple[str, ...] = (),
    ):
        self.directory = Path(directory)
        self.verify = verify
        self.verify_numerics = verify_numerics
        self.load_passes = list(load_passes)
        self.written: Path | None = None
        self._pipeline = None
        self._snapshot = ""

    def before_pipeline(self, program, pipeline) -> None:
        self._pipeline = pipeline

    def before_pass(self, index, pass_, program, context) -> None:
        self._snapshot = render_program(program)

    def after_pass_failed(self, index, pass_, program, error) -> None:
        remaining = self._pipeline[index - 1 :]
        reproducer = Reproducer(
            pipeline=remaining.to_text(),
            program_text=self._snapshot,
            verify=self.verify,
            verify_numerics=self.verify_numerics,
            load_passes=self.load_passes,
            error=str(error),
        )
        path = self.directory / REPRODUCER_FILE_NAME.format(index=index, name=pass_.name)
        self.written = write_atomic(path, reproducer.to_text())


__all__ = ["Reproducer", "ReproducerInstrumentation", "read_reproducer"]
