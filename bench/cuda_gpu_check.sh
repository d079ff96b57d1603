#!/usr/bin/env bash
# One call on a lent GPU machine (the device tool) for the CUDA C++ kernels: build only
# omegabridge._cuda_ext for this GPU's architecture (one nvcc run, about a minute), then run
# the CUDA kernel tests and the exact-law / oracle-drift checks on backend="cuda". Everything
# it writes goes to $OUT. Usage there: bash bench/cuda_gpu_check.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/omegabridge-cuda}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv | tee "$OUT/device.txt"
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
OMEGABRIDGE_BUILD_NATIVE=0 OMEGABRIDGE_BUILD_CUDA=1 OMEGABRIDGE_CUDA_ARCHS="$ARCH" \
  python3 setup.py build_ext --inplace > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
cp build/temp.*/cuda_resource_usage.txt "$OUT/" 2>/dev/null
echo "== CUDA tests =="
timeout "${TEST_SECONDS:-300}" python3 -m pytest -q -n 16 -p no:cacheprovider -rfE --durations=5 \
  tests/test_cuda_kernels.py tests/test_statistics.py -k "${TEST_SELECTION:-cuda}" > "$OUT/cuda-tests.log" 2>&1
echo "tests exit $?"; grep -E "passed|failed|error" "$OUT/cuda-tests.log" | tail -3; grep -E "^(FAILED|ERROR)" "$OUT/cuda-tests.log" | head -20
