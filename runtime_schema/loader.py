"""Load a `.ggufc` program file: check everything, copy no constant.

Order of checks (each failure is a `ProgramFormatError` naming the field):

1. the header (`container.parse_header`): magic, format version, sizes that add up to the
   file's size; the padding between flatbuffer and segment is zero;
2. the CRC-32 of the flatbuffer and of the segment;
3. the flatbuffer, decoded by `reader.read_program_flatbuffer` with every offset, length,
   enum and string bounded by the buffer;
4. the program's meaning (`validate.validate_program`): value and chain indices, kinds,
   definitions before uses, the ATen allow-list;
5. constants: segment locations aligned, inside the segment and of exactly the size the
   value's dtype and shape need; external files found, of the recorded size and SHA-256.

Constants come back as tensors viewing the file through `mmap` (copy-on-write mapping, so
the views are writable without ever writing the file); nothing is copied.
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from compiler.errors import ProgramFormatError
from runtime_schema.container import (
    HEADER_SIZE,
    SEGMENT_ALIGNMENT,
    Header,
    crc32,
    parse_header,
)
from runtime_schema.program import Constant, GgufSlice, Program, TensorInfo
from runtime_schema.reader import (
    StoredProgram,
    StringStats,
    read_program_flatbuffer,
)
from runtime_schema.validate import validate_program
from runtime_schema.writer import file_sha256

SHA256_BYTES = 32
CRC_CHUNK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class LoadedProgram:
    """A program read from a file or buffer, with what the file said about itself."""

    program: Program
    header: Header
    strings: StringStats
    # Constants stored in the segment: (constant index, offset in segment, size), for
    # readers reporting deduplication.
    segment_constants: tuple[tuple[int, int, int], ...]
    external_files: tuple[str, ...]  # resolved paths
    path: str | None = None
    # Address of the segment's first byte in memory (0 for an empty segment); constants
    # view memory at segment_address + offset.
    segment_address: int = 0
    _mappings: tuple = field(default=(), repr=False, compare=False)

    @property
    def file_size(self) -> int:
        return self.header.file_size


def load_program(
    path: str | os.PathLike,
    *,
    gguf_paths: Mapping[str, str | os.PathLike] | None = None,
    verify_segment: bool = True,
) -> LoadedProgram:
    """Load and check `path`.  ``gguf_paths`` maps an external file's stored path (or its
    base name) to where it is now; by default stored paths are relative to `path`'s folder.
    ``verify_segment=False`` skips the segment CRC (the header and flatbuffer CRCs are
    always checked), for very large embedded segments."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise ProgramFormatError(f"{where}: empty file")
            mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except OSError as exc:
        raise ProgramFormatError(f"{where}: cannot open: {exc}") from exc
    return _load(
        mapping,
        where=where,
        program_dir=Path(path).resolve().parent,
        gguf_paths=gguf_paths,
        verify_segment=verify_segment,
        path=str(path),
    )


def load_program_bytes(
    buf: bytes | bytearray | memoryview,
    *,
    program_dir: str | os.PathLike = ".",
    gguf_paths: Mapping[str, str | os.PathLike] | None = None,
) -> LoadedProgram:
    """Load a program from memory (same checks as `load_program`).  Constants view `buf`
    itself when it is a bytearray, else a private copy of it."""
    data = buf if isinstance(buf, bytearray) else bytearray(buf)
    return _load(
        data,
        where="program buffer",
        program_dir=Path(program_dir),
        gguf_paths=gguf_paths,
        verify_segment=True,
        path=None,
    )


def _load(data, *, where, program_dir, gguf_paths, verify_segment, path) -> LoadedProgram:
    size = len(data)
    header = parse_header(data[:HEADER_SIZE], size, where)
    fb_end = header.flatbuffer_offset + header.flatbuffer_size
    flatbuffer = bytes(data[header.flatbuffer_offset : fb_end])
    if any(data[fb_end : header.segment_offset]):
        raise ProgramFormatError(f"{where}: padding before the constant segment is not zero")
    if crc32(flatbuffer) != header.flatbuffer_crc32:
        raise ProgramFormatError(
            f"{where}: header.flatbuffer_crc32 does not match the flatbuffer (damaged file)"
        )
    if verify_segment and _segment_crc(data, header) != header.segment_crc32:
        raise ProgramFormatError(
            f"{where}: header.segment_crc32 does not match the constant segment (damaged file)"
        )
    stored = read_program_flatbuffer(flatbuffer)
    program = Program(
        values=stored.values,
        inputs=stored.inputs,
        outputs=stored.outputs,
        chains=stored.chains,
        main_chain=stored.main_chain,
        constants=tuple(Constant(c.value) for c in stored.constants),
        metadata=stored.metadata,
        schema_version=stored.schema_version,
    )
    try:
        validate_program(program)
    except ProgramFormatError as exc:
        raise ProgramFormatError(f"{where}: {exc}") from None
    segment_view = _as_uint8(data)
    externals = _open_external_files(stored, where, program_dir, gguf_paths)
    constants, segment_constants = [], []
    for j, c in enumerate(stored.constants):
        at = f"{where}: constants[{j}] ({program.values[c.value].name!r})"
        info = program.values[c.value].info
        expected = _nbytes(info)
        if c.size != expected:
            raise ProgramFormatError(
                f"{at}: location.size is {c.size} bytes, the value's dtype and shape need "
                f"{expected}"
            )
        if c.external:
            if c.file >= len(externals):
                raise ProgramFormatError(
                    f"{at}: location.file {c.file} out of range ({len(externals)} external files)"
                )
            ext_path, ext_view, ext_size, ext_digest = externals[c.file]
            if c.offset + c.size > ext_size:
                raise ProgramFormatError(
                    f"{at}: location [{c.offset}, {c.offset + c.size}) lies outside {ext_path} "
                    f"({ext_size} bytes)"
                )
            tensor = _view(ext_view, c.offset, info)
            source = GgufSlice(ext_path, c.offset, c.size, ext_digest)
            constants.append(Constant(c.value, tensor, source))
            continue
        if c.offset % SEGMENT_ALIGNMENT:
            raise ProgramFormatError(
                f"{at}: location.offset {c.offset} is not a multiple of {SEGMENT_ALIGNMENT}"
            )
        if c.offset + c.size > header.segment_size:
            raise ProgramFormatError(
                f"{at}: location [{c.offset}, {c.offset + c.size}) lies outside the segment "
                f"({header.segment_size} bytes)"
            )
        tensor = _view(segment_view, header.segment_offset + c.offset, info)
        constants.append(Constant(c.value, tensor))
        segment_constants.append((j, c.offset, c.size))
    segment_address = segment_view.ctypes.data + header.segment_offset if header.segment_size else 0
    return LoadedProgram(
        program=replace(program, constants=tuple(constants)),
        header=header,
        strings=stored.strings,
        segment_constants=tuple(segment_constants),
        external_files=tuple(e[0] for e in externals),
        path=path,
        segment_address=segment_address,
        _mappings=(data, *(e[1] for e in externals)),
    )


def _segment_crc(data, header: Header) -> int:
    crc = 0
    view = memoryview(data)
    end = header.segment_offset + header.segment_size
    for start in range(header.segment_offset, end, CRC_CHUNK_BYTES):
        crc = zlib.crc32(view[start : min(start + CRC_CHUNK_BYTES, end)], crc)
    view.release()
    return crc & 0xFFFFFFFF


def _as_uint8(data) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def _nbytes(info: TensorInfo) -> int:
    count = 1
    for d in info.shape:
        count *= d.size
    return count * info.dtype.itemsize


def _view(base: np.ndarray, offset: int, info: TensorInfo) -> torch.Tensor:
    """A tensor of `info`'s dtype and shape over ``base[offset:]``, sharing its memory."""
    shape = tuple(d.size for d in info.shape)
    nbytes = _nbytes(info)
    if nbytes == 0:
        return torch.empty(shape, dtype=info.dtype.torch_dtype)
    raw = torch.from_numpy(base[offset : offset + nbytes])
    return raw.view(info.dtype.torch_dtype).reshape(shape)


def _open_external_files(stored: StoredProgram, where, program_dir: Path, gguf_paths):
    """[(path, uint8 array over the file, size, sha256)] per external file, all checked."""
    opened = []
    for i, f in enumerate(stored.external_files):
        at = f"{where}: external_files[{i}] ({f.path!r})"
        if len(f.sha256) != SHA256_BYTES:
            raise ProgramFormatError(f"{at}: sha256 has {len(f.sha256)} bytes, expected 32")
        candidates = []
        if gguf_paths:
            for key in (f.path, os.path.basename(f.path)):
                if key in gguf_paths:
                    candidates.append(Path(gguf_paths[key]))
        candidates.append(program_dir / f.path)
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise ProgramFormatError(
                f"{at}: not found (looked at {', '.join(str(p) for p in candidates)})"
            )
        size = found.stat().st_size
        if size != f.size:
            raise ProgramFormatError(
                f"{at}: {found} is {size} bytes, the program was built against {f.size}"
            )
        digest = file_sha256(found)
        if digest != f.sha256:
            raise ProgramFormatError(
                f"{at}: {found} has SHA-256 {digest.hex()}, the program was built against "
                f"{f.sha256.hex()}"
            )
        if size:
            with open(found, "rb") as handle:
                mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
            view = _as_uint8(mapping)
        else:
            view = np.zeros(0, dtype=np.uint8)
        opened.append((str(found), view, size, digest))
    return opened
