"""Whether the CUDA kernel tests can run here: a module's ``pytestmark = CUDA_TEST_MARKS``
skips it without an NVIDIA GPU and CuPy (their fixtures are in conftest.py)."""

from __future__ import annotations

import pytest
import torch

HAS_GPU = torch.cuda.is_available()
try:
    import cupy  # noqa: F401

    HAS_CUPY = True
except ImportError:
    HAS_CUPY = False

CUDA_TEST_MARKS = [
    pytest.mark.gpu,
    pytest.mark.skipif(not (HAS_GPU and HAS_CUPY), reason="needs an NVIDIA GPU and CuPy"),
]
