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

import torch
from tqdm.auto import tqdm

__all__ = ["fit"]


def fit(
    bridge,
    model: torch.nn.Module,
    data: torch.Tensor,
    *,
    iterations: int = 2000,
    batch_size: int = 256,
    learning_rate: float = 2e-3,
    weight: str = "remaining_squared",
    clip: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` on rows ``data`` (validated against the bridge's domain) and return the losses.

    Minibatches are drawn with replacement from ``data`` by a generator seeded
    with ``seed``, so a run is repeatable. The default ``weight`` suits
    ``DriftMLP`` (its loss is then the squared error of the predicted data point).
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not math.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate!r}")
    data = bridge.check_data(data, name="data")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iterations)
    losses: list[float] = []
    model.train()
    with tqdm(range(iterations), disable=not progress, desc="training", unit="it") as bar:
        for _ in bar:
            index = torch.randint(0, data.shape[0], (batch_size,), generator=generator)
            loss = bridge.loss(model, data[index], weight=weight, generator=generator)
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
