"""The fused C++ CPU kernels (csrc/cpu) behind torch tensors.

The dispatch layer has already checked shapes, dtypes and devices; this module makes the
buffers contiguous float32 (or bfloat16 for the drift and the data), allocates the outputs
and hands raw pointers to ``omegabridge._native_ext``, which releases the GIL and runs on
``torch.get_num_threads()`` OpenMP threads. The layout of a segment table is preprocessed
once and cached on the table.

Example:
    >>> import torch, omegabridge as ob
    >>> from omegabridge import cpu_backend
    >>> table = ob.HalfLine(low=0.0).segment_table()
    >>> if cpu_backend.is_available():
    ...     m = cpu_backend.posterior_mean(torch.tensor([[-3.0], [2.0]]), table, torch.ones(2, 1))
    ...     assert bool((m >= 0).all())
"""

from __future__ import annotations

import torch

from omegabridge import _native
from omegabridge.domains import SegmentTable

__all__ = ["is_available", "unavailable_reason", "layout", "posterior_mean", "step", "final_step", "bridge_target"]

_STORAGE = {torch.float32: 0, torch.bfloat16: 1}


def is_available() -> bool:
    """Whether the compiled CPU kernels can run here."""
    return _native.is_available()


def unavailable_reason() -> str:
    """Why the CPU kernels cannot run ("" when they can)."""
    return _native.unavailable_reason()


def layout(table: SegmentTable):
    """The table preprocessed for the kernels (``_native_ext.Layout``), built once per table."""
    cached = table.__dict__.get("_native_layout")
    if cached is None:
        ext = _native.load()
        tensors = table.as_tensors()
        kinds = tensors["kinds"].to(torch.int32).contiguous()
        offsets = tensors["offsets"].to(torch.int64).contiguous()
        widths = tensors["widths"].to(torch.int64).contiguous()
        points = tensors["points"].to(torch.int64).contiguous()
        repeats = tensors["repeats"].to(torch.int64).contiguous()
        parameters = tensors["parameters"].to(torch.float64).contiguous()
        cached = ext.make_layout(
            kinds.numel(), kinds.data_ptr(), offsets.data_ptr(), widths.data_ptr(), points.data_ptr(),
            repeats.data_ptr(), parameters.data_ptr()
        )
        table.__dict__["_native_layout"] = cached
    return cached


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.float32).contiguous()


def _reduced(tensor: torch.Tensor) -> torch.Tensor:
    """float32 or bfloat16 as given (the kernels widen bfloat16 on load); anything else to float32."""
    return tensor.contiguous() if tensor.dtype in _STORAGE else tensor.to(torch.float32).contiguous()


def _per_row(value: torch.Tensor, rows: int) -> torch.Tensor:
    return _float32(value.reshape(-1).expand(rows) if value.numel() == 1 else value.reshape(rows))


def posterior_mean(z: torch.Tensor, table: SegmentTable, remaining: torch.Tensor) -> torch.Tensor:
    """m(z, s) for float32 z (rows, width) and per-row s (rows, 1)."""
    z = _float32(z)
    s = _per_row(remaining, z.shape[0])
    out = torch.empty_like(z)
    _native.load().posterior_mean(layout(table), z.data_ptr(), s.data_ptr(), out.data_ptr(), z.shape[0], torch.get_num_threads())
    return out


def _drift(drift):
    if drift is None:
        return None, 0, 0
    drift = _reduced(drift)
    return drift, drift.data_ptr(), _STORAGE[drift.dtype]


def step(z, drift, table, remaining: float, increment: float, seed: int, step_index: int, row_offset: int, out=None):
    """One Euler step (see dispatch.step); ``out`` may be ``z`` itself (in place)."""
    z = _float32(z)
    drift, drift_address, storage = _drift(drift)
    out = torch.empty_like(z) if out is None else out
    _native.load().step(
        layout(table), z.data_ptr(), drift_address, storage, out.data_ptr(), z.shape[0],
        float(remaining), float(increment), seed, step_index, row_offset, torch.get_num_threads(),
    )
    return out


def final_step(z, drift, table, remaining: float, seed: int, step_index: int, row_offset: int):
    """The exact last step (see dispatch.final_step)."""
    z = _float32(z)
    drift, drift_address, storage = _drift(drift)
    out = torch.empty_like(z)
    _native.load().final_step(
        layout(table), z.data_ptr(), drift_address, storage, out.data_ptr(), z.shape[0],
        float(remaining), seed, step_index, row_offset, torch.get_num_threads(),
    )
    return out


def bridge_target(x, table, mean_scale, noise_scale, remaining, seed: int, step_index: int, row_offset: int, out=None):
    """Z_t and the regression target (see dispatch.bridge_target), float32 outputs (into ``out`` if given)."""
    x = _reduced(x)
    rows = x.shape[0]
    c, sigma, s = (_per_row(v, rows) for v in (mean_scale, noise_scale, remaining))
    if out is None:
        z_t = torch.empty(x.shape, dtype=torch.float32)
        target = torch.empty(x.shape, dtype=torch.float32)
    else:
        z_t, target = out
    _native.load().bridge_target(
        layout(table), x.data_ptr(), _STORAGE[x.dtype], c.data_ptr(), sigma.data_ptr(), s.data_ptr(),
        z_t.data_ptr(), target.data_ptr(), rows, seed, step_index, row_offset, torch.get_num_threads(),
    )
    return z_t, target
