"""Scratch buffers for the chunks of dequantize calls, one set per thread.

Dequantizing runs chunk by chunk, and each chunk needs the same temporaries (unpacked
quants, gathered rows).  Allocating them afresh for every chunk, or every call, is slow in a
way op timings do not show: large blocks come from fresh ``mmap`` pages (or pages the
allocator just gave back), and first-touch page faults then cost more than the arithmetic.
A ``Workspace`` allocates each named buffer once, the first time it is asked for, and hands
out views of it for every later chunk; a thread's workspace (:meth:`Workspace.of_this_thread`)
lives as long as the thread, so it holds a few MiB per thread that has dequantized a large
tensor.  It also keeps the views it hands out, and the *plans* built from them (the views of
scratch buffers one chunk shape needs), since every view costs a torch call.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")

_per_thread = threading.local()
MAX_VIEWS = 64


class Workspace:
    """Named, reusable scratch buffers (not thread-safe: one per thread)."""

    def __init__(self) -> None:
        # by (name, dtype): formats use the same names with other dtypes, and a model mixing
        # formats would otherwise reallocate at every switch
        self._buffers: dict[tuple[str, torch.dtype], torch.Tensor] = {}
        # views handed out, by (name, shape, dtype): a chunk asks for the same shapes as the
        # one before it, and making a view costs two torch calls (~4 us)
        self._views: dict[tuple[str, tuple[int, ...], torch.dtype], torch.Tensor] = {}
        self._plans: dict[tuple, object] = {}

    @staticmethod
    def of_this_thread() -> Workspace:
        """The calling thread's workspace, kept for the life of the thread: reused across
        calls, its buffers are mapped once (a chunk's worth, a few MiB) instead of at
        every call."""
        workspace = getattr(_per_thread, "workspace", None)
        if workspace is None:
            workspace = _per_thread.workspace = Workspace()
        return workspace

    def plan(self, key: tuple, build: Callable[[], T]) -> T:
        """``build()``, cached under ``key``: the views of scratch buffers one chunk shape
        needs (each view costs a torch call, ~3-7 us, and a format's unpacking needs tens
        of them), built once per shape instead of once per chunk.  ``build`` must take its
        buffers from this workspace, and a key must name every buffer shape it takes (a
        later ``take`` of a bigger shape replaces the buffer and drops the plans)."""
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= MAX_VIEWS:
                self._plans.clear()
            plan = self._plans[key] = build()
        return plan

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialized contiguous tensor of ``shape`` and ``dtype``, sharing memory with
        every earlier ``take`` of ``name`` and ``dtype`` (so a caller must be done with
        those)."""
        key = (name, shape, dtype)
        view = self._views.get(key)
        if view is not None:
            return view
        count = math.prod(shape)
        buffer = self._buffers.get((name, dtype))
        if buffer is None or buffer.numel() < count:
            buffer = torch.empty(count, dtype=dtype)
            self._buffers[(name, dtype)] = buffer
            self._views = {k: v for k, v in self._views.items() if k[::2] != (name, dtype)}
            self._plans.clear()
        if len(self._views) >= MAX_VIEWS:
            # the last chunk of every tensor has a shape of its own: keep the cache small
            self._views.clear()
        view = self._views[key] = buffer[:count].view(shape)
        return view
