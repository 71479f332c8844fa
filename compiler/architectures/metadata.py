"""Typed access to an architecture's GGUF metadata keys (`{arch}.{key}`), with errors that name
the file and the missing or mistyped key."""

from __future__ import annotations

from compiler.errors import UnsupportedError

_REQUIRED = object()


class MetadataReader:
    def __init__(self, gguf_file, architecture: str):
        self.file = gguf_file
        self.prefix = architecture

    def _get(self, key: str, default):
        full = f"{self.prefix}.{key}"
        if full in self.file.metadata:
            return full, self.file.metadata[full]
        if default is _REQUIRED:
            raise UnsupportedError(
                f"{self.file.path}: metadata key {full!r} is missing; a {self.prefix} model needs it"
            )
        return full, default

    def int(self, key: str, default=_REQUIRED) -> int:
        full, value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise UnsupportedError(
                f"{self.file.path}: metadata {full!r} should be an integer, got {value!r}"
            )
        return value

    def float(self, key: str, default=_REQUIRED) -> float:
        full, value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UnsupportedError(
                f"{self.file.path}: metadata {full!r} should be a number, got {value!r}"
            )
        return float(value)
