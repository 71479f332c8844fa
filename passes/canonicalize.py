"""`canonicalize`: apply the canonicalization pattern set (see `canonicalize_patterns`) with
the greedy driver, erasing nodes that become dead on the way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from compiler.errors import PassError
from passes.canonicalize_patterns import CANONICALIZATION_PATTERNS
from passes.pass_base import Pass, option
from passes.rewrite.driver import (
    DEFAULT_MAX_ITERATIONS,
    GreedyConfig,
    PatternSet,
    apply_patterns_greedily,
)


@dataclass(frozen=True)
class Canonicalize(Pass):
    """Fold no-op views, casts, copies and arithmetic identities; erase dead nodes."""

    name: ClassVar[str] = "canonicalize"
    max_iterations: int = option(DEFAULT_MAX_ITERATIONS, "cap on greedy sweeps over the graph")
    test_convergence: bool = option(False, "fail if a pattern still applies after the cap")
    disable_patterns: tuple[str, ...] = option((), "names of patterns not to apply")

    def __post_init__(self) -> None:
        # Checked at construction, so a bad pipeline fails while parsing, not mid-run.
        if self.max_iterations < 1:
            raise PassError(f"max-iterations must be at least 1, got {self.max_iterations}")
        known = {cls.name for cls in CANONICALIZATION_PATTERNS}
        unknown = sorted(set(self.disable_patterns) - known)
        if unknown:
            raise PassError(
                f"unknown pattern(s) {', '.join(unknown)} in disable-patterns; "
                f"patterns: {', '.join(sorted(known))}"
            )

    def patterns(self) -> PatternSet:
        return PatternSet(
            cls() for cls in CANONICALIZATION_PATTERNS if cls.name not in self.disable_patterns
        )

    def run(self, program, context) -> bool:
        config = GreedyConfig(self.max_iterations, self.test_convergence)
        return apply_patterns_greedily(program, self.patterns(), context, config, self.name)
