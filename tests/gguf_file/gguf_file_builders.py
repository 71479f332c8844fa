"""Test files for the GGUF reader: valid ones written by gguf.GGUFWriter (the reference writer),
and byte-exact ones assembled here so that bad-input tests can damage one chosen field.

Byte layout (see compiler.gguf_file.layout): magic | u32 version | u64 n_tensors | u64 n_kv |
kv* | tensor_info* | pad to alignment | data.
"""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np

from compiler.gguf_file.layout import SHORT_ARRAY_MAX_LEN

# Long enough for the reader to hand these arrays out lazily.
LONG_ARRAY_LEN = 5 * SHORT_ARRAY_MAX_LEN

VALUE_TYPE = {t.name.lower(): t.value for t in gguf.GGUFValueType}
TENSOR_TYPE = {t.name: t.value for t in gguf.GGMLQuantizationType}
QUANT_NAMES = ("Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K")


# -- random data ----------------------------------------------------------------------------


def random_blocks(fmt: str, rows: int, row_weights: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [rows, row_bytes] of random valid blocks of `fmt` (finite f16 scales)."""
    import torch

    from compiler import formats

    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    return formats.random_blocks(fmt, rows, row_weights, generator=generator).numpy()


def float_tensor(fmt: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    values = rng.standard_normal(shape).astype(np.float32)
    if fmt == "F32":
        return values
    if fmt == "F16":
        return values.astype(np.float16)
    if fmt == "BF16":  # upper halves of the float32 bit patterns
        return (values.view(np.uint32) >> 16).astype(np.uint16)
    raise ValueError(fmt)


# -- files written by the reference writer --------------------------------------------------


def write_with_gguf_writer(
    path: Path, tensors: dict[str, tuple[str, np.ndarray]], metadata: bool = True
) -> Path:
    """Write `name -> (format, array)`; quantized arrays are uint8 [..., row_bytes]."""
    writer = gguf.GGUFWriter(str(path), arch="testarch")
    if metadata:
        writer.add_name("tiny test model")
        writer.add_uint32("testarch.block_count", 2)
        writer.add_float32("testarch.rope.freq_base", 10000.5)
        writer.add_bool("testarch.flag", True)
        writer.add_int64("testarch.negative", -5)
        writer.add_float64("testarch.precise", 0.1)
        writer.add_array("testarch.short", [1, 2, 3])
        writer.add_array("general.tags", ["a", "bé", "c"])
        writer.add_array("tokenizer.ggml.tokens", [f"tok{i}é" for i in range(LONG_ARRAY_LEN)])
        writer.add_array("tokenizer.ggml.scores", [i * 0.5 for i in range(LONG_ARRAY_LEN)])
        writer.add_key_value(
            "tokenizer.ggml.token_type",
            [i % 7 - 3 for i in range(LONG_ARRAY_LEN)],
            gguf.GGUFValueType.ARRAY,
            sub_type=gguf.GGUFValueType.INT32,
        )
    for name, (fmt, array) in tensors.items():
        if fmt in ("F32", "F16"):
            writer.add_tensor(name, array)
        else:
            writer.add_tensor(name, array, raw_dtype=gguf.GGMLQuantizationType[fmt])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def small_tensors(rng: np.random.Generator) -> dict[str, tuple[str, np.ndarray]]:
    """A few small tensors covering float and block formats."""
    return {
        "norm.weight": ("F32", float_tensor("F32", (32,), rng)),
        "proj.weight": ("F16", float_tensor("F16", (2, 32), rng)),
        "embd.weight": ("Q8_0", random_blocks("Q8_0", 2, 32, rng)),
        "ffn.weight": ("Q4_K", random_blocks("Q4_K", 1, 256, rng)),
    }


# -- files assembled byte by byte -----------------------------------------------------------


def gguf_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def scalar_kv(key: str, type_name: str, value: object) -> bytes:
    layout = gguf.GGUFWriter._simple_value_packing[gguf.GGUFValueType[type_name.upper()]]
    return (
        gguf_string(key)
        + struct.pack("<I", VALUE_TYPE[type_name])
        + struct.pack("<" + layout, value)
    )


def string_kv(key: str, value: str | bytes) -> bytes:
    return gguf_string(key) + struct.pack("<I", VALUE_TYPE["string"]) + gguf_string(value)


def raw_kv(key: str, type_code: int, payload: bytes) -> bytes:
    return gguf_string(key) + struct.pack("<I", type_code) + payload


def string_array_kv(key: str, items: list[str]) -> bytes:
    payload = struct.pack("<IQ", VALUE_TYPE["string"], len(items))
    return raw_kv(key, VALUE_TYPE["array"], payload + b"".join(gguf_string(s) for s in items))


def tensor_info(name: str, ne: tuple[int, ...], fmt: str | int, offset: int) -> bytes:
    type_code = TENSOR_TYPE[fmt] if isinstance(fmt, str) else fmt
    return (
        gguf_string(name)
        + struct.pack("<I", len(ne))
        + struct.pack(f"<{len(ne)}Q", *ne)
        + struct.pack("<IQ", type_code, offset)
    )


def assemble(
    kvs: list[bytes],
    infos: list[bytes],
    data: bytes = b"",
    *,
    version: int = 3,
    alignment: int = 32,
    magic: bytes = b"GGUF",
) -> bytes:
    """A GGUF file: header, kvs, tensor infos, zero padding to `alignment`, then `data`."""
    header = magic + struct.pack("<IQQ", version, len(infos), len(kvs))
    body = header + b"".join(kvs) + b"".join(infos)
    padding = -len(body) % alignment
    return body + bytes(padding) + data


def f32_tensor_file(name: str = "w", values: int = 8) -> bytes:
    """A valid file with one F32 tensor of `values` elements."""
    data = np.arange(values, dtype="<f4").tobytes()
    return assemble(
        [string_kv("general.architecture", "testarch")],
        [tensor_info(name, (values,), "F32", 0)],
        data,
    )
