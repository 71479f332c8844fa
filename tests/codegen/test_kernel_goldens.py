"""Every generated kernel source and header matches its golden file (see golden_files)."""

from __future__ import annotations

import pytest
from compile_checks import ATTENTION_DIMS, GATED_GELU_CASES, RMS_NORM_CASES, ROTARY_CASES
from golden_files import GOLDEN_DIR, GOLDEN_EXTENSIONS

from codegen.kernels import BACKENDS, DTYPES, FORMAT_NAMES, KINDS, emit, emit_header, geometries
from codegen.kernels.attention import emit_attention
from codegen.kernels.gated_gelu import emit_gated_gelu
from codegen.kernels.rms_norm import emit_rms_norm
from codegen.kernels.rotary import emit_rotary

ATTENTION_HEADER = "header_attention"
# the RMSNorm, rotary and gated GELU kernels' header: the plain prelude
PRELUDE_HEADER = "header_prelude"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_kernel_sources_match_goldens(snapshot, backend, fmt):
    extension = GOLDEN_EXTENSIONS[backend]
    header = emit_header(backend, fmt)
    assert header == snapshot(extension_class=extension, name=f"header_{fmt.lower()}")
    for kind in KINDS:
        for dtype in DTYPES:
            for geometry in geometries(backend, fmt, kind, dtype):
                kernel = emit(backend, fmt, kind, dtype, geometry)
                assert kernel.source == snapshot(extension_class=extension, name=kernel.entry)


@pytest.mark.parametrize("backend", BACKENDS)
def test_attention_kernel_sources_match_goldens(snapshot, backend):
    extension = GOLDEN_EXTENSIONS[backend]
    kernels = [emit_attention(backend, d, v) for d, v in ATTENTION_DIMS]
    assert {kernel.header for kernel in kernels} == {kernels[0].header}
    assert kernels[0].header == snapshot(extension_class=extension, name=ATTENTION_HEADER)
    for kernel in kernels:
        assert kernel.source == snapshot(extension_class=extension, name=kernel.entry)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rms_norm_kernel_sources_match_goldens(snapshot, backend):
    extension = GOLDEN_EXTENSIONS[backend]
    kernels = [emit_rms_norm(backend, *case) for case in RMS_NORM_CASES]
    assert {kernel.header for kernel in kernels} == {kernels[0].header}
    assert kernels[0].header == snapshot(extension_class=extension, name=PRELUDE_HEADER)
    for kernel in kernels:
        assert kernel.source == snapshot(extension_class=extension, name=kernel.entry)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotary_kernel_sources_match_goldens(snapshot, backend):
    extension = GOLDEN_EXTENSIONS[backend]
    kernels = [emit_rotary(backend, *case) for case in ROTARY_CASES]
    assert {kernel.header for kernel in kernels} == {kernels[0].header}
    assert kernels[0].header == snapshot(extension_class=extension, name=PRELUDE_HEADER)
    for kernel in kernels:
        assert kernel.source == snapshot(extension_class=extension, name=kernel.entry)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gated_gelu_kernel_sources_match_goldens(snapshot, backend):
    extension = GOLDEN_EXTENSIONS[backend]
    kernels = [emit_gated_gelu(backend, *case) for case in GATED_GELU_CASES]
    for kernel in kernels:
        assert kernel.header == snapshot(extension_class=extension, name=PRELUDE_HEADER)
        assert kernel.source == snapshot(extension_class=extension, name=kernel.entry)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_golden_file_belongs_to_a_generated_kernel(backend):
    extension = GOLDEN_EXTENSIONS[backend]
    expected = {f"header_{fmt.lower()}" for fmt in FORMAT_NAMES} | {
        emit(backend, fmt, kind, dtype, geometry).entry
        for fmt in FORMAT_NAMES
        for kind in KINDS
        for dtype in DTYPES
        for geometry in geometries(backend, fmt, kind, dtype)
    }
    expected |= {ATTENTION_HEADER} | {
        emit_attention(backend, d, v).entry for d, v in ATTENTION_DIMS
    }
    expected |= {PRELUDE_HEADER} | {emit_rms_norm(backend, *case).entry for case in RMS_NORM_CASES}
    expected |= {emit_rotary(backend, *case).entry for case in ROTARY_CASES}
    expected |= {emit_gated_gelu(backend, *case).entry for case in GATED_GELU_CASES}
    found = {path.stem for path in (GOLDEN_DIR / backend).glob(f"*.{extension.file_extension}")}
    others = {p.name for p in (GOLDEN_DIR / backend).iterdir()} - {
        f"{name}.{extension.file_extension}" for name in found
    }
    assert not others, f"unexpected files in tests/golden/{backend}: {sorted(others)}"
    assert found - expected == set(), "stale goldens: delete them or rerun --snapshot-update"
    assert expected - found == set(), "missing goldens: run pytest tests/codegen --snapshot-update"
