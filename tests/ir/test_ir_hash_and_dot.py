"""structural_hash sees structure, not names; to_dot is well-formed DOT."""

from __future__ import annotations

import re

import pytest
from ir_programs import PROGRAMS, cond_program

from compiler.ir.dot import quote, to_dot
from compiler.ir.parser import parse_program
from compiler.ir.printer import print_program, structural_hash

BASE = """symbol s0 : [2, 16]
const @w : f32[4, 4]

graph @main(%x : f32[s0, 4]) {
  %mm : f32[s0, 4] = aten.mm(%x, @w)
  %relu : f32[s0, 4] = aten.relu(%mm)
  %mul : f32[s0, 4] = aten.mul.Tensor(%relu, 2)
  return (%mul,)
}
"""


def _hash(text: str) -> str:
    return structural_hash(parse_program(text))


def test_hash_ignores_value_names():
    renamed = BASE.replace("%mm", "%first").replace("%relu", "%second").replace("%x", "%input_0")
    assert renamed != BASE
    assert _hash(renamed) == _hash(BASE)


def test_hash_ignores_region_names():
    gp = cond_program()
    text = print_program(gp)
    renamed = text.replace("true_graph_0", "few").replace("false_graph_0", "many")
    assert _hash(renamed) == structural_hash(gp)


@pytest.mark.parametrize(
    "old, new",
    [
        ("aten.relu(%mm)", "aten.gelu(%mm)"),  # op
        ("aten.mul.Tensor(%relu, 2)", "aten.mul.Tensor(%relu, 3)"),  # argument
        ("aten.mul.Tensor(%relu, 2)", "aten.mul.Tensor(%mm, 2)"),  # wiring
        ("aten.mul.Tensor(%relu, 2)", "aten.mul.Tensor(%relu, 2.0)"),  # int vs float
        ("symbol s0 : [2, 16]", "symbol s0 : [2, 17]"),  # symbol range
    ],
)
def test_hash_changes_when_structure_changes(old, new):
    assert old in BASE
    assert _hash(BASE.replace(old, new)) != _hash(BASE)


def test_hash_sees_constant_names_and_types():
    other_name = BASE.replace("@w", "@v")
    other_type = BASE.replace(
        "const @w : f32[4, 4]", "const @w : f32[4, 4]\nconst @unused : f32[2]"
    )
    assert len({_hash(BASE), _hash(other_name), _hash(other_type)}) == 3


def test_hash_is_stable_across_exports():
    assert structural_hash(cond_program()) == structural_hash(cond_program())


# ---- DOT ---------------------------------------------------------------------------------
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|->|[{}\[\];=,]|[A-Za-z_][A-Za-z0-9_]*|\s+')


def _dot_tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        assert match is not None, f"not DOT at {pos}: {text[pos : pos + 40]!r}"
        if not match.group(0).isspace():
            tokens.append(match.group(0))
        pos = match.end()
    return tokens


def check_dot(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """Tokenize and check the DOT structure: one digraph, balanced braces and brackets,
    every edge endpoint declared as a node.  Returns (nodes, edges)."""
    tokens = _dot_tokens(text)
    assert tokens[:2] == ["digraph", "program"] and tokens[2] == "{" and tokens[-1] == "}"
    depth = 0
    for token in tokens:
        depth += {"{": 1, "}": -1}.get(token, 0)
        assert depth >= 0
    assert depth == 0
    nodes, edges = set(), []
    for index, token in enumerate(tokens):
        if token.startswith('"') and tokens[index + 1] == "[" and tokens[index - 1] != "->":
            nodes.add(token)
        if token == "->":
            edges.append((tokens[index - 1], tokens[index + 1]))
    for source, target in edges:
        assert source in nodes and target in nodes, (source, target)
    return nodes, edges


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_dot_is_well_formed(name):
    gp = PROGRAMS[name]()
    nodes, edges = check_dot(to_dot(gp))
    drawn = [n for n in gp.graph.nodes if n.op != "get_attr"]
    assert len(nodes) >= len(drawn) + len(gp.constant_names())
    assert edges


def test_dot_labels_are_escaped():
    text = BASE.replace("@w", '@"odd name {x}"')
    parsed = parse_program(text)
    assert print_program(parsed) == text
    dot = to_dot(parsed)
    check_dot(dot)
    assert '"@\\"odd name {x}\\" : f32[4, 4]"' in dot
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_dot_draws_regions_as_clusters():
    dot = to_dot(cond_program())
    assert dot.count('subgraph "cluster_') == 2
    assert "^true_graph_0 of %cond" in dot and 'style="dashed"' in dot
    assert "f32[s0, 8]" in dot  # symbols named as in the text dump


def test_shared_regions_are_drawn_once():
    from ir_programs import INPUTS_DIR

    parsed = parse_program((INPUTS_DIR / "cond_shared_regions.ir").read_text())
    dot = to_dot(parsed)
    check_dot(dot)
    assert dot.count('subgraph "cluster_') == 2
