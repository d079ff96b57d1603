"""The torch reference of the Euler step in beta-time (bridge-math.md section 3).

Example:
    >>> import torch, omegabridge as ob
    >>> step(torch.zeros(2, 1), None, ob.Interval(0.0, 1.0).segment_table(), 1.0, 0.1, seed=0, step_index=0).shape
    torch.Size([2, 1])
"""

from __future__ import annotations

import math

import torch

from omegabridge.core import noise
from omegabridge.core.segments import SegmentTable
from omegabridge.reference.posterior import posterior_mean

__all__ = ["step", "bridge_step"]


def step(
    z: torch.Tensor,
    drift: torch.Tensor | None,
    table: SegmentTable,
    remaining: float,
    increment: float,
    seed: int,
    step_index: int,
    row_offset: int = 0,
) -> torch.Tensor:
    """One Euler-Maruyama step in beta-time: z + db [(m(z, s) - z)/s + f] + sqrt(db) xi.

    xi is read from stream 0 of the shared Philox contract at (seed, step_index, row_offset + row, column).
    """
    xi = noise.normals(seed, step_index, row_offset, z.shape[0], z.shape[1], noise.STREAM_STEP, z.dtype, z.device)
    m = posterior_mean(z, table, remaining)
    velocity = (m - z) / remaining
    if drift is not None:
        velocity = velocity + drift.to(z.dtype)
    return z + increment * velocity + math.sqrt(increment) * xi


def bridge_step(
    z: torch.Tensor,
    drift: torch.Tensor | None,
    previous: torch.Tensor | None,
    table: SegmentTable,
    remaining: float,
    fraction: float,
    weight: float,
    spread: torch.Tensor,
    seed: int,
    step_index: int,
    row_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the ``"bridge"`` solver (omegabridge/solvers.py): returns (new state, x_hat).

    x_hat = m(z, s) + s f is the data prediction, x_hat' = x_hat + w (x_hat - previous) its multistep
    extrapolation (``previous`` None: x_hat' = x_hat), and the new state z + fraction (x_hat' - z)
    + spread xi, with ``spread`` one value per column and xi from stream 0 (as the Euler step's).
    """
    xi = noise.normals(seed, step_index, row_offset, z.shape[0], z.shape[1], noise.STREAM_STEP, z.dtype, z.device)
    prediction = posterior_mean(z, table, remaining)
    if drift is not None:
        prediction = prediction + remaining * drift.to(z.dtype)
    moved = prediction if previous is None else prediction + weight * (prediction - previous.to(z.dtype))
    return z + fraction * (moved - z) + spread.to(z.dtype) * xi, prediction
