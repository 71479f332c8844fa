"""Serialize a `Program` into a `.ggufc` file (layout: `runtime_schema.container`).

* Every string goes through one `InterningBuilder`: the first occurrence of a string is
  written, every later one reuses its offset, so a kernel source (or header) shared by all
  the layers of a model is stored once.
* Tables are written with the flatc-generated builder functions of
  `runtime_schema.generated`, so the writer follows `schema.fbs` slot for slot.
* Constants are laid out in the segment in program order, each at a multiple of
  `SEGMENT_ALIGNMENT`, deduplicated by the SHA-256 of their bytes (a tied embedding and
  lm_head are stored once).  With ``weights="external"`` a constant that has a `source`
  (bytes inside a `.gguf`) is not copied: the program references the file by its SHA-256,
  the offset and the size.
* `save_program` writes to a temporary file in the target's folder and renames it over the
  target, so a failure never leaves a partial file (nor replaces a good one).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import numpy as np
import torch

from compiler.errors import ProgramFormatError
from runtime_schema.container import (
    FLATBUFFER_IDENTIFIER,
    HEADER_SIZE,
    SEGMENT_ALIGNMENT,
    Header,
    align_up,
)
from runtime_schema.generated import Argument as fb_Argument
from runtime_schema.generated import AtenNode as fb_AtenNode
from runtime_schema.generated import BoolValue as fb_BoolValue
from runtime_schema.generated import Chain as fb_Chain
from runtime_schema.generated import Constant as fb_Constant
from runtime_schema.generated import Dim as fb_Dim
from runtime_schema.generated import DTypeValue as fb_DTypeValue
from runtime_schema.generated import ExternalFile as fb_ExternalFile
from runtime_schema.generated import ExternalLocation as fb_ExternalLocation
from runtime_schema.generated import FloatListValue as fb_FloatListValue
from runtime_schema.generated import FloatValue as fb_FloatValue
from runtime_schema.generated import IfNode as fb_IfNode
from runtime_schema.generated import Instruction as fb_Instruction
from runtime_schema.generated import IntListValue as fb_IntListValue
from runtime_schema.generated import IntValue as fb_IntValue
from runtime_schema.generated import KernelNode as fb_KernelNode
from runtime_schema.generated import KernelSource as fb_KernelSource
from runtime_schema.generated import MetadataEntry as fb_MetadataEntry
from runtime_schema.generated import NoneValue as fb_NoneValue
from runtime_schema.generated import Program as fb_Program
from runtime_schema.generated import SegmentLocation as fb_SegmentLocation
from runtime_schema.generated import StringValue as fb_StringValue
from runtime_schema.generated import SymIntInfo as fb_SymIntInfo
from runtime_schema.generated import SymIntRef as fb_SymIntRef
from runtime_schema.generated import SymNode as fb_SymNode
from runtime_schema.generated import TensorInfo as fb_TensorInfo
from runtime_schema.generated import TensorListRef as fb_TensorListRef
from runtime_schema.generated import TensorMap as fb_TensorMap
from runtime_schema.generated import TensorRef as fb_TensorRef
from runtime_schema.generated import Value as fb_Value
from runtime_schema.generated.ArgValue import ArgValue as fb_ArgValue
from runtime_schema.generated.Location import Location as fb_Location
from runtime_schema.generated.Node import Node as fb_Node
from runtime_schema.generated.ValueInfo import ValueInfo as fb_ValueInfo
from runtime_schema.program import (
    Argument,
    AtenNode,
    BoolValue,
    Chain,
    Constant,
    Dim,
    DTypeValue,
    FloatListValue,
    FloatValue,
    IfNode,
    IntListValue,
    IntValue,
    KernelNode,
    NoneValue,
    Program,
    StringValue,
    SymIntInfo,
    SymIntRef,
    SymNode,
    TensorInfo,
    TensorListRef,
    TensorMap,
    TensorRef,
    Value,
)
from runtime_schema.validate import validate_program

WEIGHT_MODES = ("embed", "external")
INITIAL_BUILDER_BYTES = 64 * 1024
HASH_CHUNK_BYTES = 16 * 1024 * 1024
_ZEROS = bytes(SEGMENT_ALIGNMENT)


class InterningBuilder:
    """A flatbuffers Builder through which every string of a program is written.

    ``string(s)`` returns the offset of `s`, writing it only the first time (unless
    ``intern=False``, which exists to measure what interning saves).  It counts references
    and bytes so callers can report what was saved.
    """

    def __init__(self, *, intern: bool = True, initial_size: int = INITIAL_BUILDER_BYTES):
        self.fb = flatbuffers.Builder(initial_size)
        self.intern = intern
        self._offsets: dict[str, int] = {}
        self.references = 0

    def string(self, text: str) -> int:
        self.references += 1
        if not self.intern:
            return self.fb.CreateString(text)
        offset = self._offsets.get(text)
        if offset is None:
            offset = self.fb.CreateString(text)
            self._offsets[text] = offset
        return offset

    @property
    def unique_strings(self) -> int:
        return len(self._offsets)

    # ---- vectors (never of strings: those go through `string`) -------------------------
    def uint_vector(self, start, items) -> int:
        start(self.fb, len(items))
        for x in reversed(items):
            self.fb.PrependUint32(x)
        return self.fb.EndVector()

    def offset_vector(self, start, offsets: list[int]) -> int:
        start(self.fb, len(offsets))
        for off in reversed(offsets):
            self.fb.PrependUOffsetTRelative(off)
        return self.fb.EndVector()

    def double_vector(self, start, items) -> int:
        start(self.fb, len(items))
        for x in reversed(items):
            self.fb.PrependFloat64(x)
        return self.fb.EndVector()

    def finish(self, root: int) -> bytes:
        self.fb.Finish(root, file_identifier=FLATBUFFER_IDENTIFIER)
        return bytes(self.fb.Output())


# ---- constant placement ------------------------------------------------------------------


@dataclass(frozen=True)
class _SegmentPlacement:
    offset: int
    size: int


@dataclass(frozen=True)
class _ExternalPlacement:
    file: int
    offset: int
    size: int


@dataclass(frozen=True)
class _ExternalFileEntry:
    path: str
    sha256: bytes
    size: int


@dataclass
class _Layout:
    placements: list  # per constant: _SegmentPlacement | _ExternalPlacement
    blobs: list[tuple[int, memoryview]]  # (segment offset, bytes), each stored once
    segment_size: int
    external_files: list[_ExternalFileEntry]


@functools.lru_cache(maxsize=64)
def _file_sha256_cached(real_path: str, size: int, mtime_ns: int) -> bytes:
    digest = hashlib.sha256()
    with open(real_path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.digest()


def file_sha256(path: str | os.PathLike) -> bytes:
    """SHA-256 of a whole file, cached per (path, size, mtime) within the process."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return _file_sha256_cached(real, st.st_size, st.st_mtime_ns)


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.numel() == 0:
        return memoryview(b"")
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")


def _slice_bytes(source, where: str) -> memoryview:
    try:
        size = os.path.getsize(source.path)
        if source.offset < 0 or source.size < 0 or source.offset + source.size > size:
            raise ProgramFormatError(
                f"{where}: source bytes [{source.offset}, {source.offset + source.size}) lie "
                f"outside {source.path} ({size} bytes)"
            )
        if source.size == 0:
            return memoryview(b"")
        mapped = np.memmap(
            source.path, dtype=np.uint8, mode="r", offset=source.offset, shape=(source.size,)
        )
    except OSError as exc:
        raise ProgramFormatError(f"{where}: cannot read source {source.path}: {exc}") from exc
    return memoryview(mapped).cast("B")


def _expected_nbytes(program: Program, constant: Constant) -> int:
    info = program.values[constant.value].info
    count = 1
    for d in info.shape:
        count *= d.size
    return count * info.dtype.itemsize


def _layout_constants(program: Program, weights: str, program_dir: Path) -> _Layout:
    placements: list = []
    blobs: list[tuple[int, memoryview]] = []
    by_digest: dict[bytes, _SegmentPlacement] = {}
    files: list[_ExternalFileEntry] = []
    file_index: dict[str, int] = {}
    cursor = 0
    for j, constant in enumerate(program.constants):
        value = program.values[constant.value]
        where = f"constants[{j}] ({value.name!r})"
        expected = _expected_nbytes(program, constant)
        source = constant.source
        if weights == "external" and source is not None:
            if source.size != expected:
                raise ProgramFormatError(
                    f"{where}: source holds {source.size} bytes, the value needs {expected}"
                )
            real = os.path.realpath(source.path)
            if real not in file_index:
                try:
                    size = os.path.getsize(real)
                    digest = file_sha256(real)
                except OSError as exc:
                    raise ProgramFormatError(f"{where}: cannot read {source.path}: {exc}") from exc
                if source.sha256 is not None and source.sha256 != digest:
                    raise ProgramFormatError(
                        f"{where}: {source.path} has SHA-256 {digest.hex()}, the constant "
                        f"expects {source.sha256.hex()}"
                    )
                try:
                    stored = os.path.relpath(real, program_dir)
                except ValueError:  # another drive: keep the absolute path
                    stored = real
                file_index[real] = len(files)
                files.append(_ExternalFileEntry(stored, digest, size))
            entry = files[file_index[real]]
            if source.offset < 0 or source.offset + source.size > entry.size:
                raise ProgramFormatError(
                    f"{where}: source bytes [{source.offset}, {source.offset + source.size}) "
                    f"lie outside {source.path} ({entry.size} bytes)"
                )
            placements.append(_ExternalPlacement(file_index[real], source.offset, source.size))
            continue
        if constant.data is not None:
            info = value.info
            shape = tuple(d.size for d in info.shape)
            if constant.data.dtype != info.dtype.torch_dtype or tuple(constant.data.shape) != shape:
                raise ProgramFormatError(
                    f"{where}: data is {constant.data.dtype} {list(constant.data.shape)}, the "
                    f"value is {info.dtype.torch_dtype} {list(shape)}"
                )
            data = _tensor_bytes(constant.data)
        elif source is not None:
            data = _slice_bytes(source, where)
        else:
            raise ProgramFormatError(f"{where}: has neither data nor a source")
        if data.nbytes != expected:
            raise ProgramFormatError(
                f"{where}: data has {data.nbytes} bytes, the value's dtype and shape need "
                f"{expected}"
            )
        digest = hashlib.sha256(data).digest()
        placement = by_digest.get(digest)
        if placement is None:
            placement = _SegmentPlacement(cursor, data.nbytes)
            by_digest[digest] = placement
            blobs.append((cursor, data))
            cursor = align_up(cursor + data.nbytes)
        placements.append(placement)
    segment_size = blobs[-1][0] + blobs[-1][1].nbytes if blobs else 0
    return _Layout(placements, blobs, segment_size, files)


# ---- flatbuffer ---------------------------------------------------------------------------


class _ProgramEncoder:
    def __init__(self, builder: InterningBuilder):
        self.b = builder
        self.fb = builder.fb

    def dims(self, start, dims: tuple[Dim, ...]) -> int:
        """A vector of Dim structs (stored inline)."""
        start(self.fb, len(dims))
        for d in reversed(dims):
            fb_Dim.CreateDim(self.fb, d.size, d.value)
        return self.fb.EndVector()

    def value(self, v: Value) -> int:
        name = self.b.string(v.name)
        if isinstance(v.info, TensorInfo):
            shape = self.dims(fb_TensorInfo.StartShapeVector, v.info.shape)
            fb_TensorInfo.Start(self.fb)
            fb_TensorInfo.AddDtype(self.fb, int(v.info.dtype))
            fb_TensorInfo.AddShape(self.fb, shape)
            info, info_type = fb_TensorInfo.End(self.fb), fb_ValueInfo.TensorInfo
        else:
            assert isinstance(v.info, SymIntInfo)
            fb_SymIntInfo.Start(self.fb)
            fb_SymIntInfo.AddMin(self.fb, v.info.min)
            fb_SymIntInfo.AddMax(self.fb, v.info.max)
            info, info_type = fb_SymIntInfo.End(self.fb), fb_ValueInfo.SymIntInfo
        fb_Value.Start(self.fb)
        fb_Value.AddName(self.fb, name)
        fb_Value.AddInfoType(self.fb, info_type)
        fb_Value.AddInfo(self.fb, info)
        return fb_Value.End(self.fb)

    def arg_value(self, v) -> tuple[int, int]:
        fb = self.fb
        if isinstance(v, TensorRef):
            fb_TensorRef.Start(fb)
            fb_TensorRef.AddValue(fb, v.value)
            return fb_TensorRef.End(fb), fb_ArgValue.TensorRef
        if isinstance(v, TensorListRef):
            items = self.b.uint_vector(fb_TensorListRef.StartValuesVector, v.values)
            fb_TensorListRef.Start(fb)
            fb_TensorListRef.AddValues(fb, items)
            return fb_TensorListRef.End(fb), fb_ArgValue.TensorListRef
        if isinstance(v, IntValue):
            fb_IntValue.Start(fb)
            fb_IntValue.AddValue(fb, v.value)
            return fb_IntValue.End(fb), fb_ArgValue.IntValue
        if isinstance(v, FloatValue):
            fb_FloatValue.Start(fb)
            # -0.0 equals the default 0.0 and would be left out, losing its sign
            fb.ForceDefaults(True)
            fb_FloatValue.AddValue(fb, v.value)
            fb.ForceDefaults(False)
            return fb_FloatValue.End(fb), fb_ArgValue.FloatValue
        if isinstance(v, BoolValue):
            fb_BoolValue.Start(fb)
            fb_BoolValue.AddValue(fb, v.value)
            return fb_BoolValue.End(fb), fb_ArgValue.BoolValue
        if isinstance(v, StringValue):
            text = self.b.string(v.value)
            fb_StringValue.Start(fb)
            fb_StringValue.AddValue(fb, text)
            return fb_StringValue.End(fb), fb_ArgValue.StringValue
        if isinstance(v, IntListValue):
            items = self.dims(fb_IntListValue.StartItemsVector, v.items)
            fb_IntListValue.Start(fb)
            fb_IntListValue.AddItems(fb, items)
            return fb_IntListValue.End(fb), fb_ArgValue.IntListValue
        if isinstance(v, FloatListValue):
            items = self.b.double_vector(fb_FloatListValue.StartItemsVector, v.items)
            fb_FloatListValue.Start(fb)
            fb_FloatListValue.AddItems(fb, items)
            return fb_FloatListValue.End(fb), fb_ArgValue.FloatListValue
        if isinstance(v, SymIntRef):
            fb_SymIntRef.Start(fb)
            fb_SymIntRef.AddValue(fb, v.value)
            return fb_SymIntRef.End(fb), fb_ArgValue.SymIntRef
        if isinstance(v, NoneValue):
            fb_NoneValue.Start(fb)
            return fb_NoneValue.End(fb), fb_ArgValue.NoneValue
        assert isinstance(v, DTypeValue)
        fb_DTypeValue.Start(fb)
        fb_DTypeValue.AddDtype(fb, int(v.dtype))
        return fb_DTypeValue.End(fb), fb_ArgValue.DTypeValue

    def argument(self, a: Argument) -> int:
        name = self.b.string(a.name) if a.name else 0
        value, value_type = self.arg_value(a.value)
        fb_Argument.Start(self.fb)
        if name:
            fb_Argument.AddName(self.fb, name)
        fb_Argument.AddValueType(self.fb, value_type)
        fb_Argument.AddValue(self.fb, value)
        return fb_Argument.End(self.fb)

    def arguments(self, start, args) -> int:
        return self.b.offset_vector(start, [self.argument(a) for a in args])

    def tensor_map(self, m: TensorMap) -> int:
        fb = self.fb
        fb_TensorMap.Start(fb)
        fb_TensorMap.AddTensor(fb, m.tensor)
        fb_TensorMap.AddBoxInner(fb, m.box_inner)
        fb_TensorMap.AddBoxRows(fb, m.box_rows)
        fb_TensorMap.AddSwizzle(fb, m.swizzle)
        fb_TensorMap.AddOptional(fb, m.optional)
        fb_TensorMap.AddElementBytes(fb, m.element_bytes)
        return fb_TensorMap.End(fb)

    def kernel(self, k: KernelNode) -> int:
        fb, b = self.fb, self.b
        name = b.string(k.name)
        sources = []
        for s in k.sources:
            entry, source, header = b.string(s.entry), b.string(s.source), b.string(s.header)
            maps = None
            if s.tensor_maps:
                maps = b.offset_vector(
                    fb_KernelSource.StartTensorMapsVector,
                    [self.tensor_map(m) for m in s.tensor_maps],
                )
            fb_KernelSource.Start(fb)
            fb_KernelSource.AddBackend(fb, int(s.backend))
            fb_KernelSource.AddEntry(fb, entry)
            fb_KernelSource.AddSource(fb, source)
            fb_KernelSource.AddHeader(fb, header)
            fb_KernelSource.AddDependentLaunch(fb, s.dependent_launch)
            if maps is not None:
                fb_KernelSource.AddTensorMaps(fb, maps)
            sources.append(fb_KernelSource.End(fb))
        sources_vec = b.offset_vector(fb_KernelNode.StartSourcesVector, sources)
        inputs = b.uint_vector(fb_KernelNode.StartInputsVector, k.inputs)
        outputs = b.uint_vector(fb_KernelNode.StartOutputsVector, k.outputs)
        grid = self.dims(fb_KernelNode.StartGridVector, k.grid)
        block = self.dims(fb_KernelNode.StartBlockVector, k.block)
        args = self.arguments(fb_KernelNode.StartArgsVector, k.args)
        template_args = self.arguments(fb_KernelNode.StartTemplateArgsVector, k.template_args)
        fb_KernelNode.Start(fb)
        fb_KernelNode.AddName(fb, name)
        fb_KernelNode.AddFormat(fb, int(k.format))
        fb_KernelNode.AddOp(fb, int(k.op))
        fb_KernelNode.AddKind(fb, int(k.kind))
        fb_KernelNode.AddSources(fb, sources_vec)
        fb_KernelNode.AddInputs(fb, inputs)
        fb_KernelNode.AddOutputs(fb, outputs)
        fb_KernelNode.AddGrid(fb, grid)
        fb_KernelNode.AddBlock(fb, block)
        fb_KernelNode.AddSharedMemoryBytes(fb, k.shared_memory_bytes)
        fb_KernelNode.AddArgs(fb, args)
        fb_KernelNode.AddTemplateArgs(fb, template_args)
        return fb_KernelNode.End(fb)

    def instruction(self, node) -> int:
        fb, b = self.fb, self.b
        if isinstance(node, KernelNode):
            body, body_type = self.kernel(node), fb_Node.KernelNode
        elif isinstance(node, IfNode):
            outputs = b.uint_vector(fb_IfNode.StartOutputsVector, node.outputs)
            fb_IfNode.Start(fb)
            fb_IfNode.AddCondition(fb, node.condition)
            fb_IfNode.AddCompare(fb, int(node.compare))
            fb_IfNode.AddConstant(fb, node.constant)
            fb_IfNode.AddThenChain(fb, node.then_chain)
            fb_IfNode.AddElseChain(fb, node.else_chain)
            fb_IfNode.AddOutputs(fb, outputs)
            body, body_type = fb_IfNode.End(fb), fb_Node.IfNode
        elif isinstance(node, SymNode):
            operands = self.dims(fb_SymNode.StartOperandsVector, node.operands)
            fb_SymNode.Start(fb)
            fb_SymNode.AddOp(fb, int(node.op))
            fb_SymNode.AddOperands(fb, operands)
            fb_SymNode.AddOutput(fb, node.output)
            body, body_type = fb_SymNode.End(fb), fb_Node.SymNode
        else:
            assert isinstance(node, AtenNode)
            op = b.string(node.op)
            args = self.arguments(fb_AtenNode.StartArgsVector, node.args)
            outputs = b.uint_vector(fb_AtenNode.StartOutputsVector, node.outputs)
            fb_AtenNode.Start(fb)
            fb_AtenNode.AddOp(fb, op)
            fb_AtenNode.AddArgs(fb, args)
            fb_AtenNode.AddOutputs(fb, outputs)
            body, body_type = fb_AtenNode.End(fb), fb_Node.AtenNode
        fb_Instruction.Start(fb)
        fb_Instruction.AddNodeType(fb, body_type)
        fb_Instruction.AddNode(fb, body)
        return fb_Instruction.End(fb)

    def chain(self, c: Chain) -> int:
        name = self.b.string(c.name)
        instructions = self.b.offset_vector(
            fb_Chain.StartInstructionsVector, [self.instruction(n) for n in c.instructions]
        )
        results = self.b.uint_vector(fb_Chain.StartResultsVector, c.results)
        fb_Chain.Start(self.fb)
        fb_Chain.AddName(self.fb, name)
        fb_Chain.AddInstructions(self.fb, instructions)
        fb_Chain.AddResults(self.fb, results)
        return fb_Chain.End(self.fb)

    def constant(self, c: Constant, placement) -> int:
        fb = self.fb
        if isinstance(placement, _SegmentPlacement):
            fb_SegmentLocation.Start(fb)
            fb_SegmentLocation.AddOffset(fb, placement.offset)
            fb_SegmentLocation.AddSize(fb, placement.size)
            location, location_type = fb_SegmentLocation.End(fb), fb_Location.SegmentLocation
        else:
            fb_ExternalLocation.Start(fb)
            fb_ExternalLocation.AddFile(fb, placement.file)
            fb_ExternalLocation.AddOffset(fb, placement.offset)
            fb_ExternalLocation.AddSize(fb, placement.size)
            location, location_type = fb_ExternalLocation.End(fb), fb_Location.ExternalLocation
        fb_Constant.Start(fb)
        fb_Constant.AddValue(fb, c.value)
        fb_Constant.AddLocationType(fb, location_type)
        fb_Constant.AddLocation(fb, location)
        return fb_Constant.End(fb)

    def external_file(self, entry: _ExternalFileEntry) -> int:
        path = self.b.string(entry.path)
        digest = self.fb.CreateByteVector(entry.sha256)
        fb_ExternalFile.Start(self.fb)
        fb_ExternalFile.AddPath(self.fb, path)
        fb_ExternalFile.AddSha256(self.fb, digest)
        fb_ExternalFile.AddSize(self.fb, entry.size)
        return fb_ExternalFile.End(self.fb)

    def metadata_entry(self, key: str, value: str) -> int:
        k, v = self.b.string(key), self.b.string(value)
        fb_MetadataEntry.Start(self.fb)
        fb_MetadataEntry.AddKey(self.fb, k)
        fb_MetadataEntry.AddValue(self.fb, v)
        return fb_MetadataEntry.End(self.fb)

    def program(self, p: Program, layout: _Layout) -> bytes:
        b = self.b
        values = b.offset_vector(fb_Program.StartValuesVector, [self.value(v) for v in p.values])
        inputs = b.uint_vector(fb_Program.StartInputsVector, p.inputs)
        outputs = b.uint_vector(fb_Program.StartOutputsVector, p.outputs)
        chains = b.offset_vector(fb_Program.StartChainsVector, [self.chain(c) for c in p.chains])
        constants = b.offset_vector(
            fb_Program.StartConstantsVector,
            [self.constant(c, pl) for c, pl in zip(p.constants, layout.placements)],
        )
        files = b.offset_vector(
            fb_Program.StartExternalFilesVector,
            [self.external_file(e) for e in layout.external_files],
        )
        metadata = b.offset_vector(
            fb_Program.StartMetadataVector, [self.metadata_entry(k, v) for k, v in p.metadata]
        )
        fb = self.fb
        fb_Program.Start(fb)
        fb_Program.AddSchemaVersion(fb, p.schema_version)
        fb_Program.AddValues(fb, values)
        fb_Program.AddInputs(fb, inputs)
        fb_Program.AddOutputs(fb, outputs)
        fb_Program.AddChains(fb, chains)
        fb_Program.AddMainChain(fb, p.main_chain)
        fb_Program.AddConstants(fb, constants)
        fb_Program.AddExternalFiles(fb, files)
        fb_Program.AddMetadata(fb, metadata)
        return b.finish(fb_Program.End(fb))


# ---- files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedProgram:
    """A program ready to be written: its header, flatbuffer and segment pieces."""

    header: Header
    flatbuffer: bytes
    blobs: list[tuple[int, memoryview]]
    string_references: int
    unique_strings: int


def encode_program(
    program: Program,
    *,
    weights: str = "embed",
    program_dir: str | os.PathLike = ".",
    intern_strings: bool = True,
) -> EncodedProgram:
    """Validate `program` and lay it out; ``intern_strings=False`` only to measure interning."""
    if weights not in WEIGHT_MODES:
        raise ValueError(f"weights must be one of {WEIGHT_MODES}, got {weights!r}")
    validate_program(program)
    layout = _layout_constants(program, weights, Path(program_dir))
    builder = InterningBuilder(intern=intern_strings)
    flatbuffer = _ProgramEncoder(builder).program(program, layout)
    segment_crc = 0
    cursor = 0
    for offset, data in layout.blobs:
        segment_crc = _crc_update(segment_crc, _ZEROS[: offset - cursor])
        segment_crc = _crc_update(segment_crc, data)
        cursor = offset + data.nbytes
    header = Header.for_sizes(flatbuffer, layout.segment_size, segment_crc)
    return EncodedProgram(
        header, flatbuffer, layout.blobs, builder.references, builder.unique_strings
    )


def _crc_update(crc: int, data) -> int:
    return zlib.crc32(data, crc) & 0xFFFFFFFF


def _write_segment(f, blobs: list[tuple[int, memoryview]]) -> None:
    cursor = 0
    for offset, data in blobs:
        f.write(_ZEROS[: offset - cursor])
        f.write(data)
        cursor = offset + data.nbytes


def write_encoded(f, encoded: EncodedProgram) -> None:
    header = encoded.header
    f.write(header.pack())
    f.write(encoded.flatbuffer)
    f.write(_ZEROS[: header.segment_offset - HEADER_SIZE - len(encoded.flatbuffer)])
    _write_segment(f, encoded.blobs)


def program_to_bytes(program: Program, *, weights: str = "embed", program_dir=".") -> bytes:
    """The bytes `save_program` would write (for tests and in-memory use)."""
    out = io.BytesIO()
    write_encoded(out, encode_program(program, weights=weights, program_dir=program_dir))
    return out.getvalue()


def save_program(
    program: Program, path: str | os.PathLike, *, weights: str = "embed"
) -> EncodedProgram:
    """Write `program` to `path` atomically; returns what was written (sizes, counts).

    ``weights="embed"`` copies every constant into the file's segment; ``"external"``
    references the `.gguf` a constant came from (its `source`) instead, by SHA-256.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    encoded = encode_program(program, weights=weights, program_dir=folder.resolve())
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write_encoded(f, encoded)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return encoded
