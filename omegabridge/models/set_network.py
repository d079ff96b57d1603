"""``DriftSetNetwork``: a permutation-equivariant drift model for point fields (P, D), D <= 4.

DeepSets layers: each point sees itself and the mean over all points. A ``BridgeDrift`` like
``DriftMLP`` (data prediction, zero-initialised outputs).

Example:
    >>> import torch, omegabridge as ob
    >>> model = DriftSetNetwork(ob.Bridge(ob.Lattice(0, 63, shape=(16, 3)), steps=10), hidden=8)
    >>> model(torch.zeros(2, 48), torch.zeros(2)).shape
    torch.Size([2, 48])
"""

from __future__ import annotations

import torch
from torch import nn

from omegabridge.models.base import BridgeDrift
from omegabridge.models.field_layout import Conditioning, FieldModel, zero_initialised

__all__ = ["DriftSetNetwork"]


class DriftSetNetwork(FieldModel, BridgeDrift):
    """A permutation-equivariant network over a point field (P, D); see the module docstring.

    Args:
        bridge: the ``Bridge``; its domain must hold a point field (``find_field``).
        hidden: features per point; ``depth``: DeepSets layers.
        data: rows of data for the input and output scales (as ``DriftMLP``).
    """

    def __init__(self, bridge, hidden: int = 128, depth: int = 3, data: torch.Tensor | None = None):
        super().__init__(bridge, data)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        self._locate(bridge, "points")
        dimension = self.field.shape[1]
        if data is not None:  # one scale per coordinate, shared by all points: per-point moments would break the symmetry
            columns = slice(self.field_offset, self.field_offset + self.field.width)
            for name in ("data_mean", "data_std"):
                values = getattr(self, name)[columns].reshape(-1, dimension)
                pooled = values.mean(dim=0) if name == "data_mean" else values.pow(2).mean(dim=0).sqrt()
                getattr(self, name)[columns] = pooled.repeat(values.shape[0])
        other = len(self.other_columns)
        self.conditioning = Conditioning(other, hidden)
        self.embed = nn.Linear(2 * dimension + hidden, hidden)
        self.layers = nn.ModuleList(nn.Linear(2 * hidden, hidden) for _ in range(depth))
        self.out = zero_initialised(nn.Linear(hidden, dimension))
        self.other_head = zero_initialised(nn.Linear(2 * hidden, other)) if other else None

    def predict(self, z, m, time_features):
        (z_field, z_other), (m_field, m_other) = self._split(z), self._split(m)
        embedding = self.conditioning(time_features, z_other, m_other)
        points = z_field.shape[1]
        x = nn.functional.silu(self.embed(torch.cat([z_field, m_field, embedding[:, None, :].expand(-1, points, -1)], dim=2)))
        for layer in self.layers:
            pooled = x.mean(dim=1, keepdim=True).expand(-1, points, -1)
            x = x + nn.functional.silu(layer(torch.cat([x, pooled], dim=2)))
        out = self.out(x)
        other = (self.other_head(torch.cat([x.mean(dim=1), embedding], dim=1)) if self.other_head is not None
                 else z_other)
        return self._assemble(out, other)
