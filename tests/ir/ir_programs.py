"""Small exported programs the IR tests share: each builder returns a GraphProgram.

Every program is exported from a tiny torch module so the tests see exactly what
`torch.export` produces (sym_size nodes, getitem, cond subgraphs, lifted constants).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.export import Dim

import compiler.ops  # noqa: F401  (registers torch.ops.ggufc)
from compiler import formats
from compiler.ir.program import GraphProgram
from compiler.modules import GGUFEmbedding, GGUFLinear

INPUTS_DIR = Path(__file__).parent / "inputs"
SEQ_MAX = 256


def seq_dim(name: str = "seq", low: int = 1) -> Dim:
    return Dim(name, min=low, max=SEQ_MAX)


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 8)

    def forward(self, x):
        return self.proj(x).relu()


class _Embedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(10, 8)

    def forward(self, ids):
        return self.table(ids).sum(-1, keepdim=True)


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(32, 32)
        self.k = nn.Linear(32, 32, bias=False)
        self.register_buffer("scale", torch.tensor(0.25))

    def forward(self, x):
        batch, seq, _ = x.shape
        q = self.q(x).view(batch, seq, 2, 16).transpose(1, 2)
        k = self.k(x).view(batch, seq, 2, 16).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) * self.scale
        mixed = scores.softmax(-1) @ q
        return mixed.transpose(1, 2).reshape(batch, seq * 2, 16), seq * 2


class _Cond(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        def few_rows(x):
            return self.proj(x) * 2

        def many_rows(x):
            return self.proj(x).relu() + 1.5

        return torch.cond(x.shape[0] > 4, few_rows, many_rows, (x,))


class _Quantized(nn.Module):
    """Front-end form: GGUFLinear / GGUFEmbedding (ggufc.dequantize + aten ops), f16 cast."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.embed = GGUFEmbedding(
            formats.random_blocks("Q6_K", 12, 256, generator), "Q6_K", 12, 256
        )
        self.up = GGUFLinear(formats.random_blocks("Q4_K", 64, 256, generator), "Q4_K", 256, 64)
        self.down = GGUFLinear(
            formats.random_blocks("Q8_0", 32, 64, generator), "Q8_0", 64, 32, bias=torch.zeros(32)
        )

    def forward(self, ids):
        hidden = self.embed(ids).to(torch.float16)
        return self.down(F.silu(self.up(hidden)))


class _Fused(nn.Module):
    """Fused ggufc ops as passes leave them, with a kernel keyword."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.register_buffer("table", formats.random_blocks("Q5_0", 20, 64, generator))
        self.register_buffer("weight", formats.random_blocks("Q4_0", 16, 64, generator))

    def forward(self, ids, x):
        rows = torch.ops.ggufc.embedding(self.table, ids, "Q5_0", 20, 64, torch.float32)
        out = torch.ops.ggufc.linear(rows + x, self.weight, None, "Q4_0", 16, 64, kernel="matvec")
        return out, rows.shape[0] + 1


class _TwoSymbols(nn.Module):
    def forward(self, a, b):
        joined = torch.cat([a, b], dim=0)
        return joined[1:].mean(0), joined.to(torch.bfloat16).amax(dim=0)


def linear_program() -> GraphProgram:
    return GraphProgram.from_module(_Linear(), (torch.randn(3, 16),))


def embedding_program() -> GraphProgram:
    ids = torch.tensor([[1, 2, 3]])
    return GraphProgram.from_module(_Embedding(), (ids,), dynamic_shapes=({1: seq_dim()},))


def attention_program() -> GraphProgram:
    x = torch.randn(1, 5, 32)
    return GraphProgram.from_module(_Attention(), (x,), dynamic_shapes=({1: seq_dim(low=2)},))


def cond_program() -> GraphProgram:
    return GraphProgram.from_module(_Cond(), (torch.randn(6, 8),), dynamic_shapes=({0: seq_dim()},))


def quantized_program() -> GraphProgram:
    ids = torch.tensor([[0, 5, 11]])
    return GraphProgram.from_module(_Quantized(), (ids,), dynamic_shapes=({1: seq_dim()},))


def fused_program() -> GraphProgram:
    seq = seq_dim()
    ids, x = torch.tensor([1, 2, 3]), torch.randn(3, 64)
    return GraphProgram.from_module(_Fused(), (ids, x), dynamic_shapes=({0: seq}, {0: seq}))


def two_symbol_program() -> GraphProgram:
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    shapes = ({0: Dim("a", min=2, max=64)}, {0: Dim("b", min=2, max=64)})
    return GraphProgram.from_module(_TwoSymbols(), (a, b), dynamic_shapes=shapes)


PROGRAMS = {
    "linear": linear_program,
    "embedding": embedding_program,
    "attention": attention_program,
    "cond": cond_program,
    "quantized": quantized_program,
    "fused": fused_program,
    "two_symbols": two_symbol_program,
}


def with_constants(gp: GraphProgram, constants: dict[str, torch.Tensor]) -> GraphProgram:
    """`gp` with its constants replaced by `constants` (same names), in every subgraph."""
    result = gp.copy()
    modules = [result.graph_module] + [
        m for m in result.graph_module.modules() if isinstance(m, torch.fx.GraphModule)
    ]
    for module in modules:
        for node in module.graph.nodes:
            if node.op == "get_attr" and node.target in constants:
                *path, leaf = node.target.split(".")
                owner = module
                for part in path:
                    owner = getattr(owner, part)
                setattr(owner, leaf, constants[node.target])
    return result


def outputs_equal(left, right) -> bool:
    if isinstance(left, torch.Tensor):
        return isinstance(right, torch.Tensor) and torch.equal(left, right)
    if isinstance(left, (tuple, list)):
        return len(left) == len(right) and all(outputs_equal(a, b) for a, b in zip(left, right))
    return left == right
