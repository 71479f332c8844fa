"""The in-memory program: plain frozen dataclasses mirroring `schema.fbs`.

This is the interface between the code generator (which lowers a graph into a `Program`),
the serializer (`save_program`), the loader (`load_program`, which gives one back) and the
reference interpreter (`run_program`).  Every class here has a table of the same name in
`schema.fbs` and the same fields, in the same order; enums have the same members and
numbers.

Model
-----
* ``Program.values`` is the one table of values.  A value is a tensor (`TensorInfo`: dtype
  and shape) or a symbolic integer (`SymIntInfo`: inclusive range).  Instructions, inputs,
  outputs and constants refer to values by index into it ("value index").
* A `Dim` is a size: static (``Dim(640)``) or symbolic (``Dim.symbolic(3)``: whatever the
  SymInt value 3 holds at run time).  Shapes, grid/block sizes, SymNode operands and
  int-list arguments are Dims.
* Symbolic integers get their values from the input shapes (a SymInt that appears as a dim
  of an input is bound to that input's size), or from a `SymNode`.
* ``Program.chains[main_chain]`` runs first.  An `IfNode` runs ``then_chain`` when
  ``values[condition] <compare> constant`` holds, else ``else_chain``, and binds its
  ``outputs`` to the ``results`` of the chain that ran.  Chains form a tree rooted at the
  main chain; each other chain belongs to exactly one IfNode branch.  Nested IfNodes give
  more buckets (M == 1, M <= 8, else).
* Every value is defined once: as an input, a constant, or an output of one instruction
  (values defined inside a branch are visible after the IfNode only through its outputs).
* `KernelNode` is a generated GGUF kernel; on CPU the interpreter runs the `ggufc` reference
  op of its ``op`` kind instead.  Its arguments for the reference op are read from ``args``
  and ``template_args`` by name: ``n`` and ``k`` (ints) for every op kind.
* `AtenNode` is an ATen op by schema name (``"aten::add.Tensor"``), arguments in schema
  order, positional ones unnamed, keyword ones named.  Only ops on the interpreter's
  allow-list (`runtime_schema.aten_ops`) may appear.
* A `Constant` gives the data of a tensor value with a static shape: ``data`` (a tensor
  whose bytes are written into the file's constant segment), and/or ``source``: where the
  same bytes lie in a `.gguf` file, so ``save_program(..., weights="external")`` can
  reference that file instead of copying them.  Loaded constants have ``data`` as a
  zero-copy view over the mapped file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch

# Bumped whenever schema.fbs gains a field, union member or enum value (rule 5 there).
# 2: OpKind.ATTENTION, KernelKind.ATTENTION; 3: RMS_NORM and ROTARY of both; 4: GATED_GELU;
# 5: KernelSource.dependent_launch; 6: KernelSource.tensor_maps; 7: TensorMap.swizzle, optional
SCHEMA_VERSION = 7

# A value index / chain index that means "none" in a Dim.
NO_VALUE = -1


class DType(enum.IntEnum):
    FLOAT32 = 0
    FLOAT16 = 1
    BFLOAT16 = 2
    FLOAT64 = 3
    INT64 = 4
    INT32 = 5
    INT16 = 6
    INT8 = 7
    UINT8 = 8
    BOOL = 9

    @property
    def torch_dtype(self) -> torch.dtype:
        return _TORCH_DTYPES[self]

    @property
    def itemsize(self) -> int:
        return _TORCH_DTYPES[self].itemsize

    @classmethod
    def from_torch(cls, dtype: torch.dtype) -> DType:
        try:
            return _FROM_TORCH[dtype]
        except KeyError:
            raise ValueError(f"dtype {dtype} has no program DType") from None


_TORCH_DTYPES = {
    DType.FLOAT32: torch.float32,
    DType.FLOAT16: torch.float16,
    DType.BFLOAT16: torch.bfloat16,
    DType.FLOAT64: torch.float64,
    DType.INT64: torch.int64,
    DType.INT32: torch.int32,
    DType.INT16: torch.int16,
    DType.INT8: torch.int8,
    DType.UINT8: torch.uint8,
    DType.BOOL: torch.bool,
}
_FROM_TORCH = {v: k for k, v in _TORCH_DTYPES.items()}


class QuantFormat(enum.IntEnum):
    """GGUF block formats, named as GGUF names them (``QuantFormat["Q4_K"]``)."""

    Q4_0 = 0
    Q5_0 = 1
    Q8_0 = 2
    Q4_K = 3
    Q5_K = 4
    Q6_K = 5


class OpKind(enum.IntEnum):
    """The `ggufc` op a KernelNode implements (``ggufc.linear`` ...)."""

    LINEAR = 0
    EMBEDDING = 1
    DEQUANTIZE = 2
    ATTENTION = 3  # ggufc.attention: not a GGUF op, its KernelNode's format is unused
    RMS_NORM = 4  # aten.rms_norm of float32: not a GGUF op either
    ROTARY = 5  # ggufc.rotary: not a GGUF op either
    GATED_GELU = 6  # ggufc.gated_gelu: not a GGUF op either


class KernelKind(enum.IntEnum):
    MATVEC = 0
    MATVEC_BATCHED = 1
    MATMUL = 2
    EMBEDDING = 3
    DEQUANTIZE = 4
    ATTENTION = 5
    RMS_NORM = 6
    ROTARY = 7
    GATED_GELU = 8


class Backend(enum.IntEnum):
    METAL = 0
    CUDA = 1


class CompareOp(enum.IntEnum):
    LT = 0
    LE = 1
    EQ = 2
    NE = 3
    GT = 4
    GE = 5


class SymOp(enum.IntEnum):
    ADD = 0
    SUB = 1
    MUL = 2
    FLOOR_DIV = 3
    CEIL_DIV = 4
    MOD = 5
    MIN = 6
    MAX = 7


# ---- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dim:
    """A size: ``size`` when static, else the SymInt value ``values[value]``."""

    size: int = 0
    value: int = NO_VALUE

    @classmethod
    def symbolic(cls, value: int) -> Dim:
        return cls(0, value)

    @property
    def is_symbolic(self) -> bool:
        return self.value != NO_VALUE


@dataclass(frozen=True)
class TensorInfo:
    dtype: DType
    shape: tuple[Dim, ...]

    @property
    def is_static(self) -> bool:
        return not any(d.is_symbolic for d in self.shape)


@dataclass(frozen=True)
class SymIntInfo:
    """A symbolic integer with its inclusive range."""

    min: int
    max: int


@dataclass(frozen=True)
class Value:
    name: str
    info: TensorInfo | SymIntInfo

    @property
    def is_tensor(self) -> bool:
        return isinstance(self.info, TensorInfo)


# ---- arguments ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorRef:
    value: int


@dataclass(frozen=True)
class TensorListRef:
    values: tuple[int, ...]


@dataclass(frozen=True)
class IntValue:
    value: int


@dataclass(frozen=True)
class FloatValue:
    value: float


@dataclass(frozen=True)
class BoolValue:
    value: bool


@dataclass(frozen=True)
class StringValue:
    value: str


@dataclass(frozen=True)
class IntListValue:
    items: tuple[Dim, ...]


@dataclass(frozen=True)
class FloatListValue:
    items: tuple[float, ...]


@dataclass(frozen=True)
class SymIntRef:
    value: int


@dataclass(frozen=True)
class NoneValue:
    pass


@dataclass(frozen=True)
class DTypeValue:
    dtype: DType


ArgValue = (
    TensorRef
    | TensorListRef
    | IntValue
    | FloatValue
    | BoolValue
    | StringValue
    | IntListValue
    | FloatListValue
    | SymIntRef
    | NoneValue
    | DTypeValue
)
# Union member order in schema.fbs (type id = position + 1).
ARG_VALUE_TYPES: tuple[type, ...] = ArgValue.__args__


@dataclass(frozen=True)
class Argument:
    """``name`` is empty for a positional argument."""

    value: ArgValue
    name: str = ""


# ---- instructions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorMap:
    """A CUDA tensor map the launcher encodes for the kernel's tensor parameter ``tensor``
    (inputs, then outputs) and passes after the args: boxes of ``box_rows`` x ``box_inner``
    elements of the tensor as a [rows, last dim] matrix, with the 128-byte swizzle or none
    (``swizzle`` 128 / 0); ``optional``: zeros where the tensor is not on 16-byte boundaries;
    ``element_bytes``: 1, the tensor's own elements, or 2 / 4: a uint8 tensor read as
    elements of that many bytes, so that a box may be wider than 256 bytes (schema.fbs)."""

    tensor: int
    box_inner: int
    box_rows: int
    swizzle: int = 128
    optional: bool = False
    element_bytes: int = 1


@dataclass(frozen=True)
class KernelSource:
    backend: Backend
    entry: str
    source: str
    header: str = ""
    # CUDA: the kernel waits for the kernels before it before reading its inputs, so it may
    # be launched while they run (schema.fbs; runtime_schema.cuda_launcher)
    dependent_launch: bool = False
    # CUDA: the tensor maps the kernel takes after its args (runtime_schema.cuda_launcher)
    tensor_maps: tuple[TensorMap, ...] = ()


@dataclass(frozen=True)
class KernelNode:
    """A generated kernel.  CUDA launch parameters: input pointers, output pointers, then
    one per ``args`` entry (int64 for ints and SymInts, float32 for floats, int32 for
    bools).  ``grid`` and ``block`` have three Dims each."""

    name: str
    format: QuantFormat
    op: OpKind
    kind: KernelKind
    sources: tuple[KernelSource, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    grid: tuple[Dim, ...] = (Dim(1), Dim(1), Dim(1))
    block: tuple[Dim, ...] = (Dim(1), Dim(1), Dim(1))
    shared_memory_bytes: int = 0
    args: tuple[Argument, ...] = ()
    template_args: tuple[Argument, ...] = ()

    def source_for(self, backend: Backend) -> KernelSource | None:
        return next((s for s in self.sources if s.backend == backend), None)


@dataclass(frozen=True)
class IfNode:
    condition: int
    compare: CompareOp
    constant: int
    then_chain: int
    else_chain: int
    outputs: tuple[int, ...] = ()


@dataclass(frozen=True)
class SymNode:
    op: SymOp
    operands: tuple[Dim, ...]
    output: int


@dataclass(frozen=True)
class AtenNode:
    op: str
    args: tuple[Argument, ...]
    outputs: tuple[int, ...]


Instruction = KernelNode | IfNode | SymNode | AtenNode
# Union member order in schema.fbs (type id = position + 1).
INSTRUCTION_TYPES: tuple[type, ...] = Instruction.__args__


@dataclass(frozen=True)
class Chain:
    name: str
    instructions: tuple[Instruction, ...]
    results: tuple[int, ...] = ()


# ---- constants ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GgufSlice:
    """``size`` bytes at ``offset`` in the file ``path`` (a `.gguf`); ``sha256`` is the digest
    of the whole file when known (the loader fills it in)."""

    path: str
    offset: int
    size: int
    sha256: bytes | None = None


@dataclass(frozen=True)
class Constant:
    value: int
    data: torch.Tensor | None = field(default=None, compare=False, repr=False)
    source: GgufSlice | None = None


@dataclass(frozen=True)
class Program:
    values: tuple[Value, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    chains: tuple[Chain, ...]
    main_chain: int = 0
    constants: tuple[Constant, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    schema_version: int = SCHEMA_VERSION

    @property
    def main(self) -> Chain:
        return self.chains[self.main_chain]

    def instructions(self):
        """Every instruction of every chain, chain by chain."""
        for chain in self.chains:
            yield from chain.instructions


__all__ = [
    "ARG_VALUE_TYPES",
    "INSTRUCTION_TYPES",
    "NO_VALUE",
    "SCHEMA_VERSION",
    "ArgValue",
    "Argument",
    "AtenNode",
    "Backend",
    "BoolValue",
    "Chain",
    "CompareOp",
    "Constant",
    "DType",
    "DTypeValue",
    "Dim",
    "FloatListValue",
    "FloatValue",
    "GgufSlice",
    "IfNode",
    "Instruction",
    "IntListValue",
    "IntValue",
    "KernelKind",
    "KernelNode",
    "KernelSource",
    "NoneValue",
    "OpKind",
    "Program",
    "QuantFormat",
    "StringValue",
    "SymIntInfo",
    "SymIntRef",
    "SymNode",
    "SymOp",
    "TensorInfo",
    "TensorListRef",
    "TensorMap",
    "TensorRef",
    "Value",
]
