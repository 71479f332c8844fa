"""Tokenizers built from a GGUF file's vocabulary (`tokenizer.ggml.*`).

`llama` (SentencePiece-style, used by Llama 2 and Gemma): spaces become U+2581 ("▁"), an
optional space is prefixed, then symbols start as single UTF-8 characters and the adjacent
pair whose concatenation is a vocabulary entry with the highest score is merged, repeatedly
(ties: leftmost first).  A symbol left that is not in the vocabulary is spelled as its UTF-8
bytes through the `<0xXX>` byte tokens (byte fallback), or the unknown token.
Decoding maps "▁" back to spaces and byte tokens back to bytes.
"""

from __future__ import annotations

import heapq
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

        def optional(key):
            return meta[key] if key in meta else None

        return cls(
            tokens=list(meta["tokenizer.ggml.tokens"]),
            scores=list(meta["tokenizer.ggml.scores"]),
            token_types=list(meta["tokenizer.ggml.token_type"]) if "tokenizer.ggml.token_type" in meta else [],
            bos_id=optional("tokenizer.ggml.bos_token_id"),
            eos_id=optional("tokenizer.ggml.eos_token_id"),
            unknown_id=optional("tokenizer.ggml.unknown_token_id"),
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
                raise UnsupportedError(f"tokenizer: token id {token_id} out of range [0, {len(self.tokens)})")
            kind = self.token_types[token_id] if self.token_types else TOKEN_TYPE_NORMAL
            token = self.tokens[token_id]
            if kind == TOKEN_TYPE_BYTE:
                out.append(int(token[3:5], 16))
            elif kind in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_UNUSED) and skip_special:
                continue
            else:
                out.extend(token.replace(SPACE_MARK, " ").encode("utf-8"))
        return out.decode("utf-8", errors="replace")


# `tokenizer.ggml.model` -> tokenizer class
TOKENIZERS = {"llama": SentencePieceTokenizer}


def tokenizer_from_gguf(gguf_file):
    model = gguf_file.metadata.get("tokenizer.ggml.model")
    if model not in TOKENIZERS:
        raise UnsupportedError(
            f"{gguf_file.path}: tokenizer model {model!r} is not supported "
            f"(supported: {', '.join(sorted(TOKENIZERS))})"
        )
    return TOKENIZERS[model].from_gguf(gguf_file)
