"""Fixtures of the GGUF pass tests, and the `.ir` FileCheck runner of `tests/passes` (loaded
from its file, not copied, so both folders run `.ir` tests the same way).

`gemma_program` exports the real Gemma 3 270M model once per session (it takes tens of
seconds); tests that edit a program work on `gemma_program.copy()`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_RUNNER_PATH = Path(__file__).resolve().parent.parent / "passes" / "conftest.py"
_spec = importlib.util.spec_from_file_location("ggufc_ir_test_runner", _RUNNER_PATH)
_runner = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _runner  # dataclasses look their module up there
_spec.loader.exec_module(_runner)

pytest_collect_file = _runner.pytest_collect_file


@pytest.fixture(scope="session")
def gemma_model(gemma_path):
    from compiler import open_gguf
    from compiler.architectures import build_model

    return build_model(open_gguf(gemma_path))


@pytest.fixture(scope="session")
def gemma_program(gemma_model):
    from gguf_pass_helpers import GEMMA_MAX_SEQ

    from compiler.export import export_model

    return export_model(gemma_model, GEMMA_MAX_SEQ)
