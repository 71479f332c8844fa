"""`ggufc tune` on a machine that cannot tune: clear errors, exit status 1 (argparse's 2 for
malformed options), no traceback and no file written; and its help and defaults."""

from __future__ import annotations

import sys

import pytest
import torch

from compiler import tuning
from compiler.cli import build_parser, main, tune_cmd


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def cuda_without_cupy(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError


def run_tune(capsys, *argv) -> tuple[int, str]:
    """Exit status and stderr of `ggufc tune ARGV` (stdout stays in capsys)."""
    capsys.readouterr()
    code = main(["tune", "--no-progress", *argv])
    captured = capsys.readouterr()
    print(captured.out, end="")
    return code, captured.err


def test_without_a_cuda_device(no_cuda, capsys, tmp_path):
    out = tmp_path / "tuning.json"
    code, err = run_tune(capsys, "--out", str(out))
    assert code == 1
    assert err.startswith("ggufc tune: error: ") and "no CUDA device" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_without_cupy(cuda_without_cupy, capsys, tmp_path):
    out = tmp_path / "tuning.json"
    code, err = run_tune(capsys, "--out", str(out), "--formats", "Q4_0")
    assert code == 1
    assert err.startswith("ggufc tune: error: ") and "CuPy" in err and "ggufc[cuda]" in err
    assert not out.exists()


def test_arguments_are_checked_before_measuring(no_cuda, capsys, tmp_path):
    code, err = run_tune(capsys, "--out", str(tmp_path / "missing" / "t.json"))
    assert code == 1 and "missing does not exist" in err
    code, err = run_tune(capsys, "--out", str(tmp_path))
    assert code == 1 and "is a folder" in err
    # K=96 is no whole number of Q4_K's 256-weight blocks
    code, err = run_tune(
        capsys, "--out", str(tmp_path / "t.json"), "--formats", "Q4_0,Q4_K", "--shapes", "64x96"
    )
    assert code == 1 and "64x96: K=96 is not a multiple of Q4_K's 256-weight blocks" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--device", "cpu"], "invalid choice: 'cpu'"),
        (["--formats", "Q4_0,Q9_9"], "unknown format(s) Q9_9"),
        (["--shapes", "4096"], "shape '4096': expected NxK"),
        (["--shapes", "4096x0"], "expected NxK"),
        (["--m-max", "0"], "expected an integer in 1..256"),
        (["--m-max", "300"], "expected an integer in 1..256"),
        (["--m-max", "many"], "expected an integer in 1..256"),
        (["--dtype", "float8"], "invalid choice: 'float8'"),
    ],
)
def test_malformed_options_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as caught:
        main(["tune", *argv])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_help_says_what_tune_needs(capsys):
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--device cpu is not meaningful" in text
    assert "ggufc compile --tuning" in text and "CuPy" in text
    assert "tune" in build_parser().format_help()


def test_cli_defaults_match_the_module():
    from codegen.kernels.emitter import DTYPES

    parser = build_parser()
    args = parser.parse_args(["tune"])
    assert args.m_max == tuning.DEFAULT_M_MAX and args.dtype == tuning.DEFAULT_DTYPE
    assert tune_cmd.parse_shapes(tune_cmd.DEFAULT_SHAPES_TEXT) == tuning.DEFAULT_SHAPES
    assert tune_cmd.M_MAX_LIMIT == tuning.M_MAX_LIMIT
    (dtype_action,) = [
        a
        for a in parser._subparsers._group_actions[0].choices["tune"]._actions
        if a.dest == "dtype"
    ]
    assert tuple(dtype_action.choices) == DTYPES


# the fake card's shared memory a block: an A100's, too little for the 256-row matmul tile
# and Q8_0's wide batched matvec
FAKE_SHARED_MEMORY_PER_BLOCK = 163 * 1024


def fake_gpu(monkeypatch, measure_kernels, measure_routes) -> None:
    """`tune` on "Fake GPU 9000", these functions standing for the GPU measurements."""
    import codegen.cuda_run

    monkeypatch.setattr(tuning, "require_cuda", lambda: None)
    monkeypatch.setattr(
        tuning, "device_shared_memory_per_block", lambda: FAKE_SHARED_MEMORY_PER_BLOCK
    )
    monkeypatch.setattr(tuning, "measure_kernels", measure_kernels)
    monkeypatch.setattr(tuning, "measure_routes", measure_routes)
    monkeypatch.setattr(codegen.cuda_run, "CudaKernelRunner", lambda: object())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Fake GPU 9000")


def test_tune_assembles_the_file_from_the_measurements(monkeypatch, capsys, tmp_path):
    """`ggufc tune` with the GPU measurement replaced by synthetic curves (the GPU test runs
    the real one): what it measures, what it chooses, what it writes and prints."""

    measured = []

    def fake_measure(runner, fmt, shape, m_values, dtype, generator, advance, shared):
        measured.append((fmt, shape, m_values, dtype, shared))
        crossover = {"Q4_0": 2, "Q8_0": 5}[fmt] * (1 + shape[0] // 1000)
        for _ in range(len(m_values) * len(tuning.BUCKET_KERNELS)):
            advance(1)
        return {
            "matvec": tuple(10.0 * m for m in m_values),
            "matvec_batched": tuple(10.0 * crossover + 0.5 + m / 8 for m in m_values),
            "matmul": tuple(30.0 * crossover for _ in m_values),
        }

    routes_measured = []

    def fake_routes(runner, fmt, shape, m_values, dtype, generator, advance, shared):
        """Each part at a fixed multiple of its H100 model (the matmul in the geometries the
        fake card's shared memory allows): the fit must find the multiples."""
        from codegen.dense_linear import (
            RouteModel,
            dequantize_estimate_us,
            matmul_estimate_us,
            product_estimate_us,
        )

        routes_measured.append((fmt, shape, m_values, dtype))
        advance(2 * len(m_values))
        n, k = shape
        dequantize = 0.8 * dequantize_estimate_us(fmt, n, k)
        card = RouteModel(shared_memory_per_block=shared)  # what tune read of the card
        return {
            "dequantize": dequantize,
            "matmul": tuple(1.25 * matmul_estimate_us(fmt, n, k, m, card) for m in m_values),
            "dense": tuple(dequantize + 1.5 * product_estimate_us(n, k, m) for m in m_values),
        }

    fake_gpu(monkeypatch, fake_measure, fake_routes)
    out = tmp_path / "t.json"
    argv = ["--formats", "Q4_0,Q8_0", "--shapes", "512x256,2048x512", "--m-max", "24"]
    code, err = run_tune(capsys, *argv, "--dtype", "bfloat16", "--out", str(out))
    assert code == 0, err
    m_values = tuning.m_grid(24)
    # the kernels in the geometries the fake card holds (Q8_0's wide batched matvec not)
    assert measured == [
        (fmt, shape, m_values, "bfloat16", FAKE_SHARED_MEMORY_PER_BLOCK)
        for fmt in ("Q4_0", "Q8_0")
        for shape in ((512, 256), (2048, 512))
    ]
    written = tuning.load_tuning(out)
    assert written.device == "Fake GPU 9000" and written.dtype == "bfloat16"
    assert written.shapes == ((512, 256), (2048, 512)) and written.m_values == m_values
    for fmt, entry in written.formats.items():
        assert entry.thresholds == tuning.choose_thresholds(entry.curves(), m_values), fmt
    every = [c for entry in written.formats.values() for c in entry.curves()]
    assert written.thresholds == tuning.choose_thresholds(every, m_values)
    printed = capsys.readouterr().out
    assert f"wrote {out}" in err and "Fake GPU 9000, bfloat16" in printed
    buckets_table = printed.split("Routes of")[0]
    for fmt, entry in written.formats.items():
        (row,) = [line for line in buckets_table.splitlines() if line.startswith(fmt)]
        assert row.split()[1] == ",".join(map(str, entry.thresholds)), row
    # the routes: timed on every shape at ROUTE_M_VALUES, the model's factors recovered
    assert routes_measured == [
        (fmt, shape, tuning.ROUTE_M_VALUES, "bfloat16")
        for fmt in ("Q4_0", "Q8_0")
        for shape in ((512, 256), (2048, 512))
    ]
    assert written.routes.matmul_scales == {"Q4_0": 1.25, "Q8_0": 1.25}
    assert written.routes.shared_memory_per_block == FAKE_SHARED_MEMORY_PER_BLOCK
    assert written.route_model().shared_memory_per_block == FAKE_SHARED_MEMORY_PER_BLOCK
    assert (written.routes.dequantize_scale, written.routes.product_scale) == (0.8, 1.5)
    assert "matmul Q4_0 x1.25, Q8_0 x1.25; dequantize x0.80; cuBLAS x1.50" in printed
    route_rows = [line.split()[:2] for line in printed.split("Routes of")[1].splitlines()]
    assert route_rows.count(["Q8_0", "2048x512"]) == 1


def test_tune_without_routes_or_with_float32_times_no_route(monkeypatch, capsys, tmp_path):

    def fake_measure(runner, fmt, shape, m_values, dtype, generator, advance, shared):
        return {kernel: tuple(1.0 + m for m in m_values) for kernel in tuning.BUCKET_KERNELS}

    def no_routes(*args):
        raise AssertionError("routes timed")

    fake_gpu(monkeypatch, fake_measure, no_routes)
    out = tmp_path / "t.json"
    base = ["--formats", "Q4_0", "--shapes", "512x256", "--m-max", "4", "--out", str(out)]
    for extra in (["--no-routes"], ["--dtype", "float32"]):
        code, err = run_tune(capsys, *base, *extra)
        assert code == 0, err
        assert tuning.load_tuning(out).routes is None
        assert "Routes of" not in capsys.readouterr().out
