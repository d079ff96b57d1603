#!/usr/bin/env bash
# Here, before a GPU session: build the C++ and CUDA extensions for the device machines' Python
# (3.12, see the device tool's KINDS.md) and Hopper (sm_90, PTX embedded) into .device-build/,
# with the SHA-256 of every source they were built from, so a lent GPU's few minutes are not
# spent compiling. bench/cuda_gpu_check.sh uses them only if every hash still matches (else it
# builds there). Carry the folder: run(command="bash bench/cuda_gpu_check.sh", carry=[".device-build"]).
# First it runs the kernel contract suite here on the CUDA kernels compiled for the CPU
# (backend "cuda-emulated", about 30 s), so a GPU session is not spent on a broken kernel or test.
#   DEVICE_PYTHON=/path/to/python3.12 bash bench/prebuild_for_device.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${DEVICE_PYTHON:-/root/.pyenv/versions/3.12.1/bin/python}
"$PYTHON" -c "import sys; assert sys.version_info[:2] == (3, 12), f'the device machines run Python 3.12, {sys.executable} is {sys.version}'"
"$PYTHON" -c "import pybind11, setuptools" 2>/dev/null || "$PYTHON" -m pip install -q pybind11 setuptools
python3 -m pytest -q -x -p no:cacheprovider tests/test_kernel_contract.py -k emulated | tail -3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
OMEGABRIDGE_BUILD_NATIVE=1 OMEGABRIDGE_BUILD_CUDA=1 OMEGABRIDGE_CUDA_ARCHS=90 \
  "$PYTHON" setup.py build_ext --build-lib "$work/lib" --build-temp "$work/temp" > "$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log"; exit 1; }
rm -rf .device-build && mkdir .device-build
cp "$work"/lib/omegabridge/_native_ext.*.so "$work"/lib/omegabridge/_cuda_ext.*.so "$work/temp/cuda_resource_usage.txt" .device-build/
sha256sum $(git ls-files csrc pybridge setup.py) > .device-build/sources.sha256
ls -l .device-build
