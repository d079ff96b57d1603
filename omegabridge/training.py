"""A short, dependable training loop for a drift model (Adam, cosine decay, gradient clipping).

Example:
    >>> import torch, omegabridge as ob
    >>> bridge = ob.Bridge(ob.Binary(), steps=20)
    >>> model = ob.models.DriftMLP(bridge, hidden=16, depth=1)
    >>> losses = ob.fit(bridge, model, torch.ones(64, 1), iterations=3, batch_size=16, progress=False)
    >>> len(losses)
    3
"""

from __future__ import annotations

import math
import numbers

import torch
from tqdm.auto import tqdm

from omegabridge.bridge import check_loss_weight

__all__ = ["fit"]


def fit(
    bridge,
    model: torch.nn.Module,
    data: torch.Tensor,
    *,
    iterations: int = 2000,
    batch_size: int = 512,
    learning_rate: float = 5e-3,
    weight: str = "remaining",
    clip: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` on rows ``data`` (validated against the bridge's domain) and return the losses.

    Each iteration draws a minibatch of ``batch_size`` rows with replacement, takes
    one Adam step on ``bridge.loss(model, rows, weight=weight)`` (as ``bridge.checked_loss``:
    ``data`` is validated once, up front) with the gradient
    norm clipped to ``clip`` (0 turns clipping off), and the learning rate decays
    from ``learning_rate`` to 0 on a cosine. Rows, times and noise come from a
    generator seeded with ``seed``, so a run is repeatable.

    ``weight="remaining"`` (lambda = s) is the default because, for exponential
    schedules (g(t) = a (s + beta(T) e^{-a} / (1 - e^{-a}))), it is close to the
    path-space KL divergence between the learned and the ideal process, which
    bounds the sample's error. On a lattice + categorical toy ``DriftMLP`` reached
    lattice TV ~0.03 with it, ~0.05 with ``"none"`` (categorical TV 0.03) and only
    ~0.24 with ``"remaining_squared"``.

    Raises ``ValueError`` for a non-positive ``iterations``, ``batch_size`` or
    ``learning_rate``, a negative ``clip`` or an unknown ``weight``, and
    ``omegabridge.DomainError`` when a row of ``data`` lies outside the domain.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not _is_real(learning_rate) or not math.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate!r}")
    if not _is_real(clip) or not math.isfinite(clip) or clip < 0:
        raise ValueError(f"clip must be finite and >= 0 (0: no clipping), got {clip!r}")
    check_loss_weight(weight)
    data = bridge.check_data(data, name="data")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iterations)
    losses: list[float] = []
    model.train()
    with tqdm(range(iterations), disable=not progress, desc="training", unit="it") as bar:
        for _ in bar:
            index = torch.randint(0, data.shape[0], (batch_size,), generator=generator)
            loss = bridge.checked_loss(model, data[index], weight=weight, generator=generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if len(losses) % 50 == 0:
                bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.4g}")
    model.eval()
    return losses


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
