"""Default drift models for fields: a time-conditioned U-Net for images and maps, a set network for point clouds.

Both are ``BridgeDrift`` models like ``DriftMLP``: they see the state standardised by the
law of Z_t and the posterior mean m(z, s), predict the data point x_hat = m + sigma h and
return f = sigma h / s; the last layers start at zero, so an untrained model is the pure
Omega-bridge. The field is read in its own shape (``domain.unflatten``); the Product's
other factors (a class label, scalars) enter as conditioning, next to the time features,
and get their own outputs from a small head.

- ``DriftUNet``: an image field (C, H, W) of a scalar kind (pixels on a lattice, values in
  an interval, ...) or a categorical field (H, W) whose K one-hot columns are the channels.
- ``DriftSetNetwork``: a point field (P, D) of a scalar kind, D <= 4; permutation-equivariant
  over the P points (DeepSets layers: each point sees itself and the mean over all points).

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

from omegabridge.domains import Categorical, Product
from omegabridge.models import BridgeDrift

__all__ = ["DriftUNet", "DriftSetNetwork", "find_field"]


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


class _Conditioning(nn.Module):
    """Time features and the other factors' standardised z and m -> one embedding per row."""

    def __init__(self, other: int, size: int):
        super().__init__()
        self.network = nn.Sequential(nn.Linear(3 + 2 * other, size), nn.SiLU(), nn.Linear(size, size), nn.SiLU())

    def forward(self, time_features, z_other, m_other):
        return self.network(torch.cat([time_features, z_other, m_other], dim=1))


def _zero(layer: nn.Module) -> nn.Module:
    for parameter in layer.parameters():
        nn.init.zeros_(parameter)
    return layer


class _ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, embedding: int):
        super().__init__()
        self.norm_in = nn.GroupNorm(min(8, channels_in), channels_in)
        self.conv_in = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.shift = nn.Linear(embedding, channels_out)
        self.norm_out = nn.GroupNorm(min(8, channels_out), channels_out)
        self.conv_out = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.skip = nn.Conv2d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()

    def forward(self, x, embedding):
        h = self.conv_in(nn.functional.silu(self.norm_in(x)))
        h = h + self.shift(embedding)[:, :, None, None]
        h = self.conv_out(nn.functional.silu(self.norm_out(h)))
        return h + self.skip(x)


class _FieldModel:
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

    def _assemble(self, field_output: torch.Tensor, other_output: torch.Tensor) -> torch.Tensor:
        rows = field_output.shape[0]
        h = field_output.new_empty(rows, self.bridge.width)
        h[:, self.field_offset:self.field_offset + self.field.width] = field_output.reshape(rows, -1)
        h[:, self.other_columns] = other_output
        return h


class DriftUNet(_FieldModel, BridgeDrift):
    """A small time-conditioned U-Net over an image field; see the module docstring.

    Args:
        bridge: the ``Bridge``; its domain must hold an image field (``find_field``).
        channels: feature channels per resolution; each level after the first halves H and W
            while both stay even.
        data: rows of data for the input and output scales (as ``DriftMLP``).
    """

    def __init__(self, bridge, channels: tuple[int, ...] = (32, 64), data: torch.Tensor | None = None):
        super().__init__(bridge, data)
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
        self.conditioning = _Conditioning(other, embedding)
        self.stem = nn.Conv2d(2 * image_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList(_ResidualBlock(a, b, embedding) for a, b in zip((channels[0],) + channels, channels))
        self.middle = _ResidualBlock(channels[-1], channels[-1], embedding)
        self.up = nn.ModuleList(_ResidualBlock(2 * c, c_out, embedding)
                                for c, c_out in zip(channels[::-1], channels[::-1][1:] + (channels[0],)))
        self.out = _zero(nn.Conv2d(channels[0], image_channels, 3, padding=1))
        self.other_head = _zero(nn.Linear(channels[-1] + embedding, other)) if other else None

    def _image(self, view: torch.Tensor) -> torch.Tensor:
        if self.categorical:  # (n, H, W, K) -> (n, K, H, W)
            return view.permute(0, 3, 1, 2)
        return view.reshape(view.shape[0], *self.image_shape)

    def predict(self, z, m, time_features):
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
        other = self.other_head(torch.cat([pooled, embedding], dim=1)) if self.other_head is not None else z_other
        return self._assemble(image.contiguous(), other)


class DriftSetNetwork(_FieldModel, BridgeDrift):
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
        self.conditioning = _Conditioning(other, hidden)
        self.embed = nn.Linear(2 * dimension + hidden, hidden)
        self.layers = nn.ModuleList(nn.Linear(2 * hidden, hidden) for _ in range(depth))
        self.out = _zero(nn.Linear(hidden, dimension))
        self.other_head = _zero(nn.Linear(2 * hidden, other)) if other else None

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
