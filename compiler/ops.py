"""The `ggufc` torch op library: three ops on raw GGUF blocks and fused attention, rotary and
RMSNorm-plus-residual and gated GELU ops, with CPU reference kernels.

Importing this module registers the ops with `torch.library` (that is how torch learns about
custom ops; no other ggufc module registers anything).  Importing it again, or reloading it,
is harmless: an op that already exists is left as it is.

Ops (schemas exactly as the dispatcher sees them)
-------------------------------------------------

``ggufc::dequantize(Tensor blocks, str fmt, SymInt n, SymInt k, ScalarType dtype) -> Tensor``
    ``W = dequant(blocks)`` of shape ``[n, k]`` in ``dtype``.  What model front ends emit.

``ggufc::linear(Tensor x, Tensor blocks, Tensor? bias, str fmt, SymInt n, SymInt k,
str kernel="auto") -> Tensor``
    ``y[..., j] = sum_i x[..., i] * W[j, i] + bias[j]`` with ``x: [..., k]`` and
    ``y: [..., n]``, accumulated in float32 and cast to ``x.dtype``.  ``kernel`` names the
    GPU kernel family a backend must use ("auto" lets it choose; `split-dynamic-m` makes it
    explicit per M bucket); the CPU reference only checks that the name is known.

    The CPU reference never holds the whole dequantized ``W``: it walks ``W`` in slabs of
    ``linear_chunk_rows(k)`` output rows (about ``LINEAR_CHUNK_WEIGHTS`` weights, 16 MiB of
    float32), dequantizes a slab, multiplies and writes ``y[..., slab]``.  Each output is the same float32 dot product over ``k`` as with the
    whole ``W``; only the matmul's summation order may differ (float32 rounding).  For a
    decode step this avoids a temporary of ``n * k`` float32 per call (671 MB for a
    262144 x 640 tied lm_head), whose memory traffic, not arithmetic, dominated.

``ggufc::embedding(Tensor blocks, Tensor indices, str fmt, SymInt n, SymInt k,
ScalarType dtype) -> Tensor``
    ``out[..., :] = W[indices[...], :]`` of shape ``[*indices.shape, k]`` in ``dtype``;
    only the gathered rows are dequantized.

``ggufc::attention(Tensor q, Tensor k, Tensor v, Tensor visible, float scale) -> Tensor``
    Masked softmax attention of float32 ``q: [B, R, D]`` against ``k: [B, S, D]`` and
    ``v: [B, S, Dv]`` (B heads of keys and values, each read by R query rows), out
    ``[B, R, Dv]``: ``softmax(scale * q k^T, masked) v`` where row ``r`` of every head sees
    key ``j`` iff ``visible[r % M, j]`` (``visible``: bool ``[M, S]``, ``R`` a multiple of
    ``M``: the rows of a head are ``G`` groups of the ``M`` query tokens, as a grouped-query
    front end lays them out).  A row that sees no key gives NaN, as softmax does.  Not a
    GGUF op: the `fuse-attention` pass makes it from the spelled-out ops (matmul, scale,
    mask, softmax, matmul) so a backend can run them as one kernel; the reference runs those
    ops.

``ggufc::rotary(Tensor x, Tensor cos, Tensor sin, Tensor? norm_weight=None,
float? norm_eps=None) -> Tensor``
    Rotary position embedding of the rotate-half kind on float32 ``x: [..., M, D]`` (D even):
    ``out = x * cos + roll(x, D / 2, -1) * sin`` with ``cos`` and ``sin`` ``[M, D]``
    broadcast over x's leading dims (the front end folds the rotation's sign into ``sin``:
    ``cat(-sin_half, sin_half)``).  With ``norm_eps``, x is first RMS-normed over its last
    dim (``rms_norm(x, [D], norm_weight, norm_eps)``: a model's per-head q / k norm).  Not a
    GGUF op: the `fuse-rotary` pass makes it from the spelled-out ops (rms_norm, roll, mul,
    addcmul) so a backend runs them as one kernel; the reference runs those ops.

``ggufc::rms_norm_add(Tensor x, Tensor? weight, float eps, Tensor residual) -> Tensor``
    ``residual + rms_norm(x, [D], weight, eps)`` of float32 ``x`` and ``residual`` of one
    shape ``[..., D]`` (``weight``: None or float32 ``[D]``): a post-norm residual block's
    end (Gemma's norm after the attention or the MLP, then the skip connection).  Not a GGUF
    op: the `fuse-rms-norm` pass makes it from ``aten.add(residual, aten.rms_norm(...))`` so
    a backend runs both as one kernel; the reference runs those two ops.

``ggufc::rms_norm_add_norm(Tensor x, Tensor weight, float eps, Tensor residual,
Tensor next_weight, float next_eps) -> (Tensor, Tensor)``
    ``(s, rms_norm(s, [D], next_weight, next_eps))`` with ``s = rms_norm_add(x, weight, eps,
    residual)``: a post-norm block's end and the next block's pre-norm (Gemma's four norms a
    layer) in one op, both weights float32 ``[D]``.  Made by `fuse-rms-norm` from a
    ``rms_norm_add`` and an ``aten.rms_norm`` of its result; the reference runs the ops.

``ggufc::gated_gelu(Tensor x, Tensor? up=None) -> Tensor``
    ``gelu(gate, approximate="tanh") * up`` of float32: with ``up``, ``gate = x`` (one
    shape); without it, x's last dim holds ``[gate | up]`` (two halves of D / 2: the stacked
    gate / up projection of `fuse-sibling-linears`).  A GeGLU MLP's activation (Gemma's).
    Not a GGUF op: the `fuse-gated-gelu` pass makes it from ``mul(gelu(gate), up)`` so a
    backend runs both as one kernel reading the halves in place; the reference runs the ops.

Layout of ``blocks`` (the three GGUF ops): uint8 ``[n, row_bytes]`` where
``row_bytes = k / block_weights * block_bytes`` (see `compiler.formats`); row ``j`` holds
the ``k`` weights of output feature / vocabulary entry ``j`` as consecutive GGUF blocks.

Activations and outputs may be float32, float16 or bfloat16.  Every op validates its
arguments in both the real and the fake (shape-only) kernel, so a mistake surfaces while
tracing with `torch.export` too: `UnsupportedError` for a format, dtype or kernel name
ggufc does not handle, `FormatError` for a tensor whose dtype or shape does not fit the
format and sizes.  Messages name the op, the format and the expected vs actual shapes.

The ops are opaque to `torch.export` and survive `ExportedProgram.run_decompositions()` as
one node each, which is what lets the `fuse-gguf` pass and the code generators find them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.fx.experimental.symbolic_shapes import statically_known_true

from compiler import formats
from compiler.errors import FormatError, UnsupportedError

NAMESPACE = "ggufc"

# Kernel families a fused linear can be pinned to (see `split-dynamic-m`).
KERNEL_AUTO = "auto"
KERNELS = (KERNEL_AUTO, "matvec", "matvec_batched", "matmul")

# Activation / output dtypes the reference and the generated kernels handle.
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Products are summed in this dtype whatever the activation dtype, then cast back.
ACCUMULATE_DTYPE = torch.float32

# Weights the CPU reference linear dequantizes at a time (16 MiB of float32): a slab small
# enough to be reused from cache rather than streamed through memory, large enough that the
# per-slab cost of `formats.dequantize` (scale decoding, Python) stays small.  Measured with
# benchmarks/tokens_per_second.py on Gemma 3 270M (2 shared cores): decode 2.5-2.9 tok/s at
# 1 << 22 vs 1.9-2.2 at 1 << 20 and 1 << 21, 1.5 at 1 << 23, 0.4-1.3 for one whole slab.
LINEAR_CHUNK_WEIGHTS = 1 << 22

DEQUANTIZE_SCHEMA = "(Tensor blocks, str fmt, SymInt n, SymInt k, ScalarType dtype) -> Tensor"
LINEAR_SCHEMA = (
    "(Tensor x, Tensor blocks, Tensor? bias, str fmt, SymInt n, SymInt k, "
    'str kernel="auto") -> Tensor'
)
EMBEDDING_SCHEMA = (
    "(Tensor blocks, Tensor indices, str fmt, SymInt n, SymInt k, ScalarType dtype) -> Tensor"
)
ATTENTION_SCHEMA = "(Tensor q, Tensor k, Tensor v, Tensor visible, float scale) -> Tensor"
# dtypes of the attention's q, k, v and output
ATTENTION_DTYPES = (torch.float32,)
ROTARY_SCHEMA = (
    "(Tensor x, Tensor cos, Tensor sin, Tensor? norm_weight=None, float? norm_eps=None) -> Tensor"
)
ROTARY_DTYPES = (torch.float32,)
RMS_NORM_ADD_SCHEMA = "(Tensor x, Tensor? weight, float eps, Tensor residual) -> Tensor"
RMS_NORM_ADD_DTYPES = (torch.float32,)
GATED_GELU_SCHEMA = "(Tensor x, Tensor? up=None) -> Tensor"
GATED_GELU_DTYPES = (torch.float32,)
GATED_GELU_APPROXIMATE = "tanh"  # aten.gelu's approximate of the gate's GELU
RMS_NORM_ADD_NORM_SCHEMA = (
    "(Tensor x, Tensor weight, float eps, Tensor residual, Tensor next_weight, float next_eps) "
    "-> (Tensor, Tensor)"
)


# ---- validation (shared by real and fake kernels; never reads tensor data) ---------------
#
# `where` is the label that starts every message, e.g. "ggufc.linear(Q4_K)".


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _shape_text(shape: Sequence) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _op_label(op: str, fmt: object) -> str:
    return f"{NAMESPACE}.{op}({fmt})"


def _require_same_size(actual, expected, message: Callable[[], str]) -> None:
    """Raise FormatError when two sizes differ; symbolic sizes become a traced check."""
    if statically_known_true(actual != expected):
        raise FormatError(message())
    # Sizes known only symbolically: record the requirement rather than guess.
    torch._check(actual == expected, message)


def check_format(where: str, fmt: object):
    """The spec of format `fmt`; UnsupportedError if ggufc does not know it."""
    if not isinstance(fmt, str) or fmt not in formats.FORMATS:
        known = ", ".join(formats.FORMATS)
        raise UnsupportedError(f"{where}: unknown format {fmt!r}; known: {known}")
    return formats.FORMATS[fmt]


def check_float_dtype(where: str, what: str, dtype: torch.dtype) -> None:
    """UnsupportedError unless `dtype` is one of FLOAT_DTYPES; `what` names the tensor."""
    if dtype not in FLOAT_DTYPES:
        allowed = ", ".join(_dtype_name(d) for d in FLOAT_DTYPES)
        raise UnsupportedError(
            f"{where}: {what} dtype {_dtype_name(dtype)} is not supported; "
            f"expected one of {allowed}"
        )


def check_blocks(where: str, fmt: str, blocks: torch.Tensor, n, k) -> None:
    """Check that `blocks` is uint8 [n, row_bytes(fmt, k)] and k a whole number of blocks."""
    spec = check_format(where, fmt)
    block_weights = spec.block_weights
    if statically_known_true(k <= 0) or statically_known_true(k % block_weights != 0):
        raise FormatError(
            f"{where}: k={k} must be a positive multiple of the {fmt} block size {block_weights}"
        )
    if statically_known_true(n < 0):
        raise FormatError(f"{where}: n={n} must not be negative")
    row_bytes = k // block_weights * spec.block_bytes

    def message() -> str:
        return (
            f"{where}: blocks must be uint8 [n={n}, row_bytes={row_bytes}] (k={k}), "
            f"got {_dtype_name(blocks.dtype)} {_shape_text(blocks.shape)}"
        )

    if blocks.dtype != torch.uint8 or blocks.dim() != 2:
        raise FormatError(message())
    _require_same_size(blocks.shape[0], n, message)
    _require_same_size(blocks.shape[1], row_bytes, message)


def _check_linear_args(
    x: torch.Tensor,
    blocks: torch.Tensor,
    bias: torch.Tensor | None,
    fmt: str,
    n,
    k,
    kernel: str,
) -> None:
    where = _op_label("linear", fmt)
    check_blocks(where, fmt, blocks, n, k)
    if kernel not in KERNELS:
        raise UnsupportedError(
            f"{where}: unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}"
        )
    check_float_dtype(where, "activation", x.dtype)
    if x.dim() == 0:
        raise FormatError(f"{where}: x must be [..., k={k}], got a 0-d tensor")
    _require_same_size(
        x.shape[-1], k, lambda: f"{where}: x must be [..., k={k}], got {_shape_text(x.shape)}"
    )
    if bias is not None:
        check_float_dtype(where, "bias", bias.dtype)

        def bias_message() -> str:
            return f"{where}: bias must be [n={n}], got {_shape_text(bias.shape)}"

        if bias.dim() != 1:
            raise FormatError(bias_message())
        _require_same_size(bias.shape[0], n, bias_message)


def _check_dequantize_args(blocks: torch.Tensor, fmt: str, n, k, dtype: torch.dtype) -> None:
    where = _op_label("dequantize", fmt)
    check_blocks(where, fmt, blocks, n, k)
    check_float_dtype(where, "output", dtype)


def _check_embedding_args(
    blocks: torch.Tensor, indices: torch.Tensor, fmt: str, n, k, dtype: torch.dtype
) -> None:
    where = _op_label("embedding", fmt)
    check_blocks(where, fmt, blocks, n, k)
    check_float_dtype(where, "output", dtype)
    if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
        raise UnsupportedError(
            f"{where}: indices must be an integer tensor, got {_dtype_name(indices.dtype)}"
        )


def _check_attention_args(q, k, v, visible, scale) -> None:
    where = f"{NAMESPACE}.attention"
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 3:
            raise FormatError(
                f"{where}: {name} must be [heads, rows, dim], got {_shape_text(t.shape)}"
            )
        if t.dtype not in ATTENTION_DTYPES:
            raise UnsupportedError(
                f"{where}: {name} is {_dtype_name(t.dtype)}; supported: "
                f"{', '.join(_dtype_name(d) for d in ATTENTION_DTYPES)}"
            )
    if visible.dtype != torch.bool or visible.dim() != 2:
        raise FormatError(
            f"{where}: visible must be bool [M, S], got {_dtype_name(visible.dtype)} "
            f"{_shape_text(visible.shape)}"
        )
    shapes = f"q {_shape_text(q.shape)}, k {_shape_text(k.shape)}, v {_shape_text(v.shape)}, "
    shapes += f"visible {_shape_text(visible.shape)}"

    def message() -> str:
        return f"{where}: expected q [B, R, D], k [B, S, D], v [B, S, Dv], visible [M, S]; {shapes}"

    for actual, expected in (
        (k.shape[0], q.shape[0]),
        (v.shape[0], q.shape[0]),
        (k.shape[2], q.shape[2]),
        (v.shape[1], k.shape[1]),
        (visible.shape[1], k.shape[1]),
    ):
        _require_same_size(actual, expected, message)
    torch._check(
        q.shape[1] % visible.shape[0] == 0,
        lambda: f"{where}: q's rows must be a multiple of visible's M; {shapes}",
    )


def _require_dtypes(where: str, named: Sequence[tuple[str, torch.Tensor]], dtypes) -> None:
    """UnsupportedError naming the first (name, tensor) whose dtype is not among ``dtypes``."""
    for name, t in named:
        if t.dtype not in dtypes:
            raise UnsupportedError(
                f"{where}: {name} is {_dtype_name(t.dtype)}; supported: "
                f"{', '.join(_dtype_name(d) for d in dtypes)}"
            )


def _require_same_shape(
    where: str, named: tuple[tuple[str, torch.Tensor], tuple[str, torch.Tensor]], message: str
) -> None:
    """FormatError ``{where}: {message}; {name} {shape}, ...`` unless the two named tensors
    have one shape (of at least one dim)."""
    (x_name, x), (other_name, other) = named
    text = (
        f"{where}: {message}; {x_name} {_shape_text(x.shape)}, "
        f"{other_name} {_shape_text(other.shape)}"
    )
    if x.dim() < 1 or other.dim() != x.dim():
        raise FormatError(text)
    for actual, expected in zip(other.shape, x.shape):
        _require_same_size(actual, expected, lambda: text)


def _require_last_dim_weight(where: str, name: str, weight, x) -> None:
    """FormatError unless ``weight`` is ``[D]`` for x ``[..., D]`` (a norm's weight)."""
    if weight.dim() != 1:
        raise FormatError(f"{where}: {name} must be [D], got {_shape_text(weight.shape)}")
    _require_same_size(
        weight.shape[0],
        x.shape[-1],
        lambda: f"{where}: {name} {_shape_text(weight.shape)} against x {_shape_text(x.shape)}",
    )


def _check_rms_norm_add_args(x, weight, eps, residual, op: str = "rms_norm_add") -> None:
    where = f"{NAMESPACE}.{op}"
    named = [("x", x), ("residual", residual)] + (
        [("weight", weight)] if weight is not None else []
    )
    _require_dtypes(where, named, RMS_NORM_ADD_DTYPES)
    message = "expected x and residual of one shape [..., D]"
    _require_same_shape(where, (("x", x), ("residual", residual)), message)
    if weight is not None:
        _require_last_dim_weight(where, "weight", weight, x)


def _check_rms_norm_add_norm_args(x, weight, eps, residual, next_weight, next_eps) -> None:
    _check_rms_norm_add_args(x, weight, eps, residual, "rms_norm_add_norm")
    where = f"{NAMESPACE}.rms_norm_add_norm"
    _require_dtypes(where, [("next_weight", next_weight)], RMS_NORM_ADD_DTYPES)
    _require_last_dim_weight(where, "next_weight", next_weight, x)


def _check_gated_gelu_args(x, up) -> None:
    where = f"{NAMESPACE}.gated_gelu"
    named = [("x", x)] + ([("up", up)] if up is not None else [])
    _require_dtypes(where, named, GATED_GELU_DTYPES)
    if x.dim() < 1:
        raise FormatError(f"{where}: x must have a last dim, got {_shape_text(x.shape)}")
    if up is None:
        torch._check(
            x.shape[-1] % 2 == 0,
            lambda: (
                f"{where}: x [..., D] holds gate and up halves: D must be even, got "
                f"{_shape_text(x.shape)}"
            ),
        )
        return
    _require_same_shape(where, (("x", x), ("up", up)), "expected x and up of one shape")


def _check_rotary_args(x, cos, sin, norm_weight=None, norm_eps=None) -> None:
    where = f"{NAMESPACE}.rotary"
    if norm_weight is not None and norm_eps is None:
        raise UnsupportedError(f"{where}: norm_weight needs norm_eps (the norm's epsilon)")
    named = [("x", x), ("cos", cos), ("sin", sin)]
    if norm_weight is not None:
        named.append(("norm_weight", norm_weight))
        _require_last_dim_weight(where, "norm_weight", norm_weight, x)
    _require_dtypes(where, named, ROTARY_DTYPES)
    shapes = f"x {_shape_text(x.shape)}, cos {_shape_text(cos.shape)}, sin {_shape_text(sin.shape)}"
    if x.dim() < 2 or cos.dim() != 2 or sin.dim() != 2:
        raise FormatError(f"{where}: expected x [..., M, D], cos and sin [M, D]; {shapes}")

    def message() -> str:
        return f"{where}: expected x [..., M, D], cos and sin [M, D]; {shapes}"

    for t in (cos, sin):
        _require_same_size(t.shape[0], x.shape[-2], message)
        _require_same_size(t.shape[1], x.shape[-1], message)
    torch._check(x.shape[-1] % 2 == 0, lambda: f"{where}: D must be even; {shapes}")


# ---- real (CPU reference) kernels -----------------------------------------------------------
#
# The reference dequantizes on the CPU whatever the device of its inputs, and hands results
# back on the inputs' device, so a graph stays runnable (slowly) wherever its tensors live.


def _dequantize_on_cpu(blocks: torch.Tensor, fmt: str) -> torch.Tensor:
    return formats.dequantize(blocks.cpu(), fmt, dtype=ACCUMULATE_DTYPE)


def _dequantize_impl(blocks: torch.Tensor, fmt: str, n: int, k: int, dtype: torch.dtype):
    _check_dequantize_args(blocks, fmt, n, k, dtype)
    # Dequantize in float32 (exact for every format) and round once to the target dtype.
    weights = _dequantize_on_cpu(blocks, fmt)
    return weights.to(device=blocks.device, dtype=dtype).contiguous()


def _linear_impl(
    x: torch.Tensor,
    blocks: torch.Tensor,
    bias: torch.Tensor | None,
    fmt: str,
    n: int,
    k: int,
    kernel: str = KERNEL_AUTO,
):
    _check_linear_args(x, blocks, bias, fmt, n, k, kernel)
    return linear_reference(x, blocks, bias, fmt, n, k, linear_chunk_rows(k))


def linear_chunk_rows(k: int) -> int:
    """Output rows per slab of the CPU reference linear (at least one)."""
    return max(1, LINEAR_CHUNK_WEIGHTS // k)


def linear_reference(
    x: torch.Tensor,
    blocks: torch.Tensor,
    bias: torch.Tensor | None,
    fmt: str,
    n: int,
    k: int,
    chunk_rows: int,
) -> torch.Tensor:
    """``x @ dequant(blocks)^T + bias`` computed ``chunk_rows`` output rows at a time
    (arguments already checked).  Exposed so tests can compare slab sizes."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    cpu_blocks = blocks.cpu()
    activations = x.to(ACCUMULATE_DTYPE).reshape(-1, k)
    out = torch.empty((activations.shape[0], n), dtype=ACCUMULATE_DTYPE, device=x.device)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        weights = _dequantize_on_cpu(cpu_blocks[start:stop], fmt).to(x.device)
        out[:, start:stop] = torch.matmul(activations, weights.t())
    if bias is not None:
        out += bias.to(ACCUMULATE_DTYPE)
    return out.to(x.dtype).reshape(*x.shape[:-1], n).contiguous()


def _embedding_impl(
    blocks: torch.Tensor, indices: torch.Tensor, fmt: str, n: int, k: int, dtype: torch.dtype
):
    _check_embedding_args(blocks, indices, fmt, n, k, dtype)
    flat = indices.reshape(-1).to(torch.int64)
    if flat.numel() == 0:
        return torch.empty((*indices.shape, k), dtype=dtype, device=blocks.device)
    low, high = int(flat.min()), int(flat.max())
    if low < 0 or high >= n:
        raise FormatError(
            f"{_op_label('embedding', fmt)}: indices must lie in [0, n={n}), "
            f"got values from {low} to {high}"
        )
    rows = blocks.index_select(0, flat.to(blocks.device))
    weights = _dequantize_on_cpu(rows, fmt)
    return weights.to(device=blocks.device, dtype=dtype).reshape(*indices.shape, k).contiguous()


def attention_reference(q, k, v, visible, scale: float) -> torch.Tensor:
    """The spelled-out attention (arguments already checked): what `fuse-attention` fuses."""
    heads, rows, _ = q.shape
    tokens, keys = visible.shape
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    scores = scores.view(heads, rows // tokens, tokens, keys).masked_fill(~visible, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1).view(heads, rows, keys), v)


def _attention_impl(q, k, v, visible, scale: float):
    _check_attention_args(q, k, v, visible, scale)
    return attention_reference(q, k, v, visible, scale).contiguous()


def rotary_reference(x, cos, sin, norm_weight=None, norm_eps=None) -> torch.Tensor:
    """The spelled-out rotary embedding (arguments already checked): what `fuse-rotary` fuses."""
    if norm_eps is not None:
        x = torch.rms_norm(x, [x.shape[-1]], norm_weight, norm_eps)
    partner = x.roll(x.shape[-1] // 2, dims=-1)
    return torch.addcmul(x * cos, partner, sin)


def _rotary_impl(x, cos, sin, norm_weight=None, norm_eps=None):
    _check_rotary_args(x, cos, sin, norm_weight, norm_eps)
    return rotary_reference(x, cos, sin, norm_weight, norm_eps).contiguous()


def rms_norm_add_reference(x, weight, eps: float, residual) -> torch.Tensor:
    """The two ops `fuse-rms-norm` folds (arguments already checked)."""
    return residual + torch.rms_norm(x, [x.shape[-1]], weight, eps)


def _rms_norm_add_impl(x, weight, eps: float, residual):
    _check_rms_norm_add_args(x, weight, eps, residual)
    return rms_norm_add_reference(x, weight, eps, residual).contiguous()


def _rms_norm_add_norm_impl(x, weight, eps: float, residual, next_weight, next_eps: float):
    _check_rms_norm_add_norm_args(x, weight, eps, residual, next_weight, next_eps)
    total = rms_norm_add_reference(x, weight, eps, residual).contiguous()
    return total, torch.rms_norm(total, [x.shape[-1]], next_weight, next_eps).contiguous()


def gated_gelu_reference(x, up=None) -> torch.Tensor:
    """The ops `fuse-gated-gelu` fuses (arguments already checked)."""
    if up is None:
        half = x.shape[-1] // 2
        x, up = x[..., :half], x[..., half:]
    return torch.nn.functional.gelu(x, approximate=GATED_GELU_APPROXIMATE) * up


def _gated_gelu_impl(x, up=None):
    _check_gated_gelu_args(x, up)
    return gated_gelu_reference(x, up).contiguous()


# ---- fake (shape-only) kernels --------------------------------------------------------------


def _dequantize_fake(blocks: torch.Tensor, fmt: str, n, k, dtype: torch.dtype):
    _check_dequantize_args(blocks, fmt, n, k, dtype)
    return blocks.new_empty((n, k), dtype=dtype)


def _linear_fake(
    x: torch.Tensor,
    blocks: torch.Tensor,
    bias: torch.Tensor | None,
    fmt: str,
    n,
    k,
    kernel: str = KERNEL_AUTO,
):
    _check_linear_args(x, blocks, bias, fmt, n, k, kernel)
    return x.new_empty((*x.shape[:-1], n))


def _embedding_fake(blocks: torch.Tensor, indices: torch.Tensor, fmt: str, n, k, dtype):
    _check_embedding_args(blocks, indices, fmt, n, k, dtype)
    return blocks.new_empty((*indices.shape, k), dtype=dtype)


def _attention_fake(q, k, v, visible, scale: float):
    _check_attention_args(q, k, v, visible, scale)
    return q.new_empty((q.shape[0], q.shape[1], v.shape[2]))


def _rotary_fake(x, cos, sin, norm_weight=None, norm_eps=None):
    _check_rotary_args(x, cos, sin, norm_weight, norm_eps)
    return x.new_empty(x.shape)


def _rms_norm_add_fake(x, weight, eps: float, residual):
    _check_rms_norm_add_args(x, weight, eps, residual)
    return x.new_empty(x.shape)


def _rms_norm_add_norm_fake(x, weight, eps: float, residual, next_weight, next_eps: float):
    _check_rms_norm_add_norm_args(x, weight, eps, residual, next_weight, next_eps)
    return x.new_empty(x.shape), x.new_empty(x.shape)


def _gated_gelu_fake(x, up=None):
    _check_gated_gelu_args(x, up)
    if up is None:
        return x.new_empty((*x.shape[:-1], x.shape[-1] // 2))
    return x.new_empty(x.shape)


# ---- registration ---------------------------------------------------------------------------


def _is_registered(name: str) -> bool:
    return hasattr(getattr(torch.ops, NAMESPACE), name)


def _register(name: str, schema: str, impl: Callable, fake: Callable) -> None:
    if _is_registered(name):
        return
    op = torch.library.custom_op(f"{NAMESPACE}::{name}", impl, mutates_args=(), schema=schema)
    op.register_fake(fake)


_register("dequantize", DEQUANTIZE_SCHEMA, _dequantize_impl, _dequantize_fake)
_register("linear", LINEAR_SCHEMA, _linear_impl, _linear_fake)
_register("embedding", EMBEDDING_SCHEMA, _embedding_impl, _embedding_fake)
_register("attention", ATTENTION_SCHEMA, _attention_impl, _attention_fake)
_register("rotary", ROTARY_SCHEMA, _rotary_impl, _rotary_fake)
_register("rms_norm_add", RMS_NORM_ADD_SCHEMA, _rms_norm_add_impl, _rms_norm_add_fake)
_register("gated_gelu", GATED_GELU_SCHEMA, _gated_gelu_impl, _gated_gelu_fake)
_register(
    "rms_norm_add_norm",
    RMS_NORM_ADD_NORM_SCHEMA,
    _rms_norm_add_norm_impl,
    _rms_norm_add_norm_fake,
)

# The registered overloads, for code that matches graph nodes by target.
dequantize = torch.ops.ggufc.dequantize.default
linear = torch.ops.ggufc.linear.default
embedding = torch.ops.ggufc.embedding.default
attention = torch.ops.ggufc.attention.default
rotary = torch.ops.ggufc.rotary.default
rms_norm_add = torch.ops.ggufc.rms_norm_add.default
rms_norm_add_norm = torch.ops.ggufc.rms_norm_add_norm.default
gated_gelu = torch.ops.ggufc.gated_gelu.default
