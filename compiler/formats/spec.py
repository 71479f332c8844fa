"""Block layouts of the GGUF quantization formats, as pure data.

A quantized row is a sequence of fixed-size blocks.  Each block packs ``block_weights``
weights into ``block_bytes`` bytes, laid out as the ``fields`` below in byte order
(little-endian, no padding).  Field dtypes use GGUF/ggml spelling:

* ``f16`` - IEEE binary16 scale (``count`` of them, 2 bytes each);
* ``u8``  - unsigned bytes (packed quants or packed 6-bit scales);
* ``i8``  - signed bytes (8-bit quants or 8-bit scales).

The per-format modules (``q4_0`` ... ``q6_k``) give the formulas; this module only says
where the bytes are.
"""

from __future__ import annotations

from dataclasses import dataclass

FIELD_DTYPE_BYTES = {"f16": 2, "u8": 1, "i8": 1}


@dataclass(frozen=True)
class Field:
    """``count`` consecutive values of ``dtype`` inside a block."""

    name: str
    dtype: str
    count: int

    def __post_init__(self) -> None:
        if self.dtype not in FIELD_DTYPE_BYTES:
            raise ValueError(f"field {self.name!r}: unknown dtype {self.dtype!r}")

    @property
    def nbytes(self) -> int:
        return FIELD_DTYPE_BYTES[self.dtype] * self.count


@dataclass(frozen=True)
class FormatSpec:
    """One GGUF block format: its GGUF type name, block geometry and byte layout."""

    name: str
    block_weights: int
    block_bytes: int
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        total = sum(field.nbytes for field in self.fields)
        if total != self.block_bytes:
            raise ValueError(
                f"{self.name}: fields take {total} bytes, block_bytes says {self.block_bytes}"
            )

    def field_offset(self, name: str) -> int:
        """Byte offset of field ``name`` inside a block."""
        offset = 0
        for field in self.fields:
            if field.name == name:
                return offset
            offset += field.nbytes
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def scale_fields(self) -> tuple[Field, ...]:
        """The f16 fields (super-block scales); only these can hold non-finite values."""
        return tuple(field for field in self.fields if field.dtype == "f16")

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.block_bytes / self.block_weights
