"""Training: ``Trainer`` (the resumable, data-parallel loop), ``fit`` (its one-call form) and the
torchrun helpers in ``distributed``.

Example:
    >>> import torch, omegabridge as ob
    >>> bridge = ob.Bridge(ob.Binary(), steps=10)
    >>> model = ob.models.DriftMLP(bridge, hidden=8, depth=1)
    >>> len(ob.training.fit(bridge, model, torch.ones(32, 1), iterations=2, batch_size=8, progress=False))
    2
"""

from omegabridge.training.fit import fit
from omegabridge.training.trainer import Trainer, TrainingRecord

__all__ = ["Trainer", "TrainingRecord", "fit"]
