"""Baselines the fused kernels are measured against.

* ``per_column_step`` / ``per_column_target``: the singular force as the paper's public code
  computes it: log h of each factor written in torch, differentiated by autograd one factor
  (one column or one categorical group) at a time, every step. Same math as bridge-math.md
  section 2 (grad log h = (m - z)/s), so it is a fair baseline, not a strawman: log h uses
  stable primitives (log_ndtr, logsumexp).
* ``compiled_reference``: ``torch.compile`` of the torch reference's step and target (posterior
  mean and update compiled; noise from torch.randn, see ``_reference_step_torch_noise``).
"""

from __future__ import annotations

import math

import torch

import omegabridge as ob
from omegabridge import reference


def _log_h(factor, z: torch.Tensor, s: float) -> torch.Tensor:
    """log h(z, s) of one factor up to a constant, summed over rows; z is (rows, width)."""
    sigma = math.sqrt(s)
    if isinstance(factor, ob.Real):
        return (0.0 * z).sum()
    if isinstance(factor, ob.HalfLine):
        u = (z - factor.low) / sigma if factor.low is not None else (factor.high - z) / sigma
        return torch.special.log_ndtr(u).sum()
    if isinstance(factor, ob.Interval):
        alpha, beta = (factor.low - z) / sigma, (factor.high - z) / sigma
        return torch.log(torch.special.ndtr(beta) - torch.special.ndtr(alpha)).sum()
    if isinstance(factor, (ob.Lattice, ob.Binary)):
        segment = factor.segments()[0]
        points = segment.low + segment.step * torch.arange(segment.points, dtype=z.dtype, device=z.device)
        return torch.logsumexp(-((points - z) ** 2) / (2 * s), dim=-1).sum()
    if isinstance(factor, ob.Categorical):
        # log sum_k N(e_k; z, s) = logsumexp(z / s) - |z|^2 / (2 s) + const: the second term is the
        # -z/s of the score (m - z)/s
        return (torch.logsumexp(z / s, dim=-1) - (z * z).sum(dim=-1) / (2 * s)).sum()
    raise TypeError(f"no per-column baseline for {factor!r}")


def _factors(domain):
    return domain.factors if isinstance(domain, ob.Product) else [domain]


def per_column_score(domain, z: torch.Tensor, s: float) -> torch.Tensor:
    """grad log h, one autograd call per factor (the paper's code's structure)."""
    score = torch.empty_like(z)
    offset = 0
    for factor in _factors(domain):
        columns = z[:, offset : offset + factor.width].detach().requires_grad_(True)
        with torch.enable_grad():  # samplers run under no_grad; this baseline needs autograd
            (grad,) = torch.autograd.grad(_log_h(factor, columns, s), columns)
        score[:, offset : offset + factor.width] = grad
        offset += factor.width
    return score


def per_column_step(domain, z, f, s: float, db: float, generator=None) -> torch.Tensor:
    """z + db (grad log h + f) + sqrt(db) xi with the score from per-column autograd."""
    xi = torch.randn(z.shape, generator=generator, device=z.device)
    return z + db * (per_column_score(domain, z, s) + f) + math.sqrt(db) * xi


def per_column_target(domain, x, mean_scale, noise_scale, s: float, generator=None):
    """Z_t = c x + sigma eps and y = (x - m)/s = (x - Z_t)/s - grad log h (per-column autograd)."""
    z_t = mean_scale * x + noise_scale * torch.randn(x.shape, generator=generator, device=x.device)
    return z_t, (x - z_t) / s - per_column_score(domain, z_t, s)


def _reference_step_torch_noise(z, f, table, s: float, db: float):
    """The reference step with torch.randn noise (the Philox-in-int64 noise of the reference is a
    graph of hundreds of integer ops that torch.compile needs many minutes to build on 2 cores)."""
    m = reference.posterior_mean(z, table, s)
    return z + db * ((m - z) / s + f) + math.sqrt(db) * torch.randn_like(z)


def _reference_target_torch_noise(x, table, mean_scale, noise_scale, s):
    z_t = mean_scale * x + noise_scale * torch.randn_like(x)
    return z_t, (x - reference.posterior_mean(z_t, table, s)) / s


_compiled = {}
# Each layout bakes its segment table into the graph: allow one compiled graph per layout and op
# instead of falling back to eager after the default 8.
torch._dynamo.config.cache_size_limit = 64


def compiled_reference(op: str, mode: str | None = None):
    """torch.compile (``mode``: None for the default, or e.g. 'max-autotune-no-cudagraphs') of the
    reference step (op='step') or target (op='target'), with torch.randn noise; built once per (op, mode)."""
    if (op, mode) not in _compiled:
        function = _reference_step_torch_noise if op == "step" else _reference_target_torch_noise
        _compiled[op, mode] = torch.compile(function, dynamic=False, mode=mode)
    return _compiled[op, mode]
