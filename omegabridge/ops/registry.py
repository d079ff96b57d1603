"""The one place backends are chosen: a table of (op, backend) -> implementation, and the order in
which ``backend="auto"`` tries them.

``IMPLEMENTATIONS[(op, backend)]`` is the function that runs ``op`` on ``backend``. ``choose``
returns the backend for an op, a device and a state dtype, or raises ``BackendUnavailableError``
with the reason when a backend asked for by name cannot run; ``availability`` lists, for a device
and dtype, every backend with the reason it cannot run ("" where it can).

``backend="auto"`` takes the first backend of ``AUTO_ORDER[device type]`` that can run:

* CPU tensors: ``cpu`` (the C++ kernels, float32 state), then ``reference``;
* CUDA tensors: ``triton`` (float32 state), then ``reference``. The CUDA C++ kernels (``cuda``)
  are not in the order until they have been measured on a GPU; ask for them by name.

Example:
    >>> import torch
    >>> from omegabridge.ops import registry
    >>> registry.choose("step", "auto", torch.device("cpu"), torch.float64).name
    'reference'
"""

from __future__ import annotations

from typing import Callable

import torch

from omegabridge.errors import BackendUnavailableError
from omegabridge.ops.backends import cpu, cuda, reference, triton

__all__ = ["OPS", "BACKENDS", "AUTO_ORDER", "IMPLEMENTATIONS", "choose", "implementation", "availability"]

OPS = ("posterior_mean", "step", "bridge_step", "final_step", "bridge_target")
BACKENDS = {backend.name: backend for backend in (reference.BACKEND, cpu.BACKEND, cuda.BACKEND, triton.BACKEND)}
AUTO_ORDER = {"cpu": ("cpu", "reference"), "cuda": ("triton", "reference")}
IMPLEMENTATIONS: dict[tuple[str, str], Callable] = {
    (op, name): getattr(backend, op) for name, backend in BACKENDS.items() for op in OPS
}
NAMES = ("auto", *BACKENDS)


def _check_name(backend: str) -> None:
    if backend not in NAMES:
        raise ValueError(f"backend must be one of {', '.join(repr(b) for b in NAMES)}, got {backend!r}")


def choose(op: str, backend: str, device: torch.device, dtype: torch.dtype = torch.float32):
    """The backend object that runs ``op`` on ``device`` with state ``dtype`` ("auto": the first of
    ``AUTO_ORDER`` that can run; a name: that backend, or ``BackendUnavailableError`` saying why not)."""
    _check_name(backend)
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    device = torch.device(device)
    if backend == "auto":
        for name in AUTO_ORDER.get(device.type, ("reference",)):
            if not BACKENDS[name].unavailable_reason(device, dtype):
                return BACKENDS[name]
        return BACKENDS["reference"]
    reason = BACKENDS[backend].unavailable_reason(device, dtype)
    if reason:
        raise BackendUnavailableError(f"backend={backend!r} cannot run: {reason}")
    return BACKENDS[backend]


def implementation(op: str, backend: str, device: torch.device, dtype: torch.dtype = torch.float32) -> Callable:
    """``IMPLEMENTATIONS[(op, name)]`` of the backend ``choose`` picks: the function that runs ``op`` here.

    >>> import torch
    >>> implementation("final_step", "reference", torch.device("cpu")).__self__.name
    'reference'
    """
    return IMPLEMENTATIONS[(op, choose(op, backend, device, dtype).name)]


def availability(device: torch.device, dtype: torch.dtype = torch.float32) -> dict[str, str]:
    """Every backend's reason it cannot run on ``device`` with state ``dtype`` ("" where it can).

    >>> import torch
    >>> availability(torch.device("cpu"), torch.float64)["reference"]
    ''
    """
    device = torch.device(device)
    return {name: backend.unavailable_reason(device, dtype) for name, backend in BACKENDS.items()}
