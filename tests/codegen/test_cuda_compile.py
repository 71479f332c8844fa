"""Every generated CUDA source compiles with nvcc for sm_80, sm_90 and sm_90a, warnings as
errors; the split-K matvecs fit the blocks an SM their geometry rule counts.

sm_90a is the target the launcher uses on an H100: it compiles the 16-bit matmul's wgmma
path, which the other two skip.  One translation unit per format (all kinds, dtypes and
geometries; headers are include-guarded), all architectures in one nvcc call, two calls at a time.  CI
has nvcc: a missing nvcc FAILS this test; set GGUFC_NO_NVCC=1 to skip it on a machine
without the CUDA toolkit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from compile_checks import run_all, write_translation_units

from codegen.kernels import emit
from codegen.kernels.emitter import (
    MATVEC_SPLIT_K_FORMATS,
    MATVEC_SPLIT_K_WARPS,
    split_k_blocks_per_sm,
    translation_unit,
)

NVCC_CANDIDATES = ("nvcc", "/usr/local/cuda/bin/nvcc")
ARCHITECTURES = ("80", "90", "90a")
NVCC_TIMEOUT_S = 600
NVCC_FLAGS = (
    "-std=c++17",
    "-c",
    "-Werror",
    "all-warnings",
    "-Xcompiler",
    "-Wall,-Werror",
    *(f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHITECTURES),
)


def find_nvcc() -> str:
    for candidate in NVCC_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    if os.environ.get("GGUFC_NO_NVCC"):
        # Opt-out for a developer machine without the CUDA toolkit; CI never sets it, so
        # there a missing nvcc fails below instead of skipping.
        pytest.skip("GGUFC_NO_NVCC is set: CUDA compile checks skipped")
    pytest.fail("nvcc not found (PATH, /usr/local/cuda/bin); set GGUFC_NO_NVCC=1 to skip")


def nvcc_command(nvcc: str, source: Path) -> list[str]:
    return [nvcc, *NVCC_FLAGS, "-o", str(source.with_suffix(".o")), str(source)]


@pytest.mark.slow
def test_every_cuda_kernel_compiles_for_sm80_sm90_and_sm90a(tmp_path):
    nvcc = find_nvcc()
    sources = write_translation_units("cuda", tmp_path)
    failures = run_all([nvcc_command(nvcc, s) for s in sources], NVCC_TIMEOUT_S)
    assert not failures, "\n\n".join(failures)


def test_nvcc_check_rejects_a_kernel_with_a_warning(tmp_path):
    """The flags turn warnings into errors (else the check above could not fail)."""
    nvcc = find_nvcc()
    kernel = emit("cuda", "Q8_0", "embedding", "float32")
    broken = kernel.text + "\n__global__ void unused_variable_kernel() { int unused = 1; }\n"
    source = tmp_path / "broken.cu"
    source.write_text(broken)
    command = [nvcc, *NVCC_FLAGS[:-1], "-gencode=arch=compute_80,code=sm_80"]
    failures = run_all([[*command, "-o", str(tmp_path / "broken.o"), str(source)]], NVCC_TIMEOUT_S)
    assert failures and "unused" in failures[0]


SM90_REGISTERS = 65536  # a streaming multiprocessor's 32-bit registers (sm_80 and sm_90)


@pytest.mark.slow
def test_split_k_matvecs_fit_the_blocks_an_sm_their_rule_counts(tmp_path):
    """`split_k_geometry_of` counts waves at `split_k_blocks_per_sm`; those bounded by
    __launch_bounds__ hold it by construction (and must not spill for it), the unbounded ones
    (16-bit Q5_0) only while nvcc keeps their registers low enough: checked here with this
    machine's nvcc, sm_90."""
    nvcc = find_nvcc()
    kernels = {
        (fmt, dtype, geometry): emit("cuda", fmt, "matvec", dtype, geometry)
        for fmt in MATVEC_SPLIT_K_FORMATS
        for dtype in ("float16", "bfloat16", "float32")
        for geometry in MATVEC_SPLIT_K_WARPS
    }
    source = tmp_path / "split_k.cu"
    source.write_text(translation_unit(list(kernels.values())))
    command = [nvcc, "-std=c++17", "-cubin", "-arch=sm_90", "--resource-usage", "-o"]
    result = subprocess.run(
        [*command, str(tmp_path / "split_k.cubin"), str(source)],
        capture_output=True,
        text=True,
        timeout=NVCC_TIMEOUT_S,
        check=True,
    )
    usage = resource_usage(result.stderr)
    for (fmt, dtype, geometry), kernel in kernels.items():
        registers, spilled = usage[kernel.entry]
        blocks = split_k_blocks_per_sm(fmt, dtype, geometry)
        assert registers * kernel.launch.threads * blocks <= SM90_REGISTERS, (
            kernel.entry,
            registers,
        )
        assert spilled == 0, kernel.entry


def resource_usage(ptxas_output: str) -> dict[str, tuple[int, int]]:
    """Registers and spill-store bytes of each entry in ``nvcc --resource-usage`` output."""
    usage = {}
    entry = None
    spilled = 0
    for line in ptxas_output.splitlines():
        if match := re.search(r"entry function '(\w+)'", line):
            entry = match.group(1)
        elif match := re.search(r"(\d+) bytes spill stores", line):
            spilled = int(match.group(1))
        elif (match := re.search(r"Used (\d+) registers", line)) and entry:
            usage[entry] = (int(match.group(1)), spilled)
            entry = None
    return usage
