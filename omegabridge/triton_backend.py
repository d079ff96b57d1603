"""The fused Triton kernels (package ``kernels``, installed as ``omegabridge.kernels``) behind torch tensors.

The dispatch layer has already checked shapes, dtypes and devices; this module prepares the
buffers (rows may keep any stride as long as columns are contiguous; f and x stay in float32,
bfloat16 or float16 and are widened on load), allocates the outputs and launches one kernel per
call. The layout's work items are built once per (table, device) and cached on the table.

On a machine without a GPU the kernels run under Triton's interpreter when
``TRITON_INTERPRET=1`` was set before triton was imported (that is how the test suite runs
them on CPU tensors); it is exact but slow, so ``backend="auto"`` never picks it.

Example:
    >>> import torch, omegabridge as ob
    >>> from omegabridge import triton_backend
    >>> table = ob.HalfLine(low=0.0).segment_table()
    >>> if triton_backend.is_available(torch.device("cuda" if torch.cuda.is_available() else "cpu")):
    ...     z = torch.tensor([[-3.0], [2.0]], device="cuda" if torch.cuda.is_available() else "cpu")
    ...     m = triton_backend.posterior_mean(z, table, torch.ones(2, 1, device=z.device))
    ...     assert bool((m >= 0).all())
"""

from __future__ import annotations

import os

import torch

from omegabridge import kernels
from omegabridge.domains import SegmentTable
from omegabridge.errors import BackendUnavailableError

__all__ = ["is_available", "unavailable_reason", "interpreting", "posterior_mean", "step", "final_step", "bridge_target"]

_REDUCED = (torch.float32, torch.bfloat16, torch.float16)


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def unavailable_reason(device: torch.device) -> str:
    """Why the Triton kernels cannot run on ``device`` ("" when they can)."""
    reason = kernels.unavailable_reason()
    if reason:
        return reason
    if device.type == "cuda":
        return ""
    if device.type == "cpu":
        if interpreting():
            return ""
        return "Triton kernels run on CUDA tensors (on CPU only under TRITON_INTERPRET=1, for testing)"
    return f"Triton kernels do not run on {device.type} tensors"


def is_available(device: torch.device) -> bool:
    """Whether the Triton kernels can run on ``device``."""
    return unavailable_reason(torch.device(device)) == ""


def _plan(table: SegmentTable, device: torch.device):
    from omegabridge.kernels.plan import build_plan

    return build_plan(table, device)


def _rows_contiguous_columns(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor itself when its columns are contiguous (any row stride), else a contiguous copy."""
    return tensor if tensor.shape[1] <= 1 or tensor.stride(1) == 1 else tensor.contiguous()


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    return _rows_contiguous_columns(tensor if tensor.dtype == torch.float32 else tensor.to(torch.float32))


def _reduced(tensor: torch.Tensor) -> torch.Tensor:
    """float32, bfloat16 or float16 as given (widened on load); anything else to float32."""
    return _rows_contiguous_columns(tensor if tensor.dtype in _REDUCED else tensor.to(torch.float32))


def _per_row(value: torch.Tensor, rows: int) -> torch.Tensor:
    value = value.to(torch.float32)
    return (value.reshape(-1).expand(rows) if value.numel() == 1 else value.reshape(rows)).contiguous()


def _output(like: torch.Tensor, out) -> torch.Tensor:
    if out is None:
        return torch.empty(like.shape, dtype=torch.float32, device=like.device)
    return out


def posterior_mean(z: torch.Tensor, table: SegmentTable, remaining: torch.Tensor) -> torch.Tensor:
    """m(z, s) for float32 z (rows, width) and per-row s (rows, 1)."""
    from omegabridge.kernels import bridge

    z = _float32(z)
    s = _per_row(remaining, z.shape[0])
    out = _output(z, None)
    bridge.launch(bridge.MEAN.value, _plan(table, z.device), z, None, out, None, s, s, s, 1.0, 1.0, 0, 0, 0)
    return out


def step(z, drift, table, remaining: float, increment: float, seed: int, step_index: int, row_offset: int, out=None):
    """One Euler step (see dispatch.step); ``out`` may be ``z`` itself (in place)."""
    from omegabridge.kernels import bridge

    z = _float32(z)
    drift = None if drift is None else _reduced(drift)
    out = _output(z, out)
    plan = _plan(table, z.device)
    bridge.launch(bridge.STEP.value, plan, z, drift, out, None, plan.quadrature, plan.quadrature, plan.quadrature,
                  remaining, increment, seed, step_index, row_offset)
    return out


def final_step(z, drift, table, remaining: float, seed: int, step_index: int, row_offset: int):
    """The exact last step (see dispatch.final_step)."""
    from omegabridge.kernels import final_step as final

    plan = _plan(table, z.device)
    if plan.wide_sphere:
        raise BackendUnavailableError(
            f"backend='triton': the exact last step of a sphere wider than 1021 dimensions is not implemented "
            f"({plan.wide_sphere}); use backend='reference' or 'cpu'"
        )
    z = _float32(z)
    drift = None if drift is None else _reduced(drift)
    out = _output(z, None)
    final.launch(plan, z, drift, out, remaining, seed, step_index, row_offset)
    return out


def bridge_target(x, table, mean_scale, noise_scale, remaining, seed: int, step_index: int, row_offset: int, out=None):
    """Z_t and the regression target (see dispatch.bridge_target), float32 outputs (into ``out`` if given)."""
    from omegabridge.kernels import bridge

    x = _reduced(x)
    rows = x.shape[0]
    c, sigma, s = (_per_row(v, rows) for v in (mean_scale, noise_scale, remaining))
    z_t, target = (_output(x, None), _output(x, None)) if out is None else out
    bridge.launch(bridge.TARGET.value, _plan(table, x.device), x, None, z_t, target, s, c, sigma, 1.0, 1.0, seed, step_index, row_offset)
    return z_t, target
