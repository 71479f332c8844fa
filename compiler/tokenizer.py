r"""Tokenizers built from a GGUF file's vocabulary (`tokenizer.ggml.*`).

`llama` (SentencePiece-style, used by Llama 2 and Gemma): spaces become U+2581 ("▁"), an
optional space is prefixed, then symbols start as single UTF-8 characters and the adjacent
pair whose concatenation is a vocabulary entry with the highest score is merged, repeatedly
(ties: leftmost first).  A symbol left that is not in the vocabulary is spelled as its UTF-8
bytes through the `<0xXX>` byte tokens (byte fallback), or the unknown token.
Decoding maps "▁" back to spaces and byte tokens back to bytes.

`gpt2` (byte-level BPE, used by Llama 3, Qwen2, GPT-2): the text is split by the
pre-tokenizer regex named by `tokenizer.ggml.pre` (`PRE_TOKENIZERS`), each piece's UTF-8 bytes
are spelled with GPT-2's byte -> printable character map (space -> "Ġ"), then the adjacent
pair with the lowest rank in `tokenizer.ggml.merges` is merged, repeatedly.  Decoding maps
the characters back to bytes.  Python's `re` has no `\p{L}` / `\p{N}`: letters are written
`[^\W\d_]` and numbers `\d` (decimal digits), which differs from the reference regexes only
for number characters outside Nd (superscripts, Roman numerals).  Special tokens written in
the text are not parsed as such (they are encoded as plain text).
"""

from __future__ import annotations

import heapq
import itertools
import re
from dataclasses import dataclass

from compiler.errors import UnsupportedError

SPACE_MARK = "\u2581"
# `tokenizer.ggml.token_type` values (llama.cpp's llama_token_type)
TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_UNKNOWN = 2
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4
TOKEN_TYPE_UNUSED = 5
TOKEN_TYPE_BYTE = 6


@dataclass
class SentencePieceTokenizer:
    tokens: list[str]
    scores: list[float]
    token_types: list[int]
    bos_id: int | None
    eos_id: int | None
    unknown_id: int | None
    add_bos: bool
    add_space_prefix: bool

    def __post_init__(self):
        self.token_to_id = {token: i for i, token in enumerate(self.tokens)}
        self.byte_to_id: dict[int, int] = {}
        for i, token in enumerate(self.tokens):
            if self.token_types and self.token_types[i] == TOKEN_TYPE_BYTE:
                self.byte_to_id[int(token[3:5], 16)] = i

    @classmethod
    def from_gguf(cls, gguf_file) -> SentencePieceTokenizer:
        meta = gguf_file.metadata

        return cls(
            tokens=list(meta["tokenizer.ggml.tokens"]),
            scores=list(meta["tokenizer.ggml.scores"]),
            token_types=list(meta.get("tokenizer.ggml.token_type", [])),
            bos_id=meta.get("tokenizer.ggml.bos_token_id"),
            eos_id=meta.get("tokenizer.ggml.eos_token_id"),
            unknown_id=meta.get("tokenizer.ggml.unknown_token_id"),
            add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", True)),
            add_space_prefix=bool(meta.get("tokenizer.ggml.add_space_prefix", True)),
        )

    # ---- encode -------------------------------------------------------------------------
    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        ids: list[int] = []
        if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
            ids.append(self.bos_id)
        if not text:
            return ids
        if self.add_space_prefix:
            text = " " + text
        ids.extend(self._encode_piece(text.replace(" ", SPACE_MARK)))
        return ids

    def _encode_piece(self, text: str) -> list[int]:
        symbols = list(text)
        # Doubly linked list over symbols; `alive[i]` is False once merged into its left.
        prev = list(range(-1, len(symbols) - 1))
        nxt = list(range(1, len(symbols) + 1))
        alive = [True] * len(symbols)
        queue: list[tuple[float, int, int, str]] = []

        def push(left: int) -> None:
            right = nxt[left]
            if right >= len(symbols):
                return
            merged = symbols[left] + symbols[right]
            token_id = self.token_to_id.get(merged)
            if token_id is not None:
                heapq.heappush(queue, (-self.scores[token_id], left, right, merged))

        for i in range(len(symbols) - 1):
            push(i)
        while queue:
            _, left, right, merged = heapq.heappop(queue)
            # Skip stale entries: either side changed since this pair was queued.
            if not (alive[left] and alive[right]) or nxt[left] != right:
                continue
            if symbols[left] + symbols[right] != merged:
                continue
            symbols[left] = merged
            alive[right] = False
            nxt[left] = nxt[right]
            if nxt[right] < len(symbols):
                prev[nxt[right]] = left
            if prev[left] >= 0:
                push(prev[left])
            push(left)

        ids: list[int] = []
        i = 0
        while i < len(symbols):
            ids.extend(self._symbol_ids(symbols[i]))
            i = nxt[i]
        return ids

    def _symbol_ids(self, symbol: str) -> list[int]:
        token_id = self.token_to_id.get(symbol)
        if token_id is not None:
            return [token_id]
        out = []
        for byte in symbol.encode("utf-8"):
            if byte in self.byte_to_id:
                out.append(self.byte_to_id[byte])
            elif self.unknown_id is not None:
                out.append(self.unknown_id)
            else:
                raise UnsupportedError(
                    f"tokenizer: no token, byte token or unknown token for byte 0x{byte:02X}"
                )
        return out

    # ---- decode -------------------------------------------------------------------------
    def decode(self, ids: list[int], skip_special: bool = True) -> str:
        out = bytearray()
        for token_id in ids:
            if not 0 <= token_id < len(self.tokens):
                raise UnsupportedError(
                    f"tokenizer: token id {token_id} out of range [0, {len(self.tokens)})"
                )
            kind = self.token_types[token_id] if self.token_types else TOKEN_TYPE_NORMAL
            token = self.tokens[token_id]
            if kind == TOKEN_TYPE_BYTE:
                out.append(int(token[3:5], 16))
            elif (
                kind in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_UNUSED) and skip_special
            ):
                continue
            else:
                out.extend(token.replace(SPACE_MARK, " ").encode("utf-8"))
        return out.decode("utf-8", errors="replace")


# ---- byte-level BPE ---------------------------------------------------------------------------

# Python-`re` spellings of the reference pre-tokenizer regexes (see the module doc).
_LETTERS = r"[^\W\d_]"
_NOT_SPACE_LETTER_NUMBER = r"(?:[^\s\w]|_)"
GPT2_PATTERN = (
    rf"'s|'t|'re|'ve|'m|'ll|'d| ?{_LETTERS}+| ?\d+| ?{_NOT_SPACE_LETTER_NUMBER}+|\s+(?!\S)|\s+"
)
LLAMA3_PATTERN = (
    rf"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?{_LETTERS}+|\d{{1,3}}"
    rf"| ?{_NOT_SPACE_LETTER_NUMBER}+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = LLAMA3_PATTERN.replace(r"\d{1,3}", r"\d")
# `tokenizer.ggml.pre` -> pre-tokenizer regex
PRE_TOKENIZERS = {
    "default": GPT2_PATTERN,
    "gpt2": GPT2_PATTERN,
    "llama-bpe": LLAMA3_PATTERN,
    "llama3": LLAMA3_PATTERN,
    "qwen2": QWEN2_PATTERN,
}


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's map of the 256 bytes to printable characters: printable Latin-1 bytes map to
    themselves, the others to U+0100 onwards in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@dataclass
class BytePairTokenizer:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    bos_id: int | None
    eos_id: int | None
    add_bos: bool
    pre: str

    def __post_init__(self):
        if self.pre not in PRE_TOKENIZERS:
            raise UnsupportedError(
                f"tokenizer: pre-tokenizer {self.pre!r} is not supported "
                f"(supported: {', '.join(sorted(PRE_TOKENIZERS))})"
            )
        self.token_to_id = {token: i for i, token in enumerate(self.tokens)}
        self.ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(self.merges)}
        self.pattern = re.compile(PRE_TOKENIZERS[self.pre])
        self.byte_chars = byte_to_unicode()
        self.char_bytes = {c: b for b, c in self.byte_chars.items()}

    @classmethod
    def from_gguf(cls, gguf_file) -> BytePairTokenizer:
        meta = gguf_file.metadata
        return cls(
            tokens=list(meta["tokenizer.ggml.tokens"]),
            token_types=list(meta.get("tokenizer.ggml.token_type", [])),
            merges=list(meta["tokenizer.ggml.merges"]),
            bos_id=meta.get("tokenizer.ggml.bos_token_id"),
            eos_id=meta.get("tokenizer.ggml.eos_token_id"),
            add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", False)),
            pre=str(meta.get("tokenizer.ggml.pre", "default")),
        )

    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        ids: list[int] = []
        if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
            ids.append(self.bos_id)
        for piece in self.pattern.findall(text):
            spelled = "".join(self.byte_chars[b] for b in piece.encode("utf-8"))
            for symbol in self._merge(spelled):
                token_id = self.token_to_id.get(symbol)
                if token_id is None:
                    ids.extend(self._characters(symbol))
                else:
                    ids.append(token_id)
        return ids

    def _merge(self, word: str) -> list[str]:
        symbols = list(word)
        while len(symbols) > 1:
            ranks = [self.ranks.get(pair) for pair in itertools.pairwise(symbols)]
            known = [r for r in ranks if r is not None]
            if not known:
                break
            best = min(known)
            pair = self.merges[best].split(" ", 1)
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and [symbols[i], symbols[i + 1]] == pair:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def _characters(self, symbol: str) -> list[int]:
        ids = []
        for char in symbol:
            token_id = self.token_to_id.get(char)
            if token_id is None:
                raise UnsupportedError(
                    f"tokenizer: no token for byte 0x{self.char_bytes[char]:02X} "
                    f"(the vocabulary lacks GPT-2 byte character {char!r})"
                )
            ids.append(token_id)
        return ids

    def decode(self, ids: list[int], skip_special: bool = True) -> str:
        out = bytearray()
        for token_id in ids:
            if not 0 <= token_id < len(self.tokens):
                raise UnsupportedError(
                    f"tokenizer: token id {token_id} out of range [0, {len(self.tokens)})"
                )
            kind = self.token_types[token_id] if self.token_types else TOKEN_TYPE_NORMAL
            token = self.tokens[token_id]
            if kind in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_UNUSED) and skip_special:
                continue
            if kind in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED):
                out.extend(token.encode("utf-8"))
                continue
            for char in token:
                byte = self.char_bytes.get(char)
                if byte is None:
                    out.extend(char.encode("utf-8"))
                else:
                    out.append(byte)
        return out.decode("utf-8", errors="replace")


# `tokenizer.ggml.model` -> tokenizer class
TOKENIZERS = {"llama": SentencePieceTokenizer, "gpt2": BytePairTokenizer}


def tokenizer_from_gguf(gguf_file):
    model = gguf_file.metadata.get("tokenizer.ggml.model")
    if model not in TOKENIZERS:
        raise UnsupportedError(
            f"{gguf_file.path}: tokenizer model {model!r} is not supported "
            f"(supported: {', '.join(sorted(TOKENIZERS))})"
        )
    return TOKENIZERS[model].from_gguf(gguf_file)
