"""The pass registry: built-ins by data, register_pass, entry points, --load-pass, and the
checks that make a class a pass."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import ClassVar

import pytest

from compiler.errors import PassError, PipelineParseError
from passes import Pass, option, parse_pipeline, register_pass
from passes.registry import (
    BUILTIN_PASSES,
    ENTRY_POINT_GROUP,
    get_pass,
    load_pass_class,
    lookup_pass,
    pass_names,
    unregister_pass,
)


def test_builtins_resolve_to_their_classes():
    for name, reference in BUILTIN_PASSES.items():
        cls = get_pass(name)
        assert cls.name == name
        assert f"{cls.__module__}:{cls.__qualname__}" == reference
        assert cls.summary(), f"{name} needs a one-line docstring"


def test_register_pass_and_name_conflicts():
    @dataclass(frozen=True)
    class Mine(Pass):
        """Do nothing."""

        name: ClassVar[str] = "test-mine"

    register_pass(Mine)
    try:
        assert lookup_pass("test-mine") is Mine
        assert "test-mine" in pass_names()
        register_pass(Mine)  # the same class again is fine

        @dataclass(frozen=True)
        class Other(Pass):
            name: ClassVar[str] = "test-mine"

        with pytest.raises(PassError, match="belongs to"):
            register_pass(Other)
    finally:
        unregister_pass("test-mine")
    assert lookup_pass("test-mine") is None

    @dataclass(frozen=True)
    class Shadow(Pass):
        name: ClassVar[str] = "cse"

    with pytest.raises(PassError, match="belongs to"):
        register_pass(Shadow)


def test_malformed_pass_classes_are_rejected():
    class NotADataclass(Pass):
        name: ClassVar[str] = "test-not-a-dataclass"
        count: int = 3

    @dataclass(frozen=True)
    class BadName(Pass):
        name: ClassVar[str] = "Bad_Name"

    @dataclass(frozen=True)
    class BadOption(Pass):
        name: ClassVar[str] = "test-bad-option"
        values: list = option((), "lists are mutable")  # noqa: RUF009 -- deliberately bad

    with pytest.raises(PassError, match="frozen=True"):
        register_pass(NotADataclass)
    with pytest.raises(PassError, match="kebab-case"):
        register_pass(BadName)
    register_pass(BadOption)
    try:
        with pytest.raises(PassError, match="options must be int, float, bool, str"):
            BadOption.options()
    finally:
        unregister_pass("test-bad-option")


PLUGIN_SOURCE = """
from dataclasses import dataclass
from typing import ClassVar
from passes import Pass, option

@dataclass(frozen=True)
class Plugin(Pass):
    \"\"\"A pass from a third-party package.\"\"\"
    name: ClassVar[str] = "test-plugin"
    level: int = option(1, "how much")
"""


def test_entry_point_passes_load_lazily(monkeypatch, tmp_path):
    (tmp_path / "ggufc_test_plugin.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(
        name="test-plugin", value="ggufc_test_plugin:Plugin", group=ENTRY_POINT_GROUP
    )
    real = importlib.metadata.entry_points

    def fake_entry_points(**kwargs):
        if kwargs.get("group") == ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints([entry])
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    import sys

    assert "test-plugin" in pass_names()
    assert "ggufc_test_plugin" not in sys.modules  # listed without importing
    try:
        (plugin,) = parse_pipeline("test-plugin{level=3}")
        assert plugin.level == 3 and type(plugin).__module__ == "ggufc_test_plugin"
    finally:
        unregister_pass("test-plugin")
        sys.modules.pop("ggufc_test_plugin", None)


def test_load_pass_class_errors(tmp_path):
    with pytest.raises(PassError, match="expected 'module:Class'"):
        load_pass_class("no_colon")
    with pytest.raises(PassError, match="cannot import"):
        load_pass_class("no_such_module_xyz:Thing")
    with pytest.raises(PassError, match="no such file"):
        load_pass_class(str(tmp_path / "missing.py") + ":Thing")
    with pytest.raises(PassError, match="has no attribute"):
        load_pass_class("passes.dce:Nope")
    with pytest.raises(PassError, match="not a subclass of passes.Pass"):
        load_pass_class("passes.dce:dataclass")


def test_unknown_pass_lists_known_ones():
    with pytest.raises(PipelineParseError, match="known passes: canonicalize, cse, dce"):
        parse_pipeline("nope")
