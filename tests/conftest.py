"""Test-session setup shared by every test module.

Without a CUDA GPU the Triton kernels run in Triton's CPU interpreter, which must be chosen
before ``triton`` is first imported: so it is set here, before any test module loads. With a
GPU the Triton tests run the compiled kernels on it instead.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (restored after): two cores are shared, and subprocesses run with one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def generator(request) -> torch.Generator:
    """A generator seeded afresh for each test (the seed is printed, so a failure can be replayed)."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"{request.node.name}: input seed {seed}")
    return torch.Generator().manual_seed(seed)
