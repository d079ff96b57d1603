"""The exact drift of a known discrete target: what a perfectly trained network would output.

For a target p on finitely many points of the domain, the learned part of the drift is
f*(z, t) = (E[X | Z_t = z] - m(z, s)) / s, and E[X | Z_t = z] weighs each point x by
p(x) N(z; (beta/beta_T) x, beta s / beta_T I) (math.md, *Checks that need no training*).
Sampling with it isolates the sampler's own error from the network's: the statistical
tests and bench/solvers.py measure samplers and grids with it. All in float64.

Example:
    >>> import torch, omegabridge as ob
    >>> bridge = ob.Bridge(ob.Lattice(0, 4), steps=50)
    >>> drift = oracle_drift(bridge, torch.tensor([[1.0], [3.0]]), torch.tensor([0.5, 0.5]))
    >>> x = bridge.sample(drift, 2000, seed=0, progress=False)
    >>> float(((x == 1) | (x == 3)).float().mean()) > 0.95  # the target's two points, up to the sampler's error
    True
"""

from __future__ import annotations

import torch

from omegabridge.reference.posterior import posterior_mean

__all__ = ["oracle_drift"]

F64 = torch.float64


def oracle_drift(bridge, support: torch.Tensor, probabilities: torch.Tensor):
    """f*(z, t) for the discrete target ``probabilities`` on the rows of ``support`` (flat layout), start z0 = 0.

    ``bridge`` is an ``ob.Bridge`` (its schedule, grid end and segment table are used). At
    t = 0 (variance 0) E[X | Z_t] is E_p[X]. Returns a ``model(z, t)`` for ``Bridge.sample``.
    """
    support = support.to(F64)
    log_p = torch.log(probabilities.to(F64))
    total = bridge.time_grid.beta_end

    def drift(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        nonlocal support, log_p
        support, log_p = support.to(z.device), log_p.to(z.device)
        z64 = z.to(F64)
        beta = bridge.schedule.beta(t.detach().to(F64))[:, None]
        s = total - beta
        scale = beta / total
        variance = beta * s / total
        squared = ((z64[:, None, :] - scale[:, :, None] * support[None]) ** 2).sum(-1)  # (n, |S|)
        logits = log_p[None] - squared / (2.0 * variance.clamp_min(1e-300))
        logits = torch.where(variance > 0, logits, log_p[None].expand_as(logits))
        posterior = torch.softmax(logits, dim=1) @ support
        m = posterior_mean(z64, bridge.table, s)
        return ((posterior - m) / s).to(z.dtype)

    return drift
