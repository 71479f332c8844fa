"""The rewrite driver: patterns (`pattern`), the graph-editing API they use (`rewriter`),
listeners that observe every edit (`listener`), the greedy fixpoint driver (`driver`) and the
debug counter that bisects bad rewrites (`debug_counter`)."""

from passes.rewrite.debug_counter import DebugCounter, parse_debug_counter
from passes.rewrite.driver import GreedyConfig, PatternSet, apply_patterns_greedily
from passes.rewrite.listener import RewriteListener
from passes.rewrite.pattern import RewritePattern
from passes.rewrite.rewriter import Rewriter

__all__ = [
    "DebugCounter",
    "GreedyConfig",
    "PatternSet",
    "RewriteListener",
    "RewritePattern",
    "Rewriter",
    "apply_patterns_greedily",
    "parse_debug_counter",
]
