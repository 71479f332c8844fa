"""The reader on the real Gemma 3 270M Q4_K_M file, checked against gguf.GGUFReader."""

from __future__ import annotations

import collections
import random

import gguf
import numpy as np
import pytest
import torch

from compiler import formats, open_gguf
from compiler.gguf_file import LazyScalarArray, LazyStringArray

EXPECTED_FORMAT_COUNTS = {"F32": 109, "Q5_0": 81, "Q4_K": 27, "Q8_0": 10, "Q6_K": 9}
EXPECTED_TENSOR_COUNT = 236
VOCAB_SIZE = 262144
# reader fields that describe the header itself, not metadata entries
READER_HEADER_FIELDS = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")
# rows dequantized at a time, to bound the float32 temporaries of the 262144-row embedding
DEQUANT_CHUNK_ROWS = 1 << 15
SAMPLED_TOKENS = 200


def test_header_facts(gemma):
    assert gemma.version == 3
    assert gemma.alignment == gguf.GGUF_DEFAULT_ALIGNMENT
    assert gemma.architecture == "gemma3"
    assert len(gemma.tensors) == EXPECTED_TENSOR_COUNT
    counts = collections.Counter(t.format for t in gemma.tensors.values())
    assert dict(counts) == EXPECTED_FORMAT_COUNTS
    assert gemma.tensors["token_embd.weight"].shape == (VOCAB_SIZE, 640)


def test_metadata_equals_gguf_reader(gemma, gemma_reader):
    reference = {k: f for k, f in gemma_reader.fields.items() if k not in READER_HEADER_FIELDS}
    assert list(gemma.metadata) == list(reference)
    for key, field in reference.items():
        ours = gemma.metadata[key]
        expected_type = field.types[0].name.lower()
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            expected_type = f"array[{field.types[-1].name.lower()}]"
            assert list(ours) == field.contents(), key
        else:
            assert ours == field.contents(), key
            assert type(ours) is type(field.contents()), key
        assert gemma.value_types[key] == expected_type, key


def test_tensor_infos_and_bytes_equal_gguf_reader(gemma, gemma_reader):
    assert list(gemma.tensors) == [t.name for t in gemma_reader.tensors]
    for ref in gemma_reader.tensors:
        ours = gemma.tensors[ref.name]
        assert ours.format == ref.tensor_type.name
        assert ours.shape == tuple(reversed(ref.shape.tolist()))
        assert ours.offset == ref.data_offset
        assert ours.nbytes == ref.n_bytes
        assert ours.n_elements == ref.n_elements
        data = ours.data
        if ours.is_quantized:
            assert data.dtype == torch.uint8
            assert tuple(data.shape) == ref.data.shape
        else:
            assert data.dtype == torch.float32
            assert tuple(data.shape) == ours.shape
        ours_bytes = data.numpy().view(np.uint8).reshape(-1)
        assert np.array_equal(ours_bytes, ref.data.view(np.uint8).reshape(-1)), ref.name


def test_tensor_data_is_a_view_of_one_mapping(gemma):
    first, second = gemma.tensors["token_embd.weight"], gemma.tensors["output_norm.weight"]
    assert second.data.data_ptr() - first.data.data_ptr() == second.offset - first.offset


def test_tokenizer_arrays_are_lazy(gemma_path, gemma_reader, monkeypatch):
    decoded: list[int] = []
    original = LazyStringArray._decode

    def counting_decode(self, buffer, position):
        decoded.append(position)
        return original(self, buffer, position)

    monkeypatch.setattr(LazyStringArray, "_decode", counting_decode)
    with open_gguf(gemma_path) as gguf_file:
        tokens = gguf_file.metadata["tokenizer.ggml.tokens"]
        scores = gguf_file.metadata["tokenizer.ggml.scores"]
        token_types = gguf_file.metadata["tokenizer.ggml.token_type"]
        assert decoded == []  # opening decoded no token
        assert isinstance(tokens, LazyStringArray)
        assert isinstance(scores, LazyScalarArray) and isinstance(token_types, LazyScalarArray)
        assert len(tokens) == len(scores) == len(token_types) == VOCAB_SIZE
        assert decoded == []
        assert tokens[:3] == ["<pad>", "<eos>", "<bos>"]
        assert tokens[2] == "<bos>" and tokens[-1] == tokens[VOCAB_SIZE - 1]
        assert scores[0] == -1000.0 and token_types[0] == 3
        assert sorted(set(decoded)) == [0, 1, 2, VOCAB_SIZE - 1]

        reference = gemma_reader.fields
        for index in random.Random(0).sample(range(VOCAB_SIZE), SAMPLED_TOKENS):
            assert tokens[index] == reference["tokenizer.ggml.tokens"].contents(index)
            assert scores[index] == reference["tokenizer.ggml.scores"].contents(index)
            assert token_types[index] == reference["tokenizer.ggml.token_type"].contents(index)
        assert scores.numpy().dtype == np.float32
        expected_scores = np.array(reference["tokenizer.ggml.scores"].contents(), np.float32)
        assert np.array_equal(scores.numpy(), expected_scores)


def test_every_quantized_tensor_dequantizes_like_gguf(gemma):
    """The issue's check: compiler.formats on the file's views is bit-identical to gguf.quants."""
    checked = collections.Counter()
    for tensor in gemma.tensors.values():
        if not tensor.is_quantized:
            continue
        qtype = gguf.GGMLQuantizationType[tensor.format]
        blocks = tensor.data
        for start in range(0, blocks.shape[0], DEQUANT_CHUNK_ROWS):
            chunk = blocks[start : start + DEQUANT_CHUNK_ROWS]
            ours = formats.dequantize(chunk, tensor.format, dtype=torch.float32).numpy()
            reference = gguf.quants.dequantize(chunk.numpy(), qtype)
            assert ours.shape == reference.shape, tensor.name
            assert np.array_equal(ours.view(np.int32), reference.view(np.int32)), tensor.name
        checked[tensor.format] += 1
    assert sum(checked.values()) == EXPECTED_TENSOR_COUNT - EXPECTED_FORMAT_COUNTS["F32"]


def test_check_tensors_accepts_the_real_file(gemma):
    gemma.check_tensors()


def test_close_releases_and_refuses_access(gemma_path):
    with open_gguf(gemma_path) as gguf_file:
        tensor = gguf_file.tensors["output_norm.weight"]
        tokens = gguf_file.metadata["tokenizer.ggml.tokens"]
        assert tokens[0] == "<pad>"
    assert gguf_file.closed
    from compiler.errors import GgufFileError

    with pytest.raises(GgufFileError, match="closed"):
        _ = tensor.data
    with pytest.raises(GgufFileError, match="closed"):
        tokens[0]
