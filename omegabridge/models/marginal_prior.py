"""The posterior mean of each discrete factor under its own marginal law in the data: what an untrained
``DriftMLP(marginal_prior=True)`` predicts, so that it samples every discrete marginal exactly.

A default model predicts x_hat = base + sigma h with h zero at initialisation. With base = m(z, s),
the Omega-bridge's posterior mean under a flat prior, an untrained or underfitted network pulls every
discrete factor toward the uniform law on its values: a category present in 3% of the rows comes out
at 5-8%, a rare lowest level of an ordinal at twice its share. With base = E_p[X_j | Z_t = z_j], the
posterior mean of factor j under its marginal law p_j in the data (for Z_t = c X + sqrt(v) eps, the
weights p_j(a) exp(-(z_j - c a)^2 / (2 v)) over its values a), the untrained model samples the
independent marginals exactly, and the network learns what the factors share.

Covered: lattices of at most ``MAX_POINTS`` points, binaries and categorical groups (each category
a value of its group). Values never seen in the data keep a share of half a row, so they stay
reachable.

``offsets`` (``DriftMLP(posterior_logits=True)``) add a learned log-odds per row and value to the log
shares: since Z_j given X_j is independent of every other factor's state, p(X_j = a | z) is
proportional to p(z_j | X_j = a) p(X_j = a | z_-j), so the factor's own state enters only through the
exact Gaussian term above, and the network's part, log p(X_j = a | z_-j) - log p_j(a), is smooth in z_j.
A network that predicts the mean itself has to draw the posterior's steep step between two values
(a width of s / spacing late in time) and draws it too smooth, which over-samples the rarer value.

Example:
    >>> import torch, omegabridge as ob
    >>> bridge = ob.Bridge(ob.Product([ob.Binary(), ob.Categorical(3)]), steps=10)
    >>> data = torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 9 + [[0.0, 0.0, 0.0, 1.0]])
    >>> prior = MarginalPrior(bridge.table, data)
    >>> base = prior(torch.zeros(1, 4), torch.zeros(1), torch.zeros(1), torch.full((1, 4), 0.5))
    >>> [round(v, 3) for v in base[0].tolist()]  # at t = 0 the data's shares (the unseen category: half a row)
    [0.9, 0.857, 0.048, 0.095]
"""

from __future__ import annotations

import torch
from torch import nn

from omegabridge.core.segments import Kind

__all__ = ["MAX_POINTS", "LOGIT_POINTS", "VALUE_LOSSES", "MarginalPrior", "check_value_loss"]

#: Lattices with more points than this keep the flat prior's posterior mean (the cost is per point).
MAX_POINTS = 256
#: The field models (``DriftUNet``, ``DriftSetNetwork``) take log-odds by default on lattice fields of at most this
#: many points (an 8-bit field would need 256 outputs per element).
LOGIT_POINTS = 64
#: How a model with log-odds per value may be trained (``value_loss`` of ``DriftUNet`` and ``DriftMLP``): the
#: ``"squared"`` error of the drift (of the posterior mean the log-odds give), or the ``"cross_entropy"`` of the data's
#: values under them (``MarginalPrior.cross_entropy``).
VALUE_LOSSES = ("squared", "cross_entropy")


def check_value_loss(value_loss, posterior_logits: bool, model: str) -> str:
    """``value_loss`` if it names one of ``VALUE_LOSSES`` that a model with (or without) ``posterior_logits`` can
    take; ``ValueError`` naming the problem otherwise.

    >>> check_value_loss("cross_entropy", True, "DriftMLP")
    'cross_entropy'
    """
    if value_loss not in VALUE_LOSSES:
        raise ValueError(f"value_loss must be one of {VALUE_LOSSES}, got {value_loss!r}")
    if value_loss == "cross_entropy" and not posterior_logits:
        raise ValueError(f"value_loss='cross_entropy' scores log-odds per value; this {model} predicts means "
                         "(posterior_logits=False)")
    return value_loss


#: The log share of a padding value (a factor narrower than the widest): finite, so that the moving average of a
#: model's buffers (``Trainer(ema_decay=...)``) keeps it (-inf would become NaN there), and far below any logit.
PADDING_LOG_SHARE = -1e30


class MarginalPrior(nn.Module):
    """``prior(z, c, v, m)``: ``m`` with each covered discrete factor's columns replaced by its posterior mean
    under the data's marginal law of that factor (module docstring); ``c`` and ``v`` per row."""

    def __init__(self, table, data: torch.Tensor | None = None, columns: range | None = None):
        super().__init__()
        # columns: only the factors that start there are covered (a field model's field); None: every factor
        # Without data (a model about to load its weights) every value gets one row: the buffers' shapes.
        data = None if data is None else data.detach().to("cpu", torch.float64)
        scalars, supports, log_shares, groups, group_log_shares = [], [], [], [], []
        for segment in table.elements:
            if columns is not None and segment.offset not in columns:
                continue
            values_in = None if data is None else data[:, segment.offset:segment.offset + segment.width]
            if segment.kind == Kind.LATTICE and segment.points <= MAX_POINTS:
                values = segment.low + segment.step * torch.arange(segment.points, dtype=torch.float64)
                scalars.append(segment.offset)
                supports.append(values)
                index = None if values_in is None else torch.round((values_in[:, 0] - segment.low) / segment.step).long()
                log_shares.append(_log_shares(index, segment.points))
            elif segment.kind == Kind.BINARY:
                scalars.append(segment.offset)
                supports.append(torch.tensor([0.0, 1.0], dtype=torch.float64))
                log_shares.append(_log_shares(None if values_in is None else values_in[:, 0].round().long(), 2))
            elif segment.kind == Kind.CATEGORICAL:
                groups.append(list(range(segment.offset, segment.offset + segment.width)))
                log_share = _log_shares(None if values_in is None else values_in.argmax(dim=1), segment.width)
                group_log_shares.append(log_share)
        width = max([len(s) for s in supports] + [1])
        self.register_buffer("scalar_columns", torch.tensor(scalars, dtype=torch.long))
        self.register_buffer("scalar_support", _padded(supports, width, 0.0))
        self.register_buffer("scalar_log_share", _padded(log_shares, width, PADDING_LOG_SHARE))
        group_width = max([len(g) for g in groups] + [1])
        self.register_buffer("group_columns", _padded([torch.tensor(g, dtype=torch.float64) for g in groups],
                                                      group_width, 0.0).long())
        self.register_buffer("group_log_share", _padded(group_log_shares, group_width, PADDING_LOG_SHARE))

    @property
    def offset_count(self) -> int:
        """How many log-odds ``forward``'s ``offsets`` hold per row: one per value of each covered factor (padded
        to the widest factor of its kind; a padding value's offset is unused)."""
        return (self.scalar_log_share.numel() if len(self.scalar_columns) else 0) + (
            self.group_log_share.numel() if len(self.group_columns) else 0)

    def forward(self, z: torch.Tensor, c: torch.Tensor, v: torch.Tensor, m: torch.Tensor,
                offsets: torch.Tensor | None = None) -> torch.Tensor:
        """``m`` with the covered factors' columns replaced by their posterior means; ``offsets`` (n,
        ``offset_count``), when given, are added to the log shares (module docstring)."""
        base = m.clone()
        scalar_logits, group_logits = self.log_odds(z, c, v, offsets)
        if scalar_logits is not None:
            base[:, self.scalar_columns] = (torch.softmax(scalar_logits, dim=2) * self.scalar_support.to(z.dtype)).sum(dim=2)
        if group_logits is not None:
            weights = torch.softmax(group_logits, dim=2)
            present = _real_values(self.group_log_share)
            base[:, self.group_columns[present]] = weights[:, present]
        return base

    def log_odds(self, z: torch.Tensor, c: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor | None = None):
        """(the scalar factors' log-odds (n, factors, values), the groups' (n, groups, K)), each None where there
        are none: log p(X_j = a | z) up to a constant per factor, padding values at ``PADDING_LOG_SHARE``."""
        c, v = c.to(torch.float32).reshape(-1, 1, 1), v.to(torch.float32).clamp_min(1e-30).reshape(-1, 1, 1)
        scalar_offsets = group_offsets = 0.0
        split = self.scalar_log_share.numel() if len(self.scalar_columns) else 0
        if offsets is not None and split:
            scalar_offsets = offsets[:, :split].reshape(len(z), *self.scalar_log_share.shape)
        if offsets is not None and len(self.group_columns):
            group_offsets = offsets[:, split:].reshape(len(z), *self.group_log_share.shape)
        scalar_logits = group_logits = None
        if len(self.scalar_columns):
            states = z[:, self.scalar_columns].unsqueeze(2)  # (n, factors, 1)
            support = self.scalar_support.to(z.dtype)
            # -(z - c a)^2 / 2v without its a-free term z^2 / 2v: at t = 0 (c = v = 0) exactly the prior, and no
            # large common term to swamp the log shares in float32
            scalar_logits = self.scalar_log_share.to(z.dtype) + scalar_offsets + c * support * (states - 0.5 * c * support) / v
        if len(self.group_columns):
            states = z[:, self.group_columns]  # (n, groups, K): -|z - c e_k|^2 / 2v = (c z_k - c^2 / 2) / v + const
            group_logits = self.group_log_share.to(z.dtype) + group_offsets + (c * states - 0.5 * c * c) / v
        return scalar_logits, group_logits

    @property
    def covered_columns(self) -> torch.Tensor:
        """The columns whose values the log-odds give (int64): the scalar factors' and the groups'."""
        present = _real_values(self.group_log_share)
        return torch.cat([self.scalar_columns, self.group_columns[present]]) if len(self.group_columns) else self.scalar_columns

    def cross_entropy(self, z: torch.Tensor, c: torch.Tensor, v: torch.Tensor, x: torch.Tensor,
                      offsets: torch.Tensor | None = None, free: torch.Tensor | None = None) -> torch.Tensor:
        """Per row, -log p(X_j = x_j | z) summed over the covered factors (n,), or over those whose columns ``free``
        (bool, x's shape; a conditional model's cells not shown as known) marks: the training loss of log-odds that
        scores the whole posterior, where the squared error of its mean stops pulling a confident wrong value
        (its gradient carries the wrong value's small probability of the right one).

        >>> import math, torch, omegabridge as ob
        >>> bridge = ob.Bridge(ob.Product([ob.Lattice(0, 2), ob.Categorical(3)]), steps=10)
        >>> data = torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [2.0, 0.0, 0.0, 1.0]])
        >>> prior = MarginalPrior(bridge.table, data)
        >>> loss = prior.cross_entropy(torch.zeros(1, 4), torch.zeros(1), torch.zeros(1), data[:1])
        >>> round(loss.item(), 4) == round(2 * math.log(3), 4)   # at t = 0 the shares: a third each
        True
        """
        scalar_logits, group_logits = self.log_odds(z, c, v, offsets)
        loss = z.new_zeros(len(z))
        if scalar_logits is not None:
            support = self.scalar_support.to(x.dtype)
            distance = (x[:, self.scalar_columns].unsqueeze(2) - support).abs()
            padding = ~_real_values(self.scalar_log_share)
            index = distance.masked_fill(padding, float("inf")).argmin(dim=2)  # x is on its lattice
            per_factor = nn.functional.cross_entropy(scalar_logits.transpose(1, 2), index, reduction="none")
            if free is not None:
                per_factor = per_factor * free[:, self.scalar_columns]
            loss = loss + per_factor.sum(dim=1)
        if group_logits is not None:
            present = _real_values(self.group_log_share)
            index = x[:, self.group_columns].masked_fill(~present, -1.0).argmax(dim=2)  # x is one-hot in its group
            per_factor = nn.functional.cross_entropy(group_logits.transpose(1, 2), index, reduction="none")
            if free is not None:  # a group is known whole: its first column says
                per_factor = per_factor * free[:, self.group_columns[:, 0]]
            loss = loss + per_factor.sum(dim=1)
        return loss


def _real_values(log_share: torch.Tensor) -> torch.Tensor:
    """Where a table of log shares holds a factor's value rather than padding (``PADDING_LOG_SHARE``)."""
    return log_share > 0.5 * PADDING_LOG_SHARE


def _log_shares(index: torch.Tensor | None, points: int) -> torch.Tensor:
    """Log of the shares of the values 0 .. points - 1 in ``index``, a value never seen counting half a row (so that it
    stays reachable); uniform without data."""
    counts = torch.ones(points) if index is None else torch.bincount(index.clamp(0, points - 1), minlength=points)
    counts = counts.to(torch.float64) + 0.5 * (counts == 0)
    return (counts / counts.sum()).log().to(torch.float32)


def _padded(rows: list[torch.Tensor], width: int, fill: float) -> torch.Tensor:
    out = torch.full((len(rows), width), fill, dtype=torch.float32)
    for index, row in enumerate(rows):
        out[index, :len(row)] = row.to(torch.float32)
    return out
