"""Interning over a whole compiled model: a synthetic llama GGUF (every block format, see
synthetic_models.py) compiled through the real pipeline; every distinct kernel source and
header is stored once in the file although many KernelNodes reference it, and the string
figures `describe_program` (``ggufc inspect``) reports agree with a count made here."""

from __future__ import annotations

from collections import Counter

import pytest
from synthetic_models import write_synthetic_model

from compiler import compile_gguf
from runtime_schema import load_program
from runtime_schema.describe import describe_program
from runtime_schema.program import KernelNode
from runtime_schema.reader import string_footprint

MAX_SEQ = 16


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interning")
    gguf_path = write_synthetic_model(folder / "model.gguf", "llama")
    program_path = folder / "model.ggufc"
    compile_gguf(gguf_path, max_seq=MAX_SEQ, output=program_path)
    return program_path


def kernel_string_references(program) -> Counter:
    """How many times KernelNodes reference each kernel source / header text."""
    references = Counter()
    for node in program.instructions():
        if isinstance(node, KernelNode):
            for source in node.sources:
                references[source.source] += 1
                references[source.header] += 1
    return references


def test_each_kernel_source_is_stored_once(compiled):
    loaded = load_program(compiled)
    references = kernel_string_references(loaded.program)
    metadata_bytes = compiled.read_bytes()[: loaded.header.segment_offset]
    assert len(references) >= 4
    # many nodes share a source: the reason interning matters
    assert max(references.values()) >= 3
    assert sum(references.values()) >= 2 * len(references)
    for text, count in references.items():
        # a source may also lie inside a longer one (the plain prelude, the RMSNorm kernels'
        # header, begins every format's header): those copies are the longer strings'
        inside = sum(other.count(text) for other in references if other != text)
        stored = metadata_bytes.count(text.encode("utf-8")) - inside
        assert stored == 1, f"{text[:60]!r} referenced {count} times, stored {stored} times"


def test_loader_returns_one_string_object_per_kernel_source(compiled):
    program = load_program(compiled).program
    objects: dict[str, set[int]] = {}
    for node in program.instructions():
        if isinstance(node, KernelNode):
            for source in node.sources:
                for text in (source.source, source.header):
                    objects.setdefault(text, set()).add(id(text))
    assert all(len(ids) == 1 for ids in objects.values())


def test_describe_string_figures_agree(compiled):
    references = kernel_string_references(load_program(compiled).program)
    strings = describe_program(compiled)["strings"]
    stored = sum(string_footprint(len(text.encode("utf-8"))) for text in references)
    uninterned = sum(
        string_footprint(len(text.encode("utf-8"))) * count for text, count in references.items()
    )
    assert strings["kernel_unique"] == len(references)
    assert strings["kernel_references"] == sum(references.values())
    assert strings["kernel_stored_bytes"] == stored
    assert strings["kernel_uninterned_bytes"] == uninterned
    assert strings["stored_bytes"] >= stored
    assert strings["uninterned_bytes"] - strings["stored_bytes"] >= uninterned - stored
