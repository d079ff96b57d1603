"""``DriftMLP``: the default drift model of tables and of domains without a field.

Example:
    >>> import torch, omegabridge as ob
    >>> model = ob.models.DriftMLP(ob.Bridge(ob.Binary(), steps=10), hidden=8, depth=1)
    >>> model(torch.zeros(3, 1), torch.zeros(3)).shape
    torch.Size([3, 1])
"""

from __future__ import annotations

import torch
from torch import nn

from omegabridge.models.base import BridgeDrift
from omegabridge.models.marginal_prior import MarginalPrior, check_value_loss

__all__ = ["DriftMLP"]


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
        conditional: the model also takes known cells, ``model(z, t, known=...)`` with NaN where
            a cell is free (2 x width more inputs: which cells are known, and their values
            standardised), so that ``Bridge.sample(known=...)`` draws the free cells from the
            conditional it learned; ``Trainer`` then trains it on random known cells
            (``Bridge.draw_known_mask``). Without known cells it is the unconditioned model.
        marginal_prior: predict x_hat = base + sigma h with base the posterior mean of each discrete
            factor under its marginal law in ``data`` (``omegabridge.models.marginal_prior``) instead of
            the flat prior's m: untrained, the model samples every discrete marginal exactly, so rare
            values are not pulled toward the uniform law while the network is still learning.
        posterior_logits: (implies ``marginal_prior``) the network's output for each covered discrete factor is
            a log-odds per value added to its marginal log shares, and x_hat is that factor's posterior mean
            under them with its own state's exact Gaussian term (``omegabridge.models.marginal_prior``): the
            steep step of the posterior between two values comes from the formula, not from the network.
        value_loss: how ``Bridge.loss_at`` trains the log-odds (``posterior_logits``): ``"squared"`` error of
            the drift, or ``"cross_entropy"`` of the data's values (``marginal_prior.VALUE_LOSSES``).

    >>> import omegabridge as ob
    >>> bridge = ob.Bridge(ob.Binary(), steps=10)
    >>> sum(p.numel() for p in DriftMLP(bridge, hidden=8, depth=1).parameters()) > 0
    True
    """

    def __init__(self, bridge, hidden: int = 256, depth: int = 3, data: torch.Tensor | None = None,
                 conditional: bool = False, marginal_prior: bool = False, posterior_logits: bool = False,
                 value_loss: str = "squared"):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be an integer >= 1, got {hidden!r}")
        super().__init__(bridge, data)
        width = bridge.width
        layers: list[nn.Module] = []
        if not isinstance(conditional, bool):
            raise TypeError(f"conditional must be True or False, got {conditional!r}")
        #: Read by Bridge.sample and Trainer: the model takes ``known=`` and is trained on known cells.
        self.takes_known_cells = conditional
        size = (4 if conditional else 2) * width + 3
        for _ in range(depth):
            layers += [nn.Linear(size, hidden), nn.SiLU()]
            size = hidden
        self.body = nn.Sequential(*layers)
        for name, flag in (("marginal_prior", marginal_prior), ("posterior_logits", posterior_logits)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        # With data: the discrete factors' marginal shares; without (a model about to load weights): placeholders.
        self.marginal_prior = MarginalPrior(bridge.table, None if data is None else bridge.check_data(data)) \
            if marginal_prior or posterior_logits else None
        #: Log-odds outputs after the ``width`` data outputs (``posterior_logits``); 0 without.
        self.offset_count = self.marginal_prior.offset_count if posterior_logits else 0
        #: How ``Bridge.loss_at`` scores the log-odds (``marginal_prior.VALUE_LOSSES``).
        self.value_loss = check_value_loss(value_loss, posterior_logits, "DriftMLP")
        self.head = nn.Linear(size, width + self.offset_count)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def predict(self, z: torch.Tensor, m: torch.Tensor, time_features: torch.Tensor,
                known: torch.Tensor | None = None) -> torch.Tensor:
        features = [z, m, time_features]
        if self.takes_known_cells:
            if known is None:
                features += [torch.zeros_like(z), torch.zeros_like(z)]
            else:
                mask = ~torch.isnan(known)
                values = torch.where(mask, (known.to(z.dtype) - self.data_mean) / self.data_std, torch.zeros((), dtype=z.dtype))
                features += [mask.to(z.dtype), values]
        return self.head(self.body(torch.cat(features, dim=1)))

    def forward(self, z: torch.Tensor, t: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """The drift at states ``z`` and times ``t``; a ``conditional`` model also takes ``known`` cells
        (NaN where free, z's shape).

        >>> import torch, omegabridge as ob
        >>> model = DriftMLP(ob.Bridge(ob.Product([ob.Binary(), ob.Lattice(0, 3)]), steps=10), hidden=8, conditional=True)
        >>> model(torch.zeros(2, 2), torch.zeros(2), known=torch.tensor([[1.0, float("nan")]] * 2)).shape
        torch.Size([2, 2])
        """
        return self._drift_parts(z, t, known)[0]

    def value_cross_entropy(self, z: torch.Tensor, t: torch.Tensor, x: torch.Tensor,
                            known: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(per row, the cross-entropy of the data ``x``'s values under the log-odds (n,), over the factors not
        ``known``; the drift (n, width)): ``Bridge.loss_at``'s loss for ``value_loss="cross_entropy"``."""
        if not self.offset_count:
            raise TypeError("value_cross_entropy needs log-odds per value: a DriftMLP made with posterior_logits=True")
        drift, (states, c, variance, offsets) = self._drift_parts(z, t, known)
        free = None if known is None else torch.isnan(known)
        return self.marginal_prior.cross_entropy(states, c, variance, x, offsets=offsets, free=free), drift

    def _drift_parts(self, z: torch.Tensor, t: torch.Tensor, known: torch.Tensor | None):
        """(the drift; with log-odds, the states, c and v of Z_t = c X + sqrt(v) eps and the log-odds, else None)."""
        if known is not None:
            if not self.takes_known_cells:
                raise TypeError("known cells go to a DriftMLP made with conditional=True; this one takes model(z, t)")
            if known.shape != z.shape:
                raise ValueError(f"known must have the states' shape {tuple(z.shape)}, got {tuple(known.shape)}")
        states = z.to(torch.float32)
        z, m, time_features, s = self.inputs(z, t)
        if self.marginal_prior is None:
            return self.data_std * self.predict(z, m, time_features, known) / s, None
        # x_hat = base + sigma h, base the marginal prior's posterior mean, which the network also sees in
        # place of m (it predicts what the factors share beyond their marginals): f = (base - m) / s + sigma h / s.
        m = m * self.data_std + self.data_mean
        _, variance = self.state_law(s[:, 0].to(torch.float64))
        base = self.marginal_prior(states, time_features[:, 1], variance, m)
        h = self.predict(z, (base - self.data_mean) / self.data_std, time_features, known)
        if not self.offset_count:
            return (self.data_std * h + base - m) / s, None
        # the covered factors' means from their log-odds; the other columns as above (around m: base is m there)
        width = h.shape[1] - self.offset_count
        x_hat = self.marginal_prior(states, time_features[:, 1], variance, base + self.data_std * h[:, :width],
                                    offsets=h[:, width:])
        return (x_hat - m) / s, (states, time_features[:, 1], variance, h[:, width:])
