"""The fused C++ CPU kernels (csrc/cpu, extension ``omegabridge._native_ext``) behind torch tensors.

The extension takes raw addresses of contiguous buffers, releases the GIL and runs on
``torch.get_num_threads()`` OpenMP threads; the drift and the data may be float32 or bfloat16
(widened on load). The layout of a segment table is preprocessed once and cached on the table.

Example:
    >>> import torch, omegabridge as ob
    >>> from omegabridge.ops.backends import cpu
    >>> table = ob.HalfLine(low=0.0).segment_table()
    >>> if cpu.is_available():
    ...     m = cpu.BACKEND.posterior_mean(torch.tensor([[-3.0], [2.0]]), table, torch.ones(2, 1))
    ...     assert bool((m >= 0).all())
"""

from __future__ import annotations

import torch

from omegabridge.core.noise import NoiseAddress
from omegabridge.core.segments import SegmentTable
from omegabridge.ops import native
from omegabridge.ops.backends.fused import FusedBackend

__all__ = ["BACKEND", "CpuBackend", "is_available", "unavailable_reason", "layout"]


def is_available() -> bool:
    """Whether the compiled CPU kernels can run here."""
    return native.is_available()


def unavailable_reason() -> str:
    """Why the CPU kernels cannot run ("" when they can)."""
    return native.unavailable_reason()


def layout(table: SegmentTable):
    """The table preprocessed for the kernels (``_native_ext.Layout``), built once per table."""
    cached = table.__dict__.get("_native_layout")
    if cached is None:
        cached = native.make_layout(native.load(), table)
        table.__dict__["_native_layout"] = cached
    return cached


def _address(tensor) -> int:
    return 0 if tensor is None else tensor.data_ptr()


class CpuBackend(FusedBackend):
    """The C++ kernels on CPU tensors."""

    name = "cpu"
    storage = {torch.float32: 0, torch.bfloat16: 1}

    def device_reason(self, device: torch.device) -> str:
        if not is_available():
            return unavailable_reason()
        if device.type != "cpu":
            return f"runs on CPU tensors, but the data is on {device}"
        return ""

    def _drift_storage(self, drift) -> int:
        return 0 if drift is None else self.storage[drift.dtype]

    def launch_mean(self, table, z, remaining_rows, out) -> None:
        native.load().posterior_mean(layout(table), z.data_ptr(), remaining_rows.data_ptr(), out.data_ptr(), z.shape[0],
                                     torch.get_num_threads())

    def launch_step(self, table, z, drift, out, remaining, increment, address: NoiseAddress) -> None:
        native.load().step(
            layout(table), z.data_ptr(), _address(drift), self._drift_storage(drift), out.data_ptr(), z.shape[0],
            remaining, increment, address.seed, address.step_index, address.row_offset, torch.get_num_threads(),
        )

    def launch_bridge_step(self, table, z, drift, previous, out, prediction, remaining, fraction, weight, spread,
                           address: NoiseAddress) -> None:
        native.load().bridge_step(
            layout(table), z.data_ptr(), _address(drift), self._drift_storage(drift), _address(previous), out.data_ptr(),
            prediction.data_ptr(), z.shape[0], remaining, fraction, weight, spread.data_ptr(), address.seed,
            address.step_index, address.row_offset, torch.get_num_threads(),
        )

    def launch_final(self, table, z, drift, out, remaining, address: NoiseAddress) -> None:
        native.load().final_step(
            layout(table), z.data_ptr(), _address(drift), self._drift_storage(drift), out.data_ptr(), z.shape[0],
            remaining, address.seed, address.step_index, address.row_offset, torch.get_num_threads(),
        )

    def launch_target(self, table, x, mean_scale_rows, noise_scale_rows, remaining_rows, z_t, target,
                      address: NoiseAddress) -> None:
        native.load().bridge_target(
            layout(table), x.data_ptr(), self.storage[x.dtype], mean_scale_rows.data_ptr(), noise_scale_rows.data_ptr(),
            remaining_rows.data_ptr(), z_t.data_ptr(), target.data_ptr(), x.shape[0], address.seed, address.step_index,
            address.row_offset, torch.get_num_threads(),
        )


BACKEND = CpuBackend()
