"""``DriftSetNetwork``: a permutation-equivariant drift model for point fields (P, D), D <= 4.

Each layer updates every point from three things: itself, the mean over all points (the
DeepSets path: where the cloud is and how large) and its ``neighbours`` nearest points (an
EdgeConv-style local path, ``EdgeConvolution``: what the surface around the point looks
like). The neighbours are found once per call (``nearest_neighbours``, without gradient)
on the points' current position estimates. A ``BridgeDrift`` like ``DriftMLP`` (data
prediction, zero-initialised outputs, so an untrained model is the pure bridge).

Example:
    >>> import torch, omegabridge as ob
    >>> model = DriftSetNetwork(ob.Bridge(ob.Lattice(0, 63, shape=(16, 3)), steps=10), hidden=8, neighbours=4)
    >>> model(torch.zeros(2, 48), torch.zeros(2)).shape
    torch.Size([2, 48])
"""

from __future__ import annotations

import torch
from torch import nn

from omegabridge.models.base import BridgeDrift
from omegabridge.models.field_layout import Conditioning, FieldModel, zero_initialised
from omegabridge.models.marginal_prior import LOGIT_POINTS, MAX_POINTS, MarginalPrior

__all__ = ["DriftSetNetwork", "EdgeConvolution", "nearest_neighbours"]

POSITIONS = ("mean", "state")
POOLS = ("max", "mean")


def _check_positive_integer(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def nearest_neighbours(positions: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, P, k) of each point's ``k`` nearest other points in ``positions`` (B, P, D), nearest first.

    Euclidean distances (``torch.cdist``) with each point's distance to itself set to
    infinity, so a point is never its own neighbour; ``k`` is clamped to P - 1. No gradient.

    >>> points = torch.tensor([[[0.0], [1.0], [5.0], [1.5]]])
    >>> nearest_neighbours(points, 2)
    tensor([[[1, 3],
             [3, 0],
             [3, 1],
             [1, 0]]])
    """
    _check_positive_integer("k", k)
    with torch.no_grad():
        count = positions.shape[1]
        k = min(k, count - 1)
        if k < 1:
            return positions.new_zeros(positions.shape[0], count, 0, dtype=torch.int64)
        distances = torch.cdist(positions.detach(), positions.detach())
        distances.diagonal(dim1=1, dim2=2).fill_(float("inf"))
        return distances.topk(k, dim=2, largest=False).indices


def _gather(features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """features (B, P, C) at index (B, P, k) -> (B, P, k, C), through one flat index_select."""
    rows, count, k = index.shape
    offsets = (torch.arange(rows, device=index.device) * count)[:, None, None]
    flat = features.reshape(rows * count, features.shape[2]).index_select(0, (index + offsets).reshape(-1))
    return flat.reshape(rows, count, k, features.shape[2])


def _neighbourhood_max(features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """max over j in index[b, i] of features[b, j, c] -> (B, P, C), the gradient flowing to the maxima only.

    The winners are found without gradient and then read with one element-wise gather, whose
    backward is a scatter of (B, P, C) values: on CPU several times faster than autograd
    through the (B, P, k, C) gather and its max.
    """
    if not (torch.is_grad_enabled() and features.requires_grad):  # sampling: no winners to remember
        return _gather(features, index).amax(dim=2)
    rows, count, channels = features.shape
    with torch.no_grad():
        winner = _gather(features, index).max(dim=2).indices  # (B, P, C): which of the k neighbours
        source = index.gather(2, winner)  # (B, P, C): which point
        flat = source * channels + (torch.arange(rows, device=index.device) * count * channels)[:, None, None] \
            + torch.arange(channels, device=index.device)
    return features.reshape(-1)[flat.reshape(-1)].reshape(rows, count, channels)


class EdgeConvolution(nn.Module):
    """EdgeConv: for each point i, pool over its neighbours j of act(W [h_i, h_j - h_i, p_j - p_i] + b).

    ``W`` is one linear layer (``features`` + ``features`` + ``dimension`` -> ``out``); it is
    applied per point and gathered per edge, W [h_i, h_j - h_i, p_j - p_i] = a_i + b_j with
    a_i = (W_1 - W_2) h_i - W_3 p_i and b_j = W_2 h_j + W_3 p_j, which is the same function at
    a fraction of the cost. With ``pool="max"`` and the monotone activation (leaky ReLU),
    max_j act(a_i + b_j) = act(a_i + max_j b_j), so only b is gathered and pooled.
    ``pool="mean"`` averages act(a_i + b_j) over the edges. A point with no neighbours (P = 1)
    gets zeros.

    >>> layer = EdgeConvolution(features=4, dimension=3, out=8)
    >>> h, p = torch.randn(2, 10, 4), torch.randn(2, 10, 3)
    >>> layer(h, p, nearest_neighbours(p, 3)).shape
    torch.Size([2, 10, 8])
    """

    def __init__(self, features: int, dimension: int, out: int, pool: str = "max"):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.features, self.pool = features, pool
        self.linear = nn.Linear(2 * features + dimension, out)

    def forward(self, h: torch.Tensor, p: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """h (B, P, features), p (B, P, dimension), index (B, P, k) from ``nearest_neighbours`` -> (B, P, out)."""
        if index.shape[2] == 0:
            return h.new_zeros(*h.shape[:2], self.linear.out_features)
        f = self.features
        centre_weight, difference_weight, position_weight = self.linear.weight.split([f, f, p.shape[2]], dim=1)
        a = nn.functional.linear(h, centre_weight - difference_weight, self.linear.bias) - p @ position_weight.T
        b = h @ difference_weight.T + p @ position_weight.T
        if self.pool == "max":
            return nn.functional.leaky_relu(a + _neighbourhood_max(b, index), 0.2)
        return nn.functional.leaky_relu(a[:, :, None, :] + _gather(b, index), 0.2).mean(dim=2)


class DriftSetNetwork(FieldModel, BridgeDrift):
    """A permutation-equivariant network over a point field (P, D) with local neighbourhoods; see the module docstring.

    Args:
        bridge: the ``Bridge``; its domain must hold a point field (``find_field``).
        hidden: features per point; ``depth``: layers, each a residual update from the point,
            the mean over all points and an ``EdgeConvolution`` over its neighbours.
        data: rows of data for the input and output scales (as ``DriftMLP``).
        neighbours: k, the nearest points each point pools over (clamped to P - 1).
        positions: where the neighbours are measured: ``"mean"``, the bridge's posterior mean
            m (standardised; ``BridgeDrift.inputs``), or ``"state"``, the standardised state z.
        pool: ``"max"`` or ``"mean"`` over the neighbours.
        posterior_logits: each point gives a log-odds per lattice value of each coordinate, added to that
            coordinate's shares of the values in ``data`` (pooled over the points, which are exchangeable); the
            prediction is the posterior mean under them with the coordinate's own exact Gaussian term
            (``omegabridge.models.marginal_prior``), as ``DriftUNet(posterior_logits=True)`` does for pixels.
            Off by default: on the points demo (64 lattice values per coordinate) it was worse, 1-NN accuracy
            0.910 against 0.745, Chamfer fidelity 41.3 against 36.2 (one seed; bench/results/field-models.md).
            None: on for a lattice point field of at most ``LOGIT_POINTS`` points per coordinate.

    >>> import omegabridge as ob
    >>> bridge = ob.Bridge(ob.Lattice(0, 63, shape=(4, 3)), steps=10)
    >>> DriftSetNetwork(bridge, hidden=8, neighbours=16)(torch.rand(3, 12), torch.rand(3)).abs().max().item()
    0.0
    """

    #: Plain x-prediction MSE by default (``Trainer(weight=None)``): on the points demo 1-NN accuracy 0.93 against
    #: 0.97 for lambda = s after 600 iterations (``PointsConfig``).
    loss_weight = "remaining_squared"

    def __init__(self, bridge, hidden: int = 128, depth: int = 3, data: torch.Tensor | None = None,
                 neighbours: int = 16, positions: str = "mean", pool: str = "max",
                 posterior_logits: bool | None = False):
        super().__init__(bridge, data)
        for name, value in (("hidden", hidden), ("depth", depth), ("neighbours", neighbours)):
            _check_positive_integer(name, value)
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        self.neighbours, self.positions = neighbours, positions
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
        self.local = nn.ModuleList(EdgeConvolution(hidden, dimension, hidden, pool) for _ in range(depth))
        self.layers = nn.ModuleList(nn.Linear(3 * hidden, hidden) for _ in range(depth))
        points = getattr(self.field, "points", None)  # lattice values per coordinate
        if posterior_logits is None:
            posterior_logits = points is not None and points <= LOGIT_POINTS
        if not isinstance(posterior_logits, bool):
            raise TypeError(f"posterior_logits must be True, False or None, got {posterior_logits!r}")
        #: Values per coordinate whose log-odds the network gives (``posterior_logits``); 0: it predicts means.
        self.logit_values = 0
        self.marginal_prior = None
        if posterior_logits:
            if points is None or points > MAX_POINTS:
                raise ValueError(f"posterior_logits needs a lattice point field of at most {MAX_POINTS} points per "
                                 f"coordinate; the point field is {self.field!r}")
            self.logit_values = points
            self.marginal_prior = MarginalPrior(bridge.table, None if data is None else bridge.check_data(data),
                                                columns=range(self.field_offset, self.field_offset + self.field.width))
            with torch.no_grad():  # one law per coordinate for every point, as the scales above
                log_share = self.marginal_prior.scalar_log_share  # (points x dimension, values), point-major
                pooled = log_share.reshape(-1, dimension, points).exp().mean(dim=0).log()
                log_share.copy_(pooled.repeat(self.field.shape[0], 1))
        self.out = zero_initialised(nn.Linear(hidden, dimension * max(1, self.logit_values)))
        self.other_head = zero_initialised(nn.Linear(2 * hidden, other)) if other else None

    def predict(self, z, m, time_features):
        if self.marginal_prior is not None:
            raise TypeError("this DriftSetNetwork gives log-odds per value (posterior_logits), not h; call the model "
                            "for its drift")
        field, other = self._outputs(z, m, time_features)
        return self._assemble(field, other)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.marginal_prior is None:
            return super().forward(z, t)
        return self._posterior_logit_drift(z, t)

    def _outputs(self, z, m, time_features):
        """(the field's outputs in its column order, per value where ``logit_values`` > 0; the other columns' h)."""
        (z_field, z_other), (m_field, m_other) = self._split(z), self._split(m)
        embedding = self.conditioning(time_features, z_other, m_other)
        points = z_field.shape[1]
        p = m_field if self.positions == "mean" else z_field
        index = nearest_neighbours(p, self.neighbours)
        x = nn.functional.silu(self.embed(torch.cat([z_field, m_field, embedding[:, None, :].expand(-1, points, -1)], dim=2)))
        for local, layer in zip(self.local, self.layers):
            pooled = x.mean(dim=1, keepdim=True).expand(-1, points, -1)
            x = x + nn.functional.silu(layer(torch.cat([x, pooled, local(x, p, index)], dim=2)))
        out = self.out(x)  # (B, P, D x values): each coordinate's values together, as the prior's columns
        other = (self.other_head(torch.cat([x.mean(dim=1), embedding], dim=1)) if self.other_head is not None
                 else z_other)
        return out.reshape(out.shape[0], -1), other
