"""Running the Triton kernels in tests: on the GPU when there is one, else in Triton's CPU interpreter.

Without triton the calling module is skipped, unless OMEGABRIDGE_REQUIRE_NATIVE=1 (``make test``,
which installs triton with the dev extras): then it fails, so CI cannot pass without running them.
"""

from __future__ import annotations

import os

import pytest
import torch

from omegabridge.ops.backends import triton as triton_backend


def require_triton() -> torch.device:
    """The device the Triton kernels run on in this session; skips (or fails under make test) without triton."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    why = triton_backend.unavailable_reason(device)
    if why:
        if os.environ.get("OMEGABRIDGE_REQUIRE_NATIVE") == "1":
            raise RuntimeError(f"OMEGABRIDGE_REQUIRE_NATIVE=1 but the Triton kernels cannot run: {why}")
        pytest.skip(f"Triton kernels unavailable: {why}", allow_module_level=True)
    return device


def on_gpu() -> bool:
    return torch.cuda.is_available()
