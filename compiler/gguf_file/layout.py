"""Facts of the GGUF container format (versions 2 and 3, little-endian), as pure data.

File layout::

    magic        4 bytes  b"GGUF"
    version      u32      2 or 3 (1 used u32 counts and is not read here)
    tensor_count u64
    kv_count     u64
    kv_count x   key: string, value_type: u32, value
    tensor_count x  name: string, n_dims: u32, ne: u64[n_dims], ggml_type: u32, offset: u64
    padding to `general.alignment` (u32 key, default 32, a power of two)
    data section: tensor i starts at data_start + offset_i (offset_i a multiple of the alignment)

    string = u64 byte length + UTF-8 bytes (no terminator)
    array  = element value_type: u32, count: u64, count elements (arrays may nest)

`ne` is ggml's order, fastest-varying dimension first, so the torch shape is `ne` reversed.
A tensor of a block format with `ne[0] = K` stores each row of K weights as K / block_weights
blocks of block_bytes bytes, rows back to back: nbytes = rows * K / block_weights * block_bytes.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Final

GGUF_MAGIC: Final = b"GGUF"
SUPPORTED_VERSIONS: Final = (2, 3)
DEFAULT_ALIGNMENT: Final = 32
ALIGNMENT_KEY: Final = "general.alignment"
ARCHITECTURE_KEY: Final = "general.architecture"
# ggml's GGML_MAX_DIMS: a tensor has at most this many dimensions.
MAX_DIMS: Final = 4
# ggml stores dimensions as int64.
MAX_DIM_SIZE: Final = 2**63 - 1

MAGIC_STRUCT: Final = struct.Struct("<4s")
U32: Final = struct.Struct("<I")
U64: Final = struct.Struct("<Q")
# version, tensor_count, kv_count after the magic
COUNTS_STRUCT: Final = struct.Struct("<QQ")
HEADER_FIXED_BYTES: Final = MAGIC_STRUCT.size + U32.size + COUNTS_STRUCT.size

STRING_LENGTH_BYTES: Final = U64.size
# element type + count
ARRAY_HEADER_BYTES: Final = U32.size + U64.size

# Arrays with more elements than this are handed out as lazy sequences that decode on access
# (the tokenizer's 262,144 tokens, scores and types); shorter ones are decoded at open.
SHORT_ARRAY_MAX_LEN: Final = 64


@dataclass(frozen=True)
class ValueType:
    """One GGUF metadata value type."""

    code: int
    name: str  # lower-case, as `ggufc inspect` prints it: "uint32", "string", ...
    struct: struct.Struct | None  # scalar layout; None for string and array
    numpy_dtype: str | None  # numpy dtype string for arrays of this scalar type

    @property
    def min_bytes(self) -> int:
        """Fewest bytes one value of this type occupies (bounds counts before allocating)."""
        if self.struct is not None:
            return self.struct.size
        return STRING_LENGTH_BYTES if self.name == "string" else ARRAY_HEADER_BYTES


STRING_CODE: Final = 8
ARRAY_CODE: Final = 9
BOOL_CODE: Final = 7

VALUE_TYPES: Final[dict[int, ValueType]] = {
    vt.code: vt
    for vt in (
        ValueType(0, "uint8", struct.Struct("<B"), "<u1"),
        ValueType(1, "int8", struct.Struct("<b"), "<i1"),
        ValueType(2, "uint16", struct.Struct("<H"), "<u2"),
        ValueType(3, "int16", struct.Struct("<h"), "<i2"),
        ValueType(4, "uint32", struct.Struct("<I"), "<u4"),
        ValueType(5, "int32", struct.Struct("<i"), "<i4"),
        ValueType(6, "float32", struct.Struct("<f"), "<f4"),
        # one byte, 0 or 1
        ValueType(BOOL_CODE, "bool", struct.Struct("<B"), "<u1"),
        ValueType(STRING_CODE, "string", None, None),
        ValueType(ARRAY_CODE, "array", None, None),
        ValueType(10, "uint64", struct.Struct("<Q"), "<u8"),
        ValueType(11, "int64", struct.Struct("<q"), "<i8"),
        ValueType(12, "float64", struct.Struct("<d"), "<f8"),
    )
}

# Arrays nested deeper than this are refused (GGUF writers emit at most arrays of arrays).
MAX_ARRAY_NESTING: Final = 8

KV_MIN_BYTES: Final = (
    STRING_LENGTH_BYTES + U32.size + min(vt.min_bytes for vt in VALUE_TYPES.values())
)
# name (empty), n_dims = 0, type, offset
TENSOR_INFO_MIN_BYTES: Final = STRING_LENGTH_BYTES + U32.size + U32.size + U64.size

# Float tensor formats: GGUF name -> bytes per element.  Their `.data` is a typed view.
FLOAT_FORMATS: Final[dict[str, int]] = {"F32": 4, "F16": 2, "BF16": 2}
# Block formats whose `.data` is handed out (uint8 [rows, row_bytes]) and decoded by
# `compiler.formats`; any other GGUF type is listed but not readable.
QUANT_FORMATS: Final = ("Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K")
SUPPORTED_FORMATS: Final = (*FLOAT_FORMATS, *QUANT_FORMATS)


@dataclass(frozen=True)
class TensorType:
    """A GGML tensor type: its GGUF name and block geometry (1 weight per block for floats)."""

    code: int
    name: str
    block_weights: int
    block_bytes: int

    @property
    def supported(self) -> bool:
        return self.name in SUPPORTED_FORMATS

    @property
    def is_float(self) -> bool:
        return self.name in FLOAT_FORMATS


@functools.lru_cache(maxsize=256)
def tensor_type(code: int) -> TensorType | None:
    """The GGML type with this code, or None if no GGML version defines it.

    Names and block sizes come from the `gguf` package (the reference for the format); the six
    block formats ggufc decodes take their geometry from `compiler.formats.FORMATS`, the same
    spec the dequantizers use, so a file is bounds-checked with the layout it will be read with.
    """
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        name = GGMLQuantizationType(code).name
    except ValueError:
        return None
    if name in QUANT_FORMATS:
        from compiler import formats

        spec = formats.FORMATS[name]
        return TensorType(code, name, spec.block_weights, spec.block_bytes)
    block_weights, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(code)]
    return TensorType(code, name, block_weights, block_bytes)
