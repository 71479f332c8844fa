"""`--verify-numerics`: run the program before and after every pass on the same generated
inputs and fail the pass if an output changed.

Inputs: for each symbolic dim with range [lo, hi], the values lo, (lo + c) // 2 and c with
c = min(hi, max(lo, SMALL_DIM_CAP)) (duplicates dropped); sample i sets every dim to its i-th
value (the last one if it has fewer).  Each sample's inputs come from a generator seeded
with the sample number, so "before" and "after" see identical inputs.

Comparison: outputs must have the same shape and dtype and be `allclose(atol, rtol)` (NaN
equal to NaN).  On a mismatch the error names the first node, in the new graph's order,
that also exists in the old graph (same name) and whose value differs: usually the node the
pass rewrote wrongly, else the first output that differs.

Values of every node are kept between passes (the "after" of one pass is the "before" of the
next), so this switch costs memory proportional to all intermediate values: use it on test
programs, not on full models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy
import torch
import torch.fx
import torch.utils._pytree as pytree

from compiler.errors import PassError
from passes.instrumentation.base import PassInstrumentation

SMALL_DIM_CAP = 8
DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4
INTEGER_INPUT_BOUND = 2  # random integer inputs lie in [0, bound): safe as indices of any dim


def sample_symbol_values(symbol_ranges: dict[str, tuple[int, int]]) -> list[dict[str, int]]:
    per_symbol = {}
    for name, (lo, hi) in symbol_ranges.items():
        cap = min(hi, max(lo, SMALL_DIM_CAP))
        per_symbol[name] = sorted({lo, (lo + cap) // 2, cap})
    count = max((len(v) for v in per_symbol.values()), default=1)
    return [{name: v[min(i, len(v) - 1)] for name, v in per_symbol.items()} for i in range(count)]


def generate_inputs(program, symbol_values: dict[str, int], seed: int) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    maker = getattr(program, "example_inputs", None)
    if maker is not None:
        return tuple(maker(symbol_values, generator=generator))
    return _inputs_from_meta(program, symbol_values, generator)


def _inputs_from_meta(program, symbol_values, generator) -> tuple:
    substitutions = {sympy.Symbol(k, integer=True): v for k, v in symbol_values.items()}
    by_name = {sympy.Symbol(k): v for k, v in symbol_values.items()}
    inputs = []
    for node in program.inputs:
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            raise PassError(f"verify-numerics: input %{node.name} has no tensor meta['val']")
        shape = []
        for dim in val.shape:
            if isinstance(dim, torch.SymInt):
                expr = sympy.sympify(dim.node.expr)
                value = expr.xreplace(substitutions).xreplace(by_name)
                if not value.is_number:
                    raise PassError(
                        f"verify-numerics: no value for dims of {expr} (input %{node.name})"
                    )
                dim = int(value)
            shape.append(int(dim))
        if val.dtype.is_floating_point:
            inputs.append(torch.randn(shape, generator=generator).to(val.dtype))
        elif val.dtype == torch.bool:
            inputs.append(torch.rand(shape, generator=generator) > 0.5)
        else:
            inputs.append(
                torch.randint(0, INTEGER_INPUT_BOUND, shape, generator=generator).to(val.dtype)
            )
    return tuple(inputs)


class _Recorder(torch.fx.Interpreter):
    def __init__(self, module):
        super().__init__(module)
        self.values: dict[str, Any] = {}

    def run_node(self, node):
        result = super().run_node(node)
        if node.op not in ("get_attr", "output"):
            self.values[node.name] = result
        return result


@dataclass
class _Run:
    outputs: list[Any]
    values: dict[str, Any]


# Random ops (rand_like, dropout) draw from the global generator; seeding it the same way
# before every run gives "before" and "after" the same random numbers.
RANDOM_OPS_SEED = 0


def run_recording(program, inputs) -> _Run:
    recorder = _Recorder(program.graph_module)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_OPS_SEED)
        result = recorder.run(*inputs)
    return _Run(pytree.tree_leaves(result), recorder.values)


def _difference(a: Any, b: Any, atol: float, rtol: float) -> str | None:
    """None when equal within tolerance, else a short description of the difference."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{a.dtype}{list(a.shape)} became {b.dtype}{list(b.shape)}"
        if a.is_floating_point() or a.is_complex():
            if torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True):
                return None
            diff = (a.double() - b.double()).abs().nan_to_num(nan=float("inf"))
            return f"max abs difference {diff.max().item():.6g}"
        return None if torch.equal(a, b) else "integer values differ"
    if isinstance(a, (int, float, bool)) and isinstance(b, (int, float, bool)):
        return None if a == b else f"{a} became {b}"
    return None


class NumericsInstrumentation(PassInstrumentation):
    def __init__(self, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL):
        self.atol = atol
        self.rtol = rtol
        self._samples: list[dict[str, int]] = []
        self._inputs: list[tuple] = []
        self._reference: list[_Run] | None = None

    def before_pipeline(self, program, pipeline) -> None:
        self._samples = sample_symbol_values(program.symbol_ranges)
        self._inputs = [generate_inputs(program, s, seed) for seed, s in enumerate(self._samples)]
        self._reference = None

    def before_pass(self, index, pass_, program, context) -> None:
        if self._reference is None:
            self._reference = [run_recording(program, inputs) for inputs in self._inputs]

    def after_pass_failed(self, index, pass_, program, error) -> None:
        self._reference = None

    def after_pass(self, index, pass_, program, changed) -> None:
        where = f"verify-numerics: pass '{pass_.name}' (#{index}) changed the program's results"
        runs = []
        for sample, inputs, before in zip(self._samples, self._inputs, self._reference):
            try:
                after = run_recording(program, inputs)
            except Exception as exc:
                self._reference = None
                raise PassError(
                    f"{where}: the new program fails to run at {sample}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            problem = self._compare(program, before, after)
            if problem:
                self._reference = None
                dims = ", ".join(f"{k}={v}" for k, v in sample.items()) or "static shapes"
                raise PassError(f"{where} ({dims}): {problem}")
            runs.append(after)
        self._reference = runs

    def _compare(self, program, before: _Run, after: _Run) -> str | None:
        if len(before.outputs) != len(after.outputs):
            return f"{len(before.outputs)} outputs became {len(after.outputs)}"
        first_output = None
        for output_index, (a, b) in enumerate(zip(before.outputs, after.outputs)):
            diff = _difference(a, b, self.atol, self.rtol)
            if diff:
                first_output = f"output {output_index} differs ({diff})"
                break
        if first_output is None:
            return None
        for node in program.graph.nodes:
            if node.name in after.values and node.name in before.values:
                diff = _difference(
                    before.values[node.name], after.values[node.name], self.atol, self.rtol
                )
                if diff:
                    new_inputs = [
                        f"%{n.name}"
                        for n in node.all_input_nodes
                        if n.name not in before.values and n.op != "get_attr"
                    ]
                    origin = (
                        f", computed from new node {', '.join(new_inputs)}" if new_inputs else ""
                    )
                    return f"{first_output}; first differing node: %{node.name} ({diff}){origin}"
        output_node = next(iter(reversed(program.graph.nodes)))
        leaves = pytree.tree_leaves(output_node.args)
        culprit = leaves[output_index] if output_index < len(leaves) else None
        culprit = culprit.name if isinstance(culprit, torch.fx.Node) else "?"
        return f"{first_output}; first differing node: %{culprit} (an output)"


__all__ = ["NumericsInstrumentation", "generate_inputs", "run_recording", "sample_symbol_values"]
