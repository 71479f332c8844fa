"""The byte-level BPE (`gpt2`) tokenizer: merges by rank, the pre-tokenizer splits, byte
round trips, and its storage in a program's metadata (what `ggufc run` reads)."""

from __future__ import annotations

import re

import gguf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.errors import UnsupportedError
from compiler.generate import tokenizer_from_metadata, tokenizer_to_json
from compiler.gguf_file import open_gguf
from compiler.tokenizer import (
    GPT2_PATTERN,
    LLAMA3_PATTERN,
    TOKEN_TYPE_CONTROL,
    TOKEN_TYPE_NORMAL,
    BytePairTokenizer,
    byte_to_unicode,
    tokenizer_from_gguf,
)

BOS = "<|begin_of_text|>"
MERGES = ["Ġ t", "h e", "Ġt he", "Ġ c", "Ġc a", "p i", "Ġca pi"]


def make_tokenizer(pre: str = "default", add_bos: bool = True) -> BytePairTokenizer:
    chars = [byte_to_unicode()[b] for b in range(256)]
    merged = ["".join(m.split(" ")) for m in MERGES]
    tokens = [BOS, *chars, *merged]
    types = [TOKEN_TYPE_CONTROL] + [TOKEN_TYPE_NORMAL] * (len(tokens) - 1)
    return BytePairTokenizer(tokens, types, list(MERGES), 0, None, add_bos, pre)


def test_byte_map_is_a_bijection_onto_printable_characters():
    table = byte_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("a")] == "a"
    assert all(c.isprintable() and not c.isspace() for c in table.values())


def test_merges_apply_by_rank():
    tokenizer = make_tokenizer()
    ids = tokenizer.encode(" the capi")
    assert [tokenizer.tokens[i] for i in ids] == [BOS, "Ġthe", "Ġcapi"]
    # "he" is merged before "Ġt" + "he" can be: "the" without a space stays t + he
    assert [tokenizer.tokens[i] for i in tokenizer.encode("the", add_bos=False)] == ["t", "he"]


def test_pre_tokenizer_splits():
    text = "Hello world's 12345 foo_bar!!  x"
    assert re.findall(GPT2_PATTERN, text) == [
        "Hello",
        " world",
        "'s",
        " 12345",
        " foo",
        "_",
        "bar",
        "!!",
        " ",
        " x",
    ]
    assert re.findall(LLAMA3_PATTERN, text) == [
        "Hello",
        " world",
        "'s",
        " ",
        "123",
        "45",
        " foo",
        "_bar",
        "!!",
        " ",
        " x",
    ]


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40), pre=st.sampled_from(["default", "llama-bpe", "qwen2"]))
def test_decode_inverts_encode(text, pre):
    tokenizer = make_tokenizer(pre)
    ids = tokenizer.encode(text)
    assert ids[0] == 0
    assert tokenizer.decode(ids) == text


def test_unknown_pre_tokenizer_is_named():
    with pytest.raises(UnsupportedError, match="pre-tokenizer 'mystery'"):
        make_tokenizer("mystery")


def test_gguf_vocabulary_and_program_metadata(tmp_path):
    reference = make_tokenizer("llama-bpe")
    path = tmp_path / "vocab.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.add_string("tokenizer.ggml.pre", "llama-bpe")
    writer.add_array("tokenizer.ggml.tokens", reference.tokens)
    writer.add_array("tokenizer.ggml.token_type", reference.token_types)
    writer.add_array("tokenizer.ggml.merges", reference.merges)
    writer.add_uint32("tokenizer.ggml.bos_token_id", 0)
    writer.add_bool("tokenizer.ggml.add_bos_token", True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    gguf_file = open_gguf(path)
    loaded = tokenizer_from_gguf(gguf_file)
    assert isinstance(loaded, BytePairTokenizer)
    text = "Die Hauptstadt the capital, 1234 ünïcödé"
    assert loaded.encode(text) == reference.encode(text)
    stored = tokenizer_from_metadata({"ggufc.tokenizer": tokenizer_to_json(gguf_file)})
    assert stored.encode(text) == reference.encode(text)
    assert stored.decode(stored.encode(text)) == text
