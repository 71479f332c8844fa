"""ggufc's pass infrastructure: passes as frozen dataclasses, a registry, pipeline text,
the `PassManager` with its instrumentation, the greedy rewrite driver, and the passes.

    from passes import PassManager, parse_pipeline, default_pipeline, register_pass
    PassManager(default_pipeline(), time_passes=True).run(program)

Names are imported lazily so `import passes` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# `fuse-gguf` (ggufc.dequantize + consumer -> ggufc.linear / ggufc.embedding), cleanup while
# the graph is flat, `fuse-rms-norm` (spelled-out RMSNorms -> aten.rms_norm: one kernel instead
# of six; a residual added after one -> ggufc.rms_norm_add), `fuse-attention` (spelled-out masked softmax attention -> ggufc.attention: one
# kernel instead of five), cse, `fuse-rotary` (roll, mul, addcmul -> ggufc.rotary: one kernel
# instead of three), `fuse-sibling-linears` (linears reading one activation -> one
# linear over their stacked weights: q/k/v and gate/up are one launch each), `fuse-gated-gelu`
# (gelu(gate) * up -> ggufc.gated_gelu, reading the stacked gate/up halves in place), then
# `split-dynamic-m` (torch.cond per M bucket: the regions it copies into branches are already
# clean, and the cleanup passes do not look inside branches), then dce.
DEFAULT_PIPELINE_TEXT = (
    "fuse-gguf,canonicalize,fuse-rms-norm,fuse-attention,cse,fuse-rotary,"
    "fuse-sibling-linears,fuse-gated-gelu,split-dynamic-m,dce"
)

_LAZY = {
    "PassManager": "passes.manager",
    "Pass": "passes.pass_base",
    "option": "passes.pass_base",
    "PassContext": "passes.context",
    "Pipeline": "passes.pipeline",
    "parse_pipeline": "passes.pipeline",
    "register_pass": "passes.registry",
    "RewritePattern": "passes.rewrite.pattern",
    "Rewriter": "passes.rewrite.rewriter",
    "apply_patterns_greedily": "passes.rewrite.driver",
    "GreedyConfig": "passes.rewrite.driver",
}

__all__ = [
    "DEFAULT_PIPELINE_TEXT",
    "GreedyConfig",
    "Pass",
    "PassContext",
    "PassManager",
    "Pipeline",
    "RewritePattern",
    "Rewriter",
    "apply_patterns_greedily",
    "default_pipeline",
    "option",
    "parse_pipeline",
    "register_pass",
]


def default_pipeline():
    """The pipeline `compile_gguf` runs when none is given, parsed from
    `DEFAULT_PIPELINE_TEXT` (a `Pipeline`; `str()` gives the text back)."""
    from passes.pipeline import parse_pipeline

    return parse_pipeline(DEFAULT_PIPELINE_TEXT)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'passes' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
