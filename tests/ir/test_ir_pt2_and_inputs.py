"""save_pt2 / load_pt2 round trips, atomic saves, and GraphProgram.example_inputs."""

from __future__ import annotations

import pytest
import torch
from ir_programs import PROGRAMS, cond_program, embedding_program, fused_program, outputs_equal

from compiler.errors import ProgramFormatError, VerificationError
from compiler.ir import pt2
from compiler.ir.parser import parse_program
from compiler.ir.printer import print_program, structural_hash
from compiler.ir.pt2 import load_pt2, save_pt2

# A re-export turns torch.cond operands into a list, lifted constants into buffers and
# normalises the arguments of `.to` checks, so those programs compare by numerics and by a
# fixed point instead of by text.
_TEXT_STABLE = ["linear", "embedding", "attention"]


@pytest.mark.parametrize("name", _TEXT_STABLE)
def test_save_load_gives_the_same_text(name, tmp_path):
    gp = PROGRAMS[name]()
    path = tmp_path / f"{name}.pt2"
    save_pt2(gp, path)
    loaded = load_pt2(path)
    assert print_program(loaded) == print_program(gp)
    inputs = gp.example_inputs()
    assert outputs_equal(gp(*inputs), loaded(*inputs))


@pytest.mark.parametrize("name", ["cond", "fused", "quantized", "two_symbols"])
def test_save_load_keeps_numerics_and_reaches_a_fixed_point(name, tmp_path):
    gp = PROGRAMS[name]()
    save_pt2(gp, tmp_path / "once.pt2")
    once = load_pt2(tmp_path / "once.pt2")
    save_pt2(once, tmp_path / "twice.pt2")
    twice = load_pt2(tmp_path / "twice.pt2")
    assert structural_hash(once) == structural_hash(twice)
    assert "?" not in print_program(once)  # every node has a type
    assert list(once.symbol_ranges.values()) == list(gp.symbol_ranges.values())
    for symbol_value in (2, 9):
        inputs = gp.example_inputs({s: symbol_value for s in gp.symbol_ranges})
        assert outputs_equal(gp(*inputs), once(*inputs))


def test_a_parsed_program_saves_with_its_dynamic_dims(tmp_path):
    text = print_program(cond_program())
    parsed = parse_program(text)
    save_pt2(parsed, tmp_path / "parsed.pt2")
    loaded = load_pt2(tmp_path / "parsed.pt2")
    assert list(loaded.symbol_ranges.values()) == list(parsed.symbol_ranges.values())
    for rows in (3, 7):  # both branches
        inputs = parsed.example_inputs({s: rows for s in parsed.symbol_ranges})
        assert outputs_equal(parsed(*inputs), loaded(*inputs))


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    def broken_save(exported, f):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch.export, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_pt2(PROGRAMS["linear"](), tmp_path / "out.pt2")
    assert list(tmp_path.iterdir()) == []


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "out.pt2"
    path.write_bytes(b"old")
    save_pt2(PROGRAMS["linear"](), path)
    assert print_program(load_pt2(path)) == print_program(PROGRAMS["linear"]())
    assert [p.name for p in tmp_path.iterdir()] == ["out.pt2"]


def test_load_rejects_missing_and_damaged_files(tmp_path):
    with pytest.raises(ProgramFormatError, match="no such"):
        load_pt2(tmp_path / "absent.pt2")
    damaged = tmp_path / "damaged.pt2"
    damaged.write_bytes(b"not a zip archive")
    with pytest.raises(ProgramFormatError, match="damaged.pt2: not a torch.export archive"):
        load_pt2(damaged)


# ---- example inputs --------------------------------------------------------------------------
def test_example_inputs_follow_symbol_values():
    gp = PROGRAMS["two_symbols"]()
    a_symbol, b_symbol = (n.meta["val"].shape[0].node.expr for n in gp.inputs)
    a, b = gp.example_inputs({str(a_symbol): 5, str(b_symbol): 9})
    assert a.shape == (5, 4) and b.shape == (9, 4) and a.dtype == torch.float32
    default_a, default_b = gp.example_inputs()
    assert default_a.shape == (2, 4) and default_b.shape == (2, 4)  # min 2


def test_example_inputs_are_deterministic_and_follow_the_generator():
    gp = PROGRAMS["linear"]()
    first, second = gp.example_inputs()[0], gp.example_inputs()[0]
    assert torch.equal(first, second)
    other = gp.example_inputs(generator=torch.Generator().manual_seed(5))[0]
    assert not torch.equal(first, other)


def test_index_inputs_stay_inside_the_table():
    gp = embedding_program()  # nn.Embedding(10, 8)
    symbol = next(iter(gp.symbol_ranges))
    (ids,) = gp.example_inputs({symbol: 256})
    assert ids.dtype == torch.int64 and ids.min() >= 0 and ids.max() < 10
    assert ids.max() >= 5  # the bound is the table size, not the default 2
    gp(ids)

    fused = fused_program()  # ggufc.embedding over 20 rows
    ids, _ = fused.example_inputs({next(iter(fused.symbol_ranges)): 200})
    assert 10 <= ids.max() < 20


def test_example_inputs_reject_bad_symbol_values():
    gp = PROGRAMS["linear"]()
    with pytest.raises(VerificationError, match="unknown symbols"):
        gp.example_inputs({"s999": 3})
    gp = embedding_program()
    symbol = next(iter(gp.symbol_ranges))
    with pytest.raises(VerificationError, match=r"outside its range \[1, 256\]"):
        gp.example_inputs({symbol: 1000})


def test_exported_program_uses_shared_dims(tmp_path):
    gp = fused_program()  # two inputs share one symbol
    exported = pt2.export_program(gp)
    assert len(exported.range_constraints) == 1


def test_symbol_names_map_printed_names_to_range_keys():
    from compiler.ir.printer import symbol_names

    gp = PROGRAMS["two_symbols"]()
    names = symbol_names(gp)
    assert sorted(names) == ["s0", "s1"] and set(names.values()) == set(gp.symbol_ranges)
    a, b = gp.example_inputs({names["s0"]: 3, names["s1"]: 7})
    assert a.shape[0] == 3 and b.shape[0] == 7
