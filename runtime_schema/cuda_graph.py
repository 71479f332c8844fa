"""Replay a program run on CUDA as one CUDA graph, for a step repeated with the same shapes.

A run on CUDA launches hundreds of small kernels and torch ops one by one from Python; for a
decode step (M = 1) their launch overhead, tens of microseconds each, is far more than the
GPU time.  With inputs of fixed shapes a run launches the same work in the same order and
reads nothing back to the host (the IfNode conditions and sizes depend on shapes only), so
it can be captured once with ``torch.cuda.graph`` and replayed::

    step = CapturedStep(runner, example_inputs, feedback={2: 1, 3: 2, ...})
    outputs = step.run(inputs)

``feedback`` maps an input position to the output position whose value becomes that input
for the next run (a language model's KV caches): the graph copies those outputs into its own
input tensors at its end, so a generation loop passes them on without a copy launched from
Python.  `run` copies only the other inputs into the graph's tensors; the outputs it returns
are the graph's own tensors, overwritten by the next replay (the fed-back ones are the
graph's input tensors, already updated).  A fed-back input the program only writes one
slice of with ``aten::index_copy`` (`ProgramRunner.donatable_inputs`) is updated in place
instead: no whole-cache copy to make the output, none to feed it back.

``epilogue(inputs, outputs)``, if given, runs inside the capture after the feedback copies:
device work that prepares the next run's inputs from this run's outputs (a greedy decoder
writes the argmax token and the next position into the graph's own input tensors, so steps
replay back to back without the host in between).

A run that syncs with the host (reads a value back) cannot be captured: `CapturedStep`
raises `GraphCaptureError`, and callers fall back to running the program step by step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from compiler.errors import GgufcError


class GraphCaptureError(GgufcError):
    """A program run could not be captured as a CUDA graph."""


class CapturedStep:
    """One program run captured as a CUDA graph (see the module doc)."""

    def __init__(
        self,
        runner,
        example_inputs: Sequence[torch.Tensor],
        feedback: Mapping[int, int] | None = None,
        epilogue: Callable[[list[torch.Tensor], list[torch.Tensor]], None] | None = None,
    ):
        self.feedback = dict(feedback or {})
        self.inputs = [t.to("cuda").clone() for t in example_inputs]
        donated = runner.donatable_inputs() & self.feedback.keys()
        try:
            # the recipe of torch.cuda.graphs: a warm-up run on a side stream compiles the
            # kernels and settles the allocator before capture (on copies: it may write the
            # donated inputs)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                runner.run([t.clone() for t in self.inputs], frozenset(donated))
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                outputs = runner.run(self.inputs, frozenset(donated))
                for input_index, output_index in self.feedback.items():
                    if outputs[output_index] is not self.inputs[input_index]:
                        self.inputs[input_index].copy_(outputs[output_index])
                if epilogue is not None:
                    epilogue(self.inputs, outputs)
        except (RuntimeError, GgufcError) as exc:
            raise GraphCaptureError(f"capturing the program run as a CUDA graph: {exc}") from exc
        self.outputs = [
            self.inputs[_input_of(self.feedback, i)] if i in self.feedback.values() else out
            for i, out in enumerate(outputs)
        ]

    def run(self, inputs: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        """Replay with `inputs` (None, or anything, at fed-back positions: ignored)."""
        for index, (static, value) in enumerate(zip(self.inputs, inputs)):
            if index not in self.feedback:
                static.copy_(value, non_blocking=True)
        return self.replay()

    def replay(self) -> list[torch.Tensor]:
        """Replay on the graph's input tensors as they are (set by the last replay's
        feedback and epilogue, or by `run`)."""
        self.graph.replay()
        return self.outputs


def _input_of(feedback: Mapping[int, int], output_index: int) -> int:
    return next(i for i, o in feedback.items() if o == output_index)


__all__ = ["CapturedStep", "GraphCaptureError"]
