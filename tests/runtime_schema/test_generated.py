"""The committed flatc module matches schema.fbs, and the hand-written parts match both."""

from __future__ import annotations

import enum
import importlib

import pytest
from rs_sample_programs import kitchen_sink, kitchen_sink_data

from runtime_schema import program as model
from runtime_schema.container import HEADER_SIZE
from runtime_schema.regenerate import GENERATED_DIR, generate_into, stale_files
from runtime_schema.writer import program_to_bytes


def test_committed_module_is_what_flatc_generates(tmp_path):
    fresh = generate_into(tmp_path)
    assert sorted(p.name for p in fresh.glob("*.py")), "flatc generated nothing"
    stale = stale_files(fresh, GENERATED_DIR)
    assert not stale, (
        f"runtime_schema/generated is stale ({stale}); run `python -m runtime_schema.regenerate`"
    )


def test_stale_check_can_fail(tmp_path):
    fresh = generate_into(tmp_path)
    (fresh / "Dim.py").write_text("# edited\n")
    assert stale_files(fresh, GENERATED_DIR) == ["Dim.py"]


ENUMS = ["DType", "QuantFormat", "OpKind", "KernelKind", "Backend", "CompareOp", "SymOp"]


@pytest.mark.parametrize("name", ENUMS)
def test_enums_mirror_the_schema(name):
    generated = getattr(importlib.import_module(f"runtime_schema.generated.{name}"), name)
    schema_members = {k: v for k, v in vars(generated).items() if not k.startswith("_")}
    ours: type[enum.IntEnum] = getattr(model, name)
    assert {m.name: m.value for m in ours} == schema_members


@pytest.mark.parametrize(
    ("union", "members"),
    [
        ("Node", model.INSTRUCTION_TYPES),
        ("ArgValue", model.ARG_VALUE_TYPES),
        ("ValueInfo", (model.TensorInfo, model.SymIntInfo)),
    ],
)
def test_union_members_mirror_the_schema(union, members):
    generated = getattr(importlib.import_module(f"runtime_schema.generated.{union}"), union)
    ids = {k: v for k, v in vars(generated).items() if not k.startswith("_") and k != "NONE"}
    assert ids == {cls.__name__: i + 1 for i, cls in enumerate(members)}


def test_generated_accessors_read_what_the_writer_wrote():
    """Reads a file with flatc's accessors: catches a writer/reader slot that drifted."""
    from runtime_schema.generated.Instruction import Instruction
    from runtime_schema.generated.KernelNode import KernelNode as FbKernelNode
    from runtime_schema.generated.Node import Node
    from runtime_schema.generated.Program import Program as FbProgram
    from runtime_schema.generated.TensorInfo import TensorInfo as FbTensorInfo

    program = kitchen_sink(kitchen_sink_data(seed=3))
    blob = program_to_bytes(program)
    root = FbProgram.GetRootAs(blob[HEADER_SIZE:], 0)
    assert root.ValuesLength() == len(program.values)
    assert root.MainChain() == program.main_chain
    assert [root.Inputs(i) for i in range(root.InputsLength())] == list(program.inputs)
    assert [root.Outputs(i) for i in range(root.OutputsLength())] == list(program.outputs)
    for i, value in enumerate(program.values):
        fb_value = root.Values(i)
        assert fb_value.Name().decode() == value.name
        if isinstance(value.info, model.TensorInfo):
            info = FbTensorInfo()
            table = fb_value.Info()
            info.Init(table.Bytes, table.Pos)
            assert info.Dtype() == value.info.dtype
            dims = [
                (info.Shape(k).Size(), info.Shape(k).Value()) for k in range(info.ShapeLength())
            ]
            assert dims == [(d.size, d.value) for d in value.info.shape]
    chain = root.Chains(program.main_chain)
    assert chain.InstructionsLength() == len(program.main.instructions)
    for k, node in enumerate(program.main.instructions):
        ins: Instruction = chain.Instructions(k)
        assert ins.NodeType() == model.INSTRUCTION_TYPES.index(type(node)) + 1
        if ins.NodeType() == Node.KernelNode:
            fb_kernel = FbKernelNode()
            table = ins.Node()
            fb_kernel.Init(table.Bytes, table.Pos)
            assert fb_kernel.Name().decode() == node.name
            assert fb_kernel.Kind() == node.kind and fb_kernel.Format() == node.format
            assert fb_kernel.Sources(0).Source().decode() == node.sources[0].source
            assert [fb_kernel.Inputs(j) for j in range(fb_kernel.InputsLength())] == list(
                node.inputs
            )
            assert fb_kernel.Args(0).Name().decode() == node.args[0].name
            assert fb_kernel.TemplateArgsLength() == len(node.template_args)
    assert root.ConstantsLength() == len(program.constants)
    assert root.Metadata(0).Key().decode() == "model"
