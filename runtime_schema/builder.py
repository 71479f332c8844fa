"""`ProgramBuilder`: assemble a `Program` value by value and instruction by instruction.

The code generator and the tests use it so that value indices, chains and results are
never counted by hand::

    b = ProgramBuilder()
    m = b.symint("M", 1, 512)
    x = b.input("x", DType.FLOAT32, [Dim.symbolic(m), 640])
    w = b.constant("blk.0.attn_q.weight", blocks)           # uint8 [n, row_bytes]
    y = b.tensor("y", DType.FLOAT32, [Dim.symbolic(m), 1024])
    b.emit(b.main, KernelNode(...inputs=(x, w), outputs=(y,)...))
    program = b.build(outputs=[y])

`build` validates the result (`validate_program`), so a mistake surfaces here, naming the
field, rather than when the program is saved or run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from runtime_schema.program import (
    Chain,
    Constant,
    Dim,
    DType,
    GgufSlice,
    Instruction,
    Program,
    SymIntInfo,
    TensorInfo,
    Value,
)
from runtime_schema.validate import validate_program

MAIN_CHAIN_NAME = "main"


def _dim(d: int | Dim) -> Dim:
    return d if isinstance(d, Dim) else Dim(int(d))


class ProgramBuilder:
    def __init__(self) -> None:
        self.values: list[Value] = []
        self.inputs: list[int] = []
        self.constants: list[Constant] = []
        self.chains: list[tuple[str, list[Instruction], list[int]]] = []
        self.metadata: list[tuple[str, str]] = []
        self.main = self.chain(MAIN_CHAIN_NAME)

    # ---- values ----------------------------------------------------------------------------
    def symint(self, name: str, min: int, max: int) -> int:
        self.values.append(Value(name, SymIntInfo(min, max)))
        return len(self.values) - 1

    def tensor(self, name: str, dtype: DType, shape: Iterable[int | Dim]) -> int:
        self.values.append(Value(name, TensorInfo(DType(dtype), tuple(_dim(d) for d in shape))))
        return len(self.values) - 1

    def input(self, name: str, dtype: DType, shape: Iterable[int | Dim]) -> int:
        index = self.tensor(name, dtype, shape)
        self.inputs.append(index)
        return index

    def constant(
        self,
        name: str,
        data: torch.Tensor | None = None,
        *,
        source: GgufSlice | None = None,
        dtype: DType | None = None,
        shape: Sequence[int] | None = None,
    ) -> int:
        """A tensor value bound to `data` (dtype and shape from it unless given) and/or to
        bytes of a `.gguf` (`source`)."""
        if data is not None:
            dtype = DType.from_torch(data.dtype) if dtype is None else dtype
            shape = tuple(data.shape) if shape is None else shape
        if dtype is None or shape is None:
            raise ValueError(f"constant {name!r}: give data, or dtype and shape")
        index = self.tensor(name, dtype, shape)
        self.constants.append(Constant(index, data, source))
        return index

    # ---- chains ----------------------------------------------------------------------------
    def chain(self, name: str) -> int:
        self.chains.append((name, [], []))
        return len(self.chains) - 1

    def emit(self, chain: int, node: Instruction) -> Instruction:
        self.chains[chain][1].append(node)
        return node

    def results(self, chain: int, values: Iterable[int]) -> None:
        self.chains[chain][2][:] = list(values)

    def build(self, outputs: Iterable[int], *, validate: bool = True) -> Program:
        program = Program(
            values=tuple(self.values),
            inputs=tuple(self.inputs),
            outputs=tuple(outputs),
            chains=tuple(Chain(n, tuple(ins), tuple(res)) for n, ins, res in self.chains),
            main_chain=self.main,
            constants=tuple(self.constants),
            metadata=tuple(self.metadata),
        )
        if validate:
            validate_program(program)
        return program
