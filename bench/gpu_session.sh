#!/usr/bin/env bash
# One call on a lent GPU machine (the device tool) for the Triton kernels: install the package
# without the C++ builds (CPU and CUDA), run the Triton tests on the GPU, then bench/run_gpu.py. Everything it
# writes goes to $OUT (results, logs). Usage there: bash bench/gpu_session.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1
OUT=${OUT:-/tmp/omegabridge-gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/device.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/device.txt"
OMEGABRIDGE_BUILD_NATIVE=0 OMEGABRIDGE_BUILD_CUDA=0 python3 -m pip install -q --no-build-isolation --no-deps -e . > "$OUT/install.log" 2>&1 || { tail -20 "$OUT/install.log"; exit 1; }
echo "== tests (GPU) =="
timeout "${TEST_SECONDS:-220}" python3 -m pytest -q -n 16 -p no:cacheprovider -rfE --durations=5 -W ignore::UserWarning \
  tests/test_kernel_contract.py tests/test_triton_kernels.py tests/test_posterior_mean.py tests/test_statistics.py -k "${TEST_SELECTION:-triton}" > "$OUT/gpu-tests.log" 2>&1
echo "tests exit $?"; grep -E "passed|failed|error" "$OUT/gpu-tests.log" | tail -3; grep -E "^(FAILED|ERROR)" "$OUT/gpu-tests.log" | head -20
echo "== bench =="
[ "${BENCH_SECONDS:-320}" = 0 ] && exit 0
timeout "${BENCH_SECONDS:-320}" python3 bench/run_gpu.py --out "$OUT" ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
echo "bench exit $?"; tail -45 "$OUT/bench.log"
echo "== scale-out: sampling throughput on the GPU (needs pandas and pyarrow there) =="
[ "${SCALE_SECONDS:-0}" = 0 ] && exit 0
timeout "$SCALE_SECONDS" python3 bench/scale.py --device cuda --out "$OUT" > "$OUT/scale.log" 2>&1
echo "scale exit $?"; tail -20 "$OUT/scale.log"
