"""The torch reference of the posterior mean m(z, s) of every domain (bridge-math.md section 2).

m(z, s) is the mean of N(z, s I) restricted to the domain; every kernel's mean is tested
against this one. Plain, readable and float64-capable; vectorised over the whole layout, one
gather per segment kind, never a Python loop over columns. The lattice's window and
Euler-Maclaurin constants are the same as in csrc/include/omegabridge/posterior.h and
kernels/posterior.py.

Example:
    >>> import torch, omegabridge as ob
    >>> m = posterior_mean(torch.tensor([[-3.0], [2.0]]), ob.HalfLine(low=0.0).segment_table(), 1.0)
    >>> bool((m >= 0).all())
    True
"""

from __future__ import annotations

import math
from typing import Union

import torch

from omegabridge.core import special
from omegabridge.core.segments import ColumnGroup, SegmentTable, cast_like, gather_group, kind_columns, scatter_group

__all__ = [
    "Scale", "posterior_mean", "interval_mean", "lower_halfline_mean", "lattice_mean", "lattice_euler_maclaurin_mean",
    "lattice_uses_euler_maclaurin", "lattice_window_logits", "scaled_hermite", "row_chunks",
    "softmax_group", "as_scale", "LATTICE_EULER_MACLAURIN_COEFFICIENTS", "LATTICE_WINDOW_SIGMAS", "LATTICE_WINDOW_LIMIT", "LATTICE_OUTSIDE_RATE",
]

Scale = Union[float, torch.Tensor]  # a scalar s, or per-row s of shape (n, 1)
_LATTICE_CHUNK_ELEMENTS = 1 << 22
# Outside an interval, the closed form's numerator is O(w^2) when w = (b - a)/sqrt(s) is small and
# E = phi(b)/phi(a) is near 1; there the mean comes from Gauss-Legendre quadrature instead.
_SHORT_INTERVAL = 1.0
_SHORT_INTERVAL_RATE = 40.0
# The lattice mean at a cost bounded whatever K (bridge-math.md section 2, "Lattice"): a window
# of points around the nearest when few carry weight, Euler-Maclaurin when many do. The same
# constants are in csrc/include/omegabridge/posterior.h and kernels/posterior.py.
LATTICE_WINDOW_SIGMAS = 9.0  # points beyond 9 sqrt(s) (plus one step) carry < e^-40 relative weight
LATTICE_WINDOW_LIMIT = 34  # the most points summed on either side of the nearest
# Far outside (distance / sigma'^2 >= this, in points) the weights fall by e^-0.75 per point from
# the end, so LATTICE_WINDOW_LIMIT points leave < e^-25; nearer, Euler-Maclaurin's error with
# the four corrections below is about 2 (rate / 2 pi)^10 < 1e-9 relative (measured: 5e-10).
LATTICE_OUTSIDE_RATE = 0.75
LATTICE_EULER_MACLAURIN_COEFFICIENTS = (1 / 12, -1 / 720, 1 / 30240, -1 / 1209600)  # B_2p / (2p)!, p = 1..4


def as_scale(s: Scale, like: torch.Tensor) -> torch.Tensor:
    """s as a tensor of like's dtype broadcastable to (n, 1)."""
    s = torch.as_tensor(s, dtype=like.dtype, device=like.device)
    return s.reshape(-1, 1) if s.dim() >= 1 else s


def lower_halfline_mean(z: torch.Tensor, s: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """m for [low, inf): z + sqrt(s) phi(u)/Phi(u) inside, low + sqrt(s) G(-u) outside (u = (z - low)/sqrt s)."""
    sigma = torch.sqrt(s)
    u = (z - low) / sigma
    inside = u >= 0
    u_in = torch.where(inside, u, torch.zeros_like(u))
    correction = special.normal_pdf(u_in) / special.normal_cdf(u_in)
    return torch.where(inside, z + sigma * correction, low + sigma * special.mean_excess(-u))


def interval_mean(z: torch.Tensor, s: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """m for [low, high], written relative to the nearer end so far tails and narrow intervals stay exact.

    With alpha = (low - z)/sigma, beta = (high - z)/sigma, w = beta - alpha:
    z inside: z + sigma (phi(alpha) - phi(beta)) / (Phi(beta) - Phi(alpha)) with both
    differences formed without cancellation; z below low (alpha >= 0):
    low + sigma D, D = [R(a)G(a) - E R(b)(G(b) + w)] / [R(a) - E R(b)], E = phi(b)/phi(a);
    z above high mirrors it; w < 1e-3: the linearly tilted uniform on [low, high].
    """
    sigma = torch.sqrt(s)
    middle = 0.5 * (low + high)
    above = z > middle  # reflect so the nearer end is `near` and z lies on its outer side or inside
    sign = torch.where(above, -torch.ones_like(z), torch.ones_like(z))
    near = torch.where(above, high, low)
    far = torch.where(above, low, high)
    alpha = sign * (near - z) / sigma  # >= 0 when z is outside beyond `near`
    beta = sign * (far - z) / sigma
    width = (high - low) / sigma  # not beta - alpha: both carry rounding of order eps |z| / sigma

    # outside (alpha >= 0): offset from `near` into the interval, in units of sigma
    a = torch.clamp(alpha, min=0.0)
    b = a + width
    ratio_tail = torch.exp(-0.5 * width * (a + b))
    r_a, r_b = special.mills_ratio(a), special.mills_ratio(b)
    numerator = r_a * special.mean_excess(a) - ratio_tail * r_b * (special.mean_excess(b) + width)
    denominator = r_a - ratio_tail * r_b
    short = (width <= _SHORT_INTERVAL) & (a * width <= _SHORT_INTERVAL_RATE)
    quadrature = special.short_tail_mean(torch.where(short, a, torch.zeros_like(a)), torch.where(short, width, torch.zeros_like(width) + 1.0))
    outside_offset = torch.where(short, quadrature, numerator / denominator)
    outside_offset = torch.minimum(torch.clamp(outside_offset, min=0.0), width)
    outside = near + sign * sigma * outside_offset

    # inside (alpha < 0 < beta, |alpha| <= beta after the reflection)
    al = torch.where(alpha < 0, alpha, -torch.ones_like(alpha))
    be = torch.where(alpha < 0, beta, torch.ones_like(beta))
    difference_pdf = special.normal_pdf(al) * -torch.expm1(-0.5 * width * (be + al))
    inside = z + sign * sigma * difference_pdf / special.normal_mass(al, be)
    return torch.where(alpha >= 0, outside, inside)


def lattice_uses_euler_maclaurin(z, s, low, step, points) -> torch.Tensor:
    """Bool per element: its mean comes from the Euler-Maclaurin form, not the window.

    True when the window would be cut short (K - 1 and 9 sigma' + 2 both beyond
    ``LATTICE_WINDOW_LIMIT``) and z is not far outside: distance outside / sigma'^2 (in points, the
    rate at which the weights fall per point from the nearer end) below ``LATTICE_OUTSIDE_RATE``.
    """
    sigma_points = torch.sqrt(s) / step
    y = (z - low) / step
    last = (points - 1).to(z.dtype)
    outside = torch.clamp(torch.maximum(-y, y - last), min=0.0)
    return (
        (last > LATTICE_WINDOW_LIMIT)
        & (LATTICE_WINDOW_SIGMAS * sigma_points + 2.0 > LATTICE_WINDOW_LIMIT)
        & (outside < LATTICE_OUTSIDE_RATE * sigma_points * sigma_points)
    )


def lattice_window_logits(z, s, low, step, points):
    """Logits of the points j = -LIMIT..LIMIT around the nearest x_n, each element masked to its own
    window (-inf elsewhere): (logits, offsets x_(n+j) - x_n, x_n, n as float64).

    Formed relative to x_n as -(x_k - x_n)((x_k - x_n) + 2 delta_n) / (2 s), delta_n = x_n - z: one
    rounding in the second factor, so it stays exact in float32 near a midpoint where two logits are
    close (neither a sum of squares nor delta_k + delta_n, which rounds x_k - z first, would be).
    """
    last = (points - 1).to(torch.float64)
    nearest = torch.minimum(torch.clamp(torch.round((z.to(torch.float64) - low) / step), min=0.0), last)
    x_near = (low + nearest * step).to(z.dtype)  # canonical points, rounded once from float64
    j = torch.arange(-LATTICE_WINDOW_LIMIT, LATTICE_WINDOW_LIMIT + 1, dtype=torch.float64, device=z.device)
    index = nearest[..., None] + j
    offsets = (low[:, None] + index * step[:, None]).to(z.dtype) - x_near[..., None]
    s3 = s[..., None] if torch.is_tensor(s) and s.dim() else s
    logits = -offsets * (offsets + 2.0 * (x_near - z)[..., None]) / (2.0 * s3)
    # Each element sums its own window (as a kernel column would), whatever its neighbours need.
    own = torch.ceil(LATTICE_WINDOW_SIGMAS * torch.sqrt(torch.as_tensor(s, dtype=torch.float64)) / step + 2.0)
    own = torch.clamp(own, max=LATTICE_WINDOW_LIMIT)
    inside = (index >= 0) & (index <= last[..., None]) & (j.abs() <= own[..., None])
    logits = torch.where(inside, logits, torch.full_like(logits, -math.inf))
    return logits, offsets, x_near, nearest


def _lattice_window_mean(z, s, low, step, points):
    """x_n + sum_j w_j (x_{n+j} - x_n) over the window around the nearest x_n."""
    logits, offsets, x_near, _ = lattice_window_logits(z, s, low, step, points)
    return x_near + (torch.softmax(logits, dim=-1) * offsets).sum(-1)


def scaled_hermite(u: torch.Tensor, sigma_points: torch.Tensor, degree: int) -> list[torch.Tensor]:
    """He_k(u) / sigma'^k for k = 0..degree (bounded where the Euler-Maclaurin form is used, even when u is large)."""
    v = torch.clamp(u / sigma_points, -1e3, 1e3)  # beyond, the end's weight is 0: keep the product finite
    inverse_variance = 1.0 / (sigma_points * sigma_points)
    values = [torch.ones_like(u), v]
    for k in range(1, degree):
        values.append(v * values[k] - k * inverse_variance * values[k - 1])
    return values


def lattice_euler_maclaurin_mean(z, s, low, step, points) -> torch.Tensor:
    """m on the lattice when many points carry weight: the truncated-Gaussian mean plus end corrections.

    In units of the step, with y = (z - low)/step, sigma' = sqrt(s)/step, g(x) = exp(-(x - y)^2 / (2 sigma'^2))
    on x = 0..n (n = K - 1), Euler-Maclaurin gives sum_x f(x) = integral_0^n f + (f(0) + f(n))/2
    + sum_p B_2p/(2p)! (f^(2p-1)(n) - f^(2p-1)(0)). Writing the integral's ratio as the mean m_I of the
    Gaussian truncated to [low, high] (``interval_mean``) and taking f = (x - m_I) g for the numerator:

        m = m_I + step * B_c / (sigma' M + B_0),

    where M is the integral of g in units of sigma' and B_0, B_c the end terms of g and (x - m_I) g;
    g's derivatives are Hermite polynomials, g^(k) = (-1/sigma')^k He_k(u) g. Every g is scaled by
    the weight of the nearer end when z lies outside, as in ``interval_mean``, so nothing underflows.
    """
    sigma = torch.sqrt(s)
    sigma_points = sigma / step
    y = (z - low) / step
    last = (points - 1).to(z.dtype)
    u_low, u_high = -y / sigma_points, (last - y) / sigma_points
    outside = torch.clamp(torch.maximum(u_low, -u_high), min=0.0)
    weight_low = torch.exp(-0.5 * (u_low - outside) * (u_low + outside))
    weight_high = torch.exp(-0.5 * (u_high - outside) * (u_high + outside))
    zero = torch.zeros_like(z)
    below, above = u_low >= 0, u_high <= 0
    mass = torch.where(
        below,
        special.mills_ratio(torch.maximum(u_low, zero)) - weight_high * special.mills_ratio(torch.maximum(u_high, zero)),
        torch.where(
            above,
            special.mills_ratio(torch.maximum(-u_high, zero)) - weight_low * special.mills_ratio(torch.maximum(-u_low, zero)),
            math.sqrt(2.0 * math.pi) * special.normal_mass(torch.minimum(u_low, zero), torch.maximum(u_high, zero)),
        ),
    )
    high = low + last * step
    centre_value = interval_mean(z, s, low, high)
    centre = (centre_value - low) / step
    degree = 2 * len(LATTICE_EULER_MACLAURIN_COEFFICIENTS)
    hermite_low = scaled_hermite(u_low, sigma_points, degree)
    hermite_high = scaled_hermite(u_high, sigma_points, degree)
    ends = 0.5 * (weight_low + weight_high)
    ends_centred = 0.5 * ((last - centre) * weight_high - centre * weight_low)
    for p, coefficient in enumerate(LATTICE_EULER_MACLAURIN_COEFFICIENTS, start=1):
        k = 2 * p - 1  # odd: g^(k) = -He_k(u)/sigma'^k g, g^(k-1) = +He_(k-1)(u)/sigma'^(k-1) g
        ends = ends + coefficient * (hermite_low[k] * weight_low - hermite_high[k] * weight_high)
        high_term = (-(last - centre) * hermite_high[k] + k * hermite_high[k - 1]) * weight_high
        low_term = (centre * hermite_low[k] + k * hermite_low[k - 1]) * weight_low
        ends_centred = ends_centred + coefficient * (high_term - low_term)
    return centre_value + step * ends_centred / (sigma_points * mass + ends)


def lattice_mean(z: torch.Tensor, s, low, step, points) -> torch.Tensor:
    """m for lattice columns at a bounded cost per element whatever K: the window or Euler-Maclaurin.

    ``z`` (n, L); ``s`` a scalar or (n, 1); ``low``, ``step`` float64 (L,); ``points`` long (L,).
    """
    s = torch.as_tensor(s, dtype=z.dtype, device=z.device)
    # Always the widest window, each element masked to its own: the same tensor shapes whatever the
    # other columns of the layout, so a column gives the same bits alone or in a wider layout.
    window = _lattice_window_mean(z, s, low, step, points)
    low_z, step_z = cast_like(low, z), cast_like(step, z)
    use_formula = lattice_uses_euler_maclaurin(z, s, low_z, step_z, points)
    if not bool(use_formula.any()):
        return window
    return torch.where(use_formula, lattice_euler_maclaurin_mean(z, s, low_z, step_z, points), window)


def row_chunks(rows: int, per_row: int):
    """[start, stop) row ranges holding at most about 4M elements of ``per_row`` each (bounds the lattice's memory)."""
    size = max(1, _LATTICE_CHUNK_ELEMENTS // max(per_row, 1))
    return [(start, min(rows, start + size)) for start in range(0, rows, size)]


def _per_row(s: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    return s[start:stop] if s.dim() and s.shape[0] > 1 else s




def softmax_group(z: torch.Tensor, group: ColumnGroup, s: torch.Tensor) -> torch.Tensor:
    """softmax(z / s) per categorical group, with the max subtracted before dividing by s."""
    values = gather_group(z, group, -math.inf)
    top = values.max(dim=-1, keepdim=True).values
    s3 = s[..., None] if s.dim() else s
    logits = torch.where(group.mask[None], (values - top) / s3, torch.full_like(values, -math.inf))
    return torch.softmax(logits, dim=-1)


def _sphere_mean_group(z: torch.Tensor, group: ColumnGroup, s: torch.Tensor) -> torch.Tensor:
    """A_d(kappa) z/|z| = z / (s T(kappa)), kappa = |z| / s (finite at z = 0)."""
    values = gather_group(z, group, 0.0)
    s3 = s[..., None] if s.dim() else s
    norm = torch.linalg.vector_norm(values, dim=-1, keepdim=True)
    kappa = norm / s3
    denominator = special.bessel_ratio_denominator(kappa, group.sizes[None, :, None].to(z.dtype))
    return values / (s3 * denominator)


def posterior_mean(z: torch.Tensor, table: SegmentTable, s: Scale) -> torch.Tensor:
    """m(z, s) for every column of the layout; ``s`` a scalar or per-row (n, 1), all > 0.

    >>> import torch, omegabridge as ob
    >>> table = ob.Categorical(3).segment_table()
    >>> posterior_mean(torch.zeros(1, 3), table, 1.0)
    tensor([[0.3333, 0.3333, 0.3333]])
    """
    plan = kind_columns(table, z.device)
    s = as_scale(s, z)
    out = z.clone()
    if plan.interval.numel():
        cols = plan.interval
        out[:, cols] = interval_mean(z[:, cols], s, cast_like(plan.interval_low, z), cast_like(plan.interval_high, z))
    if plan.lower.numel():
        out[:, plan.lower] = lower_halfline_mean(z[:, plan.lower], s, cast_like(plan.lower_end, z))
    if plan.upper.numel():
        out[:, plan.upper] = -lower_halfline_mean(-z[:, plan.upper], s, -cast_like(plan.upper_end, z))
    if plan.binary.numel():
        out[:, plan.binary] = torch.sigmoid((z[:, plan.binary] - 0.5) / s)
    if plan.lattice.numel():
        cols = plan.lattice
        per_row = cols.numel() * (2 * LATTICE_WINDOW_LIMIT + 1)
        for start, stop in row_chunks(z.shape[0], per_row):
            out[start:stop, cols] = lattice_mean(
                z[start:stop, cols], _per_row(s, start, stop), plan.lattice_low, plan.lattice_step, plan.lattice_points
            )
    if plan.categorical.index.numel():
        scatter_group(out, plan.categorical, softmax_group(z, plan.categorical, s))
    if plan.sphere.index.numel():
        scatter_group(out, plan.sphere, _sphere_mean_group(z, plan.sphere, s))
    return out
