"""The glue every fused backend shares, written once: buffers in the layout the kernels take, outputs,
per-row scalars, and the rules for writing into a caller's ``out``.

A fused backend (``cpu``, ``cuda``, ``triton``) subclasses ``FusedBackend`` and supplies only its
availability check and five raw launches (``launch_mean``, ``launch_step``, ``launch_bridge_step``,
``launch_final``, ``launch_target``), each given buffers that are already float32 (the state, the outputs, one value
per row) or in a storage dtype the kernels widen on load (the drift, the data). The validation
layer (``omegabridge.ops.functional``) has checked shapes, dtypes and devices before any of this runs.

Example:
    >>> import torch
    >>> from omegabridge.ops.backends import fused
    >>> fused.shares_storage(torch.zeros(3), torch.zeros(3))
    False
"""

from __future__ import annotations

import torch

from omegabridge.core.noise import NoiseAddress
from omegabridge.core.segments import SegmentTable

__all__ = ["FusedBackend", "shares_storage", "overlaps_elsewhere", "columns_contiguous", "dtype_name"]


def shares_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` live in the same storage."""
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def overlaps_elsewhere(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` share storage at different offsets (the same memory is fine in place)."""
    return shares_storage(a, b) and a.data_ptr() != b.data_ptr()


def columns_contiguous(tensor: torch.Tensor) -> bool:
    """Columns adjacent in memory (rows may have any stride): what the Triton kernels address directly."""
    return tensor.shape[1] <= 1 or tensor.stride(1) == 1


def dtype_name(dtype: torch.dtype) -> str:
    """'float32' for torch.float32: how error messages name a dtype."""
    return str(dtype).replace("torch.", "")


class FusedBackend:
    """A backend whose kernels keep the state in float32 and read every element once per op.

    Subclasses set ``name``, ``storage`` (the input dtypes the kernels widen on load, each with the
    code its extension takes), ``row_strided`` (True where the kernels take any row stride as long as
    columns are contiguous) and implement ``device_reason`` and the four launches.
    """

    name = ""
    storage: dict[torch.dtype, int] = {torch.float32: 0}
    row_strided = False

    # --- availability ------------------------------------------------------------------------
    def device_reason(self, device: torch.device) -> str:
        """Why the kernels cannot run on ``device`` ("" when they can)."""
        raise NotImplementedError

    def unavailable_reason(self, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
        """Why the op cannot run on ``device`` with state ``dtype`` ("" when it can)."""
        reason = self.device_reason(torch.device(device))
        if reason:
            return reason
        if dtype != torch.float32:
            return f"keeps the state in float32, got {dtype_name(dtype)}; use backend='reference' for float64"
        return ""

    # --- buffers -----------------------------------------------------------------------------
    def addressable(self, tensor: torch.Tensor) -> bool:
        """Whether the kernels can read or write ``tensor`` where it is."""
        return columns_contiguous(tensor) if self.row_strided else tensor.is_contiguous()

    def _laid_out(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor if self.addressable(tensor) else tensor.contiguous()

    def state(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` as float32 the kernels can address (a copy only where needed)."""
        return self._laid_out(tensor if tensor.dtype == torch.float32 else tensor.to(torch.float32))

    def stored(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` in a storage dtype the kernels widen on load (float32 otherwise), addressable."""
        return self._laid_out(tensor if tensor.dtype in self.storage else tensor.to(torch.float32))

    @staticmethod
    def per_row(value: torch.Tensor, rows: int) -> torch.Tensor:
        """A scalar or one value per row as a contiguous float32 vector of ``rows`` values."""
        value = value.to(torch.float32)
        return (value.reshape(-1).expand(rows) if value.numel() == 1 else value.reshape(rows)).contiguous()

    @staticmethod
    def output(like: torch.Tensor) -> torch.Tensor:
        """A new float32 tensor of ``like``'s shape on its device."""
        return torch.empty(like.shape, dtype=torch.float32, device=like.device)

    # --- raw launches (subclasses) --------------------------------------------------------------
    def launch_mean(self, table: SegmentTable, z, remaining_rows, out) -> None:
        raise NotImplementedError

    def launch_step(self, table: SegmentTable, z, drift, out, remaining: float, increment: float,
                    address: NoiseAddress) -> None:
        raise NotImplementedError

    def launch_bridge_step(self, table: SegmentTable, z, drift, previous, out, prediction, remaining: float,
                           fraction: float, weight: float, spread, address: NoiseAddress) -> None:
        raise NotImplementedError

    def launch_final(self, table: SegmentTable, z, drift, out, remaining: float, address: NoiseAddress) -> None:
        raise NotImplementedError

    def launch_target(self, table: SegmentTable, x, mean_scale_rows, noise_scale_rows, remaining_rows, z_t, target,
                      address: NoiseAddress) -> None:
        raise NotImplementedError

    # --- the ops -------------------------------------------------------------------------------
    def posterior_mean(self, z: torch.Tensor, table: SegmentTable, remaining: torch.Tensor) -> torch.Tensor:
        """m(z, s) for float32 z (rows, width) and per-row s."""
        z = self.state(z)
        out = self.output(z)
        self.launch_mean(table, z, self.per_row(remaining, z.shape[0]), out)
        return out

    def step(self, z, drift, table: SegmentTable, remaining: float, increment: float, address: NoiseAddress,
             out: torch.Tensor | None = None) -> torch.Tensor:
        """One Euler step; ``out`` (optional, may be ``z`` itself) receives it and is returned."""
        if out is not None and drift is not None and overlaps_elsewhere(drift, out):
            drift = drift.clone()  # the kernel reads f[i] and writes out[i] element by element
        direct = out is not None and self.addressable(out) and self.addressable(z) and not overlaps_elsewhere(z, out)
        z = self.state(z)
        drift = None if drift is None else self.stored(drift)
        result = out if direct else self.output(z)
        self.launch_step(table, z, drift, result, float(remaining), float(increment), address)
        if out is None or direct:
            return result
        return out.copy_(result)

    def bridge_step(self, z, drift, previous, table: SegmentTable, remaining: float, fraction: float, weight: float,
                    spread: torch.Tensor, address: NoiseAddress, out: torch.Tensor, prediction: torch.Tensor) -> None:
        """The bridge solver's step into ``out`` (may be ``z``) and x_hat into ``prediction`` (shares no input's memory)."""
        if drift is not None and overlaps_elsewhere(drift, out):
            drift = drift.clone()  # the kernel reads f[i] and writes out[i] element by element
        if previous is not None and overlaps_elsewhere(previous, out):
            previous = previous.clone()
        direct = self.addressable(out) and self.addressable(z) and not overlaps_elsewhere(z, out)
        z = self.state(z)
        drift = None if drift is None else self.stored(drift)
        previous = None if previous is None else self.state(previous)
        result = out if direct else self.output(z)
        predicted = prediction if self.addressable(prediction) else self.output(z)
        self.launch_bridge_step(table, z, drift, previous, result, predicted, float(remaining), float(fraction),
                                float(weight), spread.to(torch.float32).contiguous(), address)
        if predicted is not prediction:
            prediction.copy_(predicted)
        if result is not out:
            out.copy_(result)

    def final_step(self, z, drift, table: SegmentTable, remaining: float, address: NoiseAddress,
                   out: torch.Tensor | None = None) -> torch.Tensor:
        """The exact last step (into ``out`` when given); every output row lies in the domain."""
        # Straight into out only where it shares memory with neither input: a row's draw reads the
        # whole row (a categorical's K columns) after other rows of its tile were written.
        direct = (out is not None and self.addressable(out) and not shares_storage(out, z)
                  and (drift is None or not shares_storage(out, drift)))
        z = self.state(z)
        drift = None if drift is None else self.stored(drift)
        result = out if direct else self.output(z)
        self.launch_final(table, z, drift, result, float(remaining), address)
        if out is None or direct:
            return result
        return out.copy_(result)

    def bridge_target(self, x, table: SegmentTable, mean_scale, noise_scale, remaining, address: NoiseAddress,
                      out: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(Z_t, target) in float32, into ``out`` when given."""
        # Write straight into out only when no output shares memory with x or with the other output:
        # the kernels read x again after writing z_t.
        direct = (
            out is not None
            and all(self.addressable(t) for t in out)
            and not any(shares_storage(t, x) for t in out)
            and not shares_storage(out[0], out[1])
        )
        x = self.stored(x)
        rows = x.shape[0]
        z_t, target = out if direct else (self.output(x), self.output(x))
        self.launch_target(table, x, self.per_row(mean_scale, rows), self.per_row(noise_scale, rows),
                           self.per_row(remaining, rows), z_t, target, address)
        if out is None or direct:
            return z_t, target
        out[0].copy_(z_t)
        out[1].copy_(target)
        return out[0], out[1]
