"""The reference interpreter: run a `Program` on CPU, or on CUDA with its generated kernels.

``run_program(program, inputs, device="cpu" | "cuda") -> list[Tensor]`` (one per
``program.outputs``) runs a program once.  ``ProgramRunner(program, device)`` runs it many
times: it validates once, moves the constants (the weights) to the device once and keeps the
compiled CUDA functions, so a generation loop pays for none of that per step.  A run:

1. binds the inputs (by position, or by value name from a mapping), checking dtype and
   shape; a SymInt first met as an input's dim takes that size, later ones must agree;
   every SymInt must lie in its declared range;
2. binds constants (moved to the device when the runner is made);
3. runs the main chain in order:

   * `SymNode`: integer arithmetic on sizes (``CEIL_DIV(a, b) = -(-a // b)``);
   * `IfNode`: ``values[condition] <compare> constant`` picks a chain, whose results become
     the IfNode's outputs;
   * `AtenNode`: only ops on the allow-list (`runtime_schema.aten_ops`); factory ops get
     ``device=`` the run's device unless the program names one;
   * `KernelNode`: on CPU the `ggufc` reference op of its kind
     (``torch.ops.ggufc.linear(x, blocks, bias, fmt, n, k, kernel=kind)``, ``embedding``,
     ``dequantize``); on CUDA its CUDA source, compiled once per process by NVRTC and
     launched with its grid and block (`runtime_schema.cuda_launcher`);

4. checks every result against its value's declared dtype and shape.

A failure while running raises `ProgramRunError` naming the instruction.  Programs that did
not come from `load_program` are validated first, so the interpreter never indexes out of
range on a malformed in-memory program either.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence

import torch

from compiler.errors import GgufcError
from runtime_schema.aten_ops import FACTORY_ATEN_OPS, resolve_aten_op
from runtime_schema.loader import LoadedProgram
from runtime_schema.program import (
    AtenNode,
    Backend,
    BoolValue,
    Chain,
    CompareOp,
    Dim,
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
    StringValue,
    SymIntRef,
    SymNode,
    SymOp,
    TensorInfo,
    TensorListRef,
    TensorRef,
)
from runtime_schema.validate import KERNEL_WEIGHT_INPUTS, validate_program

DEVICES = ("cpu", "cuda")

_COMPARE = {
    CompareOp.LT: operator.lt,
    CompareOp.LE: operator.le,
    CompareOp.EQ: operator.eq,
    CompareOp.NE: operator.ne,
    CompareOp.GT: operator.gt,
    CompareOp.GE: operator.ge,
}
# Errors torch ops raise on arguments they reject; reported as ProgramRunError.
_OP_ERRORS = (RuntimeError, TypeError, ValueError, IndexError, MemoryError)


class ProgramRunError(GgufcError):
    """A program failed while running: bad inputs, or an instruction that raised."""


def run_program(
    program: Program | LoadedProgram,
    inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
    device: str = "cpu",
) -> list[torch.Tensor]:
    """Run `program` on `inputs` once; returns its outputs in order (see the module doc)."""
    return ProgramRunner(program, device).run(inputs)


class ProgramRunner:
    """A program bound to a device, to run many times (see the module doc).

    ``run`` may be captured into a CUDA graph (`runtime_schema.cuda_graph`): for inputs of
    fixed shapes it launches the same work in the same order every time and reads nothing
    back from the device."""

    def __init__(self, program: Program | LoadedProgram, device: str = "cpu"):
        if isinstance(program, LoadedProgram):
            program = program.program
        else:
            validate_program(program)
        if device not in DEVICES:
            raise ProgramRunError(f"device must be one of {DEVICES}, got {device!r}")
        self.program = program
        self.device = torch.device(device)
        self._constants = [(c.value, c.data.to(self.device)) for c in program.constants]
        self._state = _InterpreterState()

    def run(
        self,
        inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
        donated: frozenset[int] = frozenset(),
    ) -> list[torch.Tensor]:
        """The program's outputs for `inputs`, in order.

        ``donated``: positions of inputs (from `donatable_inputs`) the run may update in
        place: the one ``aten::index_copy`` that reads each runs as ``index_copy_`` on the
        input tensor itself, which its output then is (a KV cache fed back each step is not
        copied whole to write one row)."""
        interpreter = _Interpreter(self.program, self.device, self._constants, self._state)
        interpreter.donated = frozenset(self.program.inputs[j] for j in donated)
        return interpreter.run(inputs)

    def donatable_inputs(self) -> frozenset[int]:
        """Positions of the inputs read once at most on any run (counting the larger of an
        IfNode's two branches, and the program outputs), by an ``aten::index_copy`` copying
        into them somewhere: updating such an input in place changes nothing another node
        sees."""
        return donatable_inputs(self.program)


class _InterpreterState:
    """What runs of one program on one device share: resolved aten ops, the CUDA launcher."""

    def __init__(self):
        self.aten: dict[str, object] = {}
        self.launcher = None


def _sym_eval(op: SymOp, xs: list[int], where: str) -> int:
    if op == SymOp.ADD:
        return sum(xs)
    if op == SymOp.SUB:
        return xs[0] - xs[1]
    if op == SymOp.MUL:
        out = 1
        for x in xs:
            out *= x
        return out
    if op == SymOp.MIN:
        return min(xs)
    if op == SymOp.MAX:
        return max(xs)
    if xs[1] == 0:
        raise ProgramRunError(f"{where}: {op.name} by zero")
    if op == SymOp.FLOOR_DIV:
        return xs[0] // xs[1]
    if op == SymOp.CEIL_DIV:
        return -(-xs[0] // xs[1])
    assert op == SymOp.MOD
    return xs[0] % xs[1]


class _Interpreter:
    """One run: the environment of values, filled as the chains execute."""

    def __init__(self, program: Program, device: torch.device, constants, state):
        self.program = program
        self.device = device
        self.env: list = [None] * len(program.values)
        self._constants = constants
        self._constant_values = frozenset(index for index, _ in constants)
        self._state = state
        self.donated: frozenset[int] = frozenset()  # value indices (ProgramRunner.run)

    # ---- values ----------------------------------------------------------------------------
    def size(self, d: Dim, where: str) -> int:
        if not d.is_symbolic:
            return d.size
        bound = self.env[d.value]
        if bound is None:
            name = self.program.values[d.value].name
            raise ProgramRunError(f"{where}: SymInt {name!r} has no value yet")
        return bound

    def bind_symint(self, index: int, size: int, where: str) -> None:
        info = self.program.values[index].info
        name = self.program.values[index].name
        bound = self.env[index]
        if bound is not None and bound != size:
            raise ProgramRunError(f"{where}: {name} is {bound} elsewhere, {size} here")
        if not info.min <= size <= info.max:
            raise ProgramRunError(
                f"{where}: {name} = {size} is outside its range [{info.min}, {info.max}]"
            )
        self.env[index] = size

    def check_tensor(self, index: int, tensor, where: str, *, bind: bool = False) -> None:
        value = self.program.values[index]
        info = value.info
        if not isinstance(tensor, torch.Tensor):
            raise ProgramRunError(f"{where}: {value.name} must be a tensor, got {type(tensor)}")
        expected_dtype = info.dtype.torch_dtype
        if tensor.dtype != expected_dtype or tensor.dim() != len(info.shape):
            raise ProgramRunError(
                f"{where}: {value.name} must be {expected_dtype} of rank {len(info.shape)}, got "
                f"{tensor.dtype} {list(tensor.shape)}"
            )
        for axis, (d, actual) in enumerate(zip(info.shape, tensor.shape)):
            if d.is_symbolic and bind:
                self.bind_symint(d.value, int(actual), f"{where}: {value.name}.shape[{axis}]")
            elif self.size(d, where) != actual:
                raise ProgramRunError(
                    f"{where}: {value.name}.shape[{axis}] is {actual}, expected "
                    f"{self.size(d, where)}"
                )

    def set_result(self, index: int, result, where: str) -> None:
        info = self.program.values[index].info
        if isinstance(info, TensorInfo):
            self.check_tensor(index, result, where)
        else:
            if isinstance(result, torch.Tensor) and result.dim() == 0:
                result = int(result.item())
            if not isinstance(result, int):
                raise ProgramRunError(f"{where}: expected an integer, got {type(result)}")
            self.bind_symint(index, result, where)
            return
        self.env[index] = result

    # ---- run -------------------------------------------------------------------------------
    def run(self, inputs) -> list[torch.Tensor]:
        p = self.program
        if isinstance(inputs, Mapping):
            names = [p.values[i].name for i in p.inputs]
            missing = [n for n in names if n not in inputs]
            if missing:
                raise ProgramRunError(f"inputs: missing {missing}; the program takes {names}")
            inputs = [inputs[n] for n in names]
        if len(inputs) != len(p.inputs):
            raise ProgramRunError(
                f"inputs: the program takes {len(p.inputs)} inputs, got {len(inputs)}"
            )
        for j, (index, tensor) in enumerate(zip(p.inputs, inputs)):
            self.check_tensor(index, tensor, f"inputs[{j}]", bind=True)
            self.env[index] = tensor.to(self.device)
        for index, data in self._constants:
            self.env[index] = data
        self.run_chain(p.main_chain)
        return [self.env[i] for i in p.outputs]

    def run_chain(self, c: int) -> Chain:
        chain = self.program.chains[c]
        for n, node in enumerate(chain.instructions):
            where = f"chains[{c}].instructions[{n}]"
            if isinstance(node, SymNode):
                xs = [self.size(d, where) for d in node.operands]
                self.set_result(node.output, _sym_eval(node.op, xs, where), f"{where} (SymNode)")
            elif isinstance(node, IfNode):
                taken = _COMPARE[node.compare](self.env[node.condition], node.constant)
                branch = node.then_chain if taken else node.else_chain
                results = self.run_chain(branch).results
                for out, res in zip(node.outputs, results):
                    self.set_result(out, self.env[res], f"{where} (IfNode)")
            elif isinstance(node, AtenNode):
                self.run_aten(node, f"{where} (AtenNode {node.op!r})")
            else:
                assert isinstance(node, KernelNode)
                self.run_kernel(node, f"{where} (KernelNode {node.name!r})")
        return chain

    def argument(self, v, where: str):
        if isinstance(v, TensorRef):
            return self.env[v.value]
        if isinstance(v, TensorListRef):
            return [self.env[i] for i in v.values]
        if isinstance(v, SymIntRef):
            return self.env[v.value]
        if isinstance(v, IntListValue):
            return [self.size(d, where) if d.is_symbolic else d.size for d in v.items]
        if isinstance(v, (IntValue, FloatValue, BoolValue, StringValue)):
            return v.value
        if isinstance(v, FloatListValue):
            return list(v.items)
        if isinstance(v, DTypeValue):
            return v.dtype.torch_dtype
        assert isinstance(v, NoneValue)
        return None

    def run_aten(self, node: AtenNode, where: str) -> None:
        aten = self._state.aten
        if node.op == INDEX_COPY and self.donated and _copies_into(node) in self.donated:
            fn = INDEX_COPY_IN_PLACE  # on the donated input itself (ProgramRunner.run)
        else:
            fn = aten.get(node.op)
            if fn is None:
                fn = aten[node.op] = resolve_aten_op(node.op)
        args, kwargs = [], {}
        for a in node.args:
            value = self.argument(a.value, where)
            if a.name:
                kwargs[a.name] = value
            else:
                args.append(value)
        if node.op in FACTORY_ATEN_OPS and "device" not in kwargs:
            kwargs["device"] = self.device
        try:
            result = fn(*args, **kwargs)
        except _OP_ERRORS as exc:
            raise ProgramRunError(f"{where}: {exc}") from exc
        results = result if isinstance(result, (tuple, list)) else (result,)
        if len(results) != len(node.outputs):
            raise ProgramRunError(
                f"{where}: the op returned {len(results)} results, the node has "
                f"{len(node.outputs)} outputs"
            )
        for out, res in zip(node.outputs, results):
            self.set_result(out, res, where)

    def named_args(self, node: KernelNode, where: str) -> dict:
        return {a.name: self.argument(a.value, where) for a in (*node.template_args, *node.args)}

    def run_kernel(self, node: KernelNode, where: str) -> None:
        ins = [self.env[i] for i in node.inputs]
        if self.device.type == "cuda":
            result = self.launch_cuda(node, ins, where)
        else:
            try:
                result = self.run_reference(node, ins, where)
            except (GgufcError, *_OP_ERRORS) as exc:
                raise ProgramRunError(f"{where}: {exc}") from exc
        results = result if isinstance(result, tuple) else (result,)
        for out_index, value in zip(node.outputs, results, strict=True):
            self.set_result(out_index, value, where)

    def run_reference(self, node: KernelNode, ins: list, where: str):
        import compiler.ops  # noqa: F401  (registers torch.ops.ggufc)

        named = self.named_args(node, where)
        ops = torch.ops.ggufc
        if node.op == OpKind.ATTENTION:
            return ops.attention(*ins, named["scale"])
        if node.op == OpKind.ROTARY:
            # an RMSNorm folded in: its eps (and its weight, the fourth input, if any)
            weight = ins[3] if len(ins) == 4 else None
            return ops.rotary(*ins[:3], weight, named.get("eps"))
        if node.op == OpKind.GATED_GELU:
            return ops.gated_gelu(*ins)  # x[, up]
        if node.op == OpKind.RMS_NORM:
            # inputs x[, weight][, residual][, next weight]: a residual (ggufc.rms_norm_add) is
            # named by the template arg "residual", a next norm (ggufc.rms_norm_add_norm: two
            # outputs) by "next_norm"
            next_weight = ins.pop() if named.get("next_norm", 0) else None
            residual = ins.pop() if named.get("residual", 0) else None
            weight = ins[1] if len(ins) == 2 else None
            eps = named["eps"]
            if residual is None:
                return torch.rms_norm(ins[0], [named["dim"]], weight, eps)
            if next_weight is None:
                return ops.rms_norm_add(ins[0], weight, eps, residual)
            return ops.rms_norm_add_norm(
                ins[0], weight, eps, residual, next_weight, named["next_eps"]
            )
        n, k = named["n"], named["k"]
        fmt = node.format.name
        out_dtype = self.program.values[node.outputs[0]].info.dtype.torch_dtype
        if node.op == OpKind.LINEAR:
            bias = ins[2] if len(ins) == 3 else None
            return ops.linear(ins[0], ins[1], bias, fmt, n, k, kernel=_KERNEL_NAMES[node.kind])
        if node.op == OpKind.EMBEDDING:
            return ops.embedding(ins[0], ins[1], fmt, n, k, out_dtype)
        assert node.op == OpKind.DEQUANTIZE
        return ops.dequantize(ins[0], fmt, n, k, out_dtype)

    def launch_cuda(self, node: KernelNode, ins: list, where: str):
        from runtime_schema.cuda_launcher import CudaLauncher

        if node.op == OpKind.ATTENTION:
            named = self.named_args(node, where)
            if named["rows"] > named.get("kernel_max_rows", named["rows"]):
                # many query rows (a long prefill): the reference ops on the device (cuBLAS)
                # beat a kernel that rereads the keys for every row
                from compiler.ops import attention_reference

                return attention_reference(*ins, named["scale"])

        source = node.source_for(Backend.CUDA)
        if source is None:
            raise ProgramRunError(f"{where}: has no CUDA source")
        if self._state.launcher is None:
            self._state.launcher = CudaLauncher()
        outs = []
        for index in node.outputs:
            info = self.program.values[index].info
            shape = [self.size(d, where) for d in info.shape]
            outs.append(torch.empty(shape, dtype=info.dtype.torch_dtype, device=self.device))
        scalars = [self.argument(a.value, where) for a in node.args]
        grid = tuple(self.size(d, where) for d in node.grid)
        block = tuple(self.size(d, where) for d in node.block)
        try:
            self._state.launcher.launch(
                source,
                grid=grid,
                block=block,
                shared_memory_bytes=node.shared_memory_bytes,
                tensors=[t.contiguous() for t in ins] + outs,
                scalars=scalars,
                dependent=weights_are_constants(node, ins, self._constant_values),
            )
        except GgufcError as exc:
            raise ProgramRunError(f"{where}: {exc}") from exc
        return outs[0] if len(outs) == 1 else tuple(outs)


def weights_are_constants(node: KernelNode, ins: Sequence, constant_values) -> bool:
    """Whether ``node``'s weight blocks are program constants, contiguous as bound: what a
    dependent launch needs, since the kernel reads them before it waits for the kernels
    before it (a blocks value computed by an earlier node, or a copy made contiguous just
    before the launch, could still be being written)."""
    return all(
        node.inputs[i] in constant_values and ins[i].is_contiguous()
        for i in KERNEL_WEIGHT_INPUTS.get(node.op, ())
    )


INDEX_COPY = "aten::index_copy"
# not on the allow-list (a program cannot name it): only a donated input's index_copy runs it
INDEX_COPY_IN_PLACE = torch.ops.aten.index_copy_.default


def _copies_into(node: AtenNode) -> int | None:
    """The value an ``aten::index_copy`` node copies into (its first argument), if a tensor."""
    first = node.args[0].value if node.args else None
    return first.value if isinstance(first, TensorRef) else None


def _reads(node) -> list[int]:
    """The values an instruction reads (not those of the chains an IfNode runs)."""
    if isinstance(node, AtenNode):
        reads = []
        for a in node.args:
            if isinstance(a.value, (TensorRef, SymIntRef)):
                reads.append(a.value.value)
            elif isinstance(a.value, TensorListRef):
                reads.extend(a.value.values)
        return reads
    if isinstance(node, KernelNode):
        return list(node.inputs)
    if isinstance(node, IfNode):
        return [node.condition]
    return []


def _path_reads(program: Program, c: int) -> dict[int, int]:
    """The most times each value is read on one run of chain ``c``: its instructions, its
    results, and for each IfNode the larger count of its two branches (one runs)."""
    counts: dict[int, int] = {}
    chain = program.chains[c]
    for node in chain.instructions:
        for index in _reads(node):
            counts[index] = counts.get(index, 0) + 1
        if isinstance(node, IfNode):
            then, other = (
                _path_reads(program, node.then_chain),
                _path_reads(program, node.else_chain),
            )
            for index in then.keys() | other.keys():
                counts[index] = counts.get(index, 0) + max(then.get(index, 0), other.get(index, 0))
    for index in chain.results:
        counts[index] = counts.get(index, 0) + 1
    return counts


def donatable_inputs(program: Program) -> frozenset[int]:
    """See `ProgramRunner.donatable_inputs`."""
    reads = _path_reads(program, program.main_chain)
    for index in program.outputs:
        reads[index] = reads.get(index, 0) + 1
    copied_into = {
        _copies_into(node)
        for node in program.instructions()
        if isinstance(node, AtenNode) and node.op == INDEX_COPY
    }
    return frozenset(
        j
        for j, index in enumerate(program.inputs)
        if index in copied_into and reads.get(index, 0) == 1
    )


_KERNEL_NAMES = {
    KernelKind.MATVEC: "matvec",
    KernelKind.MATVEC_BATCHED: "matvec_batched",
    KernelKind.MATMUL: "matmul",
}

__all__ = ["DEVICES", "ProgramRunError", "ProgramRunner", "run_program"]
