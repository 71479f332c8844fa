"""Semantic checks of a `Program`, shared by the writer (before saving) and the loader.

The loader's reader guarantees the structure (every offset, length, enum and string was in
bounds); this module checks what the structure means, so that the interpreter can run any
program that passes without an index error or an unbound value:

* every value index is in range and names a value of the right kind (tensor / SymInt);
* every Dim is static and non-negative, or refers to a SymInt value;
* chains: the main chain exists, each other chain is the branch of exactly one IfNode and
  is reachable from the main chain (so chains form a tree), nested at most
  `MAX_CHAIN_DEPTH` deep;
* every value is defined once (input, constant or one instruction's output) and before it
  is used; values defined in a branch are used after the IfNode only through its outputs;
* KernelNodes: known enums, one source per backend, three grid and block Dims, the
  operand counts and the ``n`` / ``k`` arguments their reference op needs;
* AtenNodes name only allow-listed ops, positional arguments before keyword ones;
* constants bind tensor values with static shapes, at most once each, never an input.

Any failure raises `ProgramFormatError` naming the field (``chains[0].instructions[3]...``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from compiler.errors import ProgramFormatError
from runtime_schema.aten_ops import ALLOWED_ATEN_OPS
from runtime_schema.program import (
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
    NoneValue,
    OpKind,
    Program,
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
)

# Deepest nesting of IfNode branches (the interpreter recurses once per level).
MAX_CHAIN_DEPTH = 64
GRID_RANK = 3
# a tensor map's box: at most 256 elements a side (cuTensorMapEncodeTiled's boxDim)
TENSOR_MAP_MAX_BOX = 256
TENSOR_MAP_SWIZZLES = (0, 128)  # bytes: none, or the 128-byte swizzle
# a map's element widths: the tensor's own elements (1), or uint8 read 2 / 4 bytes at a time
TENSOR_MAP_ELEMENT_BYTES = (1, 2, 4)
# Positions of the GGUF weight blocks among a KernelNode's inputs (the other ops have none).
KERNEL_WEIGHT_INPUTS = {OpKind.LINEAR: (1,), OpKind.EMBEDDING: (0,), OpKind.DEQUANTIZE: (0,)}
# Operand counts of the reference op of each KernelNode op kind: (inputs allowed, outputs).
KERNEL_INPUT_COUNTS = {
    OpKind.LINEAR: (2, 3),  # x, blocks[, bias]
    OpKind.EMBEDDING: (2,),  # blocks, indices
    OpKind.DEQUANTIZE: (1,),  # blocks
    OpKind.ATTENTION: (4,),  # q, k, v, visible
    # x[, weight][, residual: template arg residual = 1][, next weight: next_norm = 1]
    OpKind.RMS_NORM: (1, 2, 3, 4),
    OpKind.ROTARY: (3, 4),  # x, cos, sin[, norm weight]
    OpKind.GATED_GELU: (1, 2),  # x (gate and up halves) | gate, up
}
KERNEL_OUTPUT_COUNT = 1  # but an RMS_NORM with next_norm = 1: the sum and its norm
KERNEL_KINDS_OF_OP = {
    OpKind.LINEAR: (KernelKind.MATVEC, KernelKind.MATVEC_BATCHED, KernelKind.MATMUL),
    OpKind.EMBEDDING: (KernelKind.EMBEDDING,),
    OpKind.DEQUANTIZE: (KernelKind.DEQUANTIZE,),
    OpKind.ATTENTION: (KernelKind.ATTENTION,),
    OpKind.RMS_NORM: (KernelKind.RMS_NORM,),
    OpKind.ROTARY: (KernelKind.ROTARY,),
    OpKind.GATED_GELU: (KernelKind.GATED_GELU,),
}
# Integer arguments (in `args` or `template_args`) a KernelNode needs for its reference op.
GGUF_OP_REQUIRED_ARGS = ("n", "k")
KERNEL_REQUIRED_ARGS = {
    OpKind.LINEAR: GGUF_OP_REQUIRED_ARGS,
    OpKind.EMBEDDING: GGUF_OP_REQUIRED_ARGS,
    OpKind.DEQUANTIZE: GGUF_OP_REQUIRED_ARGS,
    OpKind.ATTENTION: ("rows", "tokens", "keys", "head_dim", "value_dim"),
    OpKind.RMS_NORM: ("rows", "dim"),
    OpKind.ROTARY: ("rows", "tokens", "dim"),
    OpKind.GATED_GELU: ("rows", "inner"),
}
# Float arguments a KernelNode needs for its reference op.
KERNEL_REQUIRED_FLOAT_ARGS = {OpKind.ATTENTION: ("scale",), OpKind.RMS_NORM: ("eps",)}
# SymOp -> (fewest operands, most operands or None for no limit)
SYM_OP_ARITY = {
    SymOp.ADD: (2, None),
    SymOp.SUB: (2, 2),
    SymOp.MUL: (2, None),
    SymOp.FLOOR_DIV: (2, 2),
    SymOp.CEIL_DIV: (2, 2),
    SymOp.MOD: (2, 2),
    SymOp.MIN: (2, None),
    SymOp.MAX: (2, None),
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
UINT32_MAX = 2**32 - 1


def validate_program(program: Program) -> None:
    """Raise ProgramFormatError unless `program` is well formed (see the module doc)."""
    _Validator(program).run()


def _enum(kind: type[enum.IntEnum], raw, where: str):
    if not isinstance(raw, kind):
        raise ProgramFormatError(f"{where}: {raw!r} is not a {kind.__name__} member")
    return raw


def _check_int(raw, where: str, low: int = INT64_MIN, high: int = INT64_MAX) -> None:
    if not _is_int(raw) or not low <= raw <= high:
        raise ProgramFormatError(f"{where}: {raw!r} is not an integer in [{low}, {high}]")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class _Validator:
    def __init__(self, program: Program):
        self.program = program
        self.n_values = len(program.values)
        self.defined: set[int] = set()

    # ---- helpers ---------------------------------------------------------------------------
    def index(self, raw, where: str) -> int:
        if not _is_int(raw) or not 0 <= raw < min(self.n_values, UINT32_MAX + 1):
            raise ProgramFormatError(
                f"{where}: value index {raw!r} out of range (program has {self.n_values} values)"
            )
        return raw

    def tensor(self, raw, where: str) -> int:
        i = self.index(raw, where)
        if not isinstance(self.program.values[i].info, TensorInfo):
            raise ProgramFormatError(
                f"{where}: value {i} ({self.program.values[i].name!r}) must be a tensor"
            )
        return i

    def symint(self, raw, where: str) -> int:
        i = self.index(raw, where)
        if not isinstance(self.program.values[i].info, SymIntInfo):
            raise ProgramFormatError(
                f"{where}: value {i} ({self.program.values[i].name!r}) must be a SymInt"
            )
        return i

    def use(self, i: int, defined: set[int], where: str) -> None:
        if i not in defined:
            raise ProgramFormatError(
                f"{where}: value {i} ({self.program.values[i].name!r}) is used before it is defined"
            )

    def define(self, i: int, defined: set[int], where: str) -> None:
        if i in self.defined:
            raise ProgramFormatError(
                f"{where}: value {i} ({self.program.values[i].name!r}) is defined twice"
            )
        self.defined.add(i)
        defined.add(i)

    def dim(self, d, where: str, defined: set[int] | None) -> None:
        if not isinstance(d, Dim):
            raise ProgramFormatError(f"{where}: expected a Dim, got {d!r}")
        _check_int(d.size, f"{where}.size")
        _check_int(d.value, f"{where}.value", INT32_MIN, INT32_MAX)
        if d.value == -1:
            if not 0 <= d.size <= INT64_MAX:
                raise ProgramFormatError(f"{where}: static size {d.size} must be >= 0")
            return
        i = self.symint(d.value, where)
        if defined is not None:
            self.use(i, defined, where)

    # ---- program ---------------------------------------------------------------------------
    def run(self) -> None:
        p = self.program
        if not _is_int(p.schema_version) or p.schema_version < 0:
            raise ProgramFormatError(f"schema_version: {p.schema_version!r} is not a version")
        for i, value in enumerate(p.values):
            self.value(value, f"values[{i}]")
        if not p.chains:
            raise ProgramFormatError("chains: a program needs at least its main chain")
        if not _is_int(p.main_chain) or not 0 <= p.main_chain < len(p.chains):
            raise ProgramFormatError(
                f"main_chain: chain index {p.main_chain!r} out of range "
                f"(program has {len(p.chains)} chains)"
            )
        top: set[int] = set()
        for j, raw in enumerate(p.inputs):
            i = self.tensor(raw, f"inputs[{j}]")
            self.define(i, top, f"inputs[{j}]")
            # The interpreter binds a SymInt from the first input whose shape names it.
            for d in p.values[i].info.shape:
                if d.is_symbolic:
                    self.defined.add(d.value)
                    top.add(d.value)
        for j, constant in enumerate(p.constants):
            where = f"constants[{j}]"
            i = self.tensor(constant.value, f"{where}.value")
            info = p.values[i].info
            if not info.is_static:
                raise ProgramFormatError(
                    f"{where}: value {i} ({p.values[i].name!r}) needs a static shape"
                )
            self.define(i, top, f"{where}.value")
        self.check_chain_tree()
        self.chain(p.main_chain, top, depth=0)
        for j, raw in enumerate(p.outputs):
            self.use(self.index(raw, f"outputs[{j}]"), top, f"outputs[{j}]")
        for j, entry in enumerate(p.metadata):
            if (
                not isinstance(entry, tuple)
                or len(entry) != 2
                or not all(isinstance(s, str) for s in entry)
            ):
                raise ProgramFormatError(f"metadata[{j}]: expected a (key, value) string pair")

    def value(self, value, where: str) -> None:
        if not isinstance(value.name, str):
            raise ProgramFormatError(f"{where}.name: expected a string")
        info = value.info
        if isinstance(info, TensorInfo):
            _enum(DType, info.dtype, f"{where}.dtype")
            for k, d in enumerate(info.shape):
                self.dim(d, f"{where}.shape[{k}]", None)
        elif isinstance(info, SymIntInfo):
            _check_int(info.min, f"{where}.min")
            _check_int(info.max, f"{where}.max")
            if info.min > info.max:
                raise ProgramFormatError(
                    f"{where}: SymInt range [{info.min!r}, {info.max!r}] is empty"
                )
        else:
            raise ProgramFormatError(f"{where}.info: expected TensorInfo or SymIntInfo")

    def check_chain_tree(self) -> None:
        p = self.program
        parent: dict[int, str] = {}
        for c, chain in enumerate(p.chains):
            if not isinstance(chain, Chain):
                raise ProgramFormatError(f"chains[{c}]: expected a Chain")
            for n, node in enumerate(chain.instructions):
                if not isinstance(node, IfNode):
                    continue
                for field_name in ("then_chain", "else_chain"):
                    where = f"chains[{c}].instructions[{n}].{field_name}"
                    target = getattr(node, field_name)
                    if not _is_int(target) or not 0 <= target < len(p.chains):
                        raise ProgramFormatError(
                            f"{where}: chain index {target!r} out of range "
                            f"(program has {len(p.chains)} chains)"
                        )
                    if target == p.main_chain:
                        raise ProgramFormatError(f"{where}: the main chain cannot be a branch")
                    if target in parent:
                        raise ProgramFormatError(
                            f"{where}: chain {target} is already the branch of {parent[target]}"
                        )
                    parent[target] = where
        for c in range(len(p.chains)):
            if c != p.main_chain and c not in parent:
                raise ProgramFormatError(f"chains[{c}]: no IfNode runs this chain")

    # ---- chains and instructions -----------------------------------------------------------
    def chain(self, c: int, defined: set[int], depth: int) -> None:
        if depth > MAX_CHAIN_DEPTH:
            raise ProgramFormatError(
                f"chains[{c}]: IfNodes nested deeper than {MAX_CHAIN_DEPTH} levels"
            )
        chain = self.program.chains[c]
        for n, node in enumerate(chain.instructions):
            where = f"chains[{c}].instructions[{n}]"
            if isinstance(node, KernelNode):
                self.kernel(node, defined, f"{where} (KernelNode {node.name!r})")
            elif isinstance(node, AtenNode):
                self.aten(node, defined, f"{where} (AtenNode {node.op!r})")
            elif isinstance(node, SymNode):
                self.sym(node, defined, f"{where} (SymNode)")
            elif isinstance(node, IfNode):
                self.if_node(node, defined, f"{where} (IfNode)", depth)
            else:
                raise ProgramFormatError(f"{where}: {type(node).__name__} is not an instruction")
        for j, raw in enumerate(chain.results):
            self.use(self.index(raw, f"chains[{c}].results[{j}]"), defined, f"chains[{c}].results")

    def tensor_maps(self, node: KernelNode, source, backend: Backend, where: str) -> None:
        """A source's tensor maps: CUDA's only, each of a tensor parameter of the node, with
        boxes the tensor memory accelerator takes (1 to TENSOR_MAP_MAX_BOX a side)."""
        if source.tensor_maps and backend != Backend.CUDA:
            raise ProgramFormatError(
                f"{where}: only CUDA kernels take tensor maps, this is {backend.name}"
            )
        tensors = len(node.inputs) + len(node.outputs)
        for i, m in enumerate(source.tensor_maps):
            if not isinstance(m, TensorMap):
                raise ProgramFormatError(f"{where}[{i}]: expected a TensorMap")
            if not 0 <= m.tensor < tensors:
                raise ProgramFormatError(
                    f"{where}[{i}].tensor: {m.tensor} is not one of the node's {tensors} tensors"
                )
            if m.swizzle not in TENSOR_MAP_SWIZZLES or not isinstance(m.optional, bool):
                raise ProgramFormatError(
                    f"{where}[{i}]: swizzle {m.swizzle!r} (expected one of "
                    f"{TENSOR_MAP_SWIZZLES}), optional {m.optional!r} (expected a bool)"
                )
            if m.element_bytes not in TENSOR_MAP_ELEMENT_BYTES:
                raise ProgramFormatError(
                    f"{where}[{i}].element_bytes: {m.element_bytes!r}, expected one of "
                    f"{TENSOR_MAP_ELEMENT_BYTES}"
                )
            for side in ("box_inner", "box_rows"):
                if not 1 <= getattr(m, side) <= TENSOR_MAP_MAX_BOX:
                    raise ProgramFormatError(
                        f"{where}[{i}].{side}: {getattr(m, side)}, expected 1 to {TENSOR_MAP_MAX_BOX}"
                    )

    def kernel(self, node: KernelNode, defined: set[int], where: str) -> None:
        if not isinstance(node.name, str):
            raise ProgramFormatError(f"{where}.name: expected a string")
        _enum(QuantFormat, node.format, f"{where}.format")
        op = _enum(OpKind, node.op, f"{where}.op")
        kind = _enum(KernelKind, node.kind, f"{where}.kind")
        if kind not in KERNEL_KINDS_OF_OP[op]:
            raise ProgramFormatError(
                f"{where}.kind: {kind.name} is not a kernel kind of op {op.name}"
            )
        seen_backends: set[Backend] = set()
        for s, source in enumerate(node.sources):
            backend = _enum(Backend, source.backend, f"{where}.sources[{s}].backend")
            if backend in seen_backends:
                raise ProgramFormatError(f"{where}.sources[{s}]: second {backend.name} source")
            seen_backends.add(backend)
            for attr in ("entry", "source", "header"):
                if not isinstance(getattr(source, attr), str):
                    raise ProgramFormatError(f"{where}.sources[{s}].{attr}: expected a string")
            if not isinstance(source.dependent_launch, bool):
                raise ProgramFormatError(f"{where}.sources[{s}].dependent_launch: expected a bool")
            if source.dependent_launch and backend != Backend.CUDA:
                raise ProgramFormatError(
                    f"{where}.sources[{s}].dependent_launch: only CUDA kernels launch "
                    f"dependently, this source is {backend.name}"
                )
            self.tensor_maps(node, source, backend, f"{where}.sources[{s}].tensor_maps")
        for attr in ("grid", "block"):
            dims = getattr(node, attr)
            if len(dims) != GRID_RANK:
                raise ProgramFormatError(
                    f"{where}.{attr}: expected {GRID_RANK} sizes, got {len(dims)}"
                )
            for k, d in enumerate(dims):
                self.dim(d, f"{where}.{attr}[{k}]", defined)
        _check_int(node.shared_memory_bytes, f"{where}.shared_memory_bytes", 0, UINT32_MAX)
        if len(node.inputs) not in KERNEL_INPUT_COUNTS[op]:
            raise ProgramFormatError(
                f"{where}.inputs: op {op.name} takes {KERNEL_INPUT_COUNTS[op]} inputs, "
                f"got {len(node.inputs)}"
            )
        names = {a.name: a.value for a in (*node.args, *node.template_args)}
        flags = {
            flag: int(isinstance(names.get(flag), IntValue) and names[flag].value == 1)
            for flag in ("residual", "next_norm")
        }
        outputs = KERNEL_OUTPUT_COUNT + (op == OpKind.RMS_NORM and flags["next_norm"])
        if len(node.outputs) != outputs:
            raise ProgramFormatError(
                f"{where}.outputs: expected {outputs}, got {len(node.outputs)}"
            )
        for j, raw in enumerate(node.inputs):
            self.use(self.tensor(raw, f"{where}.inputs[{j}]"), defined, f"{where}.inputs[{j}]")
        self.arguments(node.args, defined, f"{where}.args", named=True)
        self.arguments(node.template_args, defined, f"{where}.template_args", named=True)
        for required in KERNEL_REQUIRED_ARGS[op]:
            if not isinstance(names.get(required), (IntValue, SymIntRef)):
                raise ProgramFormatError(
                    f"{where}: needs an integer argument {required!r} in args or template_args"
                )
        for required in KERNEL_REQUIRED_FLOAT_ARGS.get(op, ()):
            if not isinstance(names.get(required), FloatValue):
                raise ProgramFormatError(
                    f"{where}: needs a float argument {required!r} in args or template_args"
                )
        if op == OpKind.RMS_NORM:
            self.rms_norm_operands(node, names, flags, where)
        for j, raw in enumerate(node.outputs):
            self.define(self.tensor(raw, f"{where}.outputs[{j}]"), defined, f"{where}.outputs")

    @staticmethod
    def rms_norm_operands(node: KernelNode, names: dict, flags: dict, where: str) -> None:
        """x[, weight] plus a residual when the template arg residual is 1; a next norm
        (next_norm 1) needs the weight and the residual, adds the next weight and a float
        next_eps."""
        added = flags["residual"] + flags["next_norm"]
        plain = len(node.inputs) - added
        if plain not in (1, 2):
            raise ProgramFormatError(
                f"{where}.inputs: op RMS_NORM takes x[, weight] plus a residual when the "
                f"template arg 'residual' is 1 and a next weight when 'next_norm' is 1; got "
                f"{len(node.inputs)} inputs with residual {flags['residual']}, next_norm "
                f"{flags['next_norm']}"
            )
        if flags["next_norm"] and (plain != 2 or not flags["residual"]):
            raise ProgramFormatError(
                f"{where}: op RMS_NORM with next_norm 1 needs a weight and a residual"
            )
        if flags["next_norm"] and not isinstance(names.get("next_eps"), FloatValue):
            raise ProgramFormatError(f"{where}: needs a float argument 'next_eps' with next_norm 1")

    def aten(self, node: AtenNode, defined: set[int], where: str) -> None:
        if node.op not in ALLOWED_ATEN_OPS:
            raise ProgramFormatError(f"{where}.op: {node.op!r} is not on the ATen allow-list")
        self.arguments(node.args, defined, f"{where}.args", named=False)
        for j, raw in enumerate(node.outputs):
            self.define(self.index(raw, f"{where}.outputs[{j}]"), defined, f"{where}.outputs")

    def sym(self, node: SymNode, defined: set[int], where: str) -> None:
        op = _enum(SymOp, node.op, f"{where}.op")
        fewest, most = SYM_OP_ARITY[op]
        count = len(node.operands)
        if count < fewest or (most is not None and count > most):
            raise ProgramFormatError(
                f"{where}.operands: {op.name} takes {fewest}..{most or 'any'} operands, got {count}"
            )
        for k, d in enumerate(node.operands):
            self.dim(d, f"{where}.operands[{k}]", defined)
        self.define(self.symint(node.output, f"{where}.output"), defined, f"{where}.output")

    def if_node(self, node: IfNode, defined: set[int], where: str, depth: int) -> None:
        self.use(self.symint(node.condition, f"{where}.condition"), defined, f"{where}.condition")
        _enum(CompareOp, node.compare, f"{where}.compare")
        if not _is_int(node.constant) or not INT64_MIN <= node.constant <= INT64_MAX:
            raise ProgramFormatError(f"{where}.constant: expected an int64")
        for field_name in ("then_chain", "else_chain"):
            c = getattr(node, field_name)
            results = self.program.chains[c].results
            if len(results) != len(node.outputs):
                raise ProgramFormatError(
                    f"{where}.{field_name}: chain {c} has {len(results)} results, the IfNode "
                    f"{len(node.outputs)} outputs"
                )
            self.chain(c, set(defined), depth + 1)
        for j, raw in enumerate(node.outputs):
            self.define(self.index(raw, f"{where}.outputs[{j}]"), defined, f"{where}.outputs")

    def arguments(
        self, args: Iterable[Argument], defined: set[int], where: str, *, named: bool
    ) -> None:
        keyword_seen = False
        for j, arg in enumerate(args):
            at = f"{where}[{j}]"
            if not isinstance(arg, Argument) or not isinstance(arg.name, str):
                raise ProgramFormatError(f"{at}: expected an Argument")
            if arg.name:
                keyword_seen = True
            elif named:
                raise ProgramFormatError(f"{at}: kernel arguments must be named")
            elif keyword_seen:
                raise ProgramFormatError(f"{at}: positional argument after a keyword argument")
            self.argument(arg.value, defined, f"{at} ({arg.name or 'positional'})")

    def argument(self, v, defined: set[int], where: str) -> None:
        if isinstance(v, TensorRef):
            self.use(self.tensor(v.value, where), defined, where)
        elif isinstance(v, TensorListRef):
            for k, raw in enumerate(v.values):
                self.use(self.tensor(raw, f"{where}[{k}]"), defined, f"{where}[{k}]")
        elif isinstance(v, SymIntRef):
            self.use(self.symint(v.value, where), defined, where)
        elif isinstance(v, IntListValue):
            for k, d in enumerate(v.items):
                if isinstance(d, Dim) and d.value == -1:
                    # negative entries are legal in int lists (view(-1), dims)
                    _check_int(d.size, f"{where}[{k}]")
                    continue
                self.dim(d, f"{where}[{k}]", defined)
        elif isinstance(v, DTypeValue):
            _enum(DType, v.dtype, where)
        elif isinstance(v, IntValue):
            _check_int(v.value, where)
        elif isinstance(v, FloatValue):
            if not isinstance(v.value, float):
                raise ProgramFormatError(f"{where}: {v.value!r} is not a float")
        elif isinstance(v, FloatListValue):
            if not all(isinstance(x, float) for x in v.items):
                raise ProgramFormatError(f"{where}: expected floats, got {v.items!r}")
        elif isinstance(v, BoolValue):
            if not isinstance(v.value, bool):
                raise ProgramFormatError(f"{where}: {v.value!r} is not a bool")
        elif isinstance(v, StringValue):
            if not isinstance(v.value, str):
                raise ProgramFormatError(f"{where}: {v.value!r} is not a string")
        elif isinstance(v, NoneValue):
            pass
        else:
            raise ProgramFormatError(f"{where}: {type(v).__name__} is not an argument value")
