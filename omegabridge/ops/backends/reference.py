"""The torch reference (``omegabridge.reference``) as a backend: any device, float32 or float64 state.

It calls the reference through the package's attributes (``reference.step``), so a test that
replaces one of them reaches every sampler that runs on this backend.

Example:
    >>> import torch, omegabridge as ob
    >>> from omegabridge.ops.backends import reference
    >>> m = reference.BACKEND.posterior_mean(torch.zeros(1, 3, dtype=torch.float64), ob.Categorical(3).segment_table(), torch.ones(1, 1))
    >>> m.dtype
    torch.float64
"""

from __future__ import annotations

import torch

from omegabridge import reference
from omegabridge.core.noise import NoiseAddress
from omegabridge.core.segments import SegmentTable

__all__ = ["BACKEND", "ReferenceBackend", "STATE_DTYPES"]

STATE_DTYPES = (torch.float32, torch.float64)


class ReferenceBackend:
    """Plain torch on any device; the state keeps its dtype (float32 or float64)."""

    name = "reference"

    def unavailable_reason(self, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
        return ""

    def posterior_mean(self, z: torch.Tensor, table: SegmentTable, remaining: torch.Tensor) -> torch.Tensor:
        return reference.posterior_mean(z, table, remaining.to(z.dtype))

    def step(self, z, drift, table: SegmentTable, remaining: float, increment: float, address: NoiseAddress,
             out: torch.Tensor | None = None) -> torch.Tensor:
        result = reference.step(z, drift, table, remaining, increment, address.seed, address.step_index, address.row_offset)
        return result if out is None else out.copy_(result)

    def bridge_step(self, z, drift, previous, table: SegmentTable, remaining: float, fraction: float, weight: float,
                    spread: torch.Tensor, address: NoiseAddress, out: torch.Tensor, prediction: torch.Tensor) -> None:
        state, predicted = reference.bridge_step(z, drift, previous, table, remaining, fraction, weight, spread, address.seed,
                                                 address.step_index, address.row_offset)
        prediction.copy_(predicted)
        out.copy_(state)

    def final_step(self, z, drift, table: SegmentTable, remaining: float, address: NoiseAddress,
                   final: str = "exact", out: torch.Tensor | None = None) -> torch.Tensor:
        result = reference.final_step(z, drift, table, remaining, address.seed, address.step_index, address.row_offset,
                                      final)
        return result if out is None else out.copy_(result)

    def bridge_target(self, x, table: SegmentTable, mean_scale, noise_scale, remaining, address: NoiseAddress,
                      out: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = x if x.dtype in STATE_DTYPES else x.to(torch.float32)
        z_t, target = reference.bridge_target(x, table, mean_scale.to(x.dtype), noise_scale.to(x.dtype),
                                              remaining.to(x.dtype), address.seed, address.step_index, address.row_offset)
        if out is None:
            return z_t, target
        out[0].copy_(z_t)
        out[1].copy_(target)
        return out[0], out[1]


BACKEND = ReferenceBackend()
