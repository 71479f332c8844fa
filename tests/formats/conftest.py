"""Fixtures of the format tests.  Shared helpers live in format_cases.py."""

from __future__ import annotations

import os

# Without this, idle OpenMP workers spin after every parallel region and, on a shared
# 2-core machine, steal the core the main thread needs (10-30x slower torch ops).  It only
# takes effect if set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
from format_cases import fresh_seed


@pytest.fixture
def seed() -> int:
    """A fresh seed per test; tests name it in every assertion message."""
    return fresh_seed()
