"""Fixtures for the op-library and quantized-module tests.

Every test gets fresh random data: `generator` is seeded from the OS and prints its seed, so
a failure can be replayed (pytest shows the captured output of a failing test).
"""

from __future__ import annotations

import secrets

import pytest
import torch

import compiler.ops  # noqa: F401  (registers torch.ops.ggufc)


@pytest.fixture
def generator() -> torch.Generator:
    seed = secrets.randbits(63)
    print(f"torch.Generator seed: {seed}")
    return torch.Generator().manual_seed(seed)
