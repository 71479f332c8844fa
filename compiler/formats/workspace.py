"""Scratch buffers shared by the chunks of one dequantize call.

Dequantizing runs chunk by chunk, and each chunk needs the same temporaries (unpacked
quants, gathered rows).  Allocating them afresh for every chunk is slow in a way op timings
do not show: large blocks come from fresh ``mmap`` pages (or pages the allocator just gave
back), and first-touch page faults then cost more than the arithmetic.  A ``Workspace``
allocates each named buffer once, the first time it is asked for, and hands out views of it
for every later chunk (the first chunk is the largest, so later ones fit).
"""

from __future__ import annotations

import math

import torch


class Workspace:
    """Named, reusable scratch buffers (not thread-safe: one per call)."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialized contiguous tensor of ``shape`` and ``dtype``, sharing memory with
        every earlier ``take`` of ``name`` (so a caller must be done with those)."""
        count = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.dtype != dtype or buffer.numel() < count:
            buffer = torch.empty(count, dtype=dtype)
            self._buffers[name] = buffer
        return buffer[:count].view(shape)
