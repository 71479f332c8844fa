"""Fixtures of the CUDA kernel tests: a launcher, and a generator seeded fresh each run (the
seed goes in failure messages)."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(scope="module")
def launcher():
    from runtime_schema.cuda_launcher import CudaLauncher

    return CudaLauncher()


@pytest.fixture
def generator():
    seed = int.from_bytes(os.urandom(8), "little") >> 1
    return torch.Generator().manual_seed(seed)
