"""The default pipeline on the real Gemma 3 270M Q4_K_M model (formats Q4_K, Q5_0, Q6_K,
Q8_0): nothing is left dequantized, every quantized linear and the embedding are fused, the
linears of one format that read the same activation are stacked into one, the tied lm_head
reads the embedding's blob, each M runs its bucket's kernel, and the outputs match the eager
model at M = 1, 7 and 33."""

from __future__ import annotations

import pytest
import torch
from gguf_pass_helpers import (
    GEMMA_MAX_SEQ,
    KernelRecorder,
    all_graph_nodes,
    cached_dequantize,
    count_targets,
    run_program,
)

from compiler import ops
from compiler.export import example_inputs
from compiler.tuning import FLOAT32_DEFAULT_BUCKETS, kernel_for
from passes import PassManager, default_pipeline

TOKEN_EMBEDDING = "token_embd.blocks"
LINEARS_PER_LAYER = 7  # q, k, v, output, gate, up, down
# Gemma 3 270M runs float32: the default float32 buckets (one threshold, 16) at M = 1, 7, 33
M_AND_KERNEL = [(m, kernel_for(FLOAT32_DEFAULT_BUCKETS, m)) for m in (1, 7, 33)]
COND = torch.ops.higher_order.cond
# Both sides run the same float32 reference arithmetic; only the order of some sums differs.
ATOL, RTOL = 2e-4, 1e-4


def _run_default_pipeline(program):
    """The default pipeline with verification after every pass; returns a copy of the program
    as it was just before split-dynamic-m (everything fused, no cond yet)."""
    passes = list(default_pipeline().passes)
    split_at = next(i for i, p in enumerate(passes) if p.name == "split-dynamic-m")
    PassManager(passes[:split_at], verify=True).run(program)
    fused = program.copy()
    PassManager(passes[split_at:], verify=True).run(program)
    return fused


def quantized_linears(program) -> list[torch.fx.Node]:
    """The exported graph's ``aten.linear`` nodes on dequantized GGUF weights."""
    return [
        n
        for n in program.graph.nodes
        if n.target is torch.ops.aten.linear.default and n.args[1].target is ops.dequantize
    ]


def sibling_groups(program) -> set:
    """(activation, format) of each quantized linear: fuse-sibling-linears makes one linear of
    those that share both."""
    return {(n.args[0], n.args[1].args[1]) for n in quantized_linears(program)}


@pytest.fixture(scope="module")
def gemma_after(gemma_program):
    program = gemma_program.copy()
    fused = _run_default_pipeline(program)
    return fused, program


def test_everything_is_fused(gemma_model, gemma_program, gemma_after):
    fused, program = gemma_after
    layers = gemma_model.num_layers
    assert len(quantized_linears(gemma_program)) == layers * LINEARS_PER_LAYER + 1  # + lm_head
    stacked = len(sibling_groups(gemma_program))
    assert stacked < layers * LINEARS_PER_LAYER  # q/k(/v) and gate/up share formats here

    assert not any(n.target is ops.dequantize for n in all_graph_nodes(program.graph_module))
    assert count_targets(fused.graph, ops.linear) == stacked
    assert count_targets(fused.graph, torch.ops.aten.linear.default) == 0
    assert count_targets(program.graph, ops.embedding) == 1

    # The tied lm_head and the embedding read the one blob, stored once.
    readers = [
        n
        for n in fused.graph.nodes
        if n.target in (ops.linear, ops.embedding)
        and TOKEN_EMBEDDING in {a.target for a in n.all_input_nodes if a.op == "get_attr"}
    ]
    assert sorted(n.target.__name__ for n in readers) == ["embedding.default", "linear.default"]
    assert program.constant_names().count(TOKEN_EMBEDDING) == 1
    assert program.get_constant(TOKEN_EMBEDDING) is gemma_program.get_constant(TOKEN_EMBEDDING)

    # region=max: one cond covers every linear; its leaves hold all of them.
    assert count_targets(program.graph, COND) == 1
    leaves = [
        m
        for m in program.graph_module.modules()
        if isinstance(m, torch.fx.GraphModule)
        and m is not program.graph_module
        and count_targets(m.graph, COND) == 0
    ]
    assert len(leaves) == len(FLOAT32_DEFAULT_BUCKETS) + 1
    for leaf in leaves:
        assert count_targets(leaf.graph, ops.linear) == stacked


@pytest.mark.slow
def test_outputs_match_the_eager_model(gemma_model, gemma_program, gemma_after):
    _, program = gemma_after
    vocab = gemma_model.config.vocab_size
    linears = len(sibling_groups(gemma_program))
    with cached_dequantize():
        for m, kernel in M_AND_KERNEL:
            inputs = list(example_inputs(gemma_model, GEMMA_MAX_SEQ, m))
            inputs[0] = torch.randint(0, vocab, (1, m), generator=torch.Generator().manual_seed(m))
            with torch.no_grad():
                expected = gemma_model(*inputs)
            recorder = KernelRecorder()
            with recorder:
                actual = run_program(program, *inputs)
            assert recorder.kernels == [kernel] * linears, f"M={m}"
            assert len(actual) == len(expected)
            for index, (a, e) in enumerate(zip(actual, expected)):
                torch.testing.assert_close(
                    a,
                    e,
                    atol=ATOL,
                    rtol=RTOL,
                    msg=lambda text, i=index, m=m: f"M={m}, output {i}: {text}",
                )
