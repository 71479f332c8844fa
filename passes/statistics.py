"""Counters a pass run produces (`--pass-statistics`): per pass, and per rewrite pattern.

For a pattern: `attempts` = calls of `match_and_rewrite`; `matches` = attempts that reached
an edit (or returned True); `rewrites` = matches actually applied (a debug counter may veto
one); `added` / `erased` = nodes inserted and erased by it; `seconds` = time inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PatternStatistics:
    attempts: int = 0
    matches: int = 0
    rewrites: int = 0
    added: int = 0
    erased: int = 0
    seconds: float = 0.0


@dataclass
class PassStatistics:
    pass_name: str
    added: int = 0
    erased: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    patterns: dict[str, PatternStatistics] = field(default_factory=dict)

    def count(self, counter: str, amount: int = 1) -> None:
        self.counters[counter] = self.counters.get(counter, 0) + amount

    def pattern(self, name: str) -> PatternStatistics:
        stats = self.patterns.get(name)
        if stats is None:
            stats = self.patterns[name] = PatternStatistics()
        return stats


__all__ = ["PassStatistics", "PatternStatistics"]
