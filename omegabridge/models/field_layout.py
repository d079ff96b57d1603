"""Where a field lies in a domain's columns, and the plumbing the field models share.

A field model (``DriftUNet``, ``DriftSetNetwork``) reads its field in the field's own shape
(``domain.unflatten``); the Product's other factors (a class label, scalars) enter as
conditioning next to the time features, and get their own outputs from a small head.

Example:
    >>> import omegabridge as ob
    >>> index, factor, offset = find_field(ob.Product([ob.Categorical(10), ob.Lattice(0, 16, shape=(1, 8, 8))]), "image")
    >>> index, offset
    (1, 10)
"""

from __future__ import annotations

import torch
from torch import nn

from omegabridge.core.domains import Categorical, Product

__all__ = ["find_field", "FieldModel", "Conditioning", "zero_initialised"]


def find_field(domain, what: str):
    """(index, factor, offset) of the widest factor of ``domain`` that is an image (``what="image"``) or a point set.

    An image is a scalar-kind field of shape (C, H, W), (H, W) with W > 4, or a categorical
    field of shape (H, W); a point set is a scalar-kind field of shape (P, D) with D <= 4.
    Returns None when there is none.
    """
    factors = domain.factors if isinstance(domain, Product) else [domain]
    found, offset = None, 0
    for index, factor in enumerate(factors):
        shape, categorical = factor.shape, isinstance(factor, Categorical)
        if categorical:
            kind = "image" if len(shape) == 2 else None
        elif factor.element_width == 1 and len(shape) == 3:
            kind = "image"
        elif factor.element_width == 1 and len(shape) == 2:
            kind = "points" if shape[1] <= 4 else "image"
        else:
            kind = None
        if kind == what and (found is None or factor.width > found[1].width):
            found = (index, factor, offset)
        offset += factor.width
    return found


def _other_columns(width: int, offset: int, field_width: int) -> torch.Tensor:
    return torch.cat([torch.arange(0, offset), torch.arange(offset + field_width, width)])


class Conditioning(nn.Module):
    """Time features and the other factors' standardised z and m -> one embedding per row."""

    def __init__(self, other: int, size: int):
        super().__init__()
        self.network = nn.Sequential(nn.Linear(3 + 2 * other, size), nn.SiLU(), nn.Linear(size, size), nn.SiLU())

    def forward(self, time_features, z_other, m_other):
        return self.network(torch.cat([time_features, z_other, m_other], dim=1))


def zero_initialised(layer: nn.Module) -> nn.Module:
    """``layer`` with every parameter zero: an output layer that starts the model at the pure bridge."""
    for parameter in layer.parameters():
        nn.init.zeros_(parameter)
    return layer


class FieldModel:
    """Shared plumbing: where the field's columns are, and the other columns' conditioning and head."""

    def _locate(self, bridge, what: str) -> None:
        located = find_field(bridge.domain, what)
        if located is None:
            raise ValueError(f"{type(self).__name__}: the domain has no {what} field: {bridge.domain!r}")
        self.field_index, self.field, self.field_offset = located
        self.register_buffer("other_columns", _other_columns(bridge.width, self.field_offset, self.field.width),
                             persistent=False)

    def _split(self, x: torch.Tensor):
        field = x[:, self.field_offset:self.field_offset + self.field.width]
        return self.field.unflatten(field), x[:, self.other_columns]

    def _posterior_logit_drift(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The drift of a model whose field outputs are log-odds per value (``self.marginal_prior``, filled by
        ``_outputs``): x_hat is the posterior mean under them with each element's own exact Gaussian term
        (``omegabridge.models.marginal_prior``); the other columns are predicted as a mean-predicting model does."""
        return self._posterior_logit_parts(z, t)[0]

    def value_cross_entropy(self, z: torch.Tensor, t: torch.Tensor, x: torch.Tensor,
                            known: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(per row, the cross-entropy of the data ``x``'s values under the log-odds at states ``z`` (n,); the drift
        (n, width)): ``Bridge.loss_at``'s loss for a model with ``value_loss="cross_entropy"``, which takes the
        squared error of the drift on the columns the log-odds do not cover (``marginal_prior.covered_columns``)."""
        if known is not None:
            raise TypeError(f"known cells go to a DriftMLP made with conditional=True; a {type(self).__name__} takes none")
        drift, (states, c, variance, offsets) = self._posterior_logit_parts(z, t)
        return self.marginal_prior.cross_entropy(states, c, variance, x, offsets=offsets), drift

    def _posterior_logit_parts(self, z: torch.Tensor, t: torch.Tensor):
        """(the drift; the states, c and v of Z_t = c X + sqrt(v) eps, and the log-odds offsets it came from)."""
        states = z.to(torch.float32)
        z, m, time_features, s = self.inputs(z, t)
        offsets, other = self._outputs(z, m, time_features)
        m = m * self.data_std + self.data_mean
        h = self._assemble(torch.zeros(len(z), self.field.width, device=z.device, dtype=z.dtype), other)
        _, variance = self.state_law(s[:, 0].to(torch.float64))
        x_hat = self.marginal_prior(states, time_features[:, 1], variance, m + self.output_scale(t) * h, offsets=offsets)
        return (x_hat - m) / s, (states, time_features[:, 1], variance, offsets)

    def _assemble(self, field_output: torch.Tensor, other_output: torch.Tensor) -> torch.Tensor:
        rows = field_output.shape[0]
        h = field_output.new_empty(rows, self.bridge.width)
        h[:, self.field_offset:self.field_offset + self.field.width] = field_output.reshape(rows, -1)
        h[:, self.other_columns] = other_output
        return h
