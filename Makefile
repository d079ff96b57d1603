# omegabridge developer targets. PYTHON picks the interpreter: make test PYTHON=python3.11
PYTHON ?= python3

.PHONY: install demo test bench

# torch is installed only when missing, so an existing (e.g. CUDA) build is kept.
install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "torch==2.13.0"
	$(PYTHON) -m pip install -e ".[dev,demo]"

demo: install
	$(PYTHON) -m omegabridge demo

# The native extension is required here: a test run without it fails instead of skipping. So is
# the CUDA extension wherever nvcc is found (its kernels' tests still skip without a GPU).
test: install
	OMEGABRIDGE_REQUIRE_NATIVE=1 OMEGABRIDGE_REQUIRE_CUDA_BUILD=$$(command -v nvcc >/dev/null 2>&1 && echo 1 || echo 0) \
		$(PYTHON) -m pytest -q tests

bench:
	$(PYTHON) bench/run.py
