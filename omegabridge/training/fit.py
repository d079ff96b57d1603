"""``fit``: train a drift model in one call (Adam, cosine decay, gradient clipping), on ``Trainer``.

Example:
    >>> import torch, omegabridge as ob
    >>> bridge = ob.Bridge(ob.Binary(), steps=20)
    >>> model = ob.models.DriftMLP(bridge, hidden=16, depth=1)
    >>> losses = ob.fit(bridge, model, torch.ones(64, 1), iterations=3, batch_size=16, progress=False)
    >>> len(losses)
    3
"""

from __future__ import annotations

import torch

from omegabridge.training.trainer import Trainer

__all__ = ["fit"]


def fit(
    bridge,
    model: torch.nn.Module,
    data: torch.Tensor,
    *,
    iterations: int = 2000,
    batch_size: int = 512,
    learning_rate: float = 5e-3,
    weight: str | None = None,
    times: str = "grid",
    clip: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` on rows ``data`` (validated against the bridge's domain) and return the losses.

    A one-call front to ``omegabridge.Trainer`` (which adds EMA, warmup, mixed precision,
    resumable checkpoints, logging hooks and torchrun/DDP): each iteration takes the next
    ``batch_size`` rows of a seeded permutation of ``data`` (epoch after epoch), one Adam
    step on ``bridge.loss_at`` with the gradient norm clipped to ``clip`` (0 turns
    clipping off), and the learning rate decays from ``learning_rate`` to 0 on a cosine.
    Every draw derives from ``seed`` and the iteration, so a run is repeatable.

    ``weight=None`` takes the model's own (``Trainer``'s default: ``"remaining"`` for ``DriftMLP``,
    plain x-prediction MSE for the mean-predicting field models). ``"remaining"`` (lambda = s) is the
    tables' because, for exponential schedules (g(t) = a (s + beta(T) e^{-a} / (1 - e^{-a}))), it is close to the
    path-space KL divergence between the learned and the ideal process, which
    bounds the sample's error. On a lattice + categorical toy ``DriftMLP`` reached
    lattice TV ~0.03 with it, ~0.05 with ``"none"`` (categorical TV 0.03) and only
    ~0.24 with ``"remaining_squared"``. ``times`` is ``Trainer``'s: ``"grid"`` or ``"continuous"``.

    Raises ``ValueError`` for a non-positive ``iterations``, ``batch_size`` or
    ``learning_rate``, a negative ``clip``, an unknown ``weight`` or ``times``, and
    ``omegabridge.DomainError`` when a row of ``data`` lies outside the domain.
    """
    trainer = Trainer(bridge, model, batch_size=batch_size, learning_rate=learning_rate, weight=weight, times=times,
                      clip=clip, seed=seed, progress=progress)
    return trainer.fit(data, iterations)
