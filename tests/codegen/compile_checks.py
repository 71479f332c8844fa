"""Helpers of the CI compile checks: one translation unit per format holding every kind and
dtype of one backend, and one each of attention, RMSNorm and rotary kernels, compiled by a host tool in parallel (two
at a time: CI has 2 cores)."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from codegen.kernels import DTYPES, FORMAT_NAMES, KINDS, emit, geometries, translation_unit
from codegen.kernels.attention import emit_attention
from codegen.kernels.gated_gelu import emit_gated_gelu
from codegen.kernels.rms_norm import emit_rms_norm
from codegen.kernels.rotary import emit_rotary

PARALLEL_JOBS = 2
SUFFIX = {"cuda": ".cu", "metal": ".metal"}
# (head dim, value dim) of the attention kernels the checks and goldens cover: common head
# sizes, and one that is not a multiple of 32 (partial lanes) with a wider value dim
ATTENTION_DIMS = ((64, 64), (128, 128), (256, 256), (80, 96))
# (dim, weighted, residual, next norm) of the RMSNorm kernels the checks and goldens cover:
# Gemma 3 270M's two dims, one too wide for a lane to keep its elements in registers, and a
# ragged one without weight; with a residual added (ggufc.rms_norm_add): Gemma's post-norm,
# and the wide and ragged forms; with the next norm too (ggufc.rms_norm_add_norm)
RMS_NORM_CASES = (
    (640, True, False, False),
    (256, True, False, False),
    (2048, True, False, False),
    (100, False, False, False),
    (640, True, True, False),
    (2048, True, True, False),
    (100, False, True, False),
    (640, True, True, True),
    (2048, True, True, True),
    (100, True, True, True),
)
# (inner width, stacked) of the gated GELU kernels the checks and goldens cover: Gemma 3
# 270M's MLP (gate and up halves of one stacked projection) and a ragged width of two inputs
GATED_GELU_CASES = ((2048, True), (100, False))
# (head dim, normed, weighted) of the rotary kernels the checks and goldens cover: Gemma 3
# 270M's, Llama's, one whose half is not a multiple of 32; with an RMSNorm folded in, with and
# without its weight
ROTARY_CASES = (
    (256, False, False),
    (128, False, False),
    (80, False, False),
    (256, True, True),
    (128, True, False),
)


def non_gguf_kernels(backend: str) -> dict[str, list]:
    """The kernels outside the GGUF formats that the checks cover, by family."""
    return {
        "attention": [emit_attention(backend, d, v) for d, v in ATTENTION_DIMS],
        "rms_norm": [emit_rms_norm(backend, *case) for case in RMS_NORM_CASES],
        "gated_gelu": [emit_gated_gelu(backend, *case) for case in GATED_GELU_CASES],
        "rotary": [emit_rotary(backend, *case) for case in ROTARY_CASES],
    }


def write_translation_units(backend: str, directory: Path) -> list[Path]:
    paths = []
    for fmt in FORMAT_NAMES:
        kernels = [
            emit(backend, fmt, kind, dtype, geometry)
            for kind in KINDS
            for dtype in DTYPES
            for geometry in geometries(backend, fmt, kind, dtype)
        ]
        path = directory / f"ggufc_{backend}_{fmt.lower()}{SUFFIX[backend]}"
        path.write_text(translation_unit(kernels))
        paths.append(path)
    for family, kernels in non_gguf_kernels(backend).items():
        path = directory / f"ggufc_{backend}_{family}{SUFFIX[backend]}"
        path.write_text("\n".join(kernel.text for kernel in kernels))
        paths.append(path)
    return paths


def run_all(commands: list[list[str]], timeout_s: float) -> list[str]:
    """Runs the commands two at a time; the output of each that failed."""

    def run(command: list[str]) -> str | None:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if done.returncode == 0:
            return None
        return f"$ {' '.join(command)}\n{done.stdout}{done.stderr}"

    with ThreadPoolExecutor(PARALLEL_JOBS) as pool:
        return [failure for failure in pool.map(run, commands) if failure is not None]
