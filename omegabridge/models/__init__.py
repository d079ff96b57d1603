"""Default drift models: each predicts the data point and returns the bridge drift f = (x_hat - m(z, s)) / s.

* ``DriftMLP``: tables and domains without a field;
* ``DriftUNet``: image fields (C, H, W) and categorical maps (H, W);
* ``DriftSetNetwork``: point fields (P, D), D <= 4;
* ``for_domain(domain_or_bridge)``: the one of these that suits the domain.

Example:
    >>> import omegabridge as ob
    >>> type(ob.models.for_domain(ob.Product([ob.Real(), ob.Categorical(3)]))).__name__
    'DriftMLP'
"""

from omegabridge.models.base import BridgeDrift, TimeEmbedding
from omegabridge.models.mlp import DriftMLP
from omegabridge.models.selection import for_domain
from omegabridge.models.set_network import DriftSetNetwork
from omegabridge.models.unet import DriftUNet

__all__ = ["TimeEmbedding", "BridgeDrift", "DriftMLP", "DriftUNet", "DriftSetNetwork", "for_domain"]
