"""Debug counters: bisect a bad rewrite by letting only some applications of a pattern run.

Text form (as LLVM and MLIR spell it): `NAME-skip=N,NAME-count=M,...`.  For counter NAME,
the first N queries answer "skip", the next M answer "execute", and every later one "skip";
a missing `-skip` means 0, a missing `-count` means unlimited.  Each pattern's counter is the
pattern's name and is queried once per match, just before the pattern's first edit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from compiler.errors import PipelineParseError

_ENTRY = re.compile(r"^([A-Za-z0-9_.-]+)-(skip|count)=(-?\d+)$")
UNLIMITED = -1


@dataclass
class _Counter:
    skip: int = 0
    count: int = UNLIMITED
    queries: int = 0


@dataclass
class DebugCounter:
    counters: dict[str, _Counter] = field(default_factory=dict)

    def should_execute(self, name: str) -> bool:
        counter = self.counters.get(name)
        if counter is None:
            return True
        index = counter.queries
        counter.queries += 1
        if index < counter.skip:
            return False
        return counter.count == UNLIMITED or index < counter.skip + counter.count

    def unused_names(self) -> list[str]:
        """Counters that were never queried (usually a misspelt pattern name)."""
        return [name for name, c in self.counters.items() if c.queries == 0]

    def to_text(self) -> str:
        parts = []
        for name, c in self.counters.items():
            if c.skip:
                parts.append(f"{name}-skip={c.skip}")
            if c.count != UNLIMITED:
                parts.append(f"{name}-count={c.count}")
        return ",".join(parts)


def parse_debug_counter(text: str | None) -> DebugCounter | None:
    """Parse `a-skip=1,a-count=2,b-count=0` (entries may also come as several texts joined
    by commas). None or empty text gives None."""
    if not text:
        return None
    result = DebugCounter()
    column = 1
    for entry in text.split(","):
        match = _ENTRY.match(entry.strip())
        if not match or int(match.group(3)) < 0:
            raise PipelineParseError(
                f"debug counter column {column}: expected NAME-skip=N or NAME-count=M with "
                f"N, M >= 0, found {entry!r}\n  {text}\n  {' ' * (column - 1)}^"
            )
        name, kind, value = match.group(1), match.group(2), int(match.group(3))
        counter = result.counters.setdefault(name, _Counter())
        setattr(counter, kind, value)
        column += len(entry) + 1
    return result


__all__ = ["DebugCounter", "parse_debug_counter"]
