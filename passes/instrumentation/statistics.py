"""`--pass-statistics`: per pass, nodes added and erased and the pass's own counters; per
rewrite pattern, attempts, matches, rewrites, nodes added and erased, and time.  Node counts
come from a listener on every edit, so they hold for passes that use the rewriter directly.

    // ----- pass statistics ----- //
    canonicalize (pass 1): added 1, erased 7; iterations 2
      pattern                    attempts  matches  rewrites  added  erased  time (ms)
      fold-identity-reshape             2        2         2      0       2      0.031
"""

from __future__ import annotations

from typing import TextIO

from passes.instrumentation.base import PassInstrumentation
from passes.rewrite.listener import CountingListener
from passes.statistics import PassStatistics

MILLISECONDS = 1000.0


class StatisticsInstrumentation(PassInstrumentation):
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.passes: list[tuple[int, PassStatistics]] = []
        self._counter: CountingListener | None = None

    def before_pipeline(self, program, pipeline) -> None:
        self.passes = []

    def before_pass(self, index, pass_, program, context) -> None:
        stats = PassStatistics(pass_.name)
        self._counter = CountingListener()
        context.statistics = stats
        context.listeners.append(self._counter)
        self.passes.append((index, stats))

    def _finish(self) -> None:
        if self._counter is not None:
            stats = self.passes[-1][1]
            stats.added, stats.erased = self._counter.inserted, self._counter.erased
            self._counter = None

    def after_pass(self, index, pass_, program, changed) -> None:
        self._finish()

    def after_pass_failed(self, index, pass_, program, error) -> None:
        self._finish()

    def after_pipeline(self, program, succeeded) -> None:
        if self.stream is not None:
            self.stream.write(self.report())
            self.stream.flush()

    def report(self) -> str:
        lines = ["// ----- pass statistics ----- //"]
        for index, stats in self.passes:
            counters = "".join(f"; {k} {v}" for k, v in sorted(stats.counters.items()))
            lines.append(
                f"{stats.pass_name} (pass {index}): added {stats.added}, erased {stats.erased}"
                f"{counters}"
            )
            if stats.patterns:
                width = max(len("pattern"), *(len(n) for n in stats.patterns))
                lines.append(
                    f"  {'pattern':<{width}}  attempts  matches  rewrites  added  erased  time (ms)"
                )
                for name, p in sorted(stats.patterns.items()):
                    lines.append(
                        f"  {name:<{width}}  {p.attempts:8d}  {p.matches:7d}  {p.rewrites:8d}"
                        f"  {p.added:5d}  {p.erased:6d}  {p.seconds * MILLISECONDS:9.3f}"
                    )
        return "\n".join(lines) + "\n"


__all__ = ["StatisticsInstrumentation"]
