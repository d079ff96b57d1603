#!/usr/bin/env bash
# Everything issue 5 asks of a lent GPU, in one call of the device tool (about 9 minutes):
#
#   here:   bash bench/prebuild_for_device.sh      # the extensions for Python 3.12 / sm_90 (3 min, no GPU)
#   device: run(command="bash bench/cuda_gpu_check.sh", carry=[".device-build"], timeout_s=600)
#
# 1. device, driver, torch and triton versions; install the package (editable, no compiling);
#    use the prebuilt extensions if every source hash matches, else build them here for this GPU;
# 2. the CUDA kernel tests, the CPU-vs-CUDA noise tests and the exact-law / oracle-drift checks
#    on backend="cuda" (tests/test_kernel_contract.py, tests/test_cuda_kernels.py, tests/test_statistics.py -k cuda);
#    then the worst error of the GPU's approximate noise instructions against float64 over all
#    2^24 uniforms (tests/test_triton_kernels.py::test_noise_transforms_are_within_their_bound,
#    its printed line goes into docs/noise.md);
# 3. compute-sanitizer memcheck (torch's caching allocator off, so an access past a tensor is
#    past its allocation) over the kernel tests of the mixed layout, the load paths and the
#    noise (and the widest categorical), then racecheck over a few of them;
# 4. bench/run_gpu.py: step and target throughput of cuda, triton, reference, per-column and
#    torch.compile against the copy bandwidth;
# 5. bench/sampling.py: 30,000 Adult-like rows in 2,000 steps with the paper's MLP, with and
#    without a CUDA graph, against the per-column autograd loop.
#
# Each phase gets what is left of TOTAL_SECONDS (default 540), capped per phase; at most 8 files
# come back from $OUT: session.log, cuda-tests.log, sanitizer.log, kernels-gpu.{md,csv,png},
# sampling-gpu.{md,json}.
set -uo pipefail
export PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/omegabridge-cuda}
mkdir -p "$OUT"
LOG="$OUT/session.log"
START=$(date +%s)
DEADLINE=$((START + ${TOTAL_SECONDS:-540}))
left() { local cap=$1 rest=$((DEADLINE - $(date +%s))); echo $((rest < cap ? (rest > 5 ? rest : 5) : cap)); }
phase() { echo "== $* (at $(($(date +%s) - START)) s) ==" | tee -a "$LOG"; }

phase "device"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee -a "$LOG"
python3 -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$LOG"
command -v compute-sanitizer nvcc 2>&1 | tee -a "$LOG"

phase "install (editable, nothing compiled) and the extensions"
OMEGABRIDGE_BUILD_NATIVE=0 OMEGABRIDGE_BUILD_CUDA=0 python3 -m pip install -q --no-build-isolation --no-deps -e . >> "$LOG" 2>&1 \
  || { echo "install failed" | tee -a "$LOG"; tail -20 "$LOG"; exit 1; }
if [ -f .device-build/sources.sha256 ] && sha256sum --quiet -c .device-build/sources.sha256 >> "$LOG" 2>&1; then
  cp .device-build/*.so omegabridge/ && echo "using the prebuilt extensions (.device-build, sources unchanged)" | tee -a "$LOG"
  cat .device-build/cuda_resource_usage.txt >> "$LOG"
else
  echo "no prebuilt extensions for these sources: building here" | tee -a "$LOG"
  ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
  OMEGABRIDGE_BUILD_NATIVE=1 OMEGABRIDGE_BUILD_CUDA=1 OMEGABRIDGE_CUDA_ARCHS="$ARCH" \
    python3 setup.py build_ext --inplace -j 4 >> "$LOG" 2>&1 || { echo "build failed" | tee -a "$LOG"; tail -30 "$LOG"; exit 1; }
  cat build/temp.*/cuda_resource_usage.txt >> "$LOG" 2>/dev/null
fi
python3 -c "import omegabridge._cuda_ext as c, omegabridge._native_ext as n; print('extensions import:', c.__file__, n.__file__)" 2>&1 | tee -a "$LOG"

phase "tests"
WORKERS=$(python3 -c "import xdist" 2>/dev/null && echo "-n 16")  # pytest-xdist is in the device image
timeout "$(left 180)" python3 -m pytest -q $WORKERS -p no:cacheprovider -rfE --durations=8 -W ignore::UserWarning \
  tests/test_kernel_contract.py tests/test_cuda_kernels.py tests/test_statistics.py -k "cuda and not emulated" \
  > "$OUT/cuda-tests.log" 2>&1
echo "tests exit $?" | tee -a "$LOG"
grep -E "[0-9]+ (passed|failed|error)" "$OUT/cuda-tests.log" | tail -1 | tee -a "$LOG"
grep -E "^(FAILED|ERROR)" "$OUT/cuda-tests.log" | head -20 | tee -a "$LOG"

phase "the GPU noise: approximate instructions against float64 (docs/noise.md) and the Triton noise tests"
timeout "$(left 90)" python3 -m pytest -q -s -p no:cacheprovider -rfE -W ignore::UserWarning tests/test_triton_kernels.py \
  -k "noise_transforms or lone_column or contract_stream" 2>&1 | grep -E "noise transforms on|passed|failed|Error" | tee -a "$LOG"

phase "compute-sanitizer memcheck"
SANITIZE=(tests/test_kernel_contract.py -k "cuda and not emulated and (mixed or categorical4096 or aligned or in_place or uniforms or reduced_precision or scheduled)")
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout "$(left 120)" compute-sanitizer --tool memcheck --error-exitcode 86 --print-limit 20 \
  python3 -m pytest -q -p no:cacheprovider -x "${SANITIZE[@]}" > "$OUT/sanitizer.log" 2>&1
echo "memcheck exit $? (86: errors found, 124: out of time)" | tee -a "$LOG"
grep -E "ERROR SUMMARY|passed|failed" "$OUT/sanitizer.log" | tail -3 | tee -a "$LOG"

phase "bench/run_gpu.py"
timeout "$(left 200)" python3 bench/run_gpu.py --out "$OUT" --backends cuda,triton,reference,per-column,compile \
  --compile-layouts "adult-like 1M,half-line 16M" --compile-budget 60 --no-sweep >> "$LOG" 2>&1
echo "run_gpu exit $?" | tee -a "$LOG"

phase "bench/sampling.py"
timeout "$(left 150)" python3 bench/sampling.py --device cuda --out "$OUT" >> "$LOG" 2>&1
echo "sampling exit $?" | tee -a "$LOG"

phase "compute-sanitizer racecheck"
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout "$(left 90)" compute-sanitizer --tool racecheck --error-exitcode 86 --print-limit 20 \
  python3 -m pytest -q -p no:cacheprovider -x tests/test_kernel_contract.py -k "cuda-mixed and (step or target)" > "$OUT/racecheck.tmp" 2>&1
echo "racecheck exit $? (86: hazards found, 124: out of time)" | tee -a "$LOG"
grep -E "RACECHECK SUMMARY|ERROR SUMMARY|passed|failed" "$OUT/racecheck.tmp" | tail -3 | tee -a "$LOG"
{ echo "== racecheck =="; cat "$OUT/racecheck.tmp"; } >> "$OUT/sanitizer.log" && rm -f "$OUT/racecheck.tmp"
phase "done"
