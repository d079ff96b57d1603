"""``for_domain``: the default drift model for a domain, chosen by the fields it holds.

Example:
    >>> import omegabridge as ob
    >>> type(for_domain(ob.Categorical(5, shape=(16, 16)))).__name__
    'DriftUNet'
"""

from __future__ import annotations

import torch

from omegabridge.bridge import Bridge
from omegabridge.core.domains import Domain
from omegabridge.models.base import BridgeDrift
from omegabridge.models.field_layout import find_field
from omegabridge.models.mlp import DriftMLP
from omegabridge.models.set_network import DriftSetNetwork
from omegabridge.models.unet import DriftUNet

__all__ = ["for_domain"]


def for_domain(bridge: Bridge | Domain, data: torch.Tensor | None = None, **options) -> BridgeDrift:
    """The default drift model for ``bridge``'s domain: a ``DriftUNet`` when the domain holds an image
    field (C, H, W) or a categorical map (H, W), a ``DriftSetNetwork`` for a point field (P, D <= 4),
    else a ``DriftMLP``; ``options`` go to that class. A model also needs the schedule, whose s(t)
    scales its inputs and outputs: given a bare domain, it serves ``Bridge(domain)`` (the default
    schedule); given a bridge, that bridge.

    >>> import omegabridge as ob
    >>> type(for_domain(ob.Bridge(ob.Lattice(0, 63, shape=(512, 3)), steps=10))).__name__
    'DriftSetNetwork'
    >>> type(for_domain(ob.Bridge(ob.Product([ob.Real(), ob.Categorical(3)]), steps=10))).__name__
    'DriftMLP'
    """
    if isinstance(bridge, Domain):
        bridge = Bridge(bridge)
    if not isinstance(bridge, Bridge):
        raise TypeError(f"for_domain takes an omegabridge Domain or Bridge, got {type(bridge).__name__}")
    if find_field(bridge.domain, "image") is not None:
        return DriftUNet(bridge, data=data, **options)
    if find_field(bridge.domain, "points") is not None:
        return DriftSetNetwork(bridge, data=data, **options)
    return DriftMLP(bridge, data=data, **options)
