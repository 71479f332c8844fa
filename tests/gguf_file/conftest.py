"""Fixtures of the GGUF reader tests: the real Gemma file opened by ggufc and by gguf.GGUFReader."""

from __future__ import annotations

import gguf
import pytest

from compiler import open_gguf


@pytest.fixture(scope="session")
def gemma_reader(gemma_path):
    """The reference reader; it takes 10-20 s on this file, so it is opened once per session."""
    return gguf.GGUFReader(gemma_path)


@pytest.fixture(scope="session")
def gemma(gemma_path):
    with open_gguf(gemma_path) as gguf_file:
        yield gguf_file
