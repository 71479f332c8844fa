"""The default-pipeline benchmark's synthetic decoder (Gemma-4-31B-like heads: 32 query heads
of 128 over 16 KV heads) exports with a dynamic token count and runs through the default
pipeline: its export once failed on a guard the attention's output view made torch add for
those head shapes, while the real Gemma 3 270M exported fine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_default_pipeline_benchmark_runs_on_one_layer():
    run = subprocess.run(
        [sys.executable, "benchmarks/default_pipeline.py", "--layers", "1", "--repeats", "1"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Synthetic decoder: 1 layers" in run.stdout
    # every linear of the layer (7) and the vocabulary projection fused by both methods
    assert "| fuse-gguf (8 linears fused)" in run.stdout
    assert "(8 linears fused) |" in run.stdout.split("replace_pattern", 1)[1]
