"""Shared fixtures.

`gemma_path` is the real Gemma 3 270M Q4_K_M file from the `models` extra.  CI installs that
extra, so a missing package is a failure with an install hint, never a silent skip.
"""

from __future__ import annotations

import os

# torch's OpenMP threads spin-wait by default; on a 2-core CI machine shared with other
# processes that makes every op 10-30x slower.  Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

# A Gemma 3 270M Q4_K_M .gguf to use instead of the bundled package's (a GPU machine that
# cannot install the models extra gets the file some other way and points here).
GEMMA_FILE_VARIABLE = "GGUFC_GEMMA_GGUF"


@pytest.fixture(scope="session")
def gemma_path():
    from pathlib import Path

    from compiler.bundled import bundled_model_path
    from compiler.errors import GgufFileError

    given = os.environ.get(GEMMA_FILE_VARIABLE)
    if given:
        if not Path(given).is_file():
            pytest.fail(f"{GEMMA_FILE_VARIABLE}={given}: no such file")
        return Path(given)
    try:
        return bundled_model_path("gemma3-270m")
    except GgufFileError as exc:
        pytest.fail(f"the real-model tests need the models extra: {exc}")
