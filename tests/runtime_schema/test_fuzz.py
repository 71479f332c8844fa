"""Fuzzing the loader: damaged program files raise ProgramFormatError and nothing else.

Each run mutates valid files (the kitchen-sink program, embedded and with external
weights) in memory and loads them with
`load_program_bytes`.  Mutations:

* random bit flips anywhere (the CRCs must catch them);
* bit flips, byte writes and truncations inside the flatbuffer, the header CRCs then
  recomputed ("re-signed") so the damage reaches the bounds-checked reader;
* targeted writes into the fields the reader visited in the intact file: offsets, vector
  lengths, value / chain indices (0, just out of range, huge), enums and union type bytes
  (swapped union members, unknown values);
* header fields: sizes, offsets, version, magic.

A mutant that still loads must also run or fail with a GgufcError (the first
`RUN_LOADED_MUTANTS` of them).  Each load must take
under a second, and the heap it allocates stays bounded.  The random seed is fresh each run
and printed on failure (set GGUFC_FUZZ_SEED to replay one).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import resource
import struct
import time
import tracemalloc

import pytest
import torch
from rs_sample_programs import HIDDEN, VOCAB, kitchen_sink, kitchen_sink_data

from compiler.errors import GgufcError, ProgramFormatError
from runtime_schema import load_program_bytes, program_to_bytes, run_program
from runtime_schema import reader as reader_module
from runtime_schema.builder import ProgramBuilder
from runtime_schema.container import HEADER_SIZE, crc32
from runtime_schema.program import DType, GgufSlice
from runtime_schema.reader import DIM_STRUCT
from runtime_schema.synthetic import layered_program

MUTANTS_PER_RUN = 10_000
MAX_SECONDS_PER_LOAD = 1.0
# Heap a single load may allocate, as a multiple of the file size plus a fixed allowance.
HEAP_BYTES_PER_FILE_BYTE = 64
HEAP_ALLOWANCE = 4 * 1024 * 1024
TRACED_MUTANTS = 300
MAX_INPUT_ELEMENTS = 1 << 20
# Mutants that still load are also run, up to this many per run (a run costs ~10 loads).
RUN_LOADED_MUTANTS = 200
# Address space a run of a loaded mutant may add (its tensors are tiny unless mutated).
RUN_ADDRESS_SPACE_BYTES = 1 << 30
HEADER_FIELDS = {  # name -> (offset, struct format)
    "format_version": (8, "<I"),
    "header_size": (12, "<I"),
    "flatbuffer_offset": (16, "<Q"),
    "flatbuffer_size": (24, "<Q"),
    "segment_offset": (32, "<Q"),
    "segment_size": (40, "<Q"),
}


def _resign(buf: bytearray) -> None:
    """Recompute both CRCs so that the mutation is judged by the reader, not the CRC."""
    fb_off, fb_size, seg_off, seg_size = struct.unpack_from("<QQQQ", buf, 16)
    if fb_off + fb_size <= len(buf):
        struct.pack_into("<I", buf, 48, crc32(bytes(buf[fb_off : fb_off + fb_size])))
    if seg_off <= len(buf):
        struct.pack_into("<I", buf, 52, crc32(bytes(buf[seg_off : seg_off + seg_size])))


def _visited_fields(blob: bytes, program_dir) -> list[tuple[int, int]]:
    """(absolute position in the file, width) of every field the reader reads in `blob`."""
    fields: list[tuple[int, int]] = []
    original_field = reader_module._Table._field
    original_vector = reader_module._Table._vector

    def record_field(self, slot, width, name):
        at = original_field(self, slot, width, name)
        if at:
            fields.append((HEADER_SIZE + at, width))
        return at

    def record_vector(self, slot, name, element_bytes):
        start, length = original_vector(self, slot, name, element_bytes)
        if start:
            fields.append((HEADER_SIZE + start - 4, 4))  # the length word
            if element_bytes == DIM_STRUCT.size:  # Dim structs: their value indices
                fields.extend(
                    (HEADER_SIZE + start + DIM_STRUCT.size * i + 8, 4) for i in range(length)
                )
        return start, length

    reader_module._Table._field = record_field
    reader_module._Table._vector = record_vector
    try:
        load_program_bytes(blob, program_dir=program_dir)
    finally:
        reader_module._Table._field = original_field
        reader_module._Table._vector = original_vector
    return sorted(set(fields))


def _seed_files(
    tmp_path, *, with_synthetic: bool = False
) -> list[tuple[str, bytes, list[tuple[int, int]]]]:
    data = kitchen_sink_data(seed=7)
    seeds = [("kitchen-sink", program_to_bytes(kitchen_sink(data)))]
    gguf = tmp_path / "w.gguf"
    gguf.write_bytes(bytes(range(256)) * 8)
    b = ProgramBuilder()
    w = b.constant("w", source=GgufSlice(str(gguf), 64, 256), dtype=DType.UINT8, shape=(8, 32))
    b.constant("v", torch.arange(16, dtype=torch.float32))
    seeds.append(
        (
            "external",
            program_to_bytes(b.build(outputs=[w]), weights="external", program_dir=tmp_path),
        )
    )
    if with_synthetic:
        synthetic = layered_program(1, hidden=256, ffn=256, vocab=32)
        seeds.append(("synthetic", program_to_bytes(synthetic)))
    return [(name, blob, _visited_fields(blob, tmp_path)) for name, blob in seeds]


def _mutate(
    rng: random.Random, blob: bytes, fields: list[tuple[int, int]]
) -> tuple[str, bytearray]:
    buf = bytearray(blob)
    fb_end = HEADER_SIZE + struct.unpack_from("<Q", buf, 24)[0]
    kind = rng.randrange(8)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            bit = rng.randrange(len(buf) * 8)
            buf[bit // 8] ^= 1 << (bit % 8)
        return "bit flips, not re-signed", buf
    if kind == 1:
        for _ in range(rng.randint(1, 4)):
            bit = rng.randrange(HEADER_SIZE * 8, fb_end * 8)
            buf[bit // 8] ^= 1 << (bit % 8)
        _resign(buf)
        return "flatbuffer bit flips", buf
    if kind == 2:
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(HEADER_SIZE, fb_end)] = rng.randrange(256)
        _resign(buf)
        return "flatbuffer byte writes", buf
    if kind == 3:
        cut = rng.randrange(len(buf))
        del buf[cut:]
        if rng.random() < 0.5 and len(buf) >= HEADER_SIZE:
            # keep the header consistent with the shorter file: the reader sees the cut
            new_fb = max(0, cut - HEADER_SIZE)
            struct.pack_into("<QQQ", buf, 24, new_fb, (HEADER_SIZE + new_fb + 63) // 64 * 64, 0)
            del buf[HEADER_SIZE + new_fb :]
            buf.extend(bytes((HEADER_SIZE + new_fb + 63) // 64 * 64 - len(buf)))
            _resign(buf)
        return f"truncated at {cut}", buf
    if kind in (4, 5, 6):
        pos, width = rng.choice(fields)
        if width == 1:
            # enums and union types: neighbours (swapped members) or unknown values
            value = rng.choice([buf[pos] + 1, buf[pos] - 1, 0, rng.randrange(256)]) % 256
            buf[pos] = value
        else:
            (old,) = struct.unpack_from("<I", buf, pos)
            limit = 2 ** (8 * min(width, 4))
            value = (
                rng.choice(
                    [
                        0,
                        1,
                        old + 1,
                        old - 1,
                        old + 4,
                        old * 2,
                        len(buf),
                        len(buf) + 1,
                        0x7FFFFFFF,
                        0xFFFFFFFF,
                        rng.randrange(limit),
                    ]
                )
                % limit
            )
            struct.pack_into("<I", buf, pos, value)
        _resign(buf)
        return f"field at {pos} (width {width}) set", buf
    name = rng.choice(list(HEADER_FIELDS))
    offset, fmt = HEADER_FIELDS[name]
    (old,) = struct.unpack_from(fmt, buf, offset)
    limit = 2 ** (8 * struct.calcsize(fmt))
    value = rng.choice([0, old + 1, old - 1, old + 64, old * 2, limit - 1, rng.randrange(limit)])
    struct.pack_into(fmt, buf, offset, value % limit)
    return f"header.{name} set", buf


@contextlib.contextmanager
def _address_space_limit(extra_bytes: int):
    """Cap this process's address space at its current size + `extra_bytes`, so that a
    mutant declaring huge tensors fails to allocate instead of exhausting the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as status:
        vm_kb = int(status.read().split("VmSize:")[1].split()[0])
    limit = vm_kb * 1024 + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _try_run(loaded) -> None:
    m = 3
    inputs = []
    for i in loaded.program.inputs:
        info = loaded.program.values[i].info
        shape = [m if d.is_symbolic else d.size for d in info.shape]
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            return  # a mutated input shape: building such an input is not the point
        if info.dtype == DType.INT64:
            inputs.append(torch.randint(0, VOCAB, shape))
        else:
            inputs.append(torch.randn(shape).to(info.dtype.torch_dtype))
    run_program(loaded, inputs)


def test_fuzzed_files_raise_only_program_format_error(tmp_path):
    seed = int(os.environ.get("GGUFC_FUZZ_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    seeds = _seed_files(tmp_path)
    outcomes = {"refused": 0, "loaded": 0}
    slowest = 0.0
    tracemalloc.start()
    try:
        for i in range(MUTANTS_PER_RUN):
            name, blob, fields = seeds[i % len(seeds)]
            what, mutant = _mutate(rng, blob, fields)
            context = f"seed {seed}, mutant {i} of {name}: {what}"
            traced = i < TRACED_MUTANTS
            if traced:
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
            elif i == TRACED_MUTANTS:
                tracemalloc.stop()
            start = time.perf_counter()
            try:
                loaded = load_program_bytes(mutant, program_dir=tmp_path)
            except ProgramFormatError:
                outcomes["refused"] += 1
                loaded = None
            except Exception as exc:  # noqa: BLE001  (the point: nothing else may escape)
                pytest.fail(f"{context}: raised {type(exc).__name__}: {exc}")
            elapsed = time.perf_counter() - start
            slowest = max(slowest, elapsed)
            assert elapsed < MAX_SECONDS_PER_LOAD, f"{context}: load took {elapsed:.2f} s"
            if traced:
                peak = tracemalloc.get_traced_memory()[1] - base
                allowed = HEAP_BYTES_PER_FILE_BYTE * len(mutant) + HEAP_ALLOWANCE
                assert peak < allowed, f"{context}: load allocated {peak} bytes"
            if loaded is not None:
                outcomes["loaded"] += 1
                if outcomes["loaded"] > RUN_LOADED_MUTANTS:
                    continue
                try:
                    with _address_space_limit(RUN_ADDRESS_SPACE_BYTES):
                        _try_run(loaded)
                except GgufcError:
                    pass
                except Exception as exc:  # noqa: BLE001
                    pytest.fail(
                        f"{context}: loaded, then running raised {type(exc).__name__}: {exc}"
                    )
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
    # The mutations must mostly be refused, and not all by the CRC alone.
    assert outcomes["refused"] > MUTANTS_PER_RUN // 2, outcomes
    print(f"fuzz seed {seed}: {outcomes}, slowest load {slowest * 1000:.1f} ms")


def test_each_mutation_kind_reaches_the_reader(tmp_path):
    """Re-signed mutations are refused by the reader or validator, not by a CRC."""
    rng = random.Random(1234)
    _, blob, fields = _seed_files(tmp_path)[0]
    messages = []
    for _ in range(300):
        _, mutant = _mutate(rng, blob, fields)
        try:
            load_program_bytes(mutant, program_dir=tmp_path)
        except ProgramFormatError as exc:
            messages.append(str(exc))
    assert any("crc32" in m for m in messages)
    assert any("out of range" in m for m in messages)
    assert any("is not a" in m and "this reader knows" in m for m in messages)
    assert any("past the end" in m or "outside" in m for m in messages)


@pytest.mark.parametrize("m", [1, 4])
def test_unmutated_seeds_load_and_run(tmp_path, m):
    for name, blob, fields in _seed_files(tmp_path, with_synthetic=True):
        assert fields, name
        loaded = load_program_bytes(blob, program_dir=tmp_path)
        if name == "kitchen-sink":
            run_program(loaded, [torch.randn(m, HIDDEN), torch.randint(0, VOCAB, (m,))])
