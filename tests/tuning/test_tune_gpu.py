"""A small `ggufc tune` end to end on a GPU: every kernel timed at every M, thresholds chosen
from those timings, both routes of the matmul timed and the route model fitted on them, the
file written and read back.

Skipped without a CUDA device and CuPy (run them with ``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from codegen.dense_linear import fit_route_model
from compiler.cli import main
from compiler.tuning import (
    BUCKET_KERNELS,
    ROUTE_M_VALUES,
    choose_thresholds,
    device_shared_memory_per_block,
    load_tuning,
    m_grid,
    tune,
)

HAS_GPU = torch.cuda.is_available()
HAS_CUPY = importlib.util.find_spec("cupy") is not None

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not (HAS_GPU and HAS_CUPY), reason="needs an NVIDIA GPU and CuPy"),
]

FORMATS = ("Q4_0", "Q6_K")
SHAPES = ((256, 512), (640, 256))
M_MAX = 10


def test_tune_measures_every_kernel_and_chooses_from_the_timings():
    tuning = tune(formats=FORMATS, shapes=SHAPES, m_max=M_MAX, seed=1)
    assert tuning.device == torch.cuda.get_device_name()
    assert tuning.dtype == "float16"
    assert tuning.m_values == m_grid(M_MAX)
    assert set(tuning.formats) == set(FORMATS)
    every_curve = []
    for entry in tuning.formats.values():
        assert set(entry.timings_us) == {"256x512", "640x256"}
        for by_kernel in entry.timings_us.values():
            assert set(by_kernel) == set(BUCKET_KERNELS)
            for times in by_kernel.values():
                assert len(times) == len(tuning.m_values) and all(t > 0 for t in times)
        assert entry.thresholds == choose_thresholds(entry.curves(), tuning.m_values)
        every_curve += entry.curves()
    assert tuning.thresholds == choose_thresholds(every_curve, tuning.m_values)
    routes = tuning.routes
    assert routes.m_values == ROUTE_M_VALUES and set(routes.timings_us) == set(FORMATS)
    for by_shape in routes.timings_us.values():
        assert set(by_shape) == {"256x512", "640x256"}
        for timing in by_shape.values():
            assert timing["dequantize"] > 0
            for route in ("matmul", "dense"):
                assert len(timing[route]) == len(ROUTE_M_VALUES)
                # the dense route is the dequantize pass and then a product
                assert all(t > 0 for t in timing[route])
            assert all(t > timing["dequantize"] for t in timing["dense"])
    # the card's shared memory a block, which the matmul's geometries were picked for
    assert routes.shared_memory_per_block == device_shared_memory_per_block() >= 48 * 1024
    fitted = fit_route_model(routes.samples(), tuning.device, routes.shared_memory_per_block)
    assert dict(fitted.matmul_scales) == routes.matmul_scales
    assert (fitted.dequantize_scale, fitted.product_scale) == (
        routes.dequantize_scale,
        routes.product_scale,
    )


def test_tune_command_writes_a_file_compile_can_read(tmp_path, capsys):
    out = tmp_path / "tuning.json"
    argv = ["tune", "--formats", "Q8_0", "--shapes", "128x256", "--m-max", "3", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    tuning = load_tuning(out)
    assert tuning.m_values == (1, 2, 3) and set(tuning.formats) == {"Q8_0"}
    assert set(tuning.routes.timings_us) == {"Q8_0"}
    buckets_table, routes_table = printed.split("Routes of")
    assert "dequantize x" in routes_table
    (row,) = [line for line in buckets_table.splitlines() if line.startswith("Q8_0")]
    assert row.split()[1] == (",".join(map(str, tuning.formats["Q8_0"].thresholds)) or "{}")
