"""Numerically stable special functions of the standard normal, in torch (float32 and float64).

These are the building blocks of the torch reference (bridge-math.md section 2):
R(x) = Q(x) / phi(x) is Mills' ratio, Q the upper tail of N(0, 1), and
G(x) = 1 / R(x) - x >= 0 is the mean excess of a standard normal beyond x,
E[Y - x | Y >= x]. G carries every far-tail formula: the half-line mean on the
outside is a + sqrt(s) G(-u).

Example:
    >>> import torch
    >>> from omegabridge.core.special import mean_excess
    >>> round(float(mean_excess(torch.tensor(0.0, dtype=torch.float64))), 6)
    0.797885
"""

from __future__ import annotations

import math

import numpy as np
import torch

SQRT_HALF = math.sqrt(0.5)
SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

_MEAN_EXCESS_SWITCH = 5.0  # below: 1/R(x) - x directly; above: Laplace's continued fraction
_MEAN_EXCESS_TERMS = 48
_BESSEL_RATIO_TERMS = 40
# Halley steps of truncated_tail_quantile from its start: 2 reach float32 rounding (as special.h), 3 float64.
_TAIL_OFFSET_STEPS = {torch.float64: 3}


def mills_ratio(x: torch.Tensor) -> torch.Tensor:
    """R(x) = Q(x) / phi(x) = sqrt(pi/2) erfcx(x / sqrt(2)); finite for all x >= -9 (float32)."""
    return SQRT_HALF_PI * torch.special.erfcx(x * SQRT_HALF)


def log_mills_ratio(x: torch.Tensor) -> torch.Tensor:
    """log R(x) for x >= 0."""
    return torch.log(mills_ratio(x))


def mean_excess(x: torch.Tensor) -> torch.Tensor:
    """G(x) = 1/R(x) - x = E[Y - x | Y >= x], Y ~ N(0, 1), for x >= 0 (clamped below at 0).

    For large x the difference cancels, so it is evaluated there by Laplace's
    continued fraction G(x) = 1 / (x + 2 / (x + 3 / (x + ...))).
    """
    x = torch.clamp(x, min=0.0)
    small = x <= _MEAN_EXCESS_SWITCH
    direct = 1.0 / mills_ratio(torch.where(small, x, torch.zeros_like(x))) - x
    far = torch.where(small, torch.full_like(x, _MEAN_EXCESS_SWITCH + 1.0), x)
    denominator = far
    for j in range(_MEAN_EXCESS_TERMS, 1, -1):
        denominator = far + j / denominator
    return torch.where(small, direct, 1.0 / denominator)


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Phi(x) = erfc(-x / sqrt 2) / 2, accurate in both tails' relative sense where it matters."""
    return 0.5 * torch.special.erfc(-x * SQRT_HALF)


def normal_pdf(x: torch.Tensor) -> torch.Tensor:
    """phi(x)."""
    return INV_SQRT_2PI * torch.exp(-0.5 * x * x)


def normal_mass(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Phi(high) - Phi(low) for low < 0 < high, as a sum of two positive erf terms (no cancellation)."""
    return 0.5 * (torch.erf(high * SQRT_HALF) + torch.erf(-low * SQRT_HALF))


_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(24)
_GAUSS_NODES = 0.5 * (_GAUSS_NODES + 1.0)  # on [0, 1]
_GAUSS_WEIGHTS = 0.5 * _GAUSS_WEIGHTS


def short_tail_mean(start: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """E[T] for density proportional to exp(-(start t + t^2/2)) on [0, width]: the mean offset of a
    standard normal truncated to [start, start + width] from its lower end.

    A 24-node Gauss-Legendre ratio of two positive sums, for width <= 1 and
    start * width <= 40, where the closed form cancels (its numerator is O(width^2));
    the integrand is then entire with rate <= 41, so the rule is exact to float64 rounding.
    """
    tau = torch.as_tensor(_GAUSS_NODES, dtype=start.dtype, device=start.device)
    weight = torch.as_tensor(_GAUSS_WEIGHTS, dtype=start.dtype, device=start.device)
    rate = (start * width)[..., None]
    curvature = (0.5 * width * width)[..., None]
    density = weight * torch.exp(-(rate * tau + curvature * tau * tau))
    return width * (density * tau).sum(-1) / density.sum(-1)


def bessel_ratio_denominator(kappa: torch.Tensor, dimension: torch.Tensor) -> torch.Tensor:
    """T(kappa) with kappa / T = A_d(kappa) = I_{d/2}(kappa) / I_{d/2 - 1}(kappa).

    Perron's continued fraction (Gautschi and Slavik, 1978), 40 terms, converges
    uniformly for all kappa >= 0; returning the denominator lets callers form
    A_d(kappa) / kappa = 1 / T without dividing by kappa (finite at kappa = 0).
    """
    nu = 0.5 * dimension
    two_kappa = 2.0 * kappa
    t = 2.0 * nu + _BESSEL_RATIO_TERMS + two_kappa
    for k in range(_BESSEL_RATIO_TERMS - 1, 0, -1):
        t = 2.0 * nu + k + two_kappa - (2.0 * nu + 2 * k + 1) * kappa / t
    return 2.0 * nu + kappa - (2.0 * nu + 1.0) * kappa / t


def truncated_tail_quantile(start: torch.Tensor, width: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Offset t in [0, width] of a standard normal truncated to [start, start + width], start >= 0.

    Inverse-CDF draw with uniform u in (0, 1], done relative to ``start`` so far
    tails keep their precision: solve log Q(start + t) - log Q(start) = log p with
    p = 1 - u (1 - Q(start + width) / Q(start)) by Halley's method from an upper bound,
    with f' = -h and f'' = -h G where G = mean_excess(start + t) and h = G + start + t = 1 / R.
    """
    start = torch.clamp(start, min=0.0)
    end = start + width
    finite_end = torch.isfinite(end)
    end_safe = torch.where(finite_end, end, start)
    ratio = torch.exp(-0.5 * width * (start + end_safe)) * mills_ratio(end_safe) / mills_ratio(start)
    ratio = torch.where(finite_end, ratio, torch.zeros_like(ratio))
    log_p = torch.log1p(-u * (1.0 - ratio))
    # u = 1 on an unbounded tail asks for t = inf: cap the excess at -log(tiny), a finite far point.
    log_p = torch.clamp(log_p, min=math.log(torch.finfo(u.dtype).tiny))
    excess = -log_p
    # Ignoring the decrease of log R gives an upper bound on the root: the start.
    t = 2.0 * excess / (start + torch.sqrt(start * start + 2.0 * excess))
    log_r_start = log_mills_ratio(start)
    for _ in range(_TAIL_OFFSET_STEPS.get(t.dtype, 2)):
        position = start + t
        g = mean_excess(position)
        h = g + position  # 1 / R(x), as special.h forms it
        value = -(start * t + 0.5 * t * t) - torch.log(h) - log_r_start - log_p
        t = torch.clamp(t + 2.0 * value / (2.0 * h + value * g), min=0.0)
    t = torch.where(torch.isfinite(t), t, torch.zeros_like(t))
    return torch.minimum(t, width)
