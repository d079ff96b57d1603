"""What every default drift model shares: time features and ``BridgeDrift``, the data-predicting base.

A default model predicts the data point, x_hat(z, t) ~ E[X | Z_t = z], and returns the drift
the sampler needs, f = (x_hat - m(z, s)) / s (bridge-math.md section 4), with s = s(t) the
variance still to come. It sees the state standardised by the law of Z_t, the bridge's own
posterior mean m(z, s) and smooth functions of s(t); its last layer starts at zero, so an
untrained model is the pure Omega-bridge (f = 0).

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

from omegabridge import ops
from omegabridge.core.segments import Kind

__all__ = ["TimeEmbedding", "BridgeDrift", "domain_moments"]


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
        mean, std = domain_moments(bridge.table)
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
        c, v = self.state_law(s)
        scale = torch.sqrt(c[:, None] ** 2 * self.data_std.to(torch.float64) ** 2 + v[:, None]).clamp_min(1e-6)
        s = s.to(torch.float32)[:, None]
        c = c.to(torch.float32)[:, None]
        with torch.no_grad():
            m = ops.posterior_mean(z.detach(), self.table, s)  # the fused kernel on CPU float32
        time_features = torch.cat([torch.log(s / self._beta_end) / 4.0, c, torch.sqrt(s / self._beta_end)], dim=1)
        return (z - c * self.data_mean) / scale.to(torch.float32), (m - self.data_mean) / self.data_std, time_features, s

    def state_law(self, remaining: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(c, v) of Z_t = c X + sqrt(v) eps under the bridge at remaining variance s (float64): c = beta(t)/beta(T),
        v = beta(t) s / beta(T), plus the random start's (s / beta(T))^2 gamma^2."""
        beta = self._beta_end - remaining
        return beta / self._beta_end, beta * remaining / self._beta_end + (remaining / self._beta_end) ** 2 * self._start_variance

    def predict(self, z: torch.Tensor, m: torch.Tensor, time_features: torch.Tensor) -> torch.Tensor:
        """h, of z's shape, from the standardised inputs (subclasses)."""
        raise NotImplementedError

    #: The loss weight lambda(t) that ``Trainer`` and ``fit`` use for this model when given ``weight=None`` (their
    #: default): ``"remaining"`` (lambda = s) here; the mean-predicting field models take plain x-prediction MSE.
    loss_weight = "remaining"

    #: How the output h becomes x_hat - m: ``"data"`` (sigma_data h, at every time) or ``"preconditioned"``
    #: (``output_scale``: EDM's c_out, which shrinks with the state's noise late in time).
    output_scaling = "data"

    def output_scale(self, t: torch.Tensor) -> torch.Tensor:
        """Per row and column, what h = 1 stands for in x_hat - m: sigma_data, or, ``"preconditioned"``,
        sigma sigma_data / sqrt(sigma^2 + sigma_data^2) with sigma^2 = v / c^2 the state's noise in data
        units (Karras et al. 2022's c_out), so that late in time, where m is already close, an error in h
        moves x_hat by a fraction of the noise rather than of the data's spread (bench/results/field-models.md).

        >>> import omegabridge as ob
        >>> bridge = ob.Bridge(ob.Lattice(0, 16, shape=(1, 4, 4)), steps=10)
        >>> model = ob.models.DriftUNet(bridge, channels=(4,), output_scaling="preconditioned")
        >>> scale = model.output_scale(torch.tensor([0.0, 0.9]))
        >>> bool((scale[0] - model.data_std).abs().max() < 1e-3), bool((scale[1] < scale[0]).all())
        (True, True)
        """
        if self.output_scaling == "data":
            return self.data_std.expand(t.shape[0], -1)
        remaining = self.bridge.remaining_at(t.detach().to(torch.float64)).clamp_min(1e-12 * self._beta_end)
        # v / c^2 from state_law's terms, s beta(T) / beta + (s gamma / beta)^2: infinite at t = 0 (beta = 0, no
        # information in z), where the scale is sigma_data.
        beta = (self._beta_end - remaining)[:, None]
        noise = remaining[:, None] * self._beta_end / beta + (remaining[:, None] / beta) ** 2 * self._start_variance
        data = self.data_std.to(torch.float64)[None, :] ** 2
        scale = torch.sqrt(data * noise / (data + noise))
        return torch.where(beta <= 0, self.data_std.to(torch.float64)[None, :], scale).to(torch.float32)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        z, m, time_features, s = self.inputs(z, t)
        # x_hat - m = scale h, so f = scale h / s.
        return self.output_scale(t) * self.predict(z, m, time_features) / s


def domain_moments(table) -> tuple[torch.Tensor, torch.Tensor]:
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
