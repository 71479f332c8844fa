"""Every kind of bad IR text gives an IRParseError `file:line:col: message` pointing at the
offending token."""

from __future__ import annotations

import pytest

from compiler.errors import IRParseError
from compiler.ir.parser import parse_program
from compiler.ir.printer import print_program

VALID = """symbol s0 : [2, 16]
const @w : f32[4, 4]
const @blocks : u8[8, 34] gguf Q8_0

graph @main(%x : f32[s0, 4]) {
  %mm : f32[s0, 4] = aten.mm(%x, @w)
  %relu : f32[s0, 4] = aten.relu(%mm)
  return (%relu,)
}
"""

# (id, line number (1-based), old text on that line, new text, token the column points at,
#  message fragment)
CASES = [
    ("undefined-value", 7, "(%mm)", "(%nope)", "%nope", "undefined value %nope"),
    (
        "unknown-op",
        7,
        "aten.relu",
        "aten.not_an_op",
        "aten.not_an_op",
        "unknown op 'aten.not_an_op'",
    ),
    ("unknown-namespace", 7, "aten.relu", "nosuchns.relu", "nosuchns.relu", "unknown op"),
    (
        "explicit-default-overload",
        7,
        "aten.relu",
        "aten.relu.default",
        "aten.relu.default",
        "unknown op",
    ),
    ("duplicate-definition", 7, "%relu", "%mm", "%mm", "%mm is already defined (line 6)"),
    (
        "duplicate-input",
        5,
        "(%x : f32[s0, 4])",
        "(%x : f32[s0, 4], %x : f32[4])",
        "%x : f32[4]",
        "already defined",
    ),
    (
        "shape-mismatch",
        6,
        "f32[s0, 4]",
        "f32[s0, 5]",
        "f32[s0, 5]",
        "type mismatch for %mm: declared f32[s0, 5], inferred f32[s0, 4]",
    ),
    ("dtype-mismatch", 7, "f32[s0, 4]", "f16[s0, 4]", "f16", "type mismatch for %relu"),
    ("tuple-mismatch", 7, "f32[s0, 4]", "(f32[s0, 4],)", "(f32", "type mismatch"),
    ("unknown-dtype", 7, "f32[s0, 4]", "q7[s0, 4]", "q7", "unknown dtype 'q7'"),
    ("undeclared-constant", 6, "@w", "@v", "@v", "undeclared constant @v"),
    ("undeclared-symbol", 5, "f32[s0, 4]", "f32[s1, 4]", "s1", "unknown symbol 's1'"),
    ("missing-equals", 6, " = aten.mm", " aten.mm", "aten.mm", "expected '='"),
    ("missing-paren", 7, "(%mm)", "(%mm", "", "expected ',' or ')'"),
    ("unterminated-string", 7, "(%mm)", '(%mm, "abc)', '"abc', "unterminated string"),
    ("trailing-text", 7, "(%mm)", "(%mm) extra", "extra", "unexpected text"),
    (
        "positional-after-keyword",
        6,
        "(%x, @w)",
        "(input=%x, @w)",
        "@w",
        "positional argument after keyword",
    ),
    ("bad-argument", 7, "(%mm)", "(%mm, $)", "$", "expected an argument"),
    ("op-rejects-arguments", 6, "aten.mm(%x, @w)", "aten.mm(%x, %x)", "aten.mm", "aten.mm fails"),
    ("unwritable-constant-name", 6, "@w", '@"a\\"b"', '"a', "without quotes"),
    (
        "duplicate-symbol",
        2,
        "const @w : f32[4, 4]",
        "symbol s0 : [1, 3]",
        "s0",
        "already declared (line 1)",
    ),
    ("empty-range", 1, "[2, 16]", "[16, 2]", "16", "bad range [16, 2]"),
    (
        "duplicate-constant",
        3,
        "@blocks : u8[8, 34] gguf Q8_0",
        "@w : f32[4]",
        "@w",
        "already declared (line 2)",
    ),
    ("symbolic-constant", 2, "f32[4, 4]", "f32[s0, 4]", "s0", "dims must be integers"),
    ("unknown-gguf-format", 3, "Q8_0", "Q9_9", "Q9_9", "unknown GGUF format 'Q9_9'"),
    ("gguf-row-not-whole-blocks", 3, "u8[8, 34]", "u8[8, 35]", "Q8_0", "multiple of 34"),
    ("region-without-node", 6, "  %mm", "  ^r(%a : f32[4]) {\n  %mm", "^r", "must follow the node"),
    (
        "undefined-region",
        7,
        "aten.relu(%mm)",
        "higher_order.cond(%mm, ^t, ^f, (%mm,))",
        "^t",
        "undefined region ^t",
    ),
    ("missing-return", 8, "  return (%relu,)", "", "}", "missing 'return'"),
    (
        "after-return",
        8,
        "  return (%relu,)",
        "  return (%relu,)\n  %z : f32[4] = aten.relu(@w)",
        "%z",
        "expected '}' after 'return'",
    ),
    ("text-after-graph", 9, "}", "}\ngraph @main() {", "graph", "unexpected text after"),
    (
        "unknown-statement",
        2,
        "const",
        "constant",
        "constant",
        "expected 'symbol', 'const' or 'graph'",
    ),
    ("node-line-syntax", 7, "%relu", "relu", "relu", "expected a node line"),
]


def _apply(line_number: int, old: str, new: str) -> str:
    lines = VALID.split("\n")
    assert old in lines[line_number - 1], (old, lines[line_number - 1])
    lines[line_number - 1] = lines[line_number - 1].replace(old, new, 1)
    return "\n".join(lines)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_error_names_file_line_and_column(case):
    _, line_number, old, new, token, fragment = case
    text = _apply(line_number, old, new)
    with pytest.raises(IRParseError) as raised:
        parse_program(text, filename="bad.ir")
    message = str(raised.value)
    # The error is on the edited line, or (for text the edit appends) the line after it.
    error_line = int(message.split(":")[1])
    line_text = text.split("\n")[error_line - 1]
    if token:
        expected_column = line_text.index(token) + 1
    else:
        expected_column = len(line_text) + 1
    assert message.startswith(f"bad.ir:{error_line}:{expected_column}: "), message
    assert error_line in (line_number, line_number + 1), message
    assert fragment in message, message


def test_valid_text_parses_and_round_trips():
    assert print_program(parse_program(VALID)) == VALID


def test_unclosed_graph_points_at_its_opening_line():
    text = VALID.rsplit("}", 1)[0]
    with pytest.raises(IRParseError, match=r"^x\.ir:5:1: this '\{' is never closed"):
        parse_program(text, filename="x.ir")


def test_empty_text_asks_for_a_graph():
    with pytest.raises(IRParseError, match=r"^<string>:\d+:1: expected 'graph @main"):
        parse_program("// only a comment\n")


def test_region_never_used_by_its_node():
    text = _apply(
        8,
        "  return",
        "  %c : f32[4, 4] = aten.relu(@w)\n    ^r(%a : f32[4]) {\n      return (%a,)\n    }\n  return",
    )
    with pytest.raises(IRParseError, match=r"^bad\.ir:9:5: region \^r is never used by %c"):
        parse_program(text, filename="bad.ir")


def test_values_are_scoped_to_their_region():
    text = """symbol s0 : [2, 16]

graph @main(%x : f32[s0, 4]) {
  %size : int(s0) = aten.sym_size.int(%x, 0)
  %gt : bool(s0 > 4) = operator.gt(%size, 4)
  %cond : (f32[s0, 4],) = higher_order.cond(%gt, ^t, ^f, (%x,))
    ^t(%a : f32[s0, 4]) {
      %r : f32[s0, 4] = aten.relu(%x)
      return (%r,)
    }
    ^f(%a : f32[s0, 4]) {
      return (%a,)
    }
  %out : f32[s0, 4] = operator.getitem(%cond, 0)
  return (%out,)
}
"""
    with pytest.raises(IRParseError, match=r"^<string>:8:35: undefined value %x"):
        parse_program(text)
    fixed = text.replace("aten.relu(%x)", "aten.relu(%a)")
    assert print_program(parse_program(fixed)) == fixed


COND_TEXT = """symbol s0 : [2, 16]

graph @main(%x : f32[s0, 4]) {
  %size : int(s0) = aten.sym_size.int(%x, 0)
  %gt : bool(s0 > 4) = operator.gt(%size, 4)
  %cond : (f32[s0, 4],) = higher_order.cond(%gt, ^t, ^f, (%x,))
    ^t(%a : f32[s0, 4]) {
      return (%a,)
    }
    ^f(%a : f32[s0, 4]) {
      return (%a,)
    }
  %out : f32[s0, 4] = operator.getitem(%cond, 0)
  return (%out,)
}
"""


def test_branch_inputs_must_match_the_cond_operands():
    assert print_program(parse_program(COND_TEXT)) == COND_TEXT
    wrong_type = COND_TEXT.replace("^f(%a : f32[s0, 4])", "^f(%a : f32[4, 4])")
    with pytest.raises(
        IRParseError,
        match=r"^<string>:10:5: region \^f: input %a is f32\[4, 4\] but %cond passes f32\[s0, 4\]",
    ):
        parse_program(wrong_type)
    wrong_count = COND_TEXT.replace("^t(%a : f32[s0, 4])", "^t(%a : f32[s0, 4], %b : f32[4])")
    with pytest.raises(
        IRParseError, match=r"^<string>:7:5: region \^t takes 2 inputs but %cond passes 1"
    ):
        parse_program(wrong_count)
