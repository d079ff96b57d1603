"""Default drift models.

``DriftMLP`` is an MLP with a sinusoidal time embedding. It predicts the data
point E[X | Z_t = z] and returns the drift the sampler needs,
f = (x_hat - m(z, s)) / s, so its raw output lives on the scale of the data at
every time (the drift itself grows like 1/sqrt(s) near the end). The MLP's last
layer starts at zero and x_hat starts at m(z, s), so an untrained model is the
pure Omega-bridge (f = 0).

Example:
    >>> import torch, omegabridge as ob
    >>> bridge = ob.Bridge(ob.Product([ob.Lattice(0, 4), ob.Categorical(3)]), steps=20)
    >>> model = ob.models.DriftMLP(bridge, hidden=32)
    >>> model(torch.zeros(2, 4), torch.zeros(2)).abs().max().item()
    0.0
"""

from __future__ import annotations

import math

import torch
from torch import nn

from omegabridge import reference

__all__ = ["TimeEmbedding", "DriftMLP"]


class TimeEmbedding(nn.Module):
    """Sinusoidal features of t in [0, 1]: sin and cos at frequencies pi 2^0 .. pi 2^(features/2 - 1).

    >>> TimeEmbedding(8)(torch.zeros(3)).shape
    torch.Size([3, 8])
    """

    def __init__(self, features: int = 16):
        super().__init__()
        if features < 2 or features % 2:
            raise ValueError(f"features must be an even integer >= 2, got {features}")
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(features // 2, dtype=torch.float32))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.to(torch.float32)[:, None] * self.frequencies[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class DriftMLP(nn.Module):
    """Data-predicting MLP turned into a bridge drift: f(z, t) = (x_hat(z, t) - m(z, s(t))) / s(t).

    Args:
        bridge: the ``Bridge`` whose domain and schedule the model serves.
        hidden: width of the hidden layers. depth: number of hidden layers.
        time_features: size of the sinusoidal time embedding.

    Train it with ``bridge.loss(model, x, weight="remaining_squared")``: with this
    parametrisation that loss is || x_hat - x ||^2, on the data's own scale.

    >>> import omegabridge as ob
    >>> bridge = ob.Bridge(ob.Binary(), steps=10)
    >>> sum(p.numel() for p in DriftMLP(bridge, hidden=8, depth=1).parameters()) > 0
    True
    """

    def __init__(self, bridge, hidden: int = 256, depth: int = 3, time_features: int = 16):
        super().__init__()
        if depth < 1 or hidden < 1:
            raise ValueError(f"depth and hidden must be >= 1, got depth={depth}, hidden={hidden}")
        self.table = bridge.table
        self.bridge = bridge
        width = bridge.width
        self.time_embedding = TimeEmbedding(time_features)
        layers: list[nn.Module] = []
        size = width + time_features
        for _ in range(depth):
            layers += [nn.Linear(size, hidden), nn.SiLU()]
            size = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(size, width)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        # Inputs are standardised by the domain's natural scale (set once from the segment table).
        self.register_buffer("input_scale", _column_scale(bridge.table))

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        features = torch.cat([z.to(torch.float32) / self.input_scale, self.time_embedding(t)], dim=1)
        return self.head(self.body(features))


def _column_scale(table) -> torch.Tensor:
    """Per-column size of the domain (range for bounded factors, 1 otherwise)."""
    from omegabridge.domains import Kind

    scale = torch.ones(table.width)
    for segment in table.segments:
        if segment.kind in (Kind.INTERVAL, Kind.LATTICE):
            scale[segment.offset] = max(segment.high - segment.low, 1e-6) / 2.0
    return scale
