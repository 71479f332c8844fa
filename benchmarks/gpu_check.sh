#!/usr/bin/env bash
# Runs every GPU test (pytest -m gpu: kernels, CUDA launcher, programs on CUDA), then the
# CUDA kernel benchmarks (linear kinds, the batched matvec at M = 2..8, embedding gather, the
# read-only floor, the matvec's geometries, the matmul's routes against the lowering's pick)
# and the front end's decode attention against torch's fused one, on a machine with an
# NVIDIA GPU and CuPy:
#   benchmarks/gpu_check.sh [output-dir]
# The real-model GPU test needs Gemma 3 270M: the models extra, or GGUFC_GEMMA_GGUF=FILE.
# Writes gpu_tests.log, benchmark.log, cuda_matmul.md, cuda_matvec_batched.md,
# cuda_embedding.md, cuda_read_floor.md, cuda_matvec_geometry.md, cuda_matmul_routes.md and
# cuda_attention_decode.md into output-dir (default: .).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c 'import torch, cupy; assert torch.cuda.is_available(), "no CUDA device"'
# pytest collects every test module: the test extra must be importable here too
python3 -c 'import syrupy, hypothesis, filecheck' 2>/dev/null || {
    echo "gpu_check.sh: the test extra is missing: pip install -e '.[test,cuda]'" >&2
    exit 2
}
# with pytest-xdist (on the device tool's image) the GPU tests run in 8 processes: their time is
# mostly NVRTC compiles: 1641 tests in 93 s on the device tool's H200 (16 cores, session 38),
# where one process took ~365 s on its H100 (session 37)
parallel=()
python3 -c 'import xdist' 2>/dev/null && parallel=(-p xdist -n 8)
status=0
python3 -m pytest tests -m gpu -q -p no:cacheprovider "${parallel[@]}" 2>&1 \
    | tee "$out/gpu_tests.log" || status=$?
python3 benchmarks/cuda_matmul.py --out "$out/cuda_matmul.md" 2>&1 | tee "$out/benchmark.log"
python3 benchmarks/cuda_matvec_batched.py --out "$out/cuda_matvec_batched.md" 2>&1 \
    | tee -a "$out/benchmark.log"
python3 benchmarks/cuda_embedding.py --out "$out/cuda_embedding.md" 2>&1 | tee -a "$out/benchmark.log"
python3 benchmarks/cuda_read_floor.py --out "$out/cuda_read_floor.md" 2>&1 | tee -a "$out/benchmark.log"
python3 benchmarks/cuda_matvec_geometry.py --dtypes float32,float16,bfloat16 2>&1 \
    | tee "$out/cuda_matvec_geometry.md" | tee -a "$out/benchmark.log"
python3 benchmarks/cuda_matmul_routes.py --m 64,128,256,512,1024 --shapes 4096x14336,2048x8192 \
    --out "$out/cuda_matmul_routes.md" 2>&1 | tee -a "$out/benchmark.log"
python3 benchmarks/cuda_attention_decode.py --out "$out/cuda_attention_decode.md" 2>&1 \
    | tee -a "$out/benchmark.log"
exit "$status"
