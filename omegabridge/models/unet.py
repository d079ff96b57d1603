"""``DriftUNet``: a time-conditioned U-Net for image fields (C, H, W) and categorical maps (H, W).

A ``BridgeDrift`` like ``DriftMLP``: it sees the state standardised by the law of Z_t and the
posterior mean m(z, s), predicts the data point x_hat = m + sigma h and returns f = sigma h / s;
the last layers start at zero, so an untrained model is the pure Omega-bridge. A categorical
map's K one-hot columns are its channels.

Example:
    >>> import torch, omegabridge as ob
    >>> bridge = ob.Bridge(ob.Product([ob.Lattice(0, 255, shape=(1, 8, 8)), ob.Categorical(10)]), steps=10)
    >>> model = DriftUNet(bridge, channels=(8, 16))
    >>> model(torch.zeros(2, 74), torch.zeros(2)).abs().max().item()   # the pure bridge at initialisation
    0.0
"""

from __future__ import annotations

import torch
from torch import nn

from omegabridge.core.domains import Categorical
from omegabridge.models.base import BridgeDrift
from omegabridge.models.field_layout import Conditioning, FieldModel, zero_initialised
from omegabridge.models.marginal_prior import LOGIT_POINTS, MAX_POINTS, MarginalPrior, check_value_loss

__all__ = ["DriftUNet"]


class _ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, embedding: int, dropout: float = 0.0):
        super().__init__()
        self.norm_in = nn.GroupNorm(min(8, channels_in), channels_in)
        self.conv_in = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.shift = nn.Linear(embedding, channels_out)
        self.norm_out = nn.GroupNorm(min(8, channels_out), channels_out)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv_out = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.skip = nn.Conv2d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()

    def forward(self, x, embedding):
        h = self.conv_in(nn.functional.silu(self.norm_in(x)))
        h = h + self.shift(embedding)[:, :, None, None]
        h = self.conv_out(self.dropout(nn.functional.silu(self.norm_out(h))))
        return h + self.skip(x)


class DriftUNet(FieldModel, BridgeDrift):
    """A small time-conditioned U-Net over an image field; see the module docstring.

    Args:
        bridge: the ``Bridge``; its domain must hold an image field (``find_field``).
        channels: feature channels per resolution; each level after the first halves H and W
            while both stay even.
        data: rows of data for the input and output scales (as ``DriftMLP``).
        output_scaling: ``"data"`` (the default: sigma_data at every time) or ``"preconditioned"``
            (``BridgeDrift.output_scale``, EDM's c_out): on RGB patches it lowered the pixel-histogram
            TV, on digits it was level, on segmentation maps it was far worse, so it is not the default
            (bench/results/field-models.md).
        posterior_logits: the network gives each pixel (each channel of it) a log-odds per value, K for a
            categorical map and one per lattice point for a lattice field of at most ``MAX_POINTS`` points, added
            to that pixel's shares of the values in ``data``; its prediction is its posterior mean under them with
            its own state's exact Gaussian term (``omegabridge.models.marginal_prior``): the network says what the
            neighbours imply, the formula draws the steep step between two values late in time. None (the
            default): on for a categorical map and a lattice field of at most ``LOGIT_POINTS`` points, where it
            was measured better (digits: Frechet distance 3.6 and 2.8 against 4.8 and 5.4 on seeds 0 and 1;
            segmentation maps: co-occurrence TV 0.020 against 0.046; bench/results/field-models.md), off
            beyond (an 8-bit field would need 256 outputs per pixel channel).
        value_loss: how ``Bridge.loss_at`` trains the log-odds: ``"cross_entropy"`` of the data's values
            (with every time weighted alike, ``loss_weight = "none"``) or ``"squared"`` error of the drift.
            None (the default): the cross-entropy for a lattice field, where it was measured better (digits:
            Frechet distance 2.89 against 3.67 over two trainings and five sampling seeds each, class TV
            0.044 against 0.049), the squared error for a categorical map, where it was level (regions per map
            5.9 and 5.9 against 5.9 and 5.4, co-occurrence TV 0.020 and 0.018 against 0.016 and 0.024 on
            seeds 0 and 1; bench/results/field-models.md).
        dropout: the residual blocks' dropout rate (after their second normalisation). 0 by default: on digits
            with the cross-entropy, 0.1 averaged 2.74 against 2.89 over ten runs but the demo's own run gave 3.34
            against 3.01, within the runs' spread (bench/results/field-models.md).
    """

    def __init__(self, bridge, channels: tuple[int, ...] = (32, 64), data: torch.Tensor | None = None,
                 output_scaling: str = "data", posterior_logits: bool | None = None, value_loss: str | None = None,
                 dropout: float = 0.0):
        super().__init__(bridge, data)
        if output_scaling not in ("preconditioned", "data"):
            raise ValueError(f"output_scaling must be 'preconditioned' or 'data', got {output_scaling!r}")
        self.output_scaling = output_scaling
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be positive integers, got {channels!r}")
        self._locate(bridge, "image")
        self.categorical = isinstance(self.field, Categorical)
        shape = self.field.shape
        if self.categorical:
            image_channels, height, width = self.field.categories, shape[0], shape[1]
        elif len(shape) == 3:
            image_channels, height, width = shape
        else:
            image_channels, (height, width) = 1, shape
        self.image_shape = (image_channels, height, width)
        levels = 1
        while levels < len(channels) and height % 2 == 0 and width % 2 == 0:
            height, width, levels = height // 2, width // 2, levels + 1
        channels = tuple(channels[:levels])
        embedding = 4 * channels[0]
        other = len(self.other_columns)
        self.conditioning = Conditioning(other, embedding)
        self.stem = nn.Conv2d(2 * image_channels, channels[0], 3, padding=1)
        points = self.field.categories if self.categorical else getattr(self.field, "points", None)  # values per pixel
        if posterior_logits is None:
            posterior_logits = points is not None and (self.categorical or points <= LOGIT_POINTS)
        if not isinstance(posterior_logits, bool):
            raise TypeError(f"posterior_logits must be True, False or None, got {posterior_logits!r}")
        #: Values per pixel channel whose log-odds the network gives (``posterior_logits``); 0: it predicts means.
        self.logit_values = 0
        self.marginal_prior = None
        if posterior_logits:
            if points is None or points > MAX_POINTS:
                raise ValueError(f"posterior_logits needs a categorical map or a lattice field of at most {MAX_POINTS} "
                                 f"points; the image field is {self.field!r}")
            self.logit_values = 1 if self.categorical else points  # a categorical map's K channels are its log-odds
            self.marginal_prior = MarginalPrior(bridge.table, None if data is None else bridge.check_data(data),
                                                columns=range(self.field_offset, self.field_offset + self.field.width))
        if value_loss is None:  # measured better on a lattice field's log-odds, level on a map's
            value_loss = "cross_entropy" if posterior_logits and not self.categorical else "squared"
        #: How ``Bridge.loss_at`` scores the log-odds (``marginal_prior.VALUE_LOSSES``).
        self.value_loss = check_value_loss(value_loss, posterior_logits, "DriftUNet")
        # Trained by default (Trainer(weight=None)) with plain x-prediction MSE when it predicts means: on 16 x 16 RGB
        # patches pixel-histogram TV 0.133 / 0.178 against 0.197 / 0.223 for lambda = s on seeds 0 / 1
        # (bench/results/field-models.md); with log-odds and the squared error lambda = s (digits: Frechet
        # distance 3.61 against 3.73); with the cross-entropy every time alike (digits, same file).
        self.loss_weight = ("none" if self.value_loss == "cross_entropy"
                            else "remaining" if posterior_logits else "remaining_squared")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.down = nn.ModuleList(_ResidualBlock(a, b, embedding, dropout) for a, b in zip((channels[0],) + channels, channels))
        self.middle = _ResidualBlock(channels[-1], channels[-1], embedding, dropout)
        self.up = nn.ModuleList(_ResidualBlock(2 * c, c_out, embedding, dropout)
                                for c, c_out in zip(channels[::-1], channels[::-1][1:] + (channels[0],)))
        self.out = zero_initialised(nn.Conv2d(channels[0], image_channels * max(1, self.logit_values), 3, padding=1))
        self.other_head = zero_initialised(nn.Linear(channels[-1] + embedding, other)) if other else None

    def _image(self, view: torch.Tensor) -> torch.Tensor:
        if self.categorical:  # (n, H, W, K) -> (n, K, H, W)
            return view.permute(0, 3, 1, 2)
        return view.reshape(view.shape[0], *self.image_shape)

    def predict(self, z, m, time_features):
        if self.marginal_prior is not None:
            raise TypeError("this DriftUNet gives log-odds per value (posterior_logits), not h; call the model for its drift")
        image, other = self._outputs(z, m, time_features)
        return self._assemble(image, other)

    def _outputs(self, z, m, time_features):
        """(the field's outputs in its column order, per value where ``logit_values`` > 1; the other columns' h)."""
        (z_field, z_other), (m_field, m_other) = self._split(z), self._split(m)
        embedding = self.conditioning(time_features, z_other, m_other)
        x = self.stem(torch.cat([self._image(z_field), self._image(m_field)], dim=1))
        skips = []
        for level, block in enumerate(self.down):
            x = block(x, embedding)
            skips.append(x)
            if level < len(self.down) - 1:
                x = nn.functional.avg_pool2d(x, 2)
        x = self.middle(x, embedding)
        pooled = x.mean(dim=(2, 3))
        for level, block in enumerate(self.up):
            skip = skips[-1 - level]
            if x.shape[-1] != skip.shape[-1]:
                x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1), embedding)
        image = self.out(x)
        if self.categorical:  # back to (n, H, W, K)
            image = image.permute(0, 2, 3, 1)
        elif self.logit_values > 1:  # (n, C * values, H, W) -> (n, C, H, W, values): each pixel's values together
            image = image.reshape(image.shape[0], -1, self.logit_values, *image.shape[2:]).permute(0, 1, 3, 4, 2)
        other = self.other_head(torch.cat([pooled, embedding], dim=1)) if self.other_head is not None else z_other
        return image.reshape(image.shape[0], -1), other

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.marginal_prior is None:
            return super().forward(z, t)
        return self._posterior_logit_drift(z, t)
