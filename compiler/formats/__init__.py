"""GGUF block formats: layouts, bit-exact dequantization and quantization.

``FORMATS`` maps each GGUF type name to its :class:`FormatSpec`; it is built from the
explicit tuple of format modules below, so adding a format means adding a module and
listing it here.  Each format module exposes the same names:

* ``SPEC`` - its :class:`FormatSpec`;
* ``chunk_views(blocks[n, bb])`` - views of the blocks (the blocks themselves, or e.g. the
  f16 scale column and the bytes as int8) that ``dequantize`` splits into chunks once per
  call, instead of every chunk slicing and viewing its blocks again;
* ``dequantize_views(*views, out[n, bw], scratch)`` - float32 values of one chunk's blocks
  (temporaries taken from the :class:`~compiler.formats.workspace.Workspace`);
* ``quantize_blocks(weights[..., nblocks, bw])`` - uint8 blocks.

Row-level functions work on tensors whose last dimension is a row of blocks.
``dequantize`` matches ``gguf.quants.dequantize`` bit for bit (float32).  It works in
chunks of CHUNK_WEIGHTS weights, each decoded start to finish (scales, then quants) while
its blocks, temporaries and output are in cache, with the running thread's scratch buffers;
the chunks of a large call are spread over as many threads as torch may use, every op on
one core (see :mod:`compiler.formats.parallel`).

Speed in eager torch comes from the shape of each op more than from the op count: an op
over contiguous memory, or a 2-D loop with long rows, runs at memory speed, while one whose
loop is 3-D or more (a permuting copy, a strided ``out=`` slice) pays ~40 ns per block.  So
the formats unpack bits with SWAR ops on int64 words over whole planes, put the quants in
weight order with one ``index_select`` of 32-byte rows (a memcpy per row), and finish with a
contiguous int8 -> float32 conversion and one broadcast multiply (and subtract) per
sub-block.  The op count matters too, at 3-7 us of Python and dispatch per op: the views of
scratch buffers a chunk shape needs are built once per thread (``Workspace.plan``), and the
constants of the bit ops are 0-dim tensors (a Python number is wrapped anew at every call).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import torch

from compiler.errors import FormatError, UnsupportedError
from compiler.formats import parallel, q4_0, q4_k, q5_0, q5_k, q6_k, q8_0
from compiler.formats.spec import Field, FormatSpec
from compiler.formats.workspace import Workspace

__all__ = [
    "FORMATS",
    "Field",
    "FormatSpec",
    "dequantize",
    "find_nonfinite_scales",
    "get_format",
    "quantize",
    "random_blocks",
    "row_bytes",
]

_FORMAT_MODULES: tuple[ModuleType, ...] = (q4_0, q5_0, q8_0, q4_k, q5_k, q6_k)
_MODULES: dict[str, ModuleType] = {module.SPEC.name: module for module in _FORMAT_MODULES}
FORMATS: dict[str, FormatSpec] = {name: module.SPEC for name, module in _MODULES.items()}

# weights dequantized per chunk (2 MiB of float32): small enough that a chunk's output and
# temporaries stay in cache between the passes over them, large enough that the ~30-60 us
# a chunk costs in Python and torch dispatch (5-15 ops) stays small, and that the ops are
# long next to a GIL hand-over between threads (50-200 us on a virtual machine).  On the
# 2-core EPYC of BENCHMARKS.md, 2^18 and 2^20 are 5-25% slower, 2^16 2-3x slower.
CHUNK_WEIGHTS = 1 << 19
# a call run on several threads gets chunks of at least this many weights (more chunks than
# threads, but not so small that the per-chunk cost takes over)
MIN_CHUNK_WEIGHTS = 1 << 16
# chunk boundaries fall on multiples of this many blocks: 4 blocks of every format are a
# whole number of 8-byte words, so the word views of an aligned tensor stay aligned
CHUNK_ALIGN_BLOCKS = 4
# outputs at least this large are allocated through numpy, for huge pages (numpy's threshold)
HUGE_PAGE_MIN_BYTES = 1 << 22
# weights quantized per chunk: the K-quant scale searches hold ~20 candidate copies of each
# chunk, which should stay in cache
QUANTIZE_CHUNK_WEIGHTS = 1 << 14
# random_blocks draws scale magnitudes log-uniformly from this range (typical of real models)
RANDOM_SCALE_LOG10_RANGE = (-4.0, -2.0)
F16_EXPONENT_MASK = 0x7C00


def get_format(fmt: str) -> FormatSpec:
    """The spec of GGUF format ``fmt``; UnsupportedError naming the supported ones."""
    spec = FORMATS.get(fmt) if isinstance(fmt, str) else None
    if spec is None:
        raise UnsupportedError(
            f"unsupported quantization format {fmt!r}; supported: {', '.join(FORMATS)}"
        )
    return spec


def row_bytes(fmt: str, k: int) -> int:
    """Bytes of one row of ``k`` weights in format ``fmt``."""
    spec = get_format(fmt)
    if k % spec.block_weights != 0 or k < 0:
        raise FormatError(
            f"{fmt}: a row of {k} weights is not a whole number of "
            f"{spec.block_weights}-weight blocks"
        )
    return k // spec.block_weights * spec.block_bytes


def _tensor_view(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing the memory of ``array`` (a read-only mmap included: blocks are only
    read, so torch's warning about non-writable arrays does not apply)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


def _as_blocks(blocks: torch.Tensor | np.ndarray, fmt: str) -> tuple[FormatSpec, torch.Tensor]:
    """Validated uint8 tensor [..., row_bytes] and the spec of ``fmt``."""
    spec = get_format(fmt)
    if isinstance(blocks, np.ndarray):
        if blocks.dtype != np.uint8:
            raise FormatError(f"{fmt}: expected uint8 blocks, got numpy dtype {blocks.dtype}")
        blocks = _tensor_view(blocks)
    if not isinstance(blocks, torch.Tensor):
        raise FormatError(f"{fmt}: expected a uint8 tensor of blocks, got {type(blocks).__name__}")
    if blocks.dtype != torch.uint8:
        raise FormatError(f"{fmt}: expected a uint8 tensor of blocks, got dtype {blocks.dtype}")
    if blocks.device.type != "cpu":
        raise FormatError(f"{fmt}: blocks must be on the CPU, got a tensor on {blocks.device}")
    if blocks.dim() == 0 or blocks.shape[-1] % spec.block_bytes != 0:
        last = blocks.shape[-1] if blocks.dim() else "a scalar"
        raise FormatError(
            f"{fmt}: row of {last} bytes is not a whole number of {spec.block_bytes}-byte blocks"
        )
    return spec, blocks


def _empty_output(rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialized [rows, cols] tensor; large ones come from numpy, which marks them
    for transparent huge pages (MADV_HUGEPAGE) where torch's allocator does not, so that
    first-touch page faults stay few (with 4 KiB pages they cost as much as dequantizing)."""
    nbytes = rows * cols * dtype.itemsize
    if nbytes < HUGE_PAGE_MIN_BYTES:
        return torch.empty(rows, cols, dtype=dtype)
    if dtype == torch.float32:
        # the common case in two calls instead of four (each costs ~10 us here, its code
        # evicted from cache by the previous call's output)
        return torch.from_numpy(np.empty((rows, cols), dtype=np.float32))
    return torch.from_numpy(np.empty(nbytes, dtype=np.uint8)).view(dtype).view(rows, cols)


def dequantize(blocks: torch.Tensor, fmt: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [..., row_bytes] -> ``dtype`` [..., row_weights].

    Computed in float32 (bit-identical to ``gguf.quants.dequantize``), then cast.  Non-finite
    scales are not an error here (see :func:`find_nonfinite_scales`).  Large calls run in
    chunks spread over as many threads as torch may use (see
    :mod:`compiler.formats.parallel`), each chunk's ops on one core."""
    spec, blocks = _as_blocks(blocks, fmt)
    module = _MODULES[spec.name]
    leading = blocks.shape[:-1]
    row_weights = blocks.shape[-1] // spec.block_bytes * spec.block_weights
    flat = blocks.reshape(-1, spec.block_bytes)
    n = flat.shape[0]
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise FormatError(f"{fmt}: dequantize needs a floating-point dtype, got {dtype!r}")
    out = _empty_output(n, spec.block_weights, dtype)
    if n == 0:
        return out.view(*leading, row_weights)
    threads = parallel.thread_count(n * spec.block_weights)
    chunk = _chunk_blocks(module, n, threads)
    kernel = module.dequantize_views
    # views of the whole tensor split once, rather than sliced and viewed in every chunk;
    # the task list is their only holder (no zip object left behind), so each chunk's views
    # are freed by the thread that decoded it (parallel.run drops a task once taken)
    parallel.run(
        [
            functools.partial(_dequantize_chunk, kernel, piece)
            for piece in zip(
                *(view.split(chunk) for view in module.chunk_views(flat)), out.split(chunk)
            )
        ],
        threads,
    )
    return out.view(*leading, row_weights)


def _chunk_blocks(module: ModuleType, n: int, threads: int) -> int:
    """Blocks per chunk: about CHUNK_WEIGHTS weights, fewer when that would leave one of
    ``threads`` threads without a chunk, a multiple of CHUNK_ALIGN_BLOCKS in any case."""
    spec = module.SPEC
    blocks = max(1, CHUNK_WEIGHTS // spec.block_weights)
    if threads > 1:
        blocks = min(blocks, max(MIN_CHUNK_WEIGHTS // spec.block_weights, -(-n // threads)))
    return -(-blocks // CHUNK_ALIGN_BLOCKS) * CHUNK_ALIGN_BLOCKS


def _dequantize_chunk(kernel: Callable, piece: tuple[torch.Tensor, ...]) -> None:
    """``kernel(*views, out, scratch)`` for one chunk ``(*views, out)``: the chunk's blocks
    are read from memory once (scales and quants together), and its temporaries and output
    stay in cache between the passes over them.  Scratch buffers are the running thread's,
    kept from call to call (fresh ones would cost page faults at every call)."""
    *views, out = piece
    scratch = Workspace.of_this_thread()
    if out.dtype == torch.float32:
        kernel(*views, out, scratch)
    else:
        values = scratch.take("float32", tuple(out.shape), torch.float32)
        kernel(*views, values, scratch)
        out.copy_(values)


def quantize(weights: torch.Tensor, fmt: str) -> torch.Tensor:
    """float [..., K] -> uint8 [..., K / block_weights * block_bytes].

    Q4_0, Q5_0 and Q8_0 are bit-identical to ``gguf.quants.quantize``; the K-quants use the
    scale searches of :mod:`compiler.formats.kquant`."""
    spec = get_format(fmt)
    if isinstance(weights, np.ndarray):
        weights = _tensor_view(weights)
    if not isinstance(weights, torch.Tensor) or not weights.is_floating_point():
        kind = weights.dtype if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise FormatError(f"{fmt}: expected a floating-point tensor of weights, got {kind}")
    if weights.dim() == 0:
        raise FormatError(f"{fmt}: expected weights [..., K], got a scalar")
    k = weights.shape[-1]
    nbytes = row_bytes(fmt, k)
    x = weights.detach().to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise FormatError(f"{fmt}: cannot quantize non-finite weights")
    blocks = x.reshape(-1, spec.block_weights)
    module = _MODULES[spec.name]
    chunk = max(1, QUANTIZE_CHUNK_WEIGHTS // spec.block_weights)
    packed = (
        torch.cat(
            [
                module.quantize_blocks(blocks[start : start + chunk])
                for start in range(0, len(blocks), chunk)
            ]
        )
        if len(blocks)
        else torch.empty(0, spec.block_bytes, dtype=torch.uint8)
    )
    packed = packed.reshape(*weights.shape[:-1], nbytes)
    overflow = find_nonfinite_scales(packed, fmt)
    if overflow is not None:
        raise FormatError(
            f"{fmt}: weights of row {overflow[0]}, block {overflow[1]} are too large for the "
            f"format's f16 scales (largest |weight| {float(x.abs().max()):.3g})"
        )
    return packed


def random_blocks(
    fmt: str, rows: int, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """uint8 [rows, row_bytes] of random valid blocks: every byte random, except the f16
    scales, which are finite, of random sign, with magnitudes log-uniform in
    10**RANDOM_SCALE_LOG10_RANGE."""
    spec = get_format(fmt)
    nbytes = row_bytes(fmt, k)
    nblocks = k // spec.block_weights
    blocks = torch.randint(
        0, 256, (rows, nblocks, spec.block_bytes), dtype=torch.uint8, generator=generator
    )
    low, high = RANDOM_SCALE_LOG10_RANGE
    for field in spec.scale_fields:
        shape = (rows, nblocks, field.count)
        exponent = torch.rand(shape, generator=generator) * (high - low) + low
        sign = torch.randint(0, 2, shape, generator=generator) * 2 - 1
        scale = (10.0**exponent) * sign
        offset = spec.field_offset(field.name)
        blocks[:, :, offset : offset + field.nbytes] = (
            scale.to(torch.float16).view(torch.uint8).view(rows, nblocks, field.nbytes)
        )
    return blocks.view(rows, nbytes)


def find_nonfinite_scales(blocks: torch.Tensor, fmt: str) -> tuple[int, int] | None:
    """(row, block) of the first block whose f16 scale is inf or NaN, or None.  Rows are
    counted over all leading dimensions flattened."""
    spec, blocks = _as_blocks(blocks, fmt)
    if blocks.numel() == 0:
        return None
    per_block = blocks.reshape(-1, blocks.shape[-1] // spec.block_bytes, spec.block_bytes)
    bad = torch.zeros(per_block.shape[:2], dtype=torch.bool)
    for field in spec.scale_fields:
        offset = spec.field_offset(field.name)
        raw = per_block[:, :, offset : offset + field.nbytes].contiguous().view(torch.int16)
        bad |= ((raw & F16_EXPONENT_MASK) == F16_EXPONENT_MASK).any(-1)
    hits = bad.view(-1).nonzero()
    if hits.numel() == 0:
        return None
    first = int(hits[0])
    return divmod(first, per_block.shape[1])
