"""The greedy pattern driver.

`apply_patterns_greedily(program, PatternSet(patterns), context, config)` applies patterns
until none applies (a fixpoint) or `config.max_iterations` sweeps have run.

* Index: patterns are grouped by root target once; a node only meets the patterns rooted at
  its own target (cached per target), in decreasing `benefit` (ties: the order given).
* Worklist: iteration 1 visits, in graph order, every node some pattern is rooted at and
  every dead node.  Edits push follow-up work through a listener: inserted and modified
  nodes, users of a replaced value, and inputs of an erased node (they may now be dead) --
  each only if some pattern is rooted at it or it may be dead.
  A node queued while it still waits in the current sweep is not queued again; one that was
  already visited waits for the next sweep.  Each sweep is linear in its worklist, so the
  whole run is O(iterations x touched nodes), never quadratic in the graph.
* Dead nodes (no users, not impure) are erased on the way when `fold_dead_nodes` is on.
* Convergence: if work is still queued after `max_iterations`, `test_convergence` checks each
  queued node without editing (a pattern's first edit is intercepted) and raises PassError
  naming a pattern that would still rewrite.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch.fx

from compiler.errors import GgufcError, PassError
from passes.effects import is_pure
from passes.rewrite.listener import RewriteListener, combine_listeners
from passes.rewrite.pattern import RewritePattern
from passes.rewrite.rewriter import Rewriter

if TYPE_CHECKING:
    from compiler.ir.program import GraphProgram
    from passes.context import PassContext

# Statistic name under which dead-node erasure is reported.
DEAD_NODE_ORIGIN = "erase-dead-nodes"
DEFAULT_MAX_ITERATIONS = 10


@dataclass(frozen=True)
class GreedyConfig:
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    test_convergence: bool = False
    fold_dead_nodes: bool = True


class PatternSet:
    """Patterns indexed by root target."""

    def __init__(self, patterns: Iterable[RewritePattern]):
        ordered = list(patterns)
        names = set()
        for pattern in ordered:
            if not pattern.name:
                raise PassError(f"pattern {type(pattern).__qualname__} has no name")
            if pattern.name in names:
                raise PassError(f"two patterns are named {pattern.name!r}")
            if not pattern.root_targets:
                raise PassError(f"pattern {pattern.name!r} has no root_targets")
            names.add(pattern.name)
        position = {id(p): i for i, p in enumerate(ordered)}
        self.patterns: tuple[RewritePattern, ...] = tuple(
            sorted(ordered, key=lambda p: (-p.benefit, position[id(p)]))
        )
        self._by_root: dict[Any, list[RewritePattern]] = {}
        for pattern in self.patterns:
            for target in pattern.root_targets:
                self._by_root.setdefault(target, []).append(pattern)
        self._cache: dict[int, tuple[RewritePattern, ...]] = {}
        self._keep: list[Any] = []

    def for_target(self, target: Any) -> tuple[RewritePattern, ...]:
        # Keyed by id: op overloads are long-lived singletons with a slow Python __hash__,
        # and this lookup runs for every node the driver touches.  `_keep` pins each key.
        found = self._cache.get(id(target))
        if found is not None:
            return found
        try:
            hash(target)
        except TypeError:  # an unhashable target cannot be a root
            return ()
        found = list(self._by_root.get(target, ()))
        packet = getattr(target, "overloadpacket", None)
        if packet is not None and packet is not target:
            found.extend(self._by_root.get(packet, ()))
        rank = {id(p): i for i, p in enumerate(self.patterns)}
        found.sort(key=lambda p: rank[id(p)])
        self._keep.append(target)
        self._cache[id(target)] = tuple(found)
        return self._cache[id(target)]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.patterns]


class _Veto(BaseException):
    """Raised from the first-edit hook: the debug counter skips this rewrite.
    BaseException so a pattern's own `except Exception` cannot swallow it."""


class _WouldEdit(BaseException):
    """Raised from the first-edit hook during the convergence check."""


class _Worklist(RewriteListener):
    def __init__(self, patterns: PatternSet, fold_dead_nodes: bool) -> None:
        self.queued: set[torch.fx.Node] = set()
        self.pending: list[torch.fx.Node] = []
        self.for_target = patterns.for_target
        self.fold_dead_nodes = fold_dead_nodes

    def add(self, node: torch.fx.Node, may_be_dead: bool = False) -> None:
        """Queue `node` if some pattern is rooted at its target, or if it may be dead code
        (`may_be_dead`, or no users now)."""
        if node in self.queued:
            return
        op = node.op
        dead_candidate = self.fold_dead_nodes and (may_be_dead or not node.users)
        if op == "call_function":
            if not (dead_candidate or self.for_target(node.target)):
                return
        elif op != "get_attr" or not dead_candidate:
            return
        self.queued.add(node)
        self.pending.append(node)

    def node_inserted(self, origin, node):
        self.add(node)

    def node_replaced(self, origin, old, new):
        for user in new.users:
            if user is not old:
                self.add(user)

    def node_modified(self, origin, node):
        self.add(node)

    def node_erased(self, origin, node):
        # An input may be about to lose its last user (the erased node is still attached).
        for source in node.all_input_nodes:
            self.add(source, may_be_dead=len(source.users) == 1)


class _PatternCounter(RewriteListener):
    """Attributes inserted/erased nodes to the pattern (origin) that made the edit."""

    def __init__(self, statistics) -> None:
        self.statistics = statistics

    def node_inserted(self, origin, node):
        self.statistics.pattern(origin).added += 1

    def node_erased(self, origin, node):
        self.statistics.pattern(origin).erased += 1


def apply_patterns_greedily(
    program: GraphProgram,
    patterns: PatternSet | Iterable[RewritePattern],
    context: PassContext,
    config: GreedyConfig = GreedyConfig(),
    origin: str = "",
) -> bool:
    """Rewrite `program` in place; return whether anything changed."""
    if not isinstance(patterns, PatternSet):
        patterns = PatternSet(patterns)
    if config.max_iterations < 1:
        raise PassError(f"{origin}: max-iterations must be at least 1, got {config.max_iterations}")
    return _Driver(program, patterns, context, config, origin or context.pass_name).run()


class _Driver:
    def __init__(self, program, patterns, context, config, origin):
        self.program = program
        self.patterns = patterns
        self.context = context
        self.config = config
        self.origin = origin
        self.statistics = context.statistics
        self.worklist = _Worklist(patterns, config.fold_dead_nodes)
        listeners: list[RewriteListener] = [self.worklist]
        if self.statistics is not None:
            listeners.append(_PatternCounter(self.statistics))
        listeners.extend(context.listeners)
        self.rewriter = Rewriter(program, combine_listeners(listeners), origin)
        self.current_pattern: RewritePattern | None = None
        self.matched = False

    # ---- hooks ---------------------------------------------------------------------------
    def _on_first_edit(self) -> None:
        self.matched = True
        counter = self.context.debug_counter
        if counter is not None and not counter.should_execute(self.current_pattern.name):
            raise _Veto

    @staticmethod
    def _on_probe_edit() -> None:
        raise _WouldEdit

    # ---- main loop -----------------------------------------------------------------------
    def run(self) -> bool:
        worklist = self.worklist
        fold_dead = self.config.fold_dead_nodes
        for_target = self.patterns.for_target
        for node in self.program.graph.nodes:
            op = node.op
            if op == "call_function":
                if for_target(node.target) or (fold_dead and not node.users):
                    worklist.add(node)
            elif op == "get_attr" and fold_dead and not node.users:
                worklist.add(node)

        changed = False
        iterations = 0
        while iterations < self.config.max_iterations:
            current, worklist.pending = self._live_pending(), []
            if not current:
                break
            iterations += 1
            for node in current:
                worklist.queued.discard(node)
                if node._erased:
                    continue
                if fold_dead and not node.users and is_pure(node):
                    self._erase_dead(node)
                    changed = True
                    continue
                if node.op != "call_function":
                    continue
                candidates = for_target(node.target)
                if candidates and self._apply_first(node, candidates):
                    changed = True

        if self.statistics is not None:
            self.statistics.count("iterations", iterations)
        worklist.pending = self._live_pending()
        if worklist.pending and self.config.test_convergence:
            self._check_converged()
        return changed

    def _live_pending(self) -> list[torch.fx.Node]:
        worklist = self.worklist
        live = []
        for node in worklist.pending:
            if node._erased:
                worklist.queued.discard(node)
            else:
                live.append(node)
        return live

    def _erase_dead(self, node: torch.fx.Node) -> None:
        self.rewriter.origin = DEAD_NODE_ORIGIN
        self.rewriter.first_edit_hook = None
        self.rewriter.erase_node(node)

    def _apply_first(self, node: torch.fx.Node, candidates) -> bool:
        rewriter = self.rewriter
        statistics = self.statistics
        for pattern in candidates:
            self.current_pattern = pattern
            self.matched = False
            rewriter.origin = pattern.name
            rewriter.first_edit_hook = self._on_first_edit
            started = time.perf_counter() if statistics is not None else 0.0
            vetoed = False
            try:
                applied = pattern.match_and_rewrite(node, rewriter)
            except _Veto:
                applied, vetoed = False, True
            except GgufcError:
                raise
            except Exception as exc:
                raise PassError(
                    f"{self.origin}: pattern {pattern.name!r} failed on %{node.name}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            finally:
                rewriter.first_edit_hook = None
            if self.matched and not applied and not vetoed:
                raise PassError(
                    f"{self.origin}: pattern {pattern.name!r} edited the graph at %{node.name} "
                    "but returned False"
                )
            if statistics is not None:
                stats = statistics.pattern(pattern.name)
                stats.seconds += time.perf_counter() - started
                stats.attempts += 1
                if self.matched or applied:
                    stats.matches += 1
                if applied:
                    stats.rewrites += 1
            if applied:
                return True
        return False

    def _check_converged(self) -> None:
        rewriter = self.rewriter
        for node in self.worklist.pending:
            if node._erased:
                continue
            if not node.users and self.config.fold_dead_nodes and is_pure(node):
                self._not_converged(DEAD_NODE_ORIGIN, node)
            if node.op != "call_function":
                continue
            for pattern in self.patterns.for_target(node.target):
                rewriter.first_edit_hook = self._on_probe_edit
                try:
                    would_edit = pattern.match_and_rewrite(node, rewriter)
                except _WouldEdit:
                    would_edit = True
                finally:
                    rewriter.first_edit_hook = None
                if would_edit:
                    self._not_converged(pattern.name, node)

    def _not_converged(self, pattern_name: str, node: torch.fx.Node):
        raise PassError(
            f"{self.origin}: no fixpoint within max-iterations={self.config.max_iterations} "
            f"(test-convergence): {pattern_name} still rewrites %{node.name}"
        )


__all__ = ["DEFAULT_MAX_ITERATIONS", "GreedyConfig", "PatternSet", "apply_patterns_greedily"]
