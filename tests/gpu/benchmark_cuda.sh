#!/usr/bin/env bash
# Cost of both models on a CUDA GPU, and the custom ops' CuPy kernels against their pure-PyTorch paths.
# Not run by CI; installs nothing (needs torch with CUDA and CuPy already installed).
#
#   tests/gpu/benchmark_cuda.sh [OUT_DIR]        # default OUT_DIR: benchmark_cuda_out
#
# 1. benchmark.py --device cuda: teacher and student, 256x448 / 480x854 / 1080x1920, float32 and float16/bfloat16
#    autocast, with the --profile breakdown (report in OUT_DIR/benchmark_cuda.json);
# 2. tests/gpu/check_ops_cuda.py: the ops' goldens through CuPy, CuPy vs torch outputs, gradients and times.
# Everything printed is also saved to OUT_DIR/benchmark_cuda.txt.
set -euo pipefail

cd "$(dirname "$0")/../.."
out_dir="${1:-benchmark_cuda_out}"
mkdir -p "$out_dir"

python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "no CUDA device visible to torch")'
python -c 'import cupy' || { echo "CuPy is not installed: the ops would run their PyTorch paths" >&2; exit 1; }

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    echo
    echo "== benchmark.py (CUDA) =="
    python benchmark.py --device cuda --repeats "${REPEATS:-10}" --profile --json "$out_dir/benchmark_cuda.json"
    echo
    echo "== custom ops: CuPy vs PyTorch (tests/gpu/check_ops_cuda.py) =="
    python tests/gpu/check_ops_cuda.py
} 2>&1 | tee "$out_dir/benchmark_cuda.txt"
