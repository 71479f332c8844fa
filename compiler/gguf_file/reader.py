"""`open_gguf`: a lazy, memory-mapped view of a GGUF file - metadata, tensor infos, tensor data.

Opening parses the header only (`header.py`), then checks each tensor's meaning: a known GGML
type, dimensions that fit int64, rows that are whole blocks, a data offset that is a multiple of
`general.alignment`, and data that ends inside the file.  Nothing is decoded or copied: tensor
data is a torch view over the mmap made when `.data` is read, long metadata arrays decode on
access.  Value checks that must read the data (finite scales) are `t.check()` /
`f.check_tensors()`, so that open stays O(header).

Tensor views::

    float formats (F32, F16, BF16):  float32/float16/bfloat16 tensor of t.shape
    block formats (Q4_0 ... Q6_K):   uint8 [rows, row_bytes]
        rows = prod(t.shape[:-1]),  row_bytes = t.shape[-1] / block_weights * block_bytes
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from compiler.errors import FormatError, GgufFileError, UnsupportedError
from compiler.gguf_file.header import Header, TensorInfo, parse_header
from compiler.gguf_file.layout import (
    ARCHITECTURE_KEY,
    MAX_DIM_SIZE,
    QUANT_FORMATS,
    SUPPORTED_FORMATS,
    TensorType,
    tensor_type,
)
from compiler.gguf_file.mapped import MappedFile

if TYPE_CHECKING:
    import torch
    from typing_extensions import Self  # typing.Self from Python 3.11

# Non-finite float values are searched this many elements at a time, bounding the temporaries.
_FINITE_CHECK_CHUNK = 1 << 22


def _torch_float_dtype(format_name: str) -> torch.dtype:
    import torch

    return {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[format_name]


@dataclass(frozen=True, eq=False)
class GGUFTensor:
    """One tensor of an open GGUF file.  `offset` is the absolute byte offset in the file."""

    name: str
    format: str  # GGUF type name: "F32", "Q4_K", ... (also for types ggufc cannot read)
    shape: tuple[int, ...]  # torch order: rows first (GGUF `ne` reversed)
    offset: int
    nbytes: int
    block_weights: int  # 1 for float formats
    block_bytes: int
    _source: MappedFile = field(repr=False)

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def is_quantized(self) -> bool:
        return self.format in QUANT_FORMATS

    @property
    def supported(self) -> bool:
        return self.format in SUPPORTED_FORMATS

    @property
    def rows(self) -> int:
        return math.prod(self.shape[:-1])

    @property
    def row_bytes(self) -> int:
        row_weights = self.shape[-1] if self.shape else 1
        return row_weights // self.block_weights * self.block_bytes

    def _describe(self) -> str:
        return (
            f"{self._source.path}: tensor {self.name!r} ({self.format}, shape {list(self.shape)})"
        )

    @property
    def data(self) -> torch.Tensor:
        """Zero-copy torch view of the tensor's bytes (see the module docstring for the shapes)."""
        import torch

        if not self.supported:
            raise UnsupportedError(
                f"{self._describe()}: GGUF type {self.format} cannot be read by ggufc; "
                f"supported types: {', '.join(SUPPORTED_FORMATS)}"
            )
        buffer = self._source.buffer
        if self.is_quantized:
            view_shape: tuple[int, ...] = (self.rows, self.row_bytes)
            dtype = torch.uint8
        else:
            view_shape, dtype = self.shape, _torch_float_dtype(self.format)
        itemsize = dtype.itemsize
        if self.nbytes == 0:
            return torch.empty(view_shape, dtype=dtype)
        if self.offset % itemsize:
            raise GgufFileError(
                f"{self._describe()}: data at offset {self.offset} is not aligned to its "
                f"{itemsize}-byte elements; expected general.alignment >= {itemsize}"
            )
        flat = torch.frombuffer(
            buffer, dtype=dtype, count=self.nbytes // itemsize, offset=self.offset
        )
        return flat.view(view_shape)

    def check(self) -> None:
        """Read the data once: raise GgufFileError on a non-finite block scale or float value."""
        data = self.data
        if self.nbytes == 0:
            return
        if self.is_quantized:
            from compiler import formats

            found = formats.find_nonfinite_scales(data, self.format)
            if found is not None:
                row, block = found
                raise GgufFileError(
                    f"{self._describe()}: row {row}, block {block} has a non-finite scale "
                    f"(inf or NaN); expected finite f16 scales"
                )
            return
        self._check_finite_floats(data)

    def _check_finite_floats(self, data: torch.Tensor) -> None:
        import torch

        flat = data.reshape(-1)
        for start in range(0, flat.numel(), _FINITE_CHECK_CHUNK):
            bad = torch.nonzero(~torch.isfinite(flat[start : start + _FINITE_CHECK_CHUNK]))
            if bad.numel():
                index = start + int(bad[0, 0])
                position = list(torch.unravel_index(torch.tensor(index), data.shape))
                raise GgufFileError(
                    f"{self._describe()}: element {[int(p) for p in position]} is "
                    f"{float(flat[index])}; expected finite values"
                )


class GGUFFile:
    """An open GGUF file.  Use as a context manager, or call `close()`, to unmap it."""

    def __init__(self, source: MappedFile, header: Header, tensors: dict[str, GGUFTensor]):
        self._source = source
        self.path: Path = source.path
        self.size: int = source.size
        self.version: int = header.version
        self.alignment: int = header.alignment
        self.data_offset: int = header.data_offset
        self.metadata: Mapping[str, Any] = MappingProxyType(header.metadata)
        self.value_types: Mapping[str, str] = MappingProxyType(header.value_types)
        self.tensors: Mapping[str, GGUFTensor] = MappingProxyType(tensors)

    @property
    def architecture(self) -> str:
        architecture = self.metadata.get(ARCHITECTURE_KEY)
        if not isinstance(architecture, str):
            raise GgufFileError(
                f"{self.path}: metadata {ARCHITECTURE_KEY!r} is missing or not a string "
                f"(found {architecture!r})"
            )
        return architecture

    def check_tensors(self) -> None:
        """`check()` every tensor ggufc can read (finite scales and float values)."""
        for tensor in self.tensors.values():
            if tensor.supported:
                tensor.check()

    @property
    def closed(self) -> bool:
        return self._source.closed

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<GGUFFile {str(self.path)!r} v{self.version} "
            f"{len(self.metadata)} keys, {len(self.tensors)} tensors>"
        )


def _build_tensor(source: MappedFile, header: Header, info: TensorInfo) -> GGUFTensor:
    path, name = source.path, info.name
    kind: TensorType | None = tensor_type(info.type_code)
    if kind is None:
        raise UnsupportedError(
            f"{path}: tensor {name!r} has GGUF type code {info.type_code}, which no known "
            f"GGML version defines (ggufc reads {', '.join(SUPPORTED_FORMATS)})"
        )
    for dim, size in enumerate(info.ne):
        if size > MAX_DIM_SIZE:
            raise GgufFileError(
                f"{path}: tensor {name!r} dimension {dim} is {size}, expected at most "
                f"{MAX_DIM_SIZE} (int64)"
            )
    row_weights = info.ne[0] if info.ne else 1
    if row_weights % kind.block_weights:
        raise FormatError(
            f"{path}: tensor {name!r} ({kind.name}) has rows of {row_weights} weights, "
            f"expected a multiple of the {kind.name} block size {kind.block_weights}"
        )
    nbytes = math.prod(info.ne) // kind.block_weights * kind.block_bytes
    if info.relative_offset % header.alignment:
        raise GgufFileError(
            f"{path}: tensor {name!r} data offset {info.relative_offset} is not a multiple of "
            f"the alignment {header.alignment}"
        )
    offset = header.data_offset + info.relative_offset
    if nbytes and offset + nbytes > source.size:
        raise GgufFileError(
            f"{path}: tensor {name!r} ({kind.name}, {nbytes} bytes at offset {offset}) runs "
            f"past the end of the file: expected it to end by byte {source.size}, it ends at "
            f"byte {offset + nbytes} (truncated file?)"
        )
    return GGUFTensor(
        name=name,
        format=kind.name,
        shape=tuple(reversed(info.ne)),
        offset=offset,
        nbytes=nbytes,
        block_weights=kind.block_weights,
        block_bytes=kind.block_bytes,
        _source=source,
    )


def open_gguf(path: str | Path) -> GGUFFile:
    """Open a GGUF v2/v3 file lazily over an mmap; raises a GgufcError subclass if malformed."""
    source = MappedFile(Path(path))
    try:
        header = parse_header(source)
        tensors = {info.name: _build_tensor(source, header, info) for info in header.tensor_infos}
    except BaseException:
        source.close()
        raise
    return GGUFFile(source, header, tensors)
