"""Default drift models.

``DriftMLP`` predicts the data point, x_hat(z, t) ~ E[X | Z_t = z], and returns
the drift the sampler needs, f = (x_hat - m(z, s)) / s (bridge-math.md
section 4), with s = s(t) the variance still to come. The MLP sees the state
standardised by the law of Z_t, the bridge's own posterior mean m(z, s) and
smooth functions of s(t); its last layer starts at zero, so an untrained model
is the pure Omega-bridge (f = 0).

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

from omegabridge import dispatch
from omegabridge.domains import Kind

__all__ = ["TimeEmbedding", "BridgeDrift", "DriftMLP", "DriftUNet", "DriftSetNetwork", "for_domain"]


class TimeEmbedding(nn.Module):
    """Sinusoidal features of t in [0, 1]: sin and cos at frequencies pi 2^0 .. pi 2^(features/2 - 1).

    ``DriftMLP`` does not use it (its time features are smooth functions of s(t):
    on a lattice + categorical toy, adding these sinusoids raised the sample's
    lattice TV from about 0.03 to 0.1); it is kept for custom models.

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


class BridgeDrift(nn.Module):
    """Base of the default models: predict the data point, return the bridge drift f = (x_hat - m) / s.

    It computes what every default model sees (see ``DriftMLP``): the state standardised by
    the law of Z_t, the posterior mean m(z, s) standardised by the data's moments, and three
    smooth time features; a subclass's ``predict`` maps them to h, and x_hat = m + sigma h.
    With ``predict`` zero at initialisation the model is the pure Omega-bridge (f = 0).
    """

    def __init__(self, bridge, data: torch.Tensor | None = None):
        super().__init__()
        self.bridge = bridge
        self.table = bridge.table
        self._beta_end = float(bridge.time_grid.beta_end)
        self._start_variance = float(bridge.start_std) ** 2
        mean, std = _domain_moments(bridge.table)
        if data is not None:
            data = bridge.check_data(data, name="data")
            # A column that is constant in the data keeps a floor from the domain's own scale,
            # so the features (m - mu) / sigma stay bounded.
            mean, std = data.mean(dim=0), torch.maximum(data.std(dim=0, unbiased=False), 1e-2 * std)
        self.register_buffer("data_mean", mean.to(torch.float32))
        self.register_buffer("data_std", std.to(torch.float32))

    def inputs(self, z: torch.Tensor, t: torch.Tensor):
        """(standardised z, standardised m, time features (n, 3), s (n, 1)) for states z and times t."""
        z = z.to(torch.float32)
        # Schedule quantities in float64 (s is a small difference of large numbers late in time).
        s = self.bridge.remaining_at(t.detach().to(torch.float64)).clamp_min(1e-12 * self._beta_end)
        beta = self._beta_end - s
        c = beta / self._beta_end
        v = beta * s / self._beta_end + (s / self._beta_end) ** 2 * self._start_variance
        scale = torch.sqrt(c[:, None] ** 2 * self.data_std.to(torch.float64) ** 2 + v[:, None]).clamp_min(1e-6)
        s = s.to(torch.float32)[:, None]
        c = c.to(torch.float32)[:, None]
        with torch.no_grad():
            m = dispatch.posterior_mean(z.detach(), self.table, s)  # the fused kernel on CPU float32
        time_features = torch.cat([torch.log(s / self._beta_end) / 4.0, c, torch.sqrt(s / self._beta_end)], dim=1)
        return (z - c * self.data_mean) / scale.to(torch.float32), (m - self.data_mean) / self.data_std, time_features, s

    def predict(self, z: torch.Tensor, m: torch.Tensor, time_features: torch.Tensor) -> torch.Tensor:
        """h, of z's shape, from the standardised inputs (subclasses)."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        z, m, time_features, s = self.inputs(z, t)
        # x_hat - m = sigma h, so f = sigma h / s.
        return self.data_std * self.predict(z, m, time_features) / s


class DriftMLP(BridgeDrift):
    """Data-predicting MLP turned into a bridge drift: f(z, t) = (x_hat(z, t) - m(z, s(t))) / s(t).

    Inputs of the MLP (3 + 2 x width of them):

    - z standardised by the law of Z_t under the bridge: Z_t = c x + sqrt(v) eps with
      c = beta(t) / beta(T) and v = beta(t) s / beta(T) (+ the random-start term), so
      (z - c mu) / sqrt(c^2 sigma^2 + v) has mean 0 and sd 1 if X has mean mu and sd sigma;
    - m(z, s), the bridge's posterior mean (the best guess of x under a flat prior:
      on a lattice it is the rounded state late in time), as (m - mu) / sigma;
    - log(s / beta(T)) / 4, c and sqrt(s / beta(T)): smooth in t, unlike sinusoids.

    Output: x_hat = m + sigma * h (h the MLP's output, zero at initialisation), so h
    stays on the data's scale at every time while f = sigma h / s grows as s -> 0.

    Train it with ``fit`` (or ``bridge.loss``) using ``weight="remaining"``: with lambda = s
    the loss approximates, for exponential schedules, the path-space KL divergence the
    sampler's error is governed by. ``"remaining_squared"`` (plain x-prediction MSE)
    underweights the late steps where lattice and category values are settled, and
    samples come out visibly worse (lattice TV about 0.24 instead of 0.03 on a toy).

    Args:
        bridge: the ``Bridge`` whose domain and schedule the model serves.
        hidden: width of the hidden layers (width matters: 128 fits a two-mode lattice
            much worse than 256 for the same number of steps).
        depth: number of hidden layers.
        data: optional rows of data; when given, mu and sigma are their per-column mean
            and standard deviation. Otherwise they come from the domain: the uniform law
            on an interval or lattice, 1/K and sqrt((1/K)(1 - 1/K)) on a categorical
            group, mean 0 and sd 1 on the real line (useful to pass ``data`` there).

    >>> import omegabridge as ob
    >>> bridge = ob.Bridge(ob.Binary(), steps=10)
    >>> sum(p.numel() for p in DriftMLP(bridge, hidden=8, depth=1).parameters()) > 0
    True
    """

    def __init__(self, bridge, hidden: int = 256, depth: int = 3, data: torch.Tensor | None = None):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be an integer >= 1, got {hidden!r}")
        super().__init__(bridge, data)
        width = bridge.width
        layers: list[nn.Module] = []
        size = 2 * width + 3
        for _ in range(depth):
            layers += [nn.Linear(size, hidden), nn.SiLU()]
            size = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(size, width)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def predict(self, z: torch.Tensor, m: torch.Tensor, time_features: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.cat([z, m, time_features], dim=1)))


def for_domain(bridge, data: torch.Tensor | None = None, **options) -> BridgeDrift:
    """The default drift model for ``bridge``'s domain: a ``DriftUNet`` when the domain holds an image
    field (C, H, W) or a categorical map (H, W), a ``DriftSetNetwork`` for a point field (P, D <= 4),
    else a ``DriftMLP``; ``options`` go to that class. (It takes the bridge, not the bare domain:
    a default model also needs the schedule, whose s(t) scales its inputs and outputs.)

    >>> import omegabridge as ob
    >>> type(for_domain(ob.Bridge(ob.Lattice(0, 63, shape=(512, 3)), steps=10))).__name__
    'DriftSetNetwork'
    >>> type(for_domain(ob.Bridge(ob.Product([ob.Real(), ob.Categorical(3)]), steps=10))).__name__
    'DriftMLP'
    """
    from omegabridge.field_models import DriftSetNetwork, DriftUNet, find_field

    if find_field(bridge.domain, "image") is not None:
        return DriftUNet(bridge, data=data, **options)
    if find_field(bridge.domain, "points") is not None:
        return DriftSetNetwork(bridge, data=data, **options)
    return DriftMLP(bridge, data=data, **options)


def __getattr__(name: str):
    # The field models live in their own module, which imports this one.
    if name in ("DriftUNet", "DriftSetNetwork"):
        from omegabridge import field_models

        return getattr(field_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _domain_moments(table) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and sd of a default law on each factor (uniform where the factor is bounded)."""
    mean = torch.zeros(table.width, dtype=torch.float64)
    std = torch.ones(table.width, dtype=torch.float64)
    for segment in table.segments:
        columns = slice(segment.offset, segment.offset + segment.columns)  # every element of a field
        if segment.kind in (Kind.INTERVAL, Kind.LATTICE):
            mean[columns] = 0.5 * (segment.low + segment.high)
            std[columns] = max((segment.high - segment.low) / math.sqrt(12.0), 1e-3)
        elif segment.kind == Kind.BINARY:
            mean[columns], std[columns] = 0.5, 0.5
        elif segment.kind == Kind.HALFLINE_LOWER:
            mean[columns] = segment.low + 1.0  # an Exp(1) law from the end point
        elif segment.kind == Kind.HALFLINE_UPPER:
            mean[columns] = segment.high - 1.0
        elif segment.kind == Kind.CATEGORICAL:
            k = segment.width
            mean[columns], std[columns] = 1.0 / k, math.sqrt((1.0 / k) * (1.0 - 1.0 / k))
        elif segment.kind == Kind.SPHERE:
            std[columns] = 1.0 / math.sqrt(segment.width)
    return mean, std
