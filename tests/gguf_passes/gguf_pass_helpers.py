"""Helpers of the GGUF pass tests: running a program eagerly, recording which ggufc.linear
kernels ran, and quick modules whose export shows the dequantize -> consumer forms."""

from __future__ import annotations

import contextlib

import torch
import torch.fx
from torch.utils._python_dispatch import TorchDispatchMode

from compiler import formats, ops
from compiler.modules import GGUFEmbedding, GGUFLinear

LINEAR_KERNEL_INDEX = 6
# Small KV caches keep the real-model runs quick; 33 tokens (the largest M checked) must fit.
GEMMA_MAX_SEQ = 64


def run_program(program, *inputs):
    """Outputs of `program` on `inputs`, interpreted node by node (so no stale generated code
    is run after a pass edited the graph), as a tuple of tensors."""
    with torch.no_grad():
        result = torch.fx.Interpreter(program.graph_module).run(*inputs)
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def count_targets(graph: torch.fx.Graph, target) -> int:
    return sum(1 for n in graph.nodes if n.op == "call_function" and n.target is target)


def all_graph_nodes(graph_module: torch.fx.GraphModule):
    """Every node of the graph and of the branch graphs below it (torch.cond subgraphs)."""
    yield from graph_module.graph.nodes
    for child in graph_module.children():
        if isinstance(child, torch.fx.GraphModule):
            yield from all_graph_nodes(child)


class KernelRecorder(TorchDispatchMode):
    """Records the `kernel` of every ggufc.linear that runs, following torch.cond into the
    branch it takes."""

    supports_higher_order_operators = True

    def __init__(self):
        super().__init__()
        self.kernels: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.higher_order.cond:
            predicate, true_branch, false_branch, operands = args
            with self:
                return (true_branch if predicate else false_branch)(*operands)
        if func is ops.linear:
            kernel = args[LINEAR_KERNEL_INDEX] if len(args) > LINEAR_KERNEL_INDEX else None
            self.kernels.append(kwargs.get("kernel", kernel or ops.KERNEL_AUTO))
        return func(*args, **kwargs)


@contextlib.contextmanager
def cached_dequantize():
    """Memoize the reference kernels' whole-tensor dequantize per blocks tensor, so repeated
    eager runs of a big model dequantize each weight once.  The cache holds the tensors it
    keys on, so an id is never reused while cached; results are the function's own."""
    original = ops._dequantize_on_cpu
    cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def memoized(blocks: torch.Tensor, fmt: str) -> torch.Tensor:
        key = (id(blocks), fmt)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = (blocks, original(blocks, fmt))
        return hit[1]

    ops._dequantize_on_cpu = memoized
    try:
        yield
    finally:
        ops._dequantize_on_cpu = original


def quantized_linear(
    fmt: str,
    in_features: int,
    out_features: int,
    *,
    bias: bool = False,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> GGUFLinear:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(out_features, in_features, generator=generator) / in_features**0.5
    blocks = formats.quantize(weight, fmt)
    bias_tensor = torch.randn(out_features, generator=generator).to(dtype) if bias else None
    return GGUFLinear(blocks, fmt, in_features, out_features, bias=bias_tensor)


def quantized_embedding(fmt: str, rows: int, dim: int, *, seed: int = 0) -> GGUFEmbedding:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, dim, generator=generator)
    return GGUFEmbedding(formats.quantize(weight, fmt), fmt, rows, dim)
