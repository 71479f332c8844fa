"""Pass-manager overhead: the cleanup pipeline (canonicalize, cse, dce) on a graph of about
50,000 nodes, run (a) by calling each pass's `run` directly and (b) through `PassManager`
with all instrumentation off.  Target: (b) within 5% of (a).

    python benchmarks/pass_manager_overhead.py [--nodes 50000] [--repeats 5]

The graph repeats one block (built from text IR, so it carries real FakeTensor metadata with
a symbolic batch dim) whose ops give every cleanup pass work: identity views, x*1, double
transposes, no-op copies, duplicated subexpressions and dead code.  Each run gets a freshly
built graph (building is not timed).  Prints a markdown table naming the machine.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from dataclasses import dataclass
from typing import ClassVar

import torch.fx
from machine_info import describe_machine

from compiler.ir.parser import parse_program
from compiler.ir.program import GraphProgram
from passes.pass_base import Pass

BLOCK = """
symbol s0 : [1, 4096]
const @w : f32[64, 64]

graph @main(%x : f32[s0, 64]) {
  %n : int(s0) = aten.sym_size.int(%x, 0)
  %v : f32[s0, 64] = aten.view(%x, [%n, 64])
  %m : f32[s0, 64] = aten.mul.Tensor(%v, 1)
  %t0 : f32[64, s0] = aten.transpose.int(%m, 0, 1)
  %t1 : f32[s0, 64] = aten.transpose.int(%t0, 0, 1)
  %mm1 : f32[s0, 64] = aten.mm(%t1, @w)
  %mm2 : f32[s0, 64] = aten.mm(%t1, @w)
  %s : f32[s0, 64] = aten.add.Tensor(%mm1, %mm2)
  %c : f32[s0, 64] = aten.clone(%s)
  %e : f32[s0, 64] = aten.exp(%c)
  %d : f32[s0, 64] = aten.neg(%e)
  %r : f32[s0, 64] = aten.relu(%e)
  %z : f32[s0, 64] = aten.sub.Tensor(%r, 0)
  %h : f32[s0, 64] = aten.tanh(%z)
  %y : f32[s0, 64] = aten.add.Tensor(%h, %x)
  return (%y,)
}
"""
DEFAULT_NODES = 50_000
DEFAULT_REPEATS = 5
NO_OP_PASSES = 1000
PIPELINE = "canonicalize,cse,dce"
PERCENT = 100.0


def build_large_program(target_nodes: int = DEFAULT_NODES) -> GraphProgram:
    """Chain copies of BLOCK until the graph has at least `target_nodes` nodes."""
    block = parse_program(BLOCK)
    body = [n for n in block.graph.nodes if n.op not in ("placeholder", "output")]
    (block_input,) = block.inputs
    block_output = next(iter(reversed(block.graph.nodes))).args[0][0]
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    x.meta = dict(block_input.meta)
    current = x
    while len(graph.nodes) < target_nodes:
        env = {block_input: current}
        for node in body:
            env[node] = graph.node_copy(node, env.__getitem__)
        current = env[block_output]
    graph.output((current,))
    module = torch.fx.GraphModule(block.graph_module, graph)
    return GraphProgram(module, dict(block.symbol_ranges))


def run_direct(program: GraphProgram) -> None:
    from passes import parse_pipeline
    from passes.context import PassContext

    for pass_ in parse_pipeline(PIPELINE):
        pass_.run(program, PassContext(pass_name=pass_.name))


def run_managed(program: GraphProgram) -> None:
    from passes import PassManager

    PassManager(PIPELINE, verify=False).run(program)


RUNNERS = {"direct": run_direct, "managed": run_managed}


def time_once(runner, nodes: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one run on a freshly built graph."""
    program = build_large_program(nodes)
    gc.collect()  # garbage of the previous run must not be collected inside this one
    wall, cpu = time.perf_counter(), time.process_time()
    runner(program)
    return time.perf_counter() - wall, time.process_time() - cpu


@dataclass(frozen=True)
class NoOp(Pass):
    """Do nothing (measures the manager's own cost per pass)."""

    name: ClassVar[str] = "bench-no-op"

    def run(self, program, context) -> bool:
        return False


def manager_cost_per_pass(program: GraphProgram, passes: int = NO_OP_PASSES) -> float:
    """Seconds the PassManager adds per pass: a pipeline of no-op passes, minus calling
    the same no-op passes directly."""
    from passes import PassManager
    from passes.context import PassContext
    from passes.pipeline import Pipeline

    pipeline = Pipeline((NoOp(),) * passes)
    PassManager(pipeline, verify=False).run(program)  # warm-up
    started = time.perf_counter()
    for pass_ in pipeline:
        pass_.run(program, PassContext(pass_name=pass_.name))
    direct = time.perf_counter() - started
    started = time.perf_counter()
    PassManager(pipeline, verify=False).run(program)
    managed = time.perf_counter() - started
    return (managed - direct) / passes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=DEFAULT_NODES)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    args = parser.parse_args(argv)

    program = build_large_program(args.nodes)
    graph_nodes = len(program.graph.nodes)
    per_pass = min(manager_cost_per_pass(program) for _ in range(args.repeats))
    del program
    runs: dict[str, list[tuple[float, float]]] = {"direct": [], "managed": []}
    time_once(run_direct, args.nodes)  # warm-up: imports, caches
    # Interleaved, in alternating order, so drifting machine load and run-order effects
    # hit both runners alike.
    for repeat in range(args.repeats):
        order = ("direct", "managed") if repeat % 2 == 0 else ("managed", "direct")
        for key in order:
            runs[key].append(time_once(RUNNERS[key], args.nodes))
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in runs.items()}
    median = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    overhead = PERCENT * (best["managed"][1] - best["direct"][1]) / best["direct"][1]
    print(f"Machine: {describe_machine()}\n")
    print(
        f"Pipeline `{PIPELINE}` on {graph_nodes} nodes, best of {args.repeats} "
        "(wall median in brackets); the ratio is of CPU time, which other processes on a "
        "shared machine disturb less than wall time\n"
    )
    print("| runner | wall (s) | CPU (s) | CPU ratio |")
    print("|---|---|---|---|")
    for key, label in (
        ("direct", "passes called directly (baseline)"),
        ("managed", "PassManager, instrumentation off"),
    ):
        wall, cpu = best[key]
        print(
            f"| {label} | {wall:.3f} ({median[key]:.3f}) | {cpu:.3f} | "
            f"{cpu / best['direct'][1]:.3f} |"
        )
    print(f"\nPassManager bookkeeping per pass (no-op passes): {per_pass * 1e6:.1f} us")
    print(f"\nOverhead: {overhead:+.2f}% (target: < 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
