"""The memory map behind one open `.gguf` file, shared by its tensors and lazy arrays.

The file is mapped copy-on-write (`mmap.ACCESS_COPY`): pages are shared with the page cache
until written, so tensor views are zero-copy, and a caller that writes into `t.data` changes
only its private copy, never the file (a read-only map would crash such a write instead).
"""

from __future__ import annotations

import mmap
from pathlib import Path

from compiler.errors import GgufFileError


class MappedFile:
    """Owns the mmap of `path`; `buffer` raises once the file is closed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as handle:
                self.size = handle.seek(0, 2)
                # mmap refuses empty files; the header parser reports them as truncated.
                self._mmap = (
                    mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY) if self.size else None
                )
        except IsADirectoryError:
            raise GgufFileError(f"{path}: is a directory, expected a .gguf file") from None
        except FileNotFoundError:
            raise GgufFileError(f"{path}: no such file") from None
        except (OSError, ValueError) as exc:
            raise GgufFileError(f"{path}: cannot map the file: {exc}") from None
        self._closed = False

    @property
    def buffer(self) -> mmap.mmap | bytes:
        if self._closed:
            raise GgufFileError(f"{self.path}: the file was closed; reopen it with open_gguf")
        return self._mmap if self._mmap is not None else b""

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Unmap now if nothing still views the map, else when the last view is freed."""
        if self._closed:
            return
        self._closed = True
        if self._mmap is not None:
            try:
                self._mmap.close()
            except BufferError:
                # Tensors handed out still view the pages; dropping our reference lets the map
                # go when they do, instead of pulling memory from under them.
                pass
            self._mmap = None
