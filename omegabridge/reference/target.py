"""The torch reference of the training target (bridge-math.md section 4): the x-bridge marginal Z_t and
the regression target (x - m(Z_t, s)) / s.

Example:
    >>> import torch, omegabridge as ob
    >>> z_t, y = bridge_target(torch.ones(2, 1), ob.Binary().segment_table(), 0.5, 0.5, 0.5, seed=0, step_index=0)
    >>> z_t.shape, y.shape
    (torch.Size([2, 1]), torch.Size([2, 1]))
"""

from __future__ import annotations

import torch

from omegabridge.core import noise
from omegabridge.core.segments import SegmentTable
from omegabridge.reference.posterior import posterior_mean

__all__ = ["bridge_target"]


def bridge_target(
    x: torch.Tensor,
    table: SegmentTable,
    mean_scale: torch.Tensor,
    noise_scale: torch.Tensor,
    remaining: torch.Tensor,
    seed: int,
    step_index: int = 0,
    row_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Z_t = c x + sigma_t eps and y = (x - m(Z_t, s)) / s, per-row c, sigma_t, s of shape (n, 1).

    eps comes from stream ``STREAM_TRAIN`` at (seed, step_index, row_offset + row, column).
    """
    eps = noise.normals(seed, step_index, row_offset, x.shape[0], x.shape[1], noise.STREAM_TRAIN, x.dtype, x.device)
    z_t = mean_scale * x + noise_scale * eps
    target = (x - posterior_mean(z_t, table, remaining)) / remaining
    return z_t, target
