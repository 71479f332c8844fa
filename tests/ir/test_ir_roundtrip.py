"""print(parse(text)) == text, and parsed programs run: same results as the exported program
when given its constants, and the same random constants every parse."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from ir_programs import INPUTS_DIR, PROGRAMS, outputs_equal, with_constants

from compiler import formats
from compiler.ir.parser import parse_program
from compiler.ir.printer import print_program

SAMPLE_FILES = sorted(INPUTS_DIR.glob("*.ir"))


@pytest.fixture(scope="module", params=sorted(PROGRAMS))
def exported(request):
    return PROGRAMS[request.param]()


def test_print_parse_print_is_identity(exported):
    text = print_program(exported)
    assert print_program(parse_program(text)) == text


def test_parsed_program_computes_what_the_export_computes(exported):
    parsed = parse_program(print_program(exported))
    with_real_weights = with_constants(parsed, exported.constants())
    for seed, symbol_values in enumerate(
        [None, {s: hi for s, (lo, hi) in exported.symbol_ranges.items()}]
    ):
        generator = torch.Generator().manual_seed(seed)
        inputs = exported.example_inputs(symbol_values, generator)
        assert outputs_equal(exported(*inputs), with_real_weights(*inputs))


def test_parsing_twice_gives_the_same_constants_and_outputs(exported):
    text = print_program(exported)
    first, second = parse_program(text), parse_program(text)
    assert first.constant_names() == second.constant_names()
    assert sorted(first.constant_names()) == sorted(exported.constant_names())
    for name, tensor in first.constants().items():
        assert torch.equal(tensor, second.get_constant(name)), name
    symbols = {s: lo for s, (lo, hi) in first.symbol_ranges.items()}
    inputs = first.example_inputs(symbols)
    assert outputs_equal(first(*inputs), second(*inputs))


def test_parsed_constants_follow_declared_types(exported):
    parsed = parse_program(print_program(exported))
    for name, original in exported.constants().items():
        tensor = parsed.get_constant(name)
        assert tensor.dtype == original.dtype and tensor.shape == original.shape, name


def test_gguf_constants_parse_to_valid_blocks():
    from ir_programs import quantized_program

    text = print_program(quantized_program())
    assert "gguf Q4_K" in text and "gguf Q6_K" in text and "gguf Q8_0" in text
    parsed = parse_program(text)
    for name, tensor in parsed.constants().items():
        if tensor.dtype == torch.uint8:
            fmt = text.split(f"const @{name} : ")[1].split("\n")[0].split("gguf ")[1]
            assert formats.find_nonfinite_scales(tensor, fmt) is None, name
    outputs = parsed(*parsed.example_inputs({s: 7 for s in parsed.symbol_ranges}))
    assert all(torch.isfinite(o).all() for o in outputs)


def test_float_constants_get_distinct_seeded_normal_data():
    text = (
        "const @a : f32[64, 64]\nconst @b : f32[64, 64]\nconst @idx : i64[100]\n\n"
        "graph @main(%x : f32[64]) {\n"
        "  %add : f32[64, 64] = aten.add.Tensor(@a, @b)\n  return (%add, @idx)\n}\n"
    )
    parsed = parse_program(text)
    a, b, idx = (parsed.get_constant(n) for n in ("a", "b", "idx"))
    assert not torch.equal(a, b)
    assert 0.05 < a.std().item() < 0.3  # std 1/sqrt(64) = 0.125
    assert set(idx.tolist()) <= {0, 1} and len(set(idx.tolist())) == 2
    assert print_program(parsed) == text


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.stem for p in SAMPLE_FILES])
def test_sample_inputs_round_trip_and_match_their_checks(path, tmp_path):
    source = path.read_text()
    program_text = (
        "\n".join(
            line for line in source.splitlines() if not line.lstrip().startswith("//")
        ).lstrip("\n")
        + "\n"
    )
    parsed = parse_program(source, filename=str(path))
    printed = print_program(parsed)
    assert printed == program_text
    printed_file = tmp_path / "printed.ir"
    printed_file.write_text(printed)
    check = subprocess.run(
        [sys.executable, "-m", "filecheck", str(path), "--input-file", str(printed_file)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    outputs = parsed(*parsed.example_inputs())
    assert all(torch.isfinite(o).all() for o in outputs if isinstance(o, torch.Tensor))


def test_filecheck_catches_a_wrong_check(tmp_path):
    """The FileCheck harness above can fail."""
    path = SAMPLE_FILES[0]
    wrong = tmp_path / "wrong.ir"
    wrong.write_text("// CHECK: aten.this_op_is_not_there\n")
    printed_file = tmp_path / "printed.ir"
    printed_file.write_text(print_program(parse_program(path.read_text())))
    check = subprocess.run(
        [sys.executable, "-m", "filecheck", str(wrong), "--input-file", str(printed_file)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode != 0


def test_symbols_are_canonical_whatever_export_named_them():
    from ir_programs import two_symbol_program

    exported = two_symbol_program()
    text = print_program(exported)
    assert text.startswith("symbol s0 : [2, 64]\nsymbol s1 : [2, 64]\n")
    assert "graph @main(%a : f32[s0, 4], %b : f32[s1, 4])" in text
    assert "s0 + s1" in text
    assert not any(name in text for name in exported.symbol_ranges if name not in ("s0", "s1"))


def test_hand_written_text_with_equivalent_expressions_parses():
    text = (
        "symbol s0 : [2, 16]\n\n"
        "graph @main(%x : f32[s0, 4]) {\n"
        "  %cat : f32[1 + s0*2, 4] = aten.cat([%x, %x, %x[0:1]], 0)\n"
        "  return (%cat,)\n}\n"
    )
    # `%x[0:1]` is not IR; the parser must say where.
    with pytest.raises(Exception, match=r"<string>:4:"):
        parse_program(text)
    text = (
        "symbol s0 : [2, 16]\n\n"
        "graph @main(%x : f32[s0, 4]) {\n"
        "  %cat : f32[s0*2, 4] = aten.cat([%x, %x])\n"
        "  %size : int(2 * s0) = aten.sym_size.int(%cat, 0)\n"
        "  return (%cat, %size)\n}\n"
    )
    parsed = parse_program(text)
    printed = print_program(parsed)
    assert "%cat : f32[2*s0, 4] = aten.cat([%x, %x])" in printed
    assert "%size : int(2*s0)" in printed
    x = torch.randn(3, 4)
    cat, size = parsed(x)
    assert torch.equal(cat, torch.cat([x, x])) and size == 6


def test_the_documented_example_is_what_the_printer_prints():
    from compiler.ir import printer

    doc = printer.__doc__
    block = doc.split("::\n\n", 1)[1].split("\n\n", 2)
    example = "\n".join(line[4:] for line in "\n\n".join(block[:2]).splitlines()) + "\n"
    assert example.startswith("symbol s0") and example.endswith("}\n")
    parsed = parse_program(example)
    assert print_program(parsed) == example
    view, rows = parsed(*parsed.example_inputs({s: 6 for s in parsed.symbol_ranges}))
    assert view.shape == (1, 6, 4, 16) and rows.shape == (1, 6, 64)


def test_argument_spellings_round_trip_exactly():
    text = (
        "graph @main(%x : f32[2, 3]) {\n"
        '  %to : f16[2, 3] = aten._to_copy(%x, dtype=f16, layout=torch.strided, device=device("cpu"))\n'
        "  %full : f64[2] = aten.full([2], -inf, dtype=torch.float64)\n"
        "  %mul : f64[2] = aten.mul.Tensor(%full, 1e-300)\n"
        "  %clamp : f32[2, 3] = aten.clamp(%x, -0.1, 0.30000000000000004)\n"
        '  %div : f32[2, 3] = aten.div.Tensor_mode(%clamp, 3, rounding_mode="floor")\n'
        "  %top : (f32[2, 1], i64[2, 1]) = aten.max.dim(%div, 1, True)\n"
        "  return (%to, %mul, %top, [None, False, nan])\n"
        "}\n"
    )
    parsed = parse_program(text)
    expected = text.replace("dtype=f16", "dtype=torch.float16")
    assert print_program(parsed) == expected
    x = torch.randn(2, 3)
    to, mul, (values, indices), (none, false, nan) = parsed(x)
    assert to.dtype == torch.float16 and torch.equal(to, x.half())
    assert torch.equal(mul, torch.full([2], -torch.inf, dtype=torch.float64))
    expected_div = torch.div(x.clamp(-0.1, 0.30000000000000004), 3, rounding_mode="floor")
    expected_top = expected_div.max(1, True)
    assert torch.equal(values, expected_top.values) and torch.equal(indices, expected_top.indices)
    assert none is None and false is False and math.isnan(nan)


def test_names_python_reserves_get_a_suffix():
    """FX renames values that would shadow Python builtins or keywords; the text follows."""
    text = "graph @main(%x : f32[2]) {\n  %max : f32[2] = aten.relu(%x)\n  return (%max,)\n}\n"
    assert print_program(parse_program(text)) == text.replace("%max", "%max_1")
