"""Files written by gguf.GGUFWriter read back exactly: every supported format, metadata types."""

from __future__ import annotations

import math

import gguf
import numpy as np
import pytest
import torch
from gguf_file_builders import (
    LONG_ARRAY_LEN,
    QUANT_NAMES,
    assemble,
    f32_tensor_file,
    float_tensor,
    random_blocks,
    scalar_kv,
    small_tensors,
    string_kv,
    tensor_info,
    write_with_gguf_writer,
)

from compiler import formats, open_gguf
from compiler.errors import GgufFileError, UnsupportedError
from compiler.gguf_file import LazyScalarArray, LazyStringArray

ROWS = 3
BLOCKS_PER_ROW = 2


def _round_trip_tensors(rng: np.random.Generator) -> dict[str, tuple[str, np.ndarray]]:
    tensors: dict[str, tuple[str, np.ndarray]] = {}
    for fmt in QUANT_NAMES:
        row_weights = BLOCKS_PER_ROW * formats.FORMATS[fmt].block_weights
        tensors[f"{fmt.lower()}.weight"] = (fmt, random_blocks(fmt, ROWS, row_weights, rng))
    # a 3-D block tensor: GGUF ne = (256, 3, 2), viewed as 6 rows of blocks
    tensors["experts.weight"] = ("Q6_K", random_blocks("Q6_K", 6, 256, rng).reshape(2, 3, -1))
    tensors["f32.weight"] = ("F32", float_tensor("F32", (ROWS, 40), rng))
    tensors["f32.bias"] = ("F32", float_tensor("F32", (7,), rng))
    tensors["f16.weight"] = ("F16", float_tensor("F16", (2, 3, 5), rng))
    tensors["bf16.weight"] = ("BF16", float_tensor("BF16", (ROWS, 8), rng))
    return tensors


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    rng = np.random.default_rng(1234)
    tensors = _round_trip_tensors(rng)
    path = write_with_gguf_writer(tmp_path_factory.mktemp("synthetic") / "all.gguf", tensors)
    return path, tensors


def test_every_format_reads_back_exactly(written):
    path, tensors = written
    reader = gguf.GGUFReader(path)
    with open_gguf(path) as gguf_file:
        assert list(gguf_file.tensors) == list(tensors)
        for ref in reader.tensors:
            tensor = gguf_file.tensors[ref.name]
            fmt, array = tensors[ref.name]
            assert tensor.format == fmt
            assert tensor.offset == ref.data_offset
            assert tensor.offset % gguf_file.alignment == 0
            assert tensor.nbytes == array.nbytes
            data = tensor.data
            if fmt in QUANT_NAMES:
                spec = formats.FORMATS[fmt]
                weights_per_row = array.shape[-1] // spec.block_bytes * spec.block_weights
                assert tensor.shape == (*array.shape[:-1], weights_per_row)
                assert tuple(data.shape) == (math.prod(array.shape[:-1]), array.shape[-1])
                assert np.array_equal(data.numpy(), array.reshape(data.shape))
                ours = formats.dequantize(data, fmt).numpy()
                reference = gguf.quants.dequantize(data.numpy(), gguf.GGMLQuantizationType[fmt])
                assert np.array_equal(ours.view(np.int32), reference.view(np.int32)), fmt
            elif fmt == "BF16":
                assert tensor.shape == array.shape and data.dtype == torch.bfloat16
                assert np.array_equal(data.view(torch.int16).numpy().view(np.uint16), array)
            else:
                assert tensor.shape == array.shape
                assert data.dtype == {"F32": torch.float32, "F16": torch.float16}[fmt]
                assert np.array_equal(data.numpy(), array)
        gguf_file.check_tensors()


def test_metadata_reads_back(written):
    path, _ = written
    with open_gguf(path) as gguf_file:
        metadata = gguf_file.metadata
        assert gguf_file.architecture == "testarch"
        assert metadata["general.name"] == "tiny test model"
        assert metadata["testarch.block_count"] == 2
        assert metadata["testarch.rope.freq_base"] == np.float32(10000.5)
        assert metadata["testarch.flag"] is True
        assert metadata["testarch.negative"] == -5
        assert metadata["testarch.precise"] == 0.1
        assert metadata["testarch.short"] == (1, 2, 3)
        assert metadata["general.tags"] == ("a", "bé", "c")
        tokens = metadata["tokenizer.ggml.tokens"]
        assert isinstance(tokens, LazyStringArray)
        assert tokens == [f"tok{i}é" for i in range(LONG_ARRAY_LEN)]
        assert tokens[-1] == f"tok{LONG_ARRAY_LEN - 1}é" and tokens[5:7] == ["tok5é", "tok6é"]
        scores = metadata["tokenizer.ggml.scores"]
        assert isinstance(scores, LazyScalarArray)
        assert list(scores) == [i * 0.5 for i in range(LONG_ARRAY_LEN)]
        assert scores[-2] == (LONG_ARRAY_LEN - 2) * 0.5
        token_types = metadata["tokenizer.ggml.token_type"]
        assert list(token_types) == [i % 7 - 3 for i in range(LONG_ARRAY_LEN)]
        assert gguf_file.value_types["tokenizer.ggml.token_type"] == "array[int32]"
        assert gguf_file.value_types["testarch.flag"] == "bool"
        with pytest.raises(IndexError):
            tokens[LONG_ARRAY_LEN]


def test_version_2_and_custom_alignment(tmp_path):
    data = np.arange(8, dtype="<f4").tobytes()
    path = tmp_path / "v2.gguf"
    alignment = 128
    path.write_bytes(
        assemble(
            [
                string_kv("general.architecture", "x"),
                scalar_kv("general.alignment", "uint32", alignment),
            ],
            [tensor_info("w", (8,), "F32", 0)],
            data,
            version=2,
            alignment=alignment,
        )
    )
    with open_gguf(path) as gguf_file:
        assert gguf_file.version == 2 and gguf_file.alignment == alignment
        assert gguf_file.tensors["w"].offset % alignment == 0
        assert gguf_file.tensors["w"].data.tolist() == list(range(8))


def test_other_ggml_types_are_listed_but_not_readable(tmp_path):
    path = tmp_path / "q4_1.gguf"
    q4_1 = gguf.GGMLQuantizationType.Q4_1
    block_weights, block_bytes = gguf.GGML_QUANT_SIZES[q4_1]
    path.write_bytes(
        assemble(
            [string_kv("general.architecture", "x")],
            [tensor_info("odd.weight", (block_weights, 2), "Q4_1", 0)],
            bytes(2 * block_bytes),
        )
    )
    with open_gguf(path) as gguf_file:
        tensor = gguf_file.tensors["odd.weight"]
        assert tensor.format == "Q4_1" and tensor.nbytes == 2 * block_bytes
        assert not tensor.supported
        with pytest.raises(UnsupportedError, match=r"'odd.weight'.*Q4_1.*Q4_0, Q5_0, Q8_0"):
            _ = tensor.data
        gguf_file.check_tensors()  # skips what it cannot read


def test_file_without_tensors(tmp_path):
    path = tmp_path / "empty.gguf"
    path.write_bytes(assemble([string_kv("general.architecture", "x")], []))
    with open_gguf(path) as gguf_file:
        assert dict(gguf_file.tensors) == {} and gguf_file.architecture == "x"


@pytest.mark.parametrize(("fmt", "ne"), [("Q8_0", (0, 3)), ("Q8_0", (32, 0)), ("F32", (4, 0))])
def test_zero_sized_tensors(tmp_path, fmt, ne):
    path = tmp_path / "zero.gguf"
    path.write_bytes(
        assemble([string_kv("general.architecture", "x")], [tensor_info("z", ne, fmt, 0)])
    )
    with open_gguf(path) as gguf_file:
        tensor = gguf_file.tensors["z"]
        assert tensor.nbytes == 0 and tensor.shape == tuple(reversed(ne))
        assert tensor.data.numel() == 0
        tensor.check()


def test_writes_to_views_never_reach_the_file(tmp_path):
    path = tmp_path / "w.gguf"
    original = f32_tensor_file()
    path.write_bytes(original)
    with open_gguf(path) as gguf_file:
        gguf_file.tensors["w"].data.fill_(7.0)
    assert path.read_bytes() == original


def test_small_writer_file_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    tensors = small_tensors(rng)
    path = write_with_gguf_writer(tmp_path / "small.gguf", tensors, metadata=False)
    with open_gguf(path) as gguf_file:
        for name, (_, array) in tensors.items():
            data = gguf_file.tensors[name].data.numpy()
            assert np.array_equal(data.reshape(array.shape), array)


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(GgufFileError, match="no such file"):
        open_gguf(tmp_path / "missing.gguf")
    with pytest.raises(GgufFileError, match="directory"):
        open_gguf(tmp_path)
