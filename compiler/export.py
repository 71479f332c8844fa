"""Export a front-end model with `torch.export`: one program for prefill and decode.

The token count M is the one dynamic dim (`Dim("tokens", min=1, max=max_seq)`), shared by
`tokens [1, M]` and `positions [M]`; the KV caches are static `[kv_heads, max_seq, head_dim]`.
The export example uses M = 2 so that export does not specialise M to 1.
"""

from __future__ import annotations

import torch

from compiler.ir.program import GraphProgram

# Export traces with this many tokens; any value other than 0 and 1 keeps M symbolic.
EXAMPLE_TOKENS = 2
TOKENS_DIM_NAME = "tokens"


def example_inputs(
    model, max_seq: int, num_tokens: int = EXAMPLE_TOKENS
) -> tuple[torch.Tensor, ...]:
    """Inputs of the model's calling convention: tokens, positions, then zeroed caches."""
    tokens = torch.zeros((1, num_tokens), dtype=torch.long)
    positions = torch.arange(num_tokens, dtype=torch.long)
    caches = [torch.zeros(model.cache_shape(max_seq)) for _ in range(2 * model.num_layers)]
    return (tokens, positions, *caches)


def dynamic_shapes(inputs: tuple[torch.Tensor, ...], max_seq: int) -> tuple:
    """`torch.export` dynamic shapes for `example_inputs`: M symbolic in [1, max_seq]."""
    tokens_dim = torch.export.Dim(TOKENS_DIM_NAME, min=1, max=max_seq)
    # forward(tokens, positions, *caches): the varargs are one entry of dynamic_shapes
    return ({1: tokens_dim}, {0: tokens_dim}, tuple(None for _ in inputs[2:]))


def export_model(model, max_seq: int) -> GraphProgram:
    """The model as a GraphProgram with a dynamic token count M in [1, max_seq]."""
    inputs = example_inputs(model, max_seq)
    with torch.no_grad():
        ep = torch.export.export(model, inputs, dynamic_shapes=dynamic_shapes(inputs, max_seq))
    return GraphProgram.from_exported(ep)
