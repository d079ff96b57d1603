"""One entry point per op, validating its inputs once and choosing a backend.

Ops: ``posterior_mean``, ``step``, ``final_step`` and ``bridge_target``. Backends:
``"reference"`` (the torch reference, any device, float32 or float64) and
``"auto"`` (the fastest backend available for the tensors' device). The fused
native backends register here as they land; asking for one that cannot run
raises ``BackendUnavailableError`` with the reason.

Example:
    >>> import torch, omegabridge as ob
    >>> from omegabridge import dispatch
    >>> table = ob.Interval(0.0, 1.0).segment_table()
    >>> z = dispatch.step(torch.zeros(2, 1), None, table, remaining=1.0, increment=0.1, seed=0, step_index=0)
    >>> z.shape
    torch.Size([2, 1])
"""

from __future__ import annotations

import math

import torch

from omegabridge import reference
from omegabridge.domains import SegmentTable
from omegabridge.errors import BackendUnavailableError

__all__ = ["BACKENDS", "check_device", "resolve_backend", "posterior_mean", "step", "final_step", "bridge_target"]

BACKENDS = ("auto", "reference", "cpu", "cuda", "triton")
_STATE_DTYPES = (torch.float32, torch.float64)
_DRIFT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
_PLANNED = {
    "cpu": "the fused C++ CPU kernels are not part of this build yet",
    "cuda": "the CUDA C++ kernels are not part of this build yet",
    "triton": "the Triton kernels are not part of this build yet",
}


def check_device(device) -> torch.device:
    """``device`` as a torch.device that can hold data here, or a clear error."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got {device!r}") from error
    if device.type == "meta":
        raise ValueError("device 'meta' cannot hold a sample; use 'cpu' or 'cuda'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device={str(device)!r} was asked for but CUDA is not available on this machine")
    return device


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend that will run an op on ``device``: 'auto' picks the fastest available one."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(repr(b) for b in BACKENDS)}, got {backend!r}")
    if backend == "auto" or backend == "reference":
        return "reference"
    raise BackendUnavailableError(f"backend={backend!r} cannot run: {_PLANNED[backend]}; use backend='auto'")


def _check_matrix(name: str, tensor, table: SegmentTable, dtypes) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != 2 or tensor.shape[1] != table.width:
        raise ValueError(f"{name} must have shape (rows, {table.width}) for this domain, got {tuple(tensor.shape)}")
    if tensor.dtype not in dtypes:
        allowed = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must have dtype {allowed}; got {str(tensor.dtype).replace('torch.', '')}")


def _check_drift(drift, z: torch.Tensor, table: SegmentTable) -> None:
    if drift is None:
        return
    _check_matrix("drift", drift, table, _DRIFT_DTYPES)
    if drift.shape != z.shape:
        raise ValueError(f"drift must have the shape of the state {tuple(z.shape)}, got {tuple(drift.shape)}")
    if drift.device != z.device:
        raise ValueError(f"drift is on {drift.device} but the state is on {z.device}")


def _check_positive(name: str, value) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return number


def _check_address(seed, step_index, row_offset) -> None:
    for name, value, bound in (("seed", seed, 2**64), ("step_index", step_index, 2**32), ("row_offset", row_offset, 2**48)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < bound:
            raise ValueError(f"{name} must be an integer in [0, {bound}), got {value!r}")


def _check_per_row(name: str, value, x: torch.Tensor) -> torch.Tensor:
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if value.dim() == 0:
        value = value.expand(x.shape[0])
    value = value.reshape(-1, 1) if value.numel() == x.shape[0] else value
    if value.shape != (x.shape[0], 1):
        raise ValueError(f"{name} must be a scalar or have one entry per row ({x.shape[0]}), got {tuple(value.shape)}")
    return value


def posterior_mean(z: torch.Tensor, table: SegmentTable, remaining, backend: str = "auto") -> torch.Tensor:
    """m(z, s) for every column; ``remaining`` (s) is a scalar or per-row, all > 0."""
    _check_matrix("z", z, table, _STATE_DTYPES)
    s = _check_per_row("remaining", remaining, z)
    if not bool((s > 0).all()) or not bool(torch.isfinite(s).all()):
        raise ValueError("remaining (s) must be finite and > 0 in every row")
    resolve_backend(backend, z.device)
    return reference.posterior_mean(z, table, s)


def step(
    z: torch.Tensor,
    drift: torch.Tensor | None,
    table: SegmentTable,
    *,
    remaining: float,
    increment: float,
    seed: int,
    step_index: int,
    row_offset: int = 0,
    backend: str = "auto",
) -> torch.Tensor:
    """One Euler step z + db [(m(z, s) - z)/s + f] + sqrt(db) xi; returns the new state."""
    _check_matrix("z", z, table, _STATE_DTYPES)
    _check_drift(drift, z, table)
    s = _check_positive("remaining", remaining)
    db = _check_positive("increment", increment)
    if db > s * (1 + 1e-12):
        raise ValueError(f"increment ({db}) must not exceed remaining ({s})")
    _check_address(seed, step_index, row_offset)
    resolve_backend(backend, z.device)
    return reference.step(z, drift, table, s, db, seed, step_index, row_offset)


def final_step(
    z: torch.Tensor,
    drift: torch.Tensor | None,
    table: SegmentTable,
    *,
    remaining: float,
    seed: int,
    step_index: int,
    row_offset: int = 0,
    final: str = "exact",
    backend: str = "auto",
) -> torch.Tensor:
    """The exact last step (or ``final="project"``); every output row lies in the domain."""
    _check_matrix("z", z, table, _STATE_DTYPES)
    _check_drift(drift, z, table)
    s = _check_positive("remaining", remaining)
    _check_address(seed, step_index, row_offset)
    if final not in ("exact", "project"):
        raise ValueError(f"final must be 'exact' or 'project', got {final!r}")
    resolve_backend(backend, z.device)
    return reference.final_step(z, drift, table, s, seed, step_index, row_offset, final)


def bridge_target(
    x: torch.Tensor,
    table: SegmentTable,
    *,
    mean_scale,
    noise_scale,
    remaining,
    seed: int,
    step_index: int = 0,
    row_offset: int = 0,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Z_t = c x + sigma_t eps and the target (x - m(Z_t, s)) / s, with per-row (or scalar) c, sigma_t, s."""
    _check_matrix("x", x, table, _STATE_DTYPES)
    c = _check_per_row("mean_scale", mean_scale, x)
    sigma = _check_per_row("noise_scale", noise_scale, x)
    s = _check_per_row("remaining", remaining, x)
    if not bool((s > 0).all()) or not bool(torch.isfinite(s).all()):
        raise ValueError("remaining (s) must be finite and > 0 in every row")
    _check_address(seed, step_index, row_offset)
    resolve_backend(backend, x.device)
    return reference.bridge_target(x, table, c, sigma, s, seed, step_index, row_offset)
