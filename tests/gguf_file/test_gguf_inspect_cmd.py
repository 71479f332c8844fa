"""`ggufc inspect`: text and JSON summaries of the real file, bundled names, bad files."""

from __future__ import annotations

import collections
import json
import math
import struct
import subprocess
import sys

import numpy as np
import pytest
from gguf_file_builders import (
    LONG_ARRAY_LEN,
    VALUE_TYPE,
    assemble,
    raw_kv,
    scalar_kv,
    small_tensors,
    write_with_gguf_writer,
)

from compiler.cli import main
from compiler.cli.inspect_cmd import file_kind
from compiler.gguf_file.summary import FIRST_ITEMS

GEMMA_FIRST_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"][:FIRST_ITEMS]


def _inspect(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["inspect", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _expected_format_totals(gguf_file) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = collections.defaultdict(
        lambda: {"tensors": 0, "bytes": 0, "params": 0}
    )
    for tensor in gguf_file.tensors.values():
        totals[tensor.format]["tensors"] += 1
        totals[tensor.format]["bytes"] += tensor.nbytes
        totals[tensor.format]["params"] += math.prod(tensor.shape)
    return dict(totals)


def test_json_summary_of_the_real_file(capsys, gemma_path, gemma):
    code, out, _ = _inspect(capsys, str(gemma_path), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["file"] == str(gemma_path)
    assert summary["size"] == gemma_path.stat().st_size
    assert summary["version"] == 3 and summary["architecture"] == "gemma3"
    assert summary["tensor_count"] == len(gemma.tensors)
    assert summary["formats"] == _expected_format_totals(gemma)
    assert summary["total_params"] == sum(math.prod(t.shape) for t in gemma.tensors.values())
    assert summary["total_bytes"] == sum(t.nbytes for t in gemma.tensors.values())
    metadata = summary["metadata"]
    assert list(metadata) == list(gemma.metadata)
    tokens = metadata["tokenizer.ggml.tokens"]
    assert tokens == {"type": "array[string]", "count": 262144, "first": GEMMA_FIRST_TOKENS}
    assert metadata["gemma3.block_count"] == {"type": "uint32", "value": 18}
    assert metadata["general.tags"]["value"] == list(gemma.metadata["general.tags"])
    assert "tensors" not in summary


def test_text_summary_of_the_bundled_model(capsys, gemma):
    code, out, _ = _inspect(capsys, "gemma3-270m")
    assert code == 0
    lines = out.splitlines()
    assert "architecture:  gemma3" in lines
    assert f"tensors:       {len(gemma.tensors)}" in lines
    total_params = sum(math.prod(t.shape) for t in gemma.tensors.values())
    assert f"parameters:    {total_params:,}" in lines
    token_line = next(line for line in lines if "tokenizer.ggml.tokens" in line)
    assert "string[262144]" in token_line and "'<pad>', '<eos>', '<bos>'" in token_line
    assert any("gemma3.rope.freq_base" in line and "1000000.0" in line for line in lines)
    for fmt, totals in _expected_format_totals(gemma).items():
        row = next(line.split() for line in lines if line.split()[:1] == [fmt])
        assert row == [fmt, str(totals["tensors"]), f"{totals['bytes']:,}", f"{totals['params']:,}"]


def test_tensor_listing(capsys, tmp_path):
    tensors = small_tensors(np.random.default_rng(3))
    path = write_with_gguf_writer(tmp_path / "small.gguf", tensors)
    code, out, _ = _inspect(capsys, str(path), "--json", "--tensors")
    assert code == 0
    listed = json.loads(out)["tensors"]
    assert [t["name"] for t in listed] == list(tensors)
    assert listed[0]["format"] == "F32" and listed[0]["shape"] == [32]
    code, out, _ = _inspect(capsys, str(path), "--tensors")
    assert "embd.weight" in out and "Q8_0" in out
    scores = next(line for line in out.splitlines() if "tokenizer.ggml.scores" in line)
    assert f"float32[{LONG_ARRAY_LEN}]" in scores and "[0.0, 0.5, 1.0, 1.5, 2.0, ...]" in scores


def test_bad_files_exit_1_with_the_message(capsys, tmp_path):
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(b"GGUF\x03\x00")
    code, out, err = _inspect(capsys, str(truncated))
    assert code == 1 and out == ""
    assert "ggufc inspect: error:" in err and str(truncated) in err and "truncated" in err
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    code, _, err = _inspect(capsys, str(other))
    assert code == 1 and "unknown file kind" in err and "GGUF" in err
    code, _, err = _inspect(capsys, "no-such-model")
    assert code == 1 and "no-such-model" in err and "gemma3-270m" in err


def test_json_is_strict_for_odd_metadata(capsys, tmp_path):
    """NaN floats and long arrays nested in arrays still give standard JSON."""
    inner = struct.pack("<IQ", VALUE_TYPE["uint8"], LONG_ARRAY_LEN) + bytes(LONG_ARRAY_LEN)
    nested = struct.pack("<IQ", VALUE_TYPE["array"], 1) + inner
    path = tmp_path / "odd.gguf"
    path.write_bytes(
        assemble(
            [
                scalar_kv("odd.nan", "float32", float("nan")),
                raw_kv("odd.nested", VALUE_TYPE["array"], nested),
            ],
            [],
        )
    )
    code, out, _ = _inspect(capsys, str(path), "--json")
    assert code == 0

    def reject(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    metadata = json.loads(out, parse_constant=reject)["metadata"]
    assert metadata["odd.nan"] == {"type": "float32", "value": "nan"}
    assert metadata["odd.nested"]["type"] == "array[array[uint8]]"
    assert metadata["odd.nested"]["value"] == [[0] * FIRST_ITEMS]
    assert _inspect(capsys, str(path))[0] == 0


def test_file_kind_falls_back_to_suffix(tmp_path):
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(b"XXXX")
    assert file_kind(damaged).name == "gguf"


@pytest.mark.slow
def test_console_script(gemma_path):
    result = subprocess.run(
        [sys.executable, "-m", "compiler.cli", "inspect", "gemma3-270m", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["architecture"] == "gemma3"
