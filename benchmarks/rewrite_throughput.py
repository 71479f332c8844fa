"""Rewrite-driver throughput: the canonicalize pattern set on the ~50,000-node graph of
`pass_manager_overhead.py`, in graph nodes per second.

    python benchmarks/rewrite_throughput.py [--nodes 50000] [--repeats 5]

Rows:
* baseline: one bare sweep in graph order that offers each node to the patterns of its
  target and then erases dead nodes in reverse (no worklist, listeners, fixpoint or
  statistics) -- the floor any driver pays for matching and editing;
* `canonicalize` through the greedy driver (worklist, dead-node folding, fixpoint check);
* the same with `--pass-statistics` on (per-pattern counters and timers).

Both runners reach the same graph here (checked), so the ratio is the driver's own cost.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time

# Run as a script, this folder is on sys.path.
from machine_info import describe_machine
from pass_manager_overhead import DEFAULT_NODES, DEFAULT_REPEATS, build_large_program

from compiler.ir.printer import structural_hash
from passes.canonicalize import Canonicalize
from passes.context import PassContext
from passes.effects import is_pure
from passes.rewrite.rewriter import Rewriter
from passes.statistics import PassStatistics


def bare_sweep(program) -> None:
    patterns = Canonicalize().patterns()
    rewriter = Rewriter(program)
    for node in list(program.graph.nodes):
        if node._erased or node.op != "call_function":
            continue
        for pattern in patterns.for_target(node.target):
            if pattern.match_and_rewrite(node, rewriter):
                break
    for node in reversed(program.graph.nodes):
        if not node.users and is_pure(node):
            rewriter.erase_node(node)


def driver(program) -> None:
    Canonicalize().run(program, PassContext())


def driver_with_statistics(program) -> None:
    Canonicalize().run(program, PassContext(statistics=PassStatistics("canonicalize")))


def timed(runner, nodes: int) -> tuple[float, object]:
    program = build_large_program(nodes)
    gc.collect()
    started = time.perf_counter()
    runner(program)
    return time.perf_counter() - started, program


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=DEFAULT_NODES)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    args = parser.parse_args(argv)

    graph_nodes = len(build_large_program(args.nodes).graph.nodes)
    runners = [
        ("bare sweep (baseline)", bare_sweep),
        ("canonicalize, greedy driver", driver),
        ("canonicalize, driver + statistics", driver_with_statistics),
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in runners}
    results = {}
    timed(driver, args.nodes)  # warm-up
    for _ in range(args.repeats):
        for name, runner in runners:
            seconds, program = timed(runner, args.nodes)
            times[name].append(seconds)
            results[name] = program
    hashes = {structural_hash(p) for p in results.values()}
    remaining = len(next(iter(results.values())).graph.nodes)
    print(f"Machine: {describe_machine()}\n")
    print(
        f"canonicalize on {graph_nodes} nodes ({remaining} left after), best of "
        f"{args.repeats} (median in brackets); same result from every runner: "
        f"{len(hashes) == 1}\n"
    )
    print("| runner | time (s) | nodes/s | ratio to baseline |")
    print("|---|---|---|---|")
    base = min(times[runners[0][0]])
    for name, _ in runners:
        best = min(times[name])
        print(
            f"| {name} | {best:.3f} ({statistics.median(times[name]):.3f}) | "
            f"{graph_nodes / best:,.0f} | {best / base:.2f} |"
        )
    return 0 if len(hashes) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
