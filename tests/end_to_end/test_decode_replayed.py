"""The CUDA-graph decode loop (`compiler.generate._decode_replayed`: steps replayed back to
back, tokens read back every TOKENS_PER_READ steps) yields exactly the tokens of the
step-by-step loop, whatever the token budget, cache length and end-of-sequence position.
A stand-in for the captured graph runs on the CPU: its "replay" writes a token computed from
its inputs into its token input and advances its position, as the graph's epilogue does."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.generate import POSITIONS_INPUT, TOKENS_INPUT, TOKENS_PER_READ, _decode_replayed

VOCAB = 7


def next_token(token: int, position: int) -> int:
    return (3 * token + position * position + 1) % VOCAB


class FakeCapturedStep:
    def __init__(self, token: int, position: int):
        self.inputs = [torch.tensor([[token]]), torch.tensor([position])]
        self.replays = 0

    def replay(self):
        token = int(self.inputs[TOKENS_INPUT])
        position = int(self.inputs[POSITIONS_INPUT])
        self.inputs[TOKENS_INPUT].fill_(next_token(token, position))
        self.inputs[POSITIONS_INPUT].add_(1)
        self.replays += 1


def step_by_step(token, position, max_tokens, max_seq, eos_id):
    """`generate`'s loop without a graph, on the same token function."""
    generated = []
    while len(generated) < max_tokens:
        generated.append(token)
        if token == eos_id or len(generated) == max_tokens or position >= max_seq:
            break
        token = next_token(token, position)
        position += 1
    return generated


@settings(max_examples=200, deadline=None)
@given(
    first=st.integers(0, VOCAB - 1),
    position=st.integers(1, 60),
    max_tokens=st.integers(2, 3 * TOKENS_PER_READ + 3),
    room=st.integers(0, 2 * TOKENS_PER_READ + 5),
    eos_id=st.one_of(st.none(), st.integers(0, VOCAB - 1)),
)
def test_replayed_loop_gives_the_step_by_step_tokens(first, position, max_tokens, room, eos_id):
    max_seq = position + room
    captured = FakeCapturedStep(first, position)
    tokens, steps = _decode_replayed(captured, first, position, max_tokens, max_seq, eos_id)
    assert tokens == step_by_step(first, position, max_tokens, max_seq, eos_id)
    assert steps == captured.replays
    # steps past an end-of-sequence token are at most the rest of one read
    assert len(tokens) - 1 <= steps < len(tokens) - 1 + TOKENS_PER_READ
