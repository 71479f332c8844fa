"""`choose_thresholds` on synthetic timing curves: clean crossovers, no crossover, ties,
several shapes, curves that cross more than once; and its agreement with split-dynamic-m."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.tuning import (
    BUCKET_KERNELS,
    DEFAULT_BUCKETS,
    KERNELS_BY_THRESHOLD_COUNT,
    MAX_THRESHOLDS,
    TuningError,
    choose_thresholds,
    kernel_for,
    m_grid,
    relative_score,
)

M_VALUES = m_grid(64)  # 1..16, 24, 32, 48, 64


def curve(matvec, batched, matmul, m_values=M_VALUES):
    """Timing curve from three functions of M (microseconds)."""
    return {
        "matvec": [float(matvec(m)) for m in m_values],
        "matvec_batched": [float(batched(m)) for m in m_values],
        "matmul": [float(matmul(m)) for m in m_values],
    }


def all_layouts(m_values):
    yield ()
    yield from ((t,) for t in m_values)
    yield from ((a, b) for a in m_values for b in m_values if a < b)


def test_two_clean_crossovers():
    # matvec 10m beats batched 42+m up to M=4 (40 < 46; 50 > 47 at 5); batched beats the
    # flat matmul 70 up to M=27, so the last measured M it wins at is 24
    timings = curve(lambda m: 10 * m, lambda m: 42 + m, lambda m: 70)
    assert choose_thresholds([timings], M_VALUES) == (4, 24)
    assert relative_score([timings], M_VALUES, (4, 24)) == pytest.approx(1.0)


def test_matvec_fastest_everywhere_keeps_matvec_to_the_last_measured_m():
    timings = curve(lambda m: 1.0 * m, lambda m: 2.0 * m + 5, lambda m: 3.0 * m + 9)
    assert choose_thresholds([timings], M_VALUES) == (64,)


def test_matmul_fastest_everywhere_needs_no_buckets():
    timings = curve(lambda m: 50 + m, lambda m: 40 + m, lambda m: 10)
    assert choose_thresholds([timings], M_VALUES) == ()


def test_matvec_batched_fastest_everywhere_still_leaves_m1_to_matvec():
    # split-dynamic-m always gives M <= t1 (t1 >= 1) to matvec when it has thresholds
    timings = curve(lambda m: 30.0 * m, lambda m: 20.0, lambda m: 100.0)
    assert choose_thresholds([timings], M_VALUES) == (1, 64)


def test_matvec_batched_never_wins_gives_one_threshold():
    # matvec 10m vs matmul 55: matvec up to 5 (50 < 55), matmul from 6
    timings = curve(lambda m: 10 * m, lambda m: 1000, lambda m: 55)
    assert choose_thresholds([timings], M_VALUES) == (5,)


def test_exact_ties_prefer_fewer_then_smaller_thresholds():
    flat = curve(lambda m: 7.0, lambda m: 7.0, lambda m: 7.0)
    assert choose_thresholds([flat], M_VALUES) == ()
    # matvec and matvec_batched equal up to M=4, batched ahead after that, matmul far behind
    tied = curve(lambda m: 10.0 if m <= 4 else 10.0 * m, lambda m: 10.0, lambda m: 999.0)
    assert choose_thresholds([tied], M_VALUES) == (1, 64)


def test_several_shapes_count_alike_whatever_their_absolute_time():
    # shape A: matvec -> matmul at 4; shape B, 100x slower: at 8.  Each shape's relative
    # loss counts alike, so the choice lies between the two crossovers and no layout beats it.
    small = curve(lambda m: 10 * m, lambda m: 1e6, lambda m: 45)
    large = curve(lambda m: 1000 * m, lambda m: 1e8, lambda m: 8500)
    chosen = choose_thresholds([small, large], M_VALUES)
    assert len(chosen) == 1 and 4 <= chosen[0] <= 8
    best = min(relative_score([small, large], M_VALUES, t) for t in all_layouts(M_VALUES))
    assert relative_score([small, large], M_VALUES, chosen) == pytest.approx(best)
    # scaling one shape's times changes nothing: only ratios count
    scaled = {kernel: [100 * t for t in times] for kernel, times in small.items()}
    assert choose_thresholds([scaled, large], M_VALUES) == chosen


def test_curves_that_cross_twice_get_the_best_layout():
    # matvec_batched has a bump at 9..12 where matmul is faster, then wins again: the choice
    # is the layout with the least total loss, not the first crossover
    def batched(m):
        return 60.0 if 9 <= m <= 12 else 30.0 + m / 4

    timings = curve(lambda m: 12.0 * m, batched, lambda m: 50.0)
    chosen = choose_thresholds([timings], M_VALUES)
    scores = {t: relative_score([timings], M_VALUES, t) for t in all_layouts(M_VALUES)}
    assert scores[chosen] == pytest.approx(min(scores.values()))
    assert chosen[0] == 2  # 24 < 30.5, 36 > 30.75


TIMES = st.floats(min_value=0.5, max_value=1000.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(TIMES, min_size=6, max_size=6),
            st.lists(TIMES, min_size=6, max_size=6),
            st.lists(TIMES, min_size=6, max_size=6),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_no_layout_scores_lower_than_the_choice(raw_curves):
    m_values = (1, 2, 3, 8, 16, 40)
    curves = [dict(zip(BUCKET_KERNELS, triple)) for triple in raw_curves]
    chosen = choose_thresholds(curves, m_values)
    chosen_score = relative_score(curves, m_values, chosen)
    for layout in all_layouts(m_values):
        assert chosen_score <= relative_score(curves, m_values, layout) * (1 + 1e-9), layout


@pytest.mark.parametrize(
    ("curves", "m_values", "message"),
    [
        ([], (1, 2), "at least one"),
        ([{"matvec": [1.0, 2.0], "matmul": [1.0, 2.0]}], (1, 2), "matvec_batched"),
        ([{k: [1.0] for k in BUCKET_KERNELS}], (1, 2), "expected 2 times"),
        ([{k: [1.0, 0.0] for k in BUCKET_KERNELS}], (1, 2), "positive finite"),
        ([{k: [1.0, math.nan] for k in BUCKET_KERNELS}], (1, 2), "positive finite"),
        ([{k: [1.0, 1.0] for k in BUCKET_KERNELS}], (2, 1), "increasing"),
        ([{k: [1.0, 1.0] for k in BUCKET_KERNELS}], (0, 1), "increasing positive"),
    ],
)
def test_bad_timings_are_refused(curves, m_values, message):
    with pytest.raises(TuningError, match=message):
        choose_thresholds(curves, m_values)


def test_m_grid():
    assert m_grid(64) == (*range(1, 17), 24, 32, 48, 64)
    assert m_grid(20) == (*range(1, 17), 20)
    assert m_grid(1) == (1,)
    assert m_grid(256)[-4:] == (96, 128, 192, 256)
    for bad in (0, 257, 2.5):
        with pytest.raises(TuningError, match="m_max"):
            m_grid(bad)


def test_bucket_rule_matches_split_dynamic_m():
    from codegen.kernels.emitter import LINEAR_KINDS, MATVEC_BATCHED_ROWS
    from passes.pass_base import pass_options
    from passes.split_dynamic_m import KERNELS_BY_THRESHOLDS, SplitDynamicM

    assert BUCKET_KERNELS == LINEAR_KINDS
    assert KERNELS_BY_THRESHOLD_COUNT == KERNELS_BY_THRESHOLDS
    assert MAX_THRESHOLDS["matvec_batched"] == MAX_THRESHOLDS["matvec"] * MATVEC_BATCHED_ROWS
    # the pass's default is the documented default here (one constant to update after an
    # H100 run); they must not drift apart
    defaults = {opt.name: opt.default for opt in pass_options(SplitDynamicM)}
    assert defaults["buckets"] == DEFAULT_BUCKETS
    for thresholds in ((), (3,), (2, 9), DEFAULT_BUCKETS):
        buckets = SplitDynamicM(buckets=thresholds).bucket_list()
        for m in range(1, 40):
            (bucket,) = [b for b in buckets if b.holds(m)]
            assert kernel_for(thresholds, m) == bucket.kernel, (thresholds, m)
