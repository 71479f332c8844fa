"""save -> load -> run: the program comes back equal and computes what the ops compute."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from rs_sample_programs import (
    HIDDEN,
    VOCAB,
    kitchen_sink,
    kitchen_sink_data,
    kitchen_sink_reference,
)

import runtime_schema
from runtime_schema import (
    ProgramFormatError,
    load_program,
    load_program_bytes,
    program_to_bytes,
    run_program,
    save_program,
)
from runtime_schema.builder import ProgramBuilder
from runtime_schema.container import HEADER_SIZE, SEGMENT_ALIGNMENT
from runtime_schema.program import (
    Argument,
    AtenNode,
    Backend,
    Dim,
    DType,
    GgufSlice,
    IntValue,
    KernelKind,
    KernelNode,
    KernelSource,
    OpKind,
    QuantFormat,
    TensorMap,
    TensorRef,
)
from runtime_schema.synthetic import layered_program


@pytest.fixture
def data():
    return kitchen_sink_data()


def test_public_names():
    assert runtime_schema.ProgramFormatError is __import__("compiler").errors.ProgramFormatError
    for name in ("save_program", "load_program", "run_program", "load_program_bytes"):
        assert callable(getattr(runtime_schema, name))


@pytest.mark.parametrize("m", [1, 2, 8, 9, 37])
def test_round_trip_runs_like_the_ops(tmp_path, data, m):
    program = kitchen_sink(data)
    path = tmp_path / "sink.ggufc"
    save_program(program, path)
    loaded = load_program(path)
    assert loaded.program == program
    x = torch.randn(m, HIDDEN)
    tokens = torch.randint(0, VOCAB, (m,))
    expected = kitchen_sink_reference(data, x, tokens)
    for got in (run_program(loaded, [x, tokens]), run_program(program, {"x": x, "tokens": tokens})):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.dtype == e.dtype and g.shape == e.shape
            torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_synthetic_model_round_trip(tmp_path):
    vocab = 64
    program = layered_program(2, hidden=256, ffn=256, vocab=vocab)
    path = tmp_path / "syn.ggufc"
    save_program(program, path)
    loaded = load_program(path)
    assert loaded.program == program
    for m in (1, 5, 12):  # one M per bucket
        tokens = torch.randint(0, vocab, (m,))
        (a,) = run_program(program, [tokens])
        (b,) = run_program(loaded, [tokens])
        assert a.shape == (m, vocab) and torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _kernel_program(copies: int, source_text: str, dependent_launch: bool = False):
    b = ProgramBuilder()
    blocks = torch.zeros(4, 34, dtype=torch.uint8)
    w = b.constant("w", blocks)
    x = b.input("x", DType.FLOAT32, [1, 32])
    for i in range(copies):
        y = b.tensor(f"y{i}", DType.FLOAT32, [1, 4])
        b.emit(
            b.main,
            KernelNode(
                name=f"layer{i}",
                format=QuantFormat.Q8_0,
                op=OpKind.LINEAR,
                kind=KernelKind.MATVEC,
                sources=(
                    KernelSource(
                        Backend.CUDA, "k", source_text, "// shared header\n", dependent_launch
                    ),
                ),
                inputs=(x, w),
                outputs=(y,),
                args=(Argument(IntValue(4), "n"), Argument(IntValue(32), "k")),
            ),
        )
    return b.build(outputs=[y])


def test_kernel_source_stored_once():
    source = "/* kernel body */ " + "x" * 5000 + " MARKER_7f3a"
    program = _kernel_program(40, source)
    blob = program_to_bytes(program)
    assert blob.count(source.encode()) == 1
    assert blob.count(b"// shared header\n") == 1
    loaded = load_program_bytes(blob)
    texts = [n.sources[0].source for n in loaded.program.main.instructions]
    assert all(t is texts[0] for t in texts)  # one str object per unique string
    stats = loaded.strings
    assert stats.kernel_references == 80 and stats.kernel_unique == 2


@pytest.mark.parametrize("dependent_launch", [False, True])
def test_dependent_launch_mark_round_trips(dependent_launch):
    program = _kernel_program(2, "/* kernel */", dependent_launch)
    loaded = load_program_bytes(program_to_bytes(program)).program
    assert loaded == program
    assert {n.sources[0].dependent_launch for n in loaded.main.instructions} == {dependent_launch}


def _with_source(program, source: KernelSource):
    """``program`` (one kernel node, `_kernel_program(1, ...)`) with that node's source."""
    import dataclasses

    (node,) = program.main.instructions
    bad = dataclasses.replace(node, sources=(source,))
    chain = dataclasses.replace(program.main, instructions=(bad,))
    chains = tuple(chain if c is program.main else c for c in program.chains)
    return dataclasses.replace(program, chains=chains)


def test_tensor_maps_round_trip():
    program = _kernel_program(1, "/* kernel */")
    maps = (
        TensorMap(tensor=0, box_inner=64, box_rows=256),
        TensorMap(1, 176, 128, swizzle=0, optional=True),
        TensorMap(1, 136, 16, swizzle=0, optional=True, element_bytes=2),
    )
    mapped = _with_source(
        program, KernelSource(Backend.CUDA, "k", "/* kernel */", tensor_maps=maps)
    )
    loaded = load_program_bytes(program_to_bytes(mapped)).program
    assert loaded == mapped
    assert loaded.main.instructions[0].sources[0].tensor_maps == maps
    # a source without maps reads back with none
    assert load_program_bytes(program_to_bytes(program)).program == program


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            KernelSource(Backend.METAL, "k", "", tensor_maps=(TensorMap(0, 64, 128),)),
            "only CUDA kernels take tensor maps",
        ),
        (
            KernelSource(Backend.CUDA, "k", "", tensor_maps=(TensorMap(3, 64, 128),)),
            r"tensor_maps\[0\].tensor: 3 is not one of the node's 3 tensors",
        ),
        (
            KernelSource(Backend.CUDA, "k", "", tensor_maps=(TensorMap(0, 64, 257),)),
            r"tensor_maps\[0\].box_rows: 257, expected 1 to 256",
        ),
        (
            KernelSource(Backend.CUDA, "k", "", tensor_maps=(TensorMap(0, 0, 128),)),
            r"box_inner: 0, expected 1 to 256",
        ),
        (
            KernelSource(Backend.CUDA, "k", "", tensor_maps=(TensorMap(0, 64, 128, swizzle=64),)),
            r"tensor_maps\[0\]: swizzle 64 \(expected one of \(0, 128\)\)",
        ),
        (
            KernelSource(
                Backend.CUDA, "k", "", tensor_maps=(TensorMap(1, 136, 16, element_bytes=3),)
            ),
            r"tensor_maps\[0\].element_bytes: 3, expected one of \(1, 2, 4\)",
        ),
    ],
)
def test_bad_tensor_maps_are_refused(source, message):
    program = _with_source(_kernel_program(1, "/* kernel */"), source)
    with pytest.raises(ProgramFormatError, match=message):
        program_to_bytes(program)


def test_dependent_launch_mark_only_on_cuda_sources():
    metal = KernelSource(Backend.METAL, "k", "/* kernel */", dependent_launch=True)
    program = _with_source(_kernel_program(1, "/* kernel */"), metal)
    with pytest.raises(ProgramFormatError, match="dependent_launch: only CUDA"):
        program_to_bytes(program)


def test_uninterned_writer_repeats_the_source():
    """The counter-test: without interning, the source is stored once per kernel."""
    from runtime_schema.writer import encode_program

    source = "/* kernel body */ " + "y" * 3000
    program = _kernel_program(12, source)
    plain = encode_program(program, intern_strings=False).flatbuffer
    interned = encode_program(program).flatbuffer
    assert plain.count(source.encode()) == 12
    assert interned.count(source.encode()) == 1


def test_whole_model_sources_interned():
    program = layered_program(4)
    blob = program_to_bytes(program)
    seen = set()
    for node in program.instructions():
        if isinstance(node, KernelNode):
            for s in node.sources:
                seen.add(s.source)
                seen.add(s.header)
    for text in seen:
        assert blob.count(text.encode()) == 1


def test_constants_deduplicated_aligned_and_zero_copy(tmp_path, data):
    program = kitchen_sink(data)
    path = tmp_path / "p.ggufc"
    save_program(program, path)
    loaded = load_program(path)
    raw = path.read_bytes()
    assert raw.count(data.w1.numpy().tobytes()) == 1  # w1 and its tied copy: stored once
    by_name = {loaded.program.values[c.value].name: c for c in loaded.program.constants}
    assert by_name["w1"].data.data_ptr() == by_name["w1_tied"].data.data_ptr()
    header = loaded.header
    for index, offset, size in loaded.segment_constants:
        constant = loaded.program.constants[index]
        assert offset % SEGMENT_ALIGNMENT == 0
        assert (header.segment_offset + offset) % SEGMENT_ALIGNMENT == 0
        # zero-copy: the tensor's memory is the mapped file at the constant's place
        assert constant.data.data_ptr() == loaded.segment_address + offset
        assert constant.data.data_ptr() % SEGMENT_ALIGNMENT == 0
        assert raw[header.segment_offset + offset :][:size] == constant.data.numpy().tobytes()
    torch.testing.assert_close(by_name["bias"].data, data.bias, rtol=0, atol=0)


def _external_setup(tmp_path, gen_bytes=4096):
    gguf = tmp_path / "model.gguf"
    payload = np.random.default_rng().integers(0, 256, gen_bytes, dtype=np.uint8)
    gguf.write_bytes(b"GGUF" + payload.tobytes())
    b = ProgramBuilder()
    offset, size = 4 + 64, 32 * 34  # a Q8_0 [32, 32] weight inside the file
    w = b.constant(
        "w",
        source=GgufSlice(str(gguf), offset, size),
        dtype=DType.UINT8,
        shape=(32, 34),
    )
    x = b.input("x", DType.FLOAT32, [2, 32])
    wd = b.tensor("wd", DType.FLOAT32, [32, 32])
    y = b.tensor("y", DType.FLOAT32, [2, 32])
    b.emit(
        b.main,
        KernelNode(
            name="deq",
            format=QuantFormat.Q8_0,
            op=OpKind.DEQUANTIZE,
            kind=KernelKind.DEQUANTIZE,
            sources=(),
            inputs=(w,),
            outputs=(wd,),
            args=(Argument(IntValue(32), "n"), Argument(IntValue(32), "k")),
        ),
    )
    b.emit(b.main, AtenNode("aten::mm", (Argument(TensorRef(x)), Argument(TensorRef(wd))), (y,)))
    return gguf, b.build(outputs=[y]), offset, size


def test_external_weights_reference_the_gguf(tmp_path):
    gguf, program, offset, size = _external_setup(tmp_path)
    # make the external bytes valid Q8_0 blocks (finite scales) so the program can run
    from compiler import formats

    raw = bytearray(gguf.read_bytes())
    raw[offset : offset + size] = formats.random_blocks("Q8_0", 32, 32).numpy().tobytes()
    gguf.write_bytes(bytes(raw))
    path = tmp_path / "ext.ggufc"
    save_program(program, path, weights="external")
    embedded = tmp_path / "emb.ggufc"
    save_program(program, embedded, weights="embed")
    assert path.stat().st_size < embedded.stat().st_size
    assert raw[offset : offset + size] not in path.read_bytes()
    loaded = load_program(path)
    constant = loaded.program.constants[0]
    assert constant.source is not None and constant.source.offset == offset
    assert constant.data.numpy().tobytes() == bytes(raw[offset : offset + size])
    x = torch.randn(2, 32)
    (a,) = run_program(loaded, [x])
    (b,) = run_program(load_program(embedded), [x])
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_external_gguf_with_other_digest_is_refused(tmp_path):
    gguf, program, _, _ = _external_setup(tmp_path)
    path = tmp_path / "ext.ggufc"
    save_program(program, path, weights="external")
    raw = bytearray(gguf.read_bytes())
    raw[-1] ^= 0xFF  # same size, other bytes
    gguf.write_bytes(bytes(raw))
    with pytest.raises(ProgramFormatError, match="SHA-256"):
        load_program(path)
    gguf.write_bytes(bytes(raw[:-1]))
    with pytest.raises(ProgramFormatError, match="bytes, the program was built against"):
        load_program(path)
    gguf.unlink()
    with pytest.raises(ProgramFormatError, match="not found"):
        load_program(path)


def test_external_gguf_found_through_gguf_paths(tmp_path):
    gguf, program, _, _ = _external_setup(tmp_path)
    path = tmp_path / "ext.ggufc"
    save_program(program, path, weights="external")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    os.replace(gguf, moved / "model.gguf")
    with pytest.raises(ProgramFormatError, match="not found"):
        load_program(path)
    loaded = load_program(path, gguf_paths={"model.gguf": moved / "model.gguf"})
    assert loaded.external_files == (str(moved / "model.gguf"),)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch, data):
    from runtime_schema import writer

    program = kitchen_sink(data)
    target = tmp_path / "p.ggufc"

    def broken(f, blobs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(writer, "_write_segment", broken)
    with pytest.raises(OSError, match="disk full"):
        save_program(program, target)
    assert list(tmp_path.iterdir()) == []
    # an existing file is not replaced by a failed write
    monkeypatch.undo()
    save_program(program, target)
    before = target.read_bytes()
    monkeypatch.setattr(writer, "_write_segment", broken)
    with pytest.raises(OSError):
        save_program(program, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.ggufc"]


def test_header_layout(data):
    blob = program_to_bytes(kitchen_sink(data))
    assert blob[:8] == b"GGUFCPRG"
    assert blob[HEADER_SIZE + 4 : HEADER_SIZE + 8] == b"GGPF"  # flatbuffer file identifier


def test_invalid_program_refused_at_save(tmp_path):
    b = ProgramBuilder()
    x = b.input("x", DType.FLOAT32, [2])
    y = b.tensor("y", DType.FLOAT32, [2])
    b.emit(b.main, AtenNode("os::system", (Argument(TensorRef(x)),), (y,)))
    program = b.build(outputs=[y], validate=False)
    with pytest.raises(ProgramFormatError, match="allow-list"):
        save_program(program, tmp_path / "bad.ggufc")
    assert not (tmp_path / "bad.ggufc").exists()


def test_symbolic_dim_must_name_a_symint():
    b = ProgramBuilder()
    x = b.input("x", DType.FLOAT32, [Dim.symbolic(0)])  # value 0 is x itself, a tensor
    with pytest.raises(ProgramFormatError, match="must be a SymInt"):
        b.build(outputs=[x])


def test_damaged_files_on_disk_are_refused(tmp_path, data):
    path = tmp_path / "p.ggufc"
    save_program(kitchen_sink(data), path)
    raw = path.read_bytes()
    for damaged, message in [
        (raw[: len(raw) - 1], "header says the file is"),
        (raw[:10], "shorter than the 64-byte header"),
        (b"", "empty file"),
        (b"NOTAPROG" + raw[8:], "header.magic"),
    ]:
        path.write_bytes(damaged)
        with pytest.raises(ProgramFormatError, match=message):
            load_program(path)
    with pytest.raises(ProgramFormatError, match="cannot open"):
        load_program(tmp_path / "missing.ggufc")
