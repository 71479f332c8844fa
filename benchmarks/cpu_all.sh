#!/usr/bin/env bash
# Runs every CPU benchmark in sequence (one after the other: they share 2 cores) and writes
# each script's markdown output to DIR/NAME.md.  Run it on an otherwise idle machine; the
# figures in BENCHMARKS.md come from it.      usage: benchmarks/cpu_all.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmark-results}
mkdir -p "$out"
run() {  # run RESULT SCRIPT ARGS...: python benchmarks/SCRIPT.py ARGS | tee DIR/RESULT.md
    local result=$1 script=$2
    shift 2
    echo "== $script $*" >&2
    python "benchmarks/$script.py" "$@" | tee "$out/$result.md"
}
run gguf_open gguf_open
run dequantize dequantize_throughput --runs 5 --rounds 5
run dequantize_1thread dequantize_throughput --runs 5 --rounds 5 --threads 1
run pass_manager_overhead pass_manager_overhead --repeats 9
run rewrite_throughput rewrite_throughput --repeats 5
run default_pipeline default_pipeline --repeats 3
run program_file program_file
run compile_time compile_time
run tokens_per_second tokens_per_second
