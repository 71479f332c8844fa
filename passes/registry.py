"""The one place pass names are resolved to pass classes.

Three sources, looked up in this order:

1. passes registered from Python with `register_pass(cls)` (a user's own pass);
2. the built-in passes, named below as data (`name -> "module:Class"`) and imported only
   when a pipeline names them, so importing `passes` stays cheap;
3. third-party packages, through the entry point group `ggufc.passes`
   (`[project.entry-points."ggufc.passes"] my-pass = "my_pkg.my_pass:MyPass"`),
   also loaded only when asked for.

`load_pass_class("module:Class")` or `load_pass_class("path/to/file.py:Class")` loads and
registers one class by reference (`ggufc opt --load-pass`), which is how tests bring in
deliberately broken passes.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from compiler.errors import PassError
from passes.pass_base import Pass, check_pass_class

ENTRY_POINT_GROUP = "ggufc.passes"

# name -> "module:Class"; the modules are imported lazily.
BUILTIN_PASSES: dict[str, str] = {
    "canonicalize": "passes.canonicalize:Canonicalize",
    "cse": "passes.cse:CommonSubexpressionElimination",
    "dce": "passes.dce:DeadCodeElimination",
    "fuse-attention": "passes.fuse_attention:FuseAttentionPass",
    "fuse-gated-gelu": "passes.fuse_gated_gelu:FuseGatedGeluPass",
    "fuse-gguf": "passes.fuse_gguf:FuseGguf",
    "fuse-rms-norm": "passes.fuse_rms_norm:FuseRmsNormPass",
    "fuse-rotary": "passes.fuse_rotary:FuseRotaryPass",
    "fuse-sibling-linears": "passes.fuse_sibling_linears:FuseSiblingLinearsPass",
    "split-dynamic-m": "passes.split_dynamic_m:SplitDynamicM",
}

_registered: dict[str, type[Pass]] = {}
_resolved: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Make `cls` available to pipeline text under `cls.name`. Usable as a decorator.
    Registering a different class under a name already taken is an error."""
    check_pass_class(cls)
    existing = _registered.get(cls.name) or _builtin_or_none(cls.name)
    if existing is not None and existing is not cls:
        raise PassError(
            f"cannot register {cls.__module__}.{cls.__qualname__} as {cls.name!r}: "
            f"that name belongs to {existing.__module__}.{existing.__qualname__}"
        )
    _registered[cls.name] = cls
    _resolved.pop(cls.name, None)
    return cls


def unregister_pass(name: str) -> None:
    """Forget a pass registered with `register_pass` (tests use this to clean up)."""
    _registered.pop(name, None)
    _resolved.pop(name, None)


def lookup_pass(name: str) -> type[Pass] | None:
    """The class named `name`, or None if no source knows it."""
    cls = _resolved.get(name)
    if cls is not None:
        return cls
    cls = _registered.get(name) or _builtin_or_none(name) or _entry_points().get(name)
    if isinstance(cls, str):
        cls = _load_reference(cls, f"entry point {name!r} of group {ENTRY_POINT_GROUP}")
        check_pass_class(cls)
        if cls.name != name:
            raise PassError(f"entry point {name!r} loads a pass named {cls.name!r}")
    if cls is not None:
        _resolved[name] = cls
    return cls


def get_pass(name: str) -> type[Pass]:
    cls = lookup_pass(name)
    if cls is None:
        raise PassError(f"unknown pass {name!r}; known passes: {', '.join(pass_names())}")
    return cls


def pass_names() -> list[str]:
    """Every pass name that can be used in a pipeline, sorted."""
    return sorted({*_registered, *BUILTIN_PASSES, *_entry_points()})


def all_pass_classes() -> list[type[Pass]]:
    return [get_pass(name) for name in pass_names()]


def load_pass_class(reference: str) -> type[Pass]:
    """Load `module:Class` or `file.py:Class` and register it."""
    cls = _load_reference(reference, f"--load-pass {reference}")
    return register_pass(cls)


# ---- internals ------------------------------------------------------------------------
def _builtin_or_none(name: str) -> type[Pass] | None:
    reference = BUILTIN_PASSES.get(name)
    if reference is None:
        return None
    cls = _load_reference(reference, f"built-in pass {name!r}")
    check_pass_class(cls)
    return cls


def _entry_points() -> dict[str, str]:
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {ep.name: ep.value for ep in found if ep.name not in BUILTIN_PASSES}


def _load_reference(reference: str, where: str):
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise PassError(f"{where}: expected 'module:Class' or 'file.py:Class'")
    try:
        if module_name.endswith(".py"):
            module = _import_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except (ImportError, OSError) as exc:
        raise PassError(f"{where}: cannot import {module_name!r}: {exc}") from exc
    obj = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise PassError(f"{where}: {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    return obj


def _import_file(path: Path):
    module_name = f"ggufc_loaded_{path.stem}_{abs(hash(str(path.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    if not path.is_file():
        raise OSError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


__all__ = [
    "BUILTIN_PASSES",
    "ENTRY_POINT_GROUP",
    "all_pass_classes",
    "get_pass",
    "load_pass_class",
    "lookup_pass",
    "pass_names",
    "register_pass",
    "unregister_pass",
]
