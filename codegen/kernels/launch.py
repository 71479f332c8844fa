"""How a generated kernel is launched: block size and grid as functions of (M, N, K).

A kernel's launch is pure data so that lowering can turn it into program Dims (static where
N and K are, SymNode arithmetic where M is symbolic) and the launcher can evaluate it::

    block = (threads, 1, 1)                      # a CUDA block / a Metal threadgroup
    grid[d] = ceil(product(sizes[d]) / per_block[d]) * times[d]

The sizes a grid extent may multiply are named in ``GRID_SIZES``: ``M`` (activation rows,
all leading dims flattened; the number of indices for embedding), ``N`` (weight rows),
``K_PARTS`` (``K / 32``, the 32-weight parts a row is decoded in).  ``times`` is 1 but for the
split-K matmul, whose cluster of S blocks shares each tile of rows.  Shared memory is static
in every kernel except the CUDA 16-bit matmul and staged mma matvec, whose rings take
``shared_memory_bytes`` of dynamic shared memory (the launcher opts the function in above 48
KB), and which also take tensor maps (``tensor_maps``: on sm_90a the matmul's activation
stages, and both kernels' weight groups where the rows are whole 16-byte words, come by the
tensor memory accelerator).
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.errors import UnsupportedError

# weights per part: the unit of work of one thread in every kernel kind
PART_WEIGHTS = 32
GRID_SIZES = ("M", "N", "K_PARTS")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class GridExtent:
    """One grid dimension: ``ceil(product of the named sizes / per_block)``; 1 if none."""

    sizes: tuple[str, ...] = ()
    per_block: int = 1
    # blocks per unit of that: the blocks that split each one's work (a cluster's)
    times: int = 1

    def __post_init__(self) -> None:
        unknown = [s for s in self.sizes if s not in GRID_SIZES]
        if unknown or self.per_block < 1 or self.times < 1:
            raise ValueError(f"grid extent {self}: sizes must be among {GRID_SIZES}")

    def evaluate(self, m: int, n: int, k: int) -> int:
        values = {"M": m, "N": n, "K_PARTS": k // PART_WEIGHTS}
        product = 1
        for name in self.sizes:
            product *= values[name]
        return ceil_div(product, self.per_block) * self.times

    def describe(self) -> str:
        if not self.sizes:
            return str(self.times)
        product = "*".join(self.sizes)
        blocks = product if self.per_block == 1 else f"ceil({product}/{self.per_block})"
        return blocks if self.times == 1 else f"{blocks}*{self.times}"


@dataclass(frozen=True)
class TensorMapRule:
    """A tensor map a CUDA kernel takes after its scalars: of its tensor parameter ``tensor``
    (0: x, 1: the weight blocks), boxes of ``box_rows`` x ``box_inner`` elements, the 128-byte
    swizzle or none (``swizzle`` 128 / 0), zeros for an ``optional`` one of a tensor not on
    16-byte boundaries, elements of ``element_bytes`` bytes (2 or 4: a uint8 tensor read as
    wider elements, for boxes wider than 256 bytes) (a program's
    `runtime_schema.program.TensorMap`, encoded by the launcher)."""

    tensor: int
    box_inner: int
    box_rows: int
    swizzle: int = 128
    optional: bool = False
    element_bytes: int = 1


@dataclass(frozen=True)
class LaunchRule:
    """Block of ``threads`` threads; grid (x, y, z) from ``grid``; ``shared_memory_bytes`` of
    dynamic shared memory (0 but for the CUDA 16-bit matmul and staged mma matvec); the
    ``tensor_maps`` the kernel takes after its scalars (theirs: the matmul's activations,
    both kernels' weight blocks)."""

    threads: int
    grid: tuple[GridExtent, GridExtent, GridExtent]
    shared_memory_bytes: int = 0
    tensor_maps: tuple[TensorMapRule, ...] = ()

    def block_size(self) -> tuple[int, int, int]:
        return (self.threads, 1, 1)

    def grid_size(self, m: int, n: int, k: int) -> tuple[int, int, int]:
        if k % PART_WEIGHTS:
            raise UnsupportedError(f"K={k} is not a multiple of {PART_WEIGHTS}")
        x, y, z = (extent.evaluate(m, n, k) for extent in self.grid)
        return (x, y, z)

    def describe(self) -> str:
        grid = ", ".join(extent.describe() for extent in self.grid)
        return f"grid=({grid}) block=({self.threads}, 1, 1)"
