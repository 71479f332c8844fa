"""K-quant arithmetic shared by Q4_K, Q5_K (scale + min per sub-block) and Q6_K (signed
scale per sub-block): applying the scales when dequantizing, and the quantizers.

Quantizers (after ggml's reference ``make_qkx2_quants`` / ``make_qx_quants``, written here in
vectorized torch):

* scale/min formats (Q4_K, Q5_K), per sub-block of 32 weights ``x`` with weights
  ``w = sqrt(mean(x^2)) + |x|``: start from ``min = min(0, min x)``, ``scale =
  (max x - min) / nmax``; then for each candidate inverse scale
  ``(nmax + rmin + rdelta*i) / (max x - min)`` round ``q = round((x - min) * iscale)`` and
  solve the weighted least-squares ``x ~ scale*q + min`` for (scale, min) (min clamped to
  <= 0); keep the candidate of lowest weighted squared error.  The 8 scales and 8 ``-min``
  are then quantized to 6 bits against super-block ``d = max scale / 63`` and
  ``dmin = max(-min) / 63`` (both stored as f16), and the weights are re-rounded against the
  scales actually stored.
* symmetric format (Q6_K), per sub-block of 16 weights with weights ``x^2``: candidate
  inverse scales ``-(nmax + 0.1*i) / max`` (``max`` = signed value of largest magnitude,
  i in -9..9), the best weighted least-squares scale ``sum(w x q) / sum(w q^2)`` wins; the 16
  scales go to signed 8 bits against ``d = -s / 128`` (``s`` = the sub-block scale of largest
  magnitude, which so becomes level -128), and the weights are re-rounded against them.

Rounding is to nearest, ties to even (ggml's ``nearest_int``).  The weighted squared error
of a candidate is expanded into sums already computed for the fit, so each candidate costs a
handful of passes over the weights; callers quantize in chunks of rows to stay in cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from compiler.formats import blockbits
from compiler.formats.workspace import Workspace

SIX_BIT_MAX = 63
I8_SCALE_RANGE = 128  # ggml maps the largest sub-block scale to -128 (so it fits 127 or -128)


@dataclass(frozen=True)
class ScaleMinSearch:
    """Candidate grid of ``make_qkx2_quants``: iscale = (nmax + rmin + rdelta*i)/range."""

    rmin: float
    rdelta: float
    steps: int


Q4_K_SEARCH = ScaleMinSearch(rmin=-1.0, rdelta=0.1, steps=20)
Q5_K_SEARCH = ScaleMinSearch(rmin=-0.5, rdelta=0.1, steps=15)
Q6_K_CANDIDATES = range(-9, 10)
Q6_K_CANDIDATE_STEP = 0.1
Q6_K_SUB_BLOCK = 16
Q6_K_NMAX = 32
SCALE_MIN_SUB_BLOCK = 32
GROUP_MAX_EPS = 1e-15  # ggml: sub-blocks below this magnitude quantize to zero
SUB_BLOCKS = blockbits.KQUANT_SUB_BLOCKS
# d, dmin and the packed scales of a Q4_K / Q5_K block: four 32-bit words
SCALE_MIN_HEADER_BYTES = 4 + blockbits.KQUANT_SCALE_BYTES


class _ScalePlan:
    """Scratch views that decode the sub-block scales and mins of n blocks."""

    def __init__(self, n: int, scratch: Workspace) -> None:
        self.unpacker = blockbits.KQuantScaleUnpacker(n, scratch)
        # [sc/m, block, sub-block] times [d/dmin, block, 1]: both products in one op
        self.products = scratch.take("sub-block scales", (2, n, SUB_BLOCKS), torch.float32)
        self.factors = scratch.take("super-block scales", (2, n, 1), torch.float32)
        self.factor_halves = self.unpacker.columns[0].view(torch.float16).view(n, 2).t()
        self.factor_halves = self.factor_halves.unsqueeze(2)
        self.scales = (self.products[0].unsqueeze(2), self.products[1].unsqueeze(2))


def sub_block_scales(blocks: torch.Tensor, scratch: Workspace) -> tuple[torch.Tensor, torch.Tensor]:
    """(d*sc, dmin*m), float32 [n, 8, 1] each (contiguous, so that applying them is a 2-D
    loop; in ``scratch``), of scale/min blocks [n, bb] (Q4_K, Q5_K: f16 d at byte 0, f16
    dmin at byte 2, the 12 packed scale bytes from byte 4).  Both products are exact in
    float32 (11-bit significand times a 6-bit integer)."""
    n = blocks.shape[0]
    plan = scratch.plan(("k-quant scales", n), lambda: _ScalePlan(n, scratch))
    # the header: d, dmin, then the three 32-bit words of packed scales (16 bytes)
    header = blockbits.block_words(blocks, 0, SCALE_MIN_HEADER_BYTES, scratch)
    plan.unpacker.columns.copy_(header.view(torch.int32).t())
    plan.products.copy_(plan.unpacker.unpack())
    plan.factors.copy_(plan.factor_halves)
    plan.products.mul_(plan.factors)
    return plan.scales


def scale_and_offset_(values: torch.Tensor, scales: tuple[torch.Tensor, torch.Tensor]) -> None:
    """``values`` (float32 [n, 8, 32], holding q) <- ``(d*sc) * q - dmin*m`` in place.

    ``(d*sc) * q`` is exact in float32, so only the subtraction rounds, as in gguf-py."""
    scale, offset = scales
    values.mul_(scale).sub_(offset)


def _fit_scale_min(
    x: torch.Tensor, w: torch.Tensor, nmax: int, search: ScaleMinSearch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sub-block (rows of ``x`` [..., 32]) best (scale, -min) of ``x ~ scale*q + min``,
    ``q`` in 0..nmax, min <= 0: the candidate search of ggml's make_qkx2_quants, with all
    candidates evaluated at once along a new dimension [..., candidate, 32]."""
    low = x.amin(-1, keepdim=True).clamp_(max=0)
    spread = x.amax(-1, keepdim=True) - low
    flat = spread == 0
    spread = torch.where(flat, torch.ones_like(spread), spread)
    wx = w * x
    sum_w = w.sum(-1, keepdim=True)
    sum_x = wx.sum(-1, keepdim=True)
    sum_x2 = (wx * x).sum(-1, keepdim=True)

    # candidate 0 is ggml's first guess (range / nmax, min = the minimum), kept as is; the
    # others get their (scale, min) refitted by weighted least squares
    factors = [nmax] + [nmax + search.rmin + search.rdelta * i for i in range(search.steps + 1)]
    inverse = torch.tensor(factors) / spread  # [..., C]
    q = torch.round((x - low).unsqueeze(-2) * inverse.unsqueeze(-1)).clamp_(0, nmax)
    wq = w.unsqueeze(-2) * q
    sum_l = wq.sum(-1)
    sum_l2 = (wq * q).sum(-1)
    sum_xl = (wq * x.unsqueeze(-2)).sum(-1)
    det = sum_w * sum_l2 - sum_l * sum_l
    valid = det > 0
    safe_det = torch.where(valid, det, torch.ones_like(det))
    scale = (sum_w * sum_xl - sum_x * sum_l) / safe_det
    offset = (sum_l2 * sum_x - sum_l * sum_xl) / safe_det
    # a positive min is not representable (mins are subtracted): refit the scale alone
    positive = offset > 0
    scale = torch.where(
        positive, sum_xl / torch.where(sum_l2 > 0, sum_l2, torch.ones_like(sum_l2)), scale
    )
    offset = torch.where(positive, torch.zeros_like(offset), offset)
    scale[..., 0] = 1 / inverse[..., 0]
    offset[..., 0] = low[..., 0]
    valid[..., 0] = True
    # sum w (scale*q + offset - x)^2, expanded into the sums above
    error = (
        scale * scale * sum_l2
        + offset * offset * sum_w
        + sum_x2
        + 2 * (scale * offset * sum_l - scale * sum_xl - offset * sum_x)
    )
    error = torch.where(valid, error, torch.full_like(error, float("inf")))
    # the first minimum, as ggml's loop keeps a candidate only on strict improvement
    best = error.argmin(-1, keepdim=True)
    best_scale = torch.where(flat, torch.zeros_like(low), scale.gather(-1, best))
    best_min = torch.where(flat, low, offset.gather(-1, best))
    return best_scale.squeeze(-1), (-best_min).squeeze(-1)


def _six_bit_levels(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative [n, 8] -> (super-block scale [n] as stored (f16-rounded) in float32,
    6-bit levels [n, 8]) with values ~ scale * level."""
    largest = values.amax(-1)
    inverse = torch.where(largest > 0, SIX_BIT_MAX / largest, torch.zeros_like(largest))
    levels = torch.round(values * inverse.unsqueeze(-1)).clamp_(0, SIX_BIT_MAX)
    stored = (largest / SIX_BIT_MAX).to(torch.float16).float()
    return stored, levels


def quantize_scale_min(
    x: torch.Tensor, nmax: int, search: ScaleMinSearch
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """x float32 [n, 256] -> (q uint8 [n, 256] in 0..nmax, d [n], dmin [n], 12 packed
    scale bytes uint8 [n, 12])."""
    n = x.shape[0]
    xs = x.view(n, -1, SCALE_MIN_SUB_BLOCK)
    rms = xs.square().mean(-1, keepdim=True).sqrt()
    w = rms + xs.abs()
    scales, mins = _fit_scale_min(xs, w, nmax, search)
    d, sc = _six_bit_levels(scales)
    dmin, m = _six_bit_levels(mins)
    step = (d.unsqueeze(1) * sc).unsqueeze(-1)
    offset = (dmin.unsqueeze(1) * m).unsqueeze(-1)
    # re-round against the scales actually stored; a zero step leaves q at 0
    safe_step = torch.where(step == 0, torch.ones_like(step), step)
    q = torch.round((xs + offset) / safe_step).clamp_(0, nmax)
    q = torch.where(step == 0, torch.zeros_like(q), q)
    packed = blockbits.pack_kquant_scales(sc.to(torch.uint8), m.to(torch.uint8))
    return q.to(torch.uint8).view(n, -1), d, dmin, packed


def _fit_symmetric(x: torch.Tensor, nmax: int) -> torch.Tensor:
    """Per sub-block (rows of ``x`` [..., 16]) signed scale of ``x ~ scale*q``, q in
    -nmax..nmax-1, weights x^2: the candidate search of ggml's make_qx_quants, all candidates
    at once along a new dimension [..., candidate, 16]."""
    extreme = x.gather(-1, x.abs().argmax(-1, keepdim=True))
    tiny = extreme.abs() < GROUP_MAX_EPS
    extreme = torch.where(tiny, torch.ones_like(extreme), extreme)
    w = x * x
    wx = w * x
    inverse = _symmetric_factors(nmax) / extreme  # [..., C]
    q = torch.round(inverse.unsqueeze(-1) * x.unsqueeze(-2)).clamp_(-nmax, nmax - 1)
    sum_lx = (q * wx.unsqueeze(-2)).sum(-1)
    sum_l2 = (q * q * w.unsqueeze(-2)).sum(-1)
    valid = sum_l2 > 0
    scale = sum_lx / torch.where(valid, sum_l2, torch.ones_like(sum_l2))
    # error reduction of a candidate is sum_lx^2 / sum_l2; the first maximum wins, as in
    # ggml's loop (candidate 0 first, then strict improvements)
    merit = torch.where(valid, scale * sum_lx, torch.full_like(scale, -1.0))
    best = scale.gather(-1, merit.argmax(-1, keepdim=True))
    return torch.where(tiny, torch.zeros_like(best), best).squeeze(-1)


def _symmetric_factors(nmax: int) -> torch.Tensor:
    """Candidate inverse-scale numerators -(nmax + 0.1*i), i = 0 first, then -9..9."""
    steps = (0, *(i for i in Q6_K_CANDIDATES if i != 0))
    return torch.tensor([-(nmax + Q6_K_CANDIDATE_STEP * i) for i in steps])


def quantize_symmetric(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x float32 [n, 256] -> (q uint8 [n, 256] in 0..63 (offset 32), d [n],
    scales int8 [n, 16])."""
    n = x.shape[0]
    xs = x.view(n, -1, Q6_K_SUB_BLOCK)
    scales = _fit_symmetric(xs, Q6_K_NMAX)
    extreme = scales.gather(-1, scales.abs().argmax(-1, keepdim=True)).squeeze(-1)
    tiny = extreme.abs() < GROUP_MAX_EPS
    inverse = -I8_SCALE_RANGE / torch.where(tiny, torch.ones_like(extreme), extreme)
    d = torch.where(tiny, torch.zeros_like(extreme), (1 / inverse).to(torch.float16).float())
    levels = torch.round(inverse.unsqueeze(-1) * scales).clamp_(max=I8_SCALE_RANGE - 1)
    levels = torch.where(tiny.unsqueeze(-1), torch.zeros_like(levels), levels)
    step = (d.unsqueeze(1) * levels).unsqueeze(-1)
    safe_step = torch.where(step == 0, torch.ones_like(step), step)
    q = torch.round(xs / safe_step).clamp_(-Q6_K_NMAX, Q6_K_NMAX - 1)
    q = torch.where(step == 0, torch.zeros_like(q), q) + Q6_K_NMAX
    return q.to(torch.uint8).view(n, -1), d, levels.to(torch.int8)
