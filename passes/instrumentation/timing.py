"""`--time-passes`: wall-clock and CPU time of every pass, and the total.

// ----- pass execution times ----- //
  wall (s)    cpu (s)   wall %  pass
  0.001234   0.001200    61.2%  canonicalize
  ...
  0.002016   0.001950   100.0%  total
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO

from passes.instrumentation.base import PassInstrumentation

PERCENT = 100.0


@dataclass
class PassTime:
    index: int
    pass_name: str
    wall: float
    cpu: float


class TimingInstrumentation(PassInstrumentation):
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.times: list[PassTime] = []
        self._started = (0.0, 0.0)

    def before_pipeline(self, program, pipeline) -> None:
        self.times = []

    def before_pass(self, index, pass_, program, context) -> None:
        self._started = (time.perf_counter(), time.process_time())

    def _stop(self, index, pass_) -> None:
        wall0, cpu0 = self._started
        self.times.append(
            PassTime(index, pass_.name, time.perf_counter() - wall0, time.process_time() - cpu0)
        )

    def after_pass(self, index, pass_, program, changed) -> None:
        self._stop(index, pass_)

    def after_pass_failed(self, index, pass_, program, error) -> None:
        if not self.times or self.times[-1].index != index:
            self._stop(index, pass_)

    def after_pipeline(self, program, succeeded) -> None:
        if self.stream is not None:
            self.stream.write(self.report())
            self.stream.flush()

    def report(self) -> str:
        total_wall = sum(t.wall for t in self.times)
        total_cpu = sum(t.cpu for t in self.times)
        lines = ["// ----- pass execution times ----- //", "  wall (s)    cpu (s)   wall %  pass"]
        rows = [(t.wall, t.cpu, t.pass_name) for t in self.times]
        rows.append((total_wall, total_cpu, "total"))
        for wall, cpu, name in rows:
            share = PERCENT * wall / total_wall if total_wall > 0 else PERCENT
            lines.append(f"{wall:10.6f} {cpu:10.6f} {share:7.1f}%  {name}")
        return "\n".join(lines) + "\n"


__all__ = ["PassTime", "TimingInstrumentation"]
