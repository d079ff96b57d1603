"""pytest-benchmark cases: one per (op, layout, backend), at a reduced size so a run takes about a minute.

    python -m pytest bench/test_bench_ops.py --benchmark-columns=median,ops
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from omegabridge import ops as dispatch  # noqa: E402
from layouts import layouts  # noqa: E402

LAYOUTS = layouts(scale=1 / 64)
# Triton where there is a GPU (bench/run_gpu.py has the full GPU benchmark).
BACKENDS = ["cpu", "reference"] + (["triton"] if torch.cuda.is_available() else [])


def _device(backend: str) -> str:
    return "cuda" if backend == "triton" else "cpu"


def _timed(function, backend: str):
    """The op, waiting for the GPU before returning so the benchmark times the work, not the launch."""
    if backend != "triton":
        return function
    return lambda *args, **kwargs: (function(*args, **kwargs), torch.cuda.synchronize())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_step(benchmark, name, backend):
    domain, rows = LAYOUTS[name]
    z = torch.randn(rows, domain.width, device=_device(backend))
    f = torch.randn(rows, domain.width, device=_device(backend))
    benchmark.extra_info["elements"] = rows * domain.width
    benchmark(_timed(dispatch.step, backend), z, f, domain.segment_table(), remaining=0.5, increment=0.01, seed=1, step_index=3, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_bridge_target(benchmark, name, backend):
    domain, rows = LAYOUTS[name]
    x = domain.project(torch.randn(rows, domain.width)).to(_device(backend))
    scale = torch.full((rows, 1), 0.5, device=_device(backend))
    benchmark.extra_info["elements"] = rows * domain.width
    benchmark(_timed(dispatch.bridge_target, backend), x, domain.segment_table(), mean_scale=scale, noise_scale=scale, remaining=scale, seed=1, backend=backend)
