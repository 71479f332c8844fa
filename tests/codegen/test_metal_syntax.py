"""Every generated Metal source parses and type-checks as C++17 against the Metal shim.

No Metal compiler exists on Linux: `g++ -std=c++17 -fsyntax-only` with
codegen/kernels/metal/shim (a `metal_stdlib` that models the MSL features the kernels use)
catches C++ syntax errors, undeclared names, type and template errors and template values
that rendered wrong; it cannot catch Metal-only rules (address spaces, attributes, buffer
indices, threadgroup memory limits, simdgroup matrix support) or anything at run time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from compile_checks import run_all, write_translation_units

from codegen.kernels import emit

SHIM_DIR = Path(__file__).resolve().parents[2] / "codegen" / "kernels" / "metal" / "shim"
GXX_TIMEOUT_S = 120
# attributes ([[buffer(0)]] ...) are Metal's, unknown to g++
GXX_FLAGS = ("-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-Wno-attributes")


def gxx_command(source: Path) -> list[str]:
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.fail("g++ not found: the Metal syntax check needs a host C++ compiler")
    return [compiler, *GXX_FLAGS, "-I", str(SHIM_DIR), "-x", "c++", str(source)]


def test_every_metal_kernel_passes_the_shim_syntax_check(tmp_path):
    sources = write_translation_units("metal", tmp_path)
    failures = run_all([gxx_command(s) for s in sources], GXX_TIMEOUT_S)
    assert not failures, "\n\n".join(failures)


def test_metal_syntax_check_rejects_an_undeclared_name(tmp_path):
    kernel = emit("metal", "Q4_K", "matvec", "float16")
    source = tmp_path / "broken.metal"
    source.write_text(kernel.text.replace("simd_sum(", "simd_summ(", 1))
    failures = run_all([gxx_command(source)], GXX_TIMEOUT_S)
    assert failures and "simd_summ" in failures[0]
