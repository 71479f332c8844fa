"""A FlatBuffers reader for `schema.fbs` that trusts nothing in the buffer.

The flatc-generated accessors read wherever an offset points (no bounds checks), so the
loader does not use them on untrusted bytes.  This module decodes a `Program` buffer into
the dataclasses of `runtime_schema.program` with every read checked first:

* a table at ``pos``: its soffset, vtable (``vt = pos - soffset``, even size >= 4, inside
  the buffer) and inline size (``pos + size`` inside the buffer); a field's offset from the
  vtable must leave the whole field inside the table;
* an offset field: ``target = field_pos + uoffset`` inside the buffer;
* a vector: its length word and all ``length * element_size`` bytes inside the buffer;
* a string: length, bytes and the terminating NUL inside the buffer, valid UTF-8;
* enums and union types: known values only;
* work: tables may share children (offsets can point anywhere), so the number of tables and
  vector elements visited is capped at ``len(buffer) / 4`` (what a buffer without shared
  tables can hold); a crafted file cannot make the reader loop or blow up.

Field slots are the positions of the fields in `schema.fbs` (a union field takes two: its
type, then its value).  `tests/runtime_schema/test_generated.py` reads files with the
generated accessors too, so a slot that drifts from the schema is caught.

Every failure raises `ProgramFormatError` naming the field path, e.g.
``chains[0].instructions[4].node(KernelNode).inputs: vector of 3 x 4 bytes at 812 runs
past the end of the flatbuffer (900 bytes)``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from compiler.errors import ProgramFormatError
from runtime_schema.container import FLATBUFFER_IDENTIFIER
from runtime_schema.program import (
    ARG_VALUE_TYPES,
    Argument,
    AtenNode,
    Backend,
    BoolValue,
    Chain,
    CompareOp,
    Dim,
    DType,
    DTypeValue,
    FloatListValue,
    FloatValue,
    IfNode,
    IntListValue,
    IntValue,
    KernelKind,
    KernelNode,
    KernelSource,
    NoneValue,
    OpKind,
    QuantFormat,
    StringValue,
    SymIntInfo,
    SymIntRef,
    SymNode,
    SymOp,
    TensorInfo,
    TensorListRef,
    TensorMap,
    TensorRef,
    Value,
)

_U8 = struct.Struct("<B").unpack_from
_U16 = struct.Struct("<H").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I64 = struct.Struct("<q").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_F64 = struct.Struct("<d").unpack_from
_SCALARS = {  # kind -> (unpack, width)
    "u8": (_U8, 1),
    "i32": (_I32, 4),
    "u32": (_U32, 4),
    "i64": (_I64, 8),
    "u64": (_U64, 8),
    "f64": (_F64, 8),
}
UOFFSET_BYTES = 4
# struct Dim { size: long; value: int; } with its trailing padding to 8-byte alignment
DIM_STRUCT = struct.Struct("<qi4x")
VTABLE_HEADER_BYTES = 4
IDENTIFIER_END = 8
# Union type ids: 0 is NONE, members follow in schema order.
UNION_NONE = 0
# The smallest number of buffer bytes one table or vector element can occupy.
BYTES_PER_OBJECT = 4


# ---- string pool ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StringStats:
    """What interning did for one file: counts and bytes of strings, stored vs referenced.

    ``stored_bytes`` is what the file holds (4-byte length + text + NUL, padded to 4);
    ``uninterned_bytes`` what a writer storing every reference separately would hold.  The
    ``kernel_*`` figures count only kernel sources and headers."""

    unique: int
    references: int
    stored_bytes: int
    uninterned_bytes: int
    kernel_unique: int
    kernel_references: int
    kernel_stored_bytes: int
    kernel_uninterned_bytes: int


def string_footprint(text_bytes: int) -> int:
    """Bytes a flatbuffer string of `text_bytes` UTF-8 bytes occupies (length, NUL, pad)."""
    return (UOFFSET_BYTES + text_bytes + 1 + 3) // 4 * 4


class StringPool:
    """Decodes each string of the buffer once: one `str` object per distinct string."""

    def __init__(self, buf: bytes):
        self.buf = buf
        self._by_offset: dict[int, str] = {}
        self._by_text: dict[str, str] = {}
        self._footprint: dict[int, int] = {}
        self._references: dict[int, int] = {}
        self._kernel_offsets: set[int] = set()

    def get(self, target: int, table, name: str, *, kernel_code: bool = False) -> str:
        """The string at `target`, read for field `name` of `table` (for messages)."""
        text = self._by_offset.get(target)
        if text is None:
            buf, n = self.buf, len(self.buf)
            if target + UOFFSET_BYTES > n:
                table.fail(f"string at {target} lies past the end ({n})", name)
            (length,) = _U32(buf, target)
            end = target + UOFFSET_BYTES + length
            if end + 1 > n:
                table.fail(
                    f"string of {length} bytes at {target} runs past the end of the "
                    f"flatbuffer ({n} bytes)",
                    name,
                )
            if buf[end] != 0:
                table.fail(f"string at {target} is not NUL-terminated", name)
            try:
                decoded = buf[target + UOFFSET_BYTES : end].decode("utf-8")
            except UnicodeDecodeError as exc:
                table.fail(f"string at {target} is not UTF-8: {exc}", name)
            text = self._by_text.setdefault(decoded, decoded)
            self._by_offset[target] = text
            self._footprint[target] = string_footprint(length)
        self._references[target] = self._references.get(target, 0) + 1
        if kernel_code:
            self._kernel_offsets.add(target)
        return text

    def stats(self) -> StringStats:
        fp, refs, kernel = self._footprint, self._references, self._kernel_offsets
        return StringStats(
            unique=len(fp),
            references=sum(refs.values()),
            stored_bytes=sum(fp.values()),
            uninterned_bytes=sum(fp[t] * refs[t] for t in fp),
            kernel_unique=len(kernel),
            kernel_references=sum(refs[t] for t in kernel),
            kernel_stored_bytes=sum(fp[t] for t in kernel),
            kernel_uninterned_bytes=sum(fp[t] * refs[t] for t in kernel),
        )


# Enum value -> member, per enum type of the schema (faster than calling the enum).
_ENUM_MEMBERS = {
    kind: {int(member): member for member in kind}
    for kind in (Backend, CompareOp, DType, KernelKind, OpKind, QuantFormat, SymOp)
}


# ---- bounded tables -------------------------------------------------------------------------


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left: int):
        self.left = left


class _Table:
    """One table of the buffer, its vtable checked; fields read by slot.

    The table's path for messages (``chains[0].instructions[3].node(KernelNode)``) is
    built only when a message needs it, from the parent table, the field name, the vector
    index and the union member."""

    __slots__ = (
        "budget",
        "buf",
        "index",
        "member",
        "n",
        "name",
        "parent",
        "pool",
        "pos",
        "size",
        "vt",
        "vt_size",
    )

    def __init__(
        self,
        buf: bytes,
        pos: int,
        pool: StringPool,
        budget: _Budget,
        parent: _Table | None,
        name: str,
        index: int = -1,
        member: str = "",
    ):
        self.buf, self.pool, self.budget = buf, pool, budget
        self.parent, self.name, self.index, self.member = parent, name, index, member
        n = self.n = len(buf)
        budget.left -= 1
        if budget.left < 0:
            self.fail(f"more tables than a buffer of {n} bytes can hold (shared offsets)")
        if pos < 0 or pos + UOFFSET_BYTES > n:
            self.fail(f"table at {pos} lies outside the flatbuffer ({n})")
        vt = pos - _I32(buf, pos)[0]
        if vt < 0 or vt + VTABLE_HEADER_BYTES > n:
            self.fail(f"vtable at {vt} lies outside the flatbuffer ({n})")
        vt_size, size = _U16(buf, vt)[0], _U16(buf, vt + 2)[0]
        if vt_size < VTABLE_HEADER_BYTES or vt_size % 2 or vt + vt_size > n:
            self.fail(f"vtable at {vt} has a bad size {vt_size} (flatbuffer is {n} bytes)")
        if size < UOFFSET_BYTES or pos + size > n:
            self.fail(f"table at {pos} of {size} bytes lies outside the flatbuffer ({n})")
        self.pos, self.vt, self.vt_size, self.size = pos, vt, vt_size, size

    @property
    def where(self) -> str:
        text = self.name if self.parent is None else f"{self.parent.where}.{self.name}"
        if self.index >= 0:
            text += f"[{self.index}]"
        if self.member:
            text += f"({self.member})"
        return text

    def fail(self, message: str, field_name: str = ""):
        where = f"{self.where}.{field_name}" if field_name else self.where
        raise ProgramFormatError(f"{where}: {message}")

    def _field(self, slot: int, width: int, name: str) -> int:
        """Absolute position of a present field, or 0 when absent."""
        entry = VTABLE_HEADER_BYTES + 2 * slot
        if entry + 2 > self.vt_size:
            return 0
        off = _U16(self.buf, self.vt + entry)[0]
        if off == 0:
            return 0
        if off < UOFFSET_BYTES or off + width > self.size:
            self.fail(f"field at {off} (+{width} bytes) lies outside its table ({self.size})", name)
        return self.pos + off

    def scalar(self, slot: int, name: str, kind: str, default=0):
        unpack, width = _SCALARS[kind]
        at = self._field(slot, width, name)
        return unpack(self.buf, at)[0] if at else default

    def enum(self, slot: int, name: str, kind: type[enum.IntEnum], default: int = 0):
        at = self._field(slot, 1, name)
        raw = self.buf[at] if at else default
        member = _ENUM_MEMBERS[kind].get(raw)
        if member is None:
            self.fail(f"{raw} is not a {kind.__name__} this reader knows", name)
        return member

    def _target(self, slot: int, name: str) -> int:
        at = self._field(slot, UOFFSET_BYTES, name)
        if not at:
            return 0
        target = at + _U32(self.buf, at)[0]
        if target + UOFFSET_BYTES > self.n:
            self.fail(f"offset points at {target}, past the flatbuffer ({self.n})", name)
        return target

    def string(self, slot: int, name: str, *, kernel_code: bool = False) -> str:
        """An optional string; absent reads as ""."""
        target = self._target(slot, name)
        if not target:
            return ""
        return self.pool.get(target, self, name, kernel_code=kernel_code)

    def _vector(self, slot: int, name: str, element_bytes: int) -> tuple[int, int]:
        """(first element position, length); (0, 0) when absent."""
        target = self._target(slot, name)
        if not target:
            return 0, 0
        length = _U32(self.buf, target)[0]
        start = target + UOFFSET_BYTES
        if start + length * element_bytes > self.n:
            self.fail(
                f"vector of {length} x {element_bytes} bytes at {target} runs past the end of "
                f"the flatbuffer ({self.n} bytes)",
                name,
            )
        self.budget.left -= length
        if self.budget.left < 0:
            self.fail(f"more elements than a buffer of {self.n} bytes can hold", name)
        return start, length

    def uints(self, slot: int, name: str) -> tuple[int, ...]:
        start, length = self._vector(slot, name, 4)
        return struct.unpack_from(f"<{length}I", self.buf, start) if length else ()

    def doubles(self, slot: int, name: str) -> tuple[float, ...]:
        start, length = self._vector(slot, name, 8)
        return struct.unpack_from(f"<{length}d", self.buf, start) if length else ()

    def ubytes(self, slot: int, name: str) -> bytes:
        start, length = self._vector(slot, name, 1)
        return bytes(self.buf[start : start + length])

    def tables(self, slot: int, name: str) -> list[_Table]:
        start, length = self._vector(slot, name, UOFFSET_BYTES)
        if not length:
            return []
        buf, pool, budget = self.buf, self.pool, self.budget
        offsets = struct.unpack_from(f"<{length}I", buf, start)
        return [
            _Table(buf, start + UOFFSET_BYTES * i + off, pool, budget, self, name, i)
            for i, off in enumerate(offsets)
        ]

    def union(self, slot: int, name: str, members: tuple[str, ...]) -> tuple[int, _Table]:
        """(member position 0.., table) of a required union field at slots slot, slot + 1."""
        at = self._field(slot, 1, f"{name}_type")
        type_id = self.buf[at] if at else UNION_NONE
        if type_id == UNION_NONE:
            self.fail("required union is missing", name)
        if type_id > len(members):
            self.fail(
                f"{type_id} is not a member this reader knows (1..{len(members)})", f"{name}_type"
            )
        member = type_id - 1
        target = self._target(slot + 1, name)
        if not target:
            self.fail("union value is missing", name)
        return member, _Table(
            self.buf, target, self.pool, self.budget, self, name, member=members[member]
        )


# ---- the schema, table by table (slots = field positions in schema.fbs) --------------------


def _dims(t: _Table, slot: int, name: str) -> tuple[Dim, ...]:
    """A vector of Dim structs: (int64 size, int32 value, 4 bytes padding) each."""
    start, length = t._vector(slot, name, DIM_STRUCT.size)
    if not length:
        return ()
    view = memoryview(t.buf)[start : start + DIM_STRUCT.size * length]
    return tuple(Dim(size, value) for size, value in DIM_STRUCT.iter_unpack(view))


_VALUE_INFO_MEMBERS = ("TensorInfo", "SymIntInfo")


def _value(t: _Table) -> Value:
    name = t.string(0, "name")
    member, info = t.union(1, "info", _VALUE_INFO_MEMBERS)
    if member == 0:
        return Value(name, TensorInfo(info.enum(0, "dtype", DType), _dims(info, 1, "shape")))
    return Value(name, SymIntInfo(info.scalar(0, "min", "i64"), info.scalar(1, "max", "i64")))


_ARG_MEMBERS = tuple(cls.__name__ for cls in ARG_VALUE_TYPES)


def _arg_value(member: int, t: _Table):
    cls = ARG_VALUE_TYPES[member]
    if cls is TensorRef:
        return TensorRef(t.scalar(0, "value", "u32"))
    if cls is TensorListRef:
        return TensorListRef(t.uints(0, "values"))
    if cls is IntValue:
        return IntValue(t.scalar(0, "value", "i64"))
    if cls is FloatValue:
        return FloatValue(t.scalar(0, "value", "f64", 0.0))
    if cls is BoolValue:
        return BoolValue(bool(t.scalar(0, "value", "u8")))
    if cls is StringValue:
        return StringValue(t.string(0, "value"))
    if cls is IntListValue:
        return IntListValue(_dims(t, 0, "items"))
    if cls is FloatListValue:
        return FloatListValue(t.doubles(0, "items"))
    if cls is SymIntRef:
        return SymIntRef(t.scalar(0, "value", "u32"))
    if cls is NoneValue:
        return NoneValue()
    assert cls is DTypeValue
    return DTypeValue(t.enum(0, "dtype", DType))


def _arguments(t: _Table, slot: int, name: str) -> tuple[Argument, ...]:
    out = []
    for a in t.tables(slot, name):
        arg_name = a.string(0, "name")
        member, value = a.union(1, "value", _ARG_MEMBERS)
        out.append(Argument(_arg_value(member, value), arg_name))
    return tuple(out)


def _kernel_source(t: _Table) -> KernelSource:
    return KernelSource(
        backend=t.enum(0, "backend", Backend),
        entry=t.string(1, "entry"),
        source=t.string(2, "source", kernel_code=True),
        header=t.string(3, "header", kernel_code=True),
        dependent_launch=bool(t.scalar(4, "dependent_launch", "u8")),
        tensor_maps=tuple(
            TensorMap(
                tensor=m.scalar(0, "tensor", "u32"),
                box_inner=m.scalar(1, "box_inner", "u32"),
                box_rows=m.scalar(2, "box_rows", "u32"),
                swizzle=m.scalar(3, "swizzle", "u32", TensorMap.swizzle),
                optional=bool(m.scalar(4, "optional", "u8")),
                element_bytes=m.scalar(5, "element_bytes", "u32", TensorMap.element_bytes),
            )
            for m in t.tables(5, "tensor_maps")
        ),
    )


def _kernel_node(t: _Table) -> KernelNode:
    return KernelNode(
        name=t.string(0, "name"),
        format=t.enum(1, "format", QuantFormat),
        op=t.enum(2, "op", OpKind),
        kind=t.enum(3, "kind", KernelKind),
        sources=tuple(_kernel_source(s) for s in t.tables(4, "sources")),
        inputs=t.uints(5, "inputs"),
        outputs=t.uints(6, "outputs"),
        grid=_dims(t, 7, "grid"),
        block=_dims(t, 8, "block"),
        shared_memory_bytes=t.scalar(9, "shared_memory_bytes", "u32"),
        args=_arguments(t, 10, "args"),
        template_args=_arguments(t, 11, "template_args"),
    )


def _if_node(t: _Table) -> IfNode:
    return IfNode(
        condition=t.scalar(0, "condition", "u32"),
        compare=t.enum(1, "compare", CompareOp),
        constant=t.scalar(2, "constant", "i64"),
        then_chain=t.scalar(3, "then_chain", "u32"),
        else_chain=t.scalar(4, "else_chain", "u32"),
        outputs=t.uints(5, "outputs"),
    )


def _sym_node(t: _Table) -> SymNode:
    return SymNode(
        op=t.enum(0, "op", SymOp),
        operands=_dims(t, 1, "operands"),
        output=t.scalar(2, "output", "u32"),
    )


def _aten_node(t: _Table) -> AtenNode:
    return AtenNode(
        op=t.string(0, "op"), args=_arguments(t, 1, "args"), outputs=t.uints(2, "outputs")
    )


_NODE_READERS = (_kernel_node, _if_node, _sym_node, _aten_node)
_NODE_MEMBERS = ("KernelNode", "IfNode", "SymNode", "AtenNode")


def _chain(t: _Table) -> Chain:
    name = t.string(0, "name")
    instructions = []
    for ins in t.tables(1, "instructions"):
        member, node = ins.union(0, "node", _NODE_MEMBERS)
        instructions.append(_NODE_READERS[member](node))
    return Chain(name, tuple(instructions), t.uints(2, "results"))


# ---- constants and files as stored (the loader turns them into data) ----------------------


@dataclass(frozen=True)
class StoredConstant:
    """A Constant table as stored: where its bytes are, not the bytes."""

    value: int
    external: bool
    file: int  # index into external_files when external
    offset: int
    size: int


@dataclass(frozen=True)
class StoredExternalFile:
    path: str
    sha256: bytes
    size: int


_LOCATION_MEMBERS = ("SegmentLocation", "ExternalLocation")


def _constant(t: _Table) -> StoredConstant:
    value = t.scalar(0, "value", "u32")
    member, loc = t.union(1, "location", _LOCATION_MEMBERS)
    if member == 0:
        return StoredConstant(
            value, False, 0, loc.scalar(0, "offset", "u64"), loc.scalar(1, "size", "u64")
        )
    return StoredConstant(
        value,
        True,
        loc.scalar(0, "file", "u32"),
        loc.scalar(1, "offset", "u64"),
        loc.scalar(2, "size", "u64"),
    )


@dataclass(frozen=True)
class StoredProgram:
    """The decoded flatbuffer: the program minus constant data, plus where that data is."""

    schema_version: int
    values: tuple[Value, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    chains: tuple[Chain, ...]
    main_chain: int
    constants: tuple[StoredConstant, ...]
    external_files: tuple[StoredExternalFile, ...]
    metadata: tuple[tuple[str, str], ...]
    strings: StringStats


def read_program_flatbuffer(buf: bytes) -> StoredProgram:
    """Decode a Program flatbuffer, bounds-checking every read (see the module doc)."""
    n = len(buf)
    if n < IDENTIFIER_END:
        raise ProgramFormatError(f"flatbuffer: {n} bytes is too short for a root and identifier")
    if buf[UOFFSET_BYTES:IDENTIFIER_END] != FLATBUFFER_IDENTIFIER:
        raise ProgramFormatError(
            f"flatbuffer: identifier is {bytes(buf[4:8])!r}, expected {FLATBUFFER_IDENTIFIER!r}"
        )
    pool = StringPool(buf)
    budget = _Budget(n // BYTES_PER_OBJECT + 1)
    root = _Table(buf, _U32(buf, 0)[0], pool, budget, None, "program")
    files = []
    for f in root.tables(7, "external_files"):
        digest = f.ubytes(1, "sha256")
        files.append(StoredExternalFile(f.string(0, "path"), digest, f.scalar(2, "size", "u64")))
    program_fields = {
        "schema_version": root.scalar(0, "schema_version", "u32"),
        "values": tuple(_value(v) for v in root.tables(1, "values")),
        "inputs": root.uints(2, "inputs"),
        "outputs": root.uints(3, "outputs"),
        "chains": tuple(_chain(c) for c in root.tables(4, "chains")),
        "main_chain": root.scalar(5, "main_chain", "u32"),
        "constants": tuple(_constant(c) for c in root.tables(6, "constants")),
        "external_files": tuple(files),
        "metadata": tuple(
            (m.string(0, "key"), m.string(1, "value")) for m in root.tables(8, "metadata")
        ),
    }
    # Only now has every string been referenced.
    return StoredProgram(**program_fields, strings=pool.stats())
