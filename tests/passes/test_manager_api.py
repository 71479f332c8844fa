"""The PassManager's Python API: every instrumentation switch, failures, and the
documented example in README.md's "Writing a pass" (run here so it cannot go stale)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import torch

from compiler.errors import PassError, VerificationError
from compiler.ir.parser import parse_program
from compiler.ir.printer import print_program
from compiler.ir.program import GraphProgram
from passes import PassManager, parse_pipeline
from passes.instrumentation.base import PassInstrumentation
from passes.instrumentation.reproducer import read_reproducer
from passes.registry import load_pass_class, unregister_pass

HERE = Path(__file__).parent
DOC = HERE.parents[1] / "README.md"

PROGRAM = """
symbol s0 : [2, 64]
const @w : f32[8, 8]

graph @main(%x : f32[s0, 8]) {
  %a : f32[s0, 8] = aten.mm(%x, @w)
  %b : f32[s0, 8] = aten.mm(%x, @w)
  %c : f32[s0, 8] = aten.add.Tensor(%a, %b)
  %d : f32[s0, 8] = aten.mul.Tensor(%c, 1)
  %dead : f32[s0, 8] = aten.exp(%x)
  %out : f32[s0, 8] = aten.relu(%d)
  return (%out,)
}
"""


@pytest.fixture
def broken():
    """The deliberately broken passes, loaded the way `--load-pass FILE:CLASS` loads them
    (so in-process .ir tests and these tests share one module)."""
    names = ["TurnAddIntoSub", "Crash", "DropMeta"]
    classes = [load_pass_class(f"{HERE / 'broken_passes.py'}:{name}") for name in names]
    yield classes
    for cls in classes:
        unregister_pass(cls.name)


def program():
    return parse_program(PROGRAM)


def test_run_edits_in_place_and_returns_the_program():
    p = program()
    assert PassManager("canonicalize,cse,dce").run(p) is p
    assert [n.name for n in p.graph.nodes if n.op == "call_function"] == ["a", "c", "out"]


def test_print_ir_switches():
    stream = io.StringIO()
    PassManager("cse,dce", print_ir_before=["dce"], print_ir_after_all=True, stream=stream).run(
        program()
    )
    headers = re.findall(r"// ----- IR (.*) ----- //", stream.getvalue())
    assert headers == [
        "after cse (pass 1 of 2)",
        "before dce (pass 2 of 2)",
        "after dce (pass 2 of 2)",
    ]


def test_print_ir_after_change_skips_unchanged_passes():
    stream = io.StringIO()
    PassManager("dce,dce,cse,cse", print_ir_after_change=True, stream=stream).run(program())
    headers = re.findall(r"// ----- IR (.*) ----- //", stream.getvalue())
    assert headers == ["after dce (pass 1 of 4)", "after cse (pass 3 of 4)"]


def test_dump_dir_files_parse_back(tmp_path):
    PassManager("canonicalize,cse", dump_dir=tmp_path).run(program())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "00-input.dot",
        "00-input.ir",
        "01-canonicalize.dot",
        "01-canonicalize.ir",
        "02-cse.dot",
        "02-cse.ir",
    ]
    for ir in tmp_path.glob("*.ir"):
        text = ir.read_text()
        assert print_program(parse_program(text)) == text


def test_timing_and_statistics_reports():
    stream = io.StringIO()
    manager = PassManager(
        "canonicalize,cse,dce", time_passes=True, pass_statistics=True, stream=stream
    )
    manager.run(program())
    assert [t.pass_name for t in manager.timing.times] == ["canonicalize", "cse", "dce"]
    assert all(t.wall >= 0 and t.cpu >= 0 for t in manager.timing.times)
    stats = {s.pass_name: s for _, s in manager.statistics.passes}
    assert stats["canonicalize"].patterns["fold-mul-one"].rewrites == 1
    assert stats["canonicalize"].erased == 2  # %d folded, %dead erased
    assert stats["cse"].erased == 1 and stats["cse"].counters == {"merged-nodes": 1}
    assert "pass execution times" in stream.getvalue()
    assert "pass statistics" in stream.getvalue()


def test_verify_numerics_names_the_pass_and_node(broken):
    with pytest.raises(PassError) as info:
        PassManager("cse,test-add-to-sub", verify_numerics=True, stream=io.StringIO()).run(
            program()
        )
    message = str(info.value)
    assert "pass 'test-add-to-sub' (#2)" in message
    assert "first differing node: %d" in message and "computed from new node %sub" in message
    # Without the switch the broken pass goes through: the IR is valid.
    PassManager("test-add-to-sub").run(program())


def test_verification_failure_names_pass_and_node(broken):
    with pytest.raises(VerificationError, match=r"after pass 'test-drop-meta' \(#1\): node %a"):
        PassManager("test-drop-meta").run(program())
    PassManager("test-drop-meta", verify=False).run(program())


def test_crash_becomes_pass_error_with_reproducer(broken, tmp_path):
    failures = []

    class Watch(PassInstrumentation):
        def after_pass_failed(self, index, pass_, program, error):
            failures.append((index, pass_.name))

    manager = PassManager(
        "cse,test-crash{message=bad},dce", reproducer_dir=tmp_path, stream=io.StringIO()
    )
    manager.add_instrumentation(Watch())
    with pytest.raises(PassError, match=r"pass 'test-crash' \(#2\) failed: RuntimeError: bad"):
        manager.run(program())
    assert failures == [(2, "test-crash")]
    reproducer = read_reproducer(manager.reproducer.written)
    assert reproducer.pipeline == "test-crash{message=bad},dce"
    replayed = parse_program(reproducer.program_text)
    assert [n.name for n in replayed.graph.nodes if n.op == "call_function"].count("b") == 0
    with pytest.raises(PassError, match=r"pass 'test-crash' \(#1\) failed"):
        PassManager(reproducer.pipeline).run(replayed)


def test_pipeline_objects_and_pass_instances_are_accepted():
    from passes.canonicalize import Canonicalize

    manager = PassManager([Canonicalize(max_iterations=1)])
    assert manager.pipeline == parse_pipeline("canonicalize{max-iterations=1}")


def test_writing_a_pass_example_runs(capsys):
    section = DOC.read_text(encoding="utf-8").split("## Writing a pass", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    import sys
    import types

    # A real module: dataclasses look up the defining module of the class.
    module = types.ModuleType("writing_a_pass_example")
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, str(DOC), "exec"), module.__dict__)  # noqa: S102 -- the doc example
    finally:
        unregister_pass("fold-negations")
        del sys.modules[module.__name__]
    printed = capsys.readouterr().out
    assert "aten.exp(%x)" in printed and "neg" not in printed


def test_failure_dump_and_constant_cleanup(broken, tmp_path):
    p = program()
    with pytest.raises(PassError):
        PassManager("dce,test-crash", dump_dir=tmp_path).run(p)
    assert (tmp_path / "02-test-crash.failed.ir").is_file()
    assert not (tmp_path / "02-test-crash.ir").exists()
    # Erasing the last reader of a constant deletes the constant itself.
    unused = parse_program(
        PROGRAM.replace("%dead : f32[s0, 8] = aten.exp(%x)", "%dead : f32[8, 8] = aten.exp(@w)")
        .replace("aten.mm(%x, @w)", "aten.mm(%x, @v)")
        .replace("const @w : f32[8, 8]", "const @w : f32[8, 8]\nconst @v : f32[8, 8]")
    )
    assert hasattr(unused.graph_module, "w")
    PassManager("dce").run(unused)
    assert not hasattr(unused.graph_module, "w") and hasattr(unused.graph_module, "v")


def test_program_runs_the_rewritten_graph_after_the_pipeline():
    """The module's generated forward is recompiled, not left describing the input graph."""

    class Model(torch.nn.Module):
        def forward(self, x):
            return (x.reshape(x.shape) * 1.0).permute(1, 0).permute(1, 0)

    program = GraphProgram.from_module(Model(), (torch.randn(4, 8),))
    assert "permute" in program.graph_module.code
    PassManager("canonicalize,dce").run(program)
    x = torch.randn(4, 8)
    torch.testing.assert_close(program(x)[0], x)
    assert "permute" not in program.graph_module.code
