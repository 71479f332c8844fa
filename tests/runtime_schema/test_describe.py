"""describe_program / render_description: the figures `ggufc inspect` shows."""

from __future__ import annotations

import json

from rs_sample_programs import kitchen_sink, kitchen_sink_data

from runtime_schema import save_program
from runtime_schema.describe import describe_program, inspect_program, render_description
from runtime_schema.synthetic import layered_program


def test_describe_kitchen_sink(tmp_path):
    data = kitchen_sink_data(seed=2)
    program = kitchen_sink(data)
    path = tmp_path / "p.ggufc"
    save_program(program, path)
    d = describe_program(path)
    assert d["file"]["bytes"] == path.stat().st_size
    assert d["inputs"][0] == {"name": "x", "dtype": "float32", "shape": ["M", 64]}
    assert d["symbols"] == {"M": {"min": 1, "max": 64}}
    assert d["kernels"]["count"] == 5
    assert d["kernels"]["by_format_and_kind"] == {
        "Q4_0/embedding": 1,
        "Q8_0/dequantize": 1,
        "Q8_0/matmul": 1,
        "Q8_0/matvec": 1,
        "Q8_0/matvec_batched": 1,
    }
    assert [n["condition"] for n in d["if_nodes"]] == ["M == 1", "M <= 8"]
    c = d["constants"]
    assert c["count"] == 4
    assert c["dedup_saved_bytes"] == data.w1.numel()  # the tied copy of w1
    assert c["referenced_bytes"] == c["stored_bytes"] + c["dedup_saved_bytes"]
    s = d["strings"]
    assert s["stored_bytes"] < s["uninterned_bytes"]
    assert s["references"] > s["unique"]
    json.dumps(d)  # --json must serialize
    text = render_description(d)
    assert "if M == 1 then m1 else m2_max" in text
    assert "saved by dedup" in text
    assert inspect_program(path, as_json=True).startswith("{")


def test_kernel_source_bytes_do_not_grow_with_layers():
    small = describe_program(layered_program(2, hidden=256, ffn=256, vocab=32))["strings"]
    large = describe_program(layered_program(6, hidden=256, ffn=256, vocab=32))["strings"]
    assert large["kernel_stored_bytes"] == small["kernel_stored_bytes"]
    assert large["kernel_references"] > small["kernel_references"]
    assert large["kernel_uninterned_bytes"] > 2 * small["kernel_uninterned_bytes"]


def test_inspect_summary_module_interface(tmp_path):
    from runtime_schema import describe

    path = tmp_path / "p.ggufc"
    save_program(kitchen_sink(kitchen_sink_data(seed=4)), path)
    summary = describe.summarize(path, None)
    assert summary["kernels"]["count"] == 5
    assert describe.render_text(summary).startswith(f"program {path}")


def test_long_metadata_values_are_shortened(tmp_path):
    from dataclasses import replace

    from runtime_schema.describe import METADATA_PREVIEW_CHARS

    # a tokenizer-sized value with multi-byte characters: the byte count is UTF-8's
    tokenizer = '{"tokens": [' + ", ".join(f'"tök{i}"' for i in range(5000)) + "]}"
    short = "x" * METADATA_PREVIEW_CHARS
    base = layered_program(1, hidden=256, ffn=256, vocab=32)
    program = replace(base, metadata=base.metadata + (("tokenizer", tokenizer), ("short", short)))
    path = tmp_path / "p.ggufc"
    save_program(program, path)

    shown = describe_program(path)["metadata"]
    expected = f"{tokenizer[:METADATA_PREVIEW_CHARS]}... ({len(tokenizer.encode())} bytes)"
    assert shown["tokenizer"] == expected
    assert len(tokenizer.encode()) > len(tokenizer)  # the count is bytes, not characters
    assert shown["short"] == short  # at the limit: shown whole
    assert describe_program(path, full_metadata=True)["metadata"]["tokenizer"] == tokenizer

    text = inspect_program(path)
    assert f"  tokenizer: {expected}" in text.splitlines()
    assert len(text) < len(tokenizer) // 10
    as_json = json.loads(inspect_program(path, as_json=True))
    assert as_json["metadata"]["tokenizer"] == expected


def _with_cuda_sources(program, **changes):
    """``program`` with ``changes`` made to every CUDA source of its kernel nodes."""
    from dataclasses import replace

    from runtime_schema.program import Backend, KernelNode

    def changed(node):
        if not isinstance(node, KernelNode):
            return node
        sources = tuple(
            replace(s, **changes) if s.backend == Backend.CUDA else s for s in node.sources
        )
        return replace(node, sources=sources)

    chains = tuple(
        replace(c, instructions=tuple(changed(n) for n in c.instructions)) for c in program.chains
    )
    return replace(program, chains=chains)


def test_dependent_launch_sources_are_counted(tmp_path):
    program = kitchen_sink(kitchen_sink_data(seed=5))
    marked = _with_cuda_sources(program, dependent_launch=True)
    for name, p, count in (("plain", program, 0), ("marked", marked, 5)):
        path = tmp_path / f"{name}.ggufc"
        save_program(p, path)
        d = describe_program(path)
        assert d["kernels"]["dependent_launch_sources"] == count
        text = render_description(d)
        assert ("5 launched dependently on CUDA sm_90+" in text) == bool(count), text
        assert d["kernels"]["tensor_map_sources"] == 0 and "tensor maps" not in text


def test_tensor_map_sources_are_counted(tmp_path):
    from runtime_schema.program import TensorMap

    program = kitchen_sink(kitchen_sink_data(seed=5))
    path = tmp_path / "mapped.ggufc"
    save_program(_with_cuda_sources(program, tensor_maps=(TensorMap(0, 64, 128),)), path)
    d = describe_program(path)
    assert d["kernels"]["tensor_map_sources"] == 5
    assert "; 5 taking tensor maps)" in render_description(d)


def test_the_most_shared_memory_a_kernel_asks_for_is_shown(tmp_path):
    """A program lowered for an H100 may hold the 256-row CUDA matmul tile (~200-220 KB of
    shared memory a block, more than an A100 has): inspect names the largest ask and what to
    do on a card of less; a program whose kernels take none shows no such line."""
    from dataclasses import replace

    from runtime_schema.program import KernelNode

    program = kitchen_sink(kitchen_sink_data(seed=5))
    asks = iter([1024, 218112, 0, 49152, 0, 0, 0, 0, 0])

    def asking(node):
        return (
            replace(node, shared_memory_bytes=next(asks)) if isinstance(node, KernelNode) else node
        )

    chains = tuple(
        replace(c, instructions=tuple(asking(n) for n in c.instructions)) for c in program.chains
    )
    cases = (("plain", program, 0), ("asking", replace(program, chains=chains), 218112))
    for name, p, most in cases:
        path = tmp_path / f"{name}.ggufc"
        save_program(p, path)
        d = describe_program(path)
        assert d["kernels"]["max_shared_memory_bytes"] == most
        text = render_description(d)
        line = "  shared memory a block: up to 218112 bytes (213.0 KB; a card with less a block"
        assert (line in text) == bool(most), text
        if most:
            assert "compile with --tuning from `ggufc tune` on it" in text
