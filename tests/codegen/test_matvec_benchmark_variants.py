"""The staged-matvec experiment scripts (benchmarks/cuda_matvec_rings.py,
cuda_matvec_activation_copies.py) make their kernels by overriding the emitter's tables or
editing generated text; the GPU times them, but what they emit is checked here: the rings and
WEIGHTS_BEFORE_WAIT a variant asks for, the tables restored after, every edit applying once.
The profiling target (cuda_matvec_profile.py): its kernels pass the ncu filter its docstring
gives, and bad arguments stop it before any GPU work."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from codegen.kernels import emitter

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import cuda_matvec_activation_copies as copies
import cuda_matvec_profile as profile
import cuda_matvec_rings as rings
import cuda_read_floor


def tables():
    return (
        dict(emitter.MATVEC_MMA_FORMS),
        dict(emitter.MATVEC_ONE_ROW_MMA),
        dict(emitter.MATVEC_ONE_ROW_MMA_AHEAD),
        dict(emitter.MATVEC_ONE_ROW_MMA_GROUP_STEPS),
        emitter.MATVEC_ONE_ROW_MMA_FORMATS,
    )


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        # a form Q4_K's rule does not take, one-row, rings and issue as asked
        ("Q4_K:4096x14336:1:mma@2/3e", ("ggufc_matvec_mma_q4_k_f16", 2, True, 4)),
        # a listed one-row kernel taken back to its batched twin's rings, issued after the wait
        ("Q6_K:4096x14336:1:mma@1/3", ("ggufc_matvec_mma_q6_k_f16", 1, False, 4)),
        # Q5_K, which has no one-row rule
        ("Q5_K:5376x21504:1:mma_four_warps_x_by_group@3/3e", (None, 3, True, 4)),
        (
            "Q4_0:14336x4096:8:mma_two_warps@2/3",
            ("ggufc_matvec_batched_mma_two_warps_q4_0_f16", 2, False, 4),
        ),
        # groups of its own: larger, or a listed kernel's taken back to its twin's
        ("Q4_0:4096x14336:1:mma@1/3eg8", ("ggufc_matvec_mma_q4_0_f16", 1, True, 8)),
        ("Q8_0:4096x14336:1:mma@2/3e", ("ggufc_matvec_mma_q8_0_f16", 2, True, 2)),
    ],
)
def test_rings_variant_emits_what_it_names(cell, expected):
    entry, w_ahead, before, steps = expected
    saved = tables()
    fmt, _, _, m, [variant] = rings.parse_cell(cell)
    kind = "matvec" if m == 1 else "matvec_batched"
    kernel = rings.variant_kernel(fmt, kind, "float16", variant)
    assert entry is None or kernel.entry == entry
    assert f"constexpr int W_AHEAD = {w_ahead};" in kernel.source
    assert f"constexpr bool WEIGHTS_BEFORE_WAIT = {str(before).lower()};" in kernel.source
    assert f"constexpr bool ONE_ROW = {str(m == 1).lower()};" in kernel.source
    assert f"constexpr int GROUP_STEPS = {steps};" in kernel.source
    assert tables() == saved  # nothing the lowering reads is left changed
    # and what the lowering emits afterwards is the emitter's own again
    pick = emitter.pick_geometry("cuda", "Q6_K", "matvec", "float16", 4096, 14336)
    assert (
        "constexpr int W_AHEAD = 2;"
        in emitter.emit("cuda", "Q6_K", "matvec", "float16", pick).source
    )


@pytest.mark.parametrize(
    "bad",
    [
        "Q4_0:14336x4096:2:mma_two_warps@2/3e",  # before the wait: one-row kernels only
        "Q4_0:14336x4096:2:mma_two_warps@2/3g8",  # own groups: one-row kernels only
        "Q4_0:14336x4096:1:mma_two_warps@2/3x",
        "Q4_0:14336x4096:1:bogus@1/3",
        "Q9_0:14336x4096:1:mma@1/3",
        "Q4_0:14336x4096:9:mma@1/3",
        "Q4_0:14336:1:mma@1/3",
    ],
)
def test_rings_cell_rejects_bad_text(bad):
    with pytest.raises(Exception, match="cell|variant"):
        rings.parse_cell(bad)


@pytest.mark.parametrize("kind", ["matvec", "matvec_batched"])
def test_activation_copy_variants_apply_to_every_staged_pick(kind):
    for fmt in ("Q4_0", "Q5_0", "Q6_K", "Q4_K", "Q5_K", "Q8_0"):
        for n, k in ((4096, 14336), (14336, 4096), (5376, 21504)):
            m = 1 if kind == "matvec" else 8
            form = emitter.pick_geometry("cuda", fmt, kind, "float16", n, k, m)
            if form not in emitter.MATVEC_MMA_FORMS:
                continue
            kernel = emitter.emit("cuda", fmt, kind, "float16", form)
            by_group = kind == "matvec" or emitter.MATVEC_MMA_FORMS[form].x_by_group
            for name in copies.VARIANTS:
                try:
                    edited = copies.variant(kernel, name, by_group)
                except copies.VariantNotApplicable:
                    assert not by_group and name == "group-zero"
                    continue
                assert edited.source != kernel.source, (fmt, form, name)


def test_profile_target_kernels_pass_its_ncu_filter():
    (kernel_filter,) = re.findall(r"-k '(regex:[^']+)'", profile.__doc__)
    pattern = re.compile(kernel_filter.removeprefix("regex:"))
    for fmt in ("Q4_0", "Q8_0", "Q4_K"):
        for m in (1, 8):
            kind = "matvec" if m == 1 else "matvec_batched"
            form = emitter.pick_geometry("cuda", fmt, kind, "float16", 4096, 14336, m)
            assert pattern.search(emitter.emit("cuda", fmt, kind, "float16", form).entry)
    assert re.search(
        r"__global__ void __launch_bounds__\(\w+\) read_rows\(", cuda_read_floor.READ_ONLY_SOURCE
    )
    assert pattern.search("read_rows")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["Q4_0", "4096x14336", "--form", "bogus"], "not a matvec geometry of Q4_0"),
        # Q4_K's by-group four warps are a form of its matvec only
        (
            ["Q4_K", "4096x14336", "--m", "4", "--form", "mma_four_warps_x_by_group"],
            "not a matvec_batched geometry of Q4_K",
        ),
        (["Q4_K", "4096x100"], "multiple of 256"),
        (["Q4_0", "4096", "--m", "1"], "expected NxK"),
        (["Q4_0", "4096x4096", "--m", "9"], "expected 1..8"),
    ],
)
def test_profile_target_rejects_bad_arguments(monkeypatch, capsys, argv, message):
    monkeypatch.setattr(sys, "argv", ["cuda_matvec_profile.py", *argv])
    with pytest.raises(SystemExit) as stopped:
        profile.main()
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
