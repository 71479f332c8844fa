"""The SentencePiece-style tokenizer built from Gemma 3 270M's GGUF vocabulary."""

from __future__ import annotations

import pytest

from compiler import open_gguf
from compiler.tokenizer import SentencePieceTokenizer, tokenizer_from_gguf


@pytest.fixture(scope="module")
def tokenizer(gemma_path):
    with open_gguf(gemma_path) as gguf_file:
        return tokenizer_from_gguf(gguf_file)


def test_reference_prompt_encodes_like_llama_cpp(tokenizer):
    assert isinstance(tokenizer, SentencePieceTokenizer)
    assert tokenizer.encode("The capital of France is") == [2, 818, 5279, 529, 7001, 563]


@pytest.mark.parametrize(
    "text",
    [
        "The capital of France is",
        "  two leading spaces",
        "naïve café 🙂",
        "tabs\tand\nnewlines",
        "",
    ],
)
def test_decode_inverts_encode(tokenizer, text):
    ids = tokenizer.encode(text)
    assert ids[0] == tokenizer.bos_id
    assert tokenizer.decode(ids) == text


def test_unseen_characters_fall_back_to_byte_tokens(tokenizer):
    # U+10FFFD (private use) is not in the vocabulary: its four UTF-8 bytes become byte tokens.
    ids = tokenizer.encode("\U0010fffd", add_bos=False)
    assert len(ids) == 4
    assert all(tokenizer.tokens[i].startswith("<0x") for i in ids)
    assert tokenizer.decode(ids) == "\U0010fffd"
