"""The torch reference of every formula in bridge-math.md: the oracle kernels are tested against.

Plain, readable and float64-capable. Everything is vectorised over the whole
layout: one gather per segment kind, never a Python loop over columns.

* ``posterior_mean(z, table, s)``: m(z, s), the mean of N(z, s I) restricted to the domain.
* ``step``: z + db [(m(z, s) - z)/s + f] + sqrt(db) xi, with xi from the shared Philox stream.
* ``final_step``: the exact endpoint law N(z + s f, s I) restricted to the domain.
* ``bridge_target``: Z_t of the x-bridge and the regression target (x - m(Z_t, s)) / s.

Example:
    >>> import torch, omegabridge as ob
    >>> from omegabridge import reference
    >>> table = ob.HalfLine(low=0.0).segment_table()
    >>> m = reference.posterior_mean(torch.tensor([[-3.0], [2.0]]), table, 1.0)
    >>> bool((m >= 0).all())
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import torch

from omegabridge import noise, special
from omegabridge.domains import Kind, SegmentTable

__all__ = [
    "posterior_mean",
    "step",
    "final_step",
    "bridge_target",
    "membership",
    "project",
    "interval_mean",
    "lower_halfline_mean",
    "lattice_mean",
    "lattice_euler_maclaurin_mean",
    "lattice_draw",
    "lattice_euler_maclaurin_draw",
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
# The last step's draw where Euler-Maclaurin serves the mean: the continuous truncated normal's
# quantile, rounded to a point, is moved this many times by one point towards the discrete
# inverse CDF (it is off by at most one point: the two CDFs differ by O(weight / sigma'^2)).
LATTICE_DRAW_CORRECTIONS = 3


# ----------------------------------------------------------------------------------------
# The layout, gathered once per (table, device)
# ----------------------------------------------------------------------------------------
@dataclass
class _Group:
    """Segments of one multi-column kind padded to a (groups, max width) index matrix."""

    index: torch.Tensor  # long (G, W): column of entry j of group g (padding repeats column 0)
    mask: torch.Tensor  # bool (G, W): entry is real
    sizes: torch.Tensor  # long (G,)


@dataclass
class _Plan:
    real: torch.Tensor
    interval: torch.Tensor
    interval_low: torch.Tensor
    interval_high: torch.Tensor
    lower: torch.Tensor
    lower_end: torch.Tensor
    upper: torch.Tensor
    upper_end: torch.Tensor
    binary: torch.Tensor
    lattice: torch.Tensor
    lattice_low: torch.Tensor
    lattice_step: torch.Tensor
    lattice_points: torch.Tensor
    categorical: _Group
    sphere: _Group


def _columns(table: SegmentTable, kind: Kind, device) -> torch.Tensor:
    return torch.tensor([s.offset for s in table.columns_of(kind)], dtype=torch.long, device=device)


def _parameter(table: SegmentTable, kind: Kind, field: str, device) -> torch.Tensor:
    return torch.tensor([getattr(s, field) for s in table.columns_of(kind)], dtype=torch.float64, device=device)


def _group(table: SegmentTable, kind: Kind, device) -> _Group:
    segments = table.columns_of(kind)
    widest = max((s.width for s in segments), default=1)
    entry = torch.arange(widest, dtype=torch.long)
    offsets = torch.tensor([s.offset for s in segments], dtype=torch.long)
    sizes = torch.tensor([s.width for s in segments], dtype=torch.long)
    mask = entry[None, :] < sizes[:, None]
    index = torch.where(mask, offsets[:, None] + entry[None, :], offsets[:, None])
    return _Group(index.to(device), mask.to(device), sizes.to(device))


def _plan(table: SegmentTable, device: torch.device) -> _Plan:
    cache = table.__dict__.setdefault("_reference_plans", {})
    key = str(device)
    if key not in cache:
        cache[key] = _Plan(
            real=_columns(table, Kind.REAL, device),
            interval=_columns(table, Kind.INTERVAL, device),
            interval_low=_parameter(table, Kind.INTERVAL, "low", device),
            interval_high=_parameter(table, Kind.INTERVAL, "high", device),
            lower=_columns(table, Kind.HALFLINE_LOWER, device),
            lower_end=_parameter(table, Kind.HALFLINE_LOWER, "low", device),
            upper=_columns(table, Kind.HALFLINE_UPPER, device),
            upper_end=_parameter(table, Kind.HALFLINE_UPPER, "high", device),
            binary=_columns(table, Kind.BINARY, device),
            lattice=_columns(table, Kind.LATTICE, device),
            lattice_low=_parameter(table, Kind.LATTICE, "low", device),
            lattice_step=_parameter(table, Kind.LATTICE, "step", device),
            lattice_points=torch.tensor(
                [s.points for s in table.columns_of(Kind.LATTICE)], dtype=torch.long, device=device
            ),
            categorical=_group(table, Kind.CATEGORICAL, device),
            sphere=_group(table, Kind.SPHERE, device),
        )
    return cache[key]


def _as_scale(s: Scale, like: torch.Tensor) -> torch.Tensor:
    """s as a tensor of like's dtype broadcastable to (n, 1)."""
    s = torch.as_tensor(s, dtype=like.dtype, device=like.device)
    return s.reshape(-1, 1) if s.dim() >= 1 else s


def _cast(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(dtype=like.dtype)


# ----------------------------------------------------------------------------------------
# Posterior mean per kind (columns of one kind at a time, all rows)
# ----------------------------------------------------------------------------------------
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


def _lattice_window_logits(z, s, low, step, points):
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
    logits, offsets, x_near, _ = _lattice_window_logits(z, s, low, step, points)
    return x_near + (torch.softmax(logits, dim=-1) * offsets).sum(-1)


def _scaled_hermite(u: torch.Tensor, sigma_points: torch.Tensor, degree: int) -> list[torch.Tensor]:
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
    hermite_low = _scaled_hermite(u_low, sigma_points, degree)
    hermite_high = _scaled_hermite(u_high, sigma_points, degree)
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
    low_z, step_z = _cast(low, z), _cast(step, z)
    use_formula = lattice_uses_euler_maclaurin(z, s, low_z, step_z, points)
    if not bool(use_formula.any()):
        return window
    return torch.where(use_formula, lattice_euler_maclaurin_mean(z, s, low_z, step_z, points), window)


def _lattice_window_draw(mean, s, low, step, points, u):
    """Index (float64) of the inverse-CDF draw over the window around the nearest point."""
    logits, _, _, nearest = _lattice_window_logits(mean, s, low, step, points)
    chosen = _inverse_cdf_index(torch.softmax(logits, dim=-1), u)
    return nearest + (chosen - LATTICE_WINDOW_LIMIT).to(torch.float64)


def _scaled_gaussian_mass(t_a, t_b, w_a, w_b, t_c):
    """integral over [t_a, t_b] of exp(-(t^2 - t_c^2)/2) dt (t_a <= t_b), w = the integrand at the ends:
    from Mills' ratios in either tail (no cancellation), as a sum of positive halves across 0."""
    zero = torch.zeros_like(t_a)
    mills = special.mills_ratio
    upper = w_a * mills(torch.maximum(t_a, zero)) - w_b * mills(torch.maximum(t_b, zero))
    lower = w_b * mills(torch.maximum(-t_b, zero)) - w_a * mills(torch.maximum(-t_a, zero))
    # across 0 only when y lies inside the lattice, where |t_c| <= 1/(2 sigma'); clamped for the other lanes
    scale = math.sqrt(2.0 * math.pi) * torch.exp(torch.clamp(0.5 * t_c * t_c, max=80.0))
    across = scale * special.normal_mass(torch.minimum(t_a, zero), torch.maximum(t_b, zero))
    return torch.where(t_a >= 0, upper, torch.where(t_b <= 0, lower, across))


def lattice_euler_maclaurin_draw(mean, s, low, step, points, u) -> torch.Tensor:
    """Index (float64) of the last step's lattice draw where many points carry weight, at a bounded cost.

    The draw is the inverse CDF of the weights w_k = exp(-((k - y)^2 - (c - y)^2) / (2 sigma'^2)) on
    k = 0..n (in points: y = (mean - low)/step, sigma' = sqrt(s)/step, c the nearest point): the
    first k with S(k) >= u S(n), S(k) = w_0 + ... + w_k. Euler-Maclaurin gives S(k) at any k from
    the Gaussian integral over [0, k] and the end terms of ``lattice_euler_maclaurin_mean``. The
    continuous truncated normal on [-1/2, n + 1/2], at the same u, gives a point that is off by at
    most one; ``LATTICE_DRAW_CORRECTIONS`` moves of one point (each adds or removes one weight)
    settle it. ``mean`` (rows, L); ``s`` a scalar or (rows, 1); ``low``, ``step`` (L,) float64.
    """
    s = torch.as_tensor(s, dtype=mean.dtype, device=mean.device)
    low_m, step_m = _cast(low, mean), _cast(step, mean)
    sigma = torch.sqrt(s)
    sigma_points = sigma / step_m
    y = (mean - low_m) / step_m
    last = (points - 1).to(mean.dtype)
    nearest = torch.minimum(torch.clamp(torch.round(y), min=0.0), last)
    t_c = (nearest - y) / sigma_points
    degree = 2 * len(LATTICE_EULER_MACLAURIN_COEFFICIENTS)

    def weight(k):
        t = (k - y) / sigma_points
        return t, torch.exp(-0.5 * (t - t_c) * (t + t_c))

    t_0, w_0 = weight(torch.zeros_like(y))
    hermite_0 = _scaled_hermite(t_0, sigma_points, degree)

    def partial_sum(k):
        t_k, w_k = weight(k)
        hermite_k = _scaled_hermite(t_k, sigma_points, degree)
        total = sigma_points * _scaled_gaussian_mass(t_0, t_k, w_0, w_k, t_c) + 0.5 * (w_0 + w_k)
        for p, coefficient in enumerate(LATTICE_EULER_MACLAURIN_COEFFICIENTS, start=1):
            total = total + coefficient * (hermite_0[2 * p - 1] * w_0 - hermite_k[2 * p - 1] * w_k)
        return total

    target = u * partial_sum(last)
    # The continuous quantile at u; _truncated_normal draws from the upper end down when the mean lies
    # above the interval, so there u's mirror gives the same quantile.
    upper_end = low_m + (last + 0.5) * step_m
    guess = _truncated_normal(mean, sigma, low_m - 0.5 * step_m, upper_end, torch.where(mean >= upper_end, 1.0 - u, u))
    k = torch.minimum(torch.clamp(torch.round((guess - low_m) / step_m), min=0.0), last)
    running = partial_sum(k)
    for _ in range(LATTICE_DRAW_CORRECTIONS):
        up = (running < target) & (k < last)
        k = torch.where(up, k + 1.0, k)
        running = torch.where(up, running + weight(k)[1], running)
        w_k = weight(k)[1]
        down = ~up & (k > 0) & (running - w_k >= target)
        running = torch.where(down, running - w_k, running)
        k = torch.where(down, k - 1.0, k)
    return k.to(torch.float64)


def lattice_draw(mean: torch.Tensor, s, low, step, points, u: torch.Tensor) -> torch.Tensor:
    """The last step's draw on lattice columns at a bounded cost per element whatever K.

    An inverse-CDF draw with the uniforms ``u`` over the window of at most ``LATTICE_WINDOW_LIMIT``
    points on either side of the nearest where few points carry weight (or z is far outside), and
    ``lattice_euler_maclaurin_draw`` where many do. Returns canonical points (rounded once from
    float64) in mean's dtype. ``mean``, ``u`` (rows, L); ``s`` a scalar or (rows, 1); ``low``,
    ``step`` float64 (L,); ``points`` long (L,).

    Example:
        >>> import torch
        >>> low, step, points = torch.tensor([0.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64), torch.tensor([256])
        >>> lattice_draw(torch.tensor([[100.3]]), 400.0, low, step, points, torch.tensor([[0.5]])).shape
        torch.Size([1, 1])
    """
    s = torch.as_tensor(s, dtype=mean.dtype, device=mean.device)
    index = _lattice_window_draw(mean, s, low, step, points, u)
    use_formula = lattice_uses_euler_maclaurin(mean, s, _cast(low, mean), _cast(step, mean), points)
    if bool(use_formula.any()):
        index = torch.where(use_formula, lattice_euler_maclaurin_draw(mean, s, low, step, points, u), index)
    return (low + index * step).to(mean.dtype)


def _row_chunks(rows: int, per_row: int):
    size = max(1, _LATTICE_CHUNK_ELEMENTS // max(per_row, 1))
    return [(start, min(rows, start + size)) for start in range(0, rows, size)]


def _per_row(s: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    return s[start:stop] if s.dim() and s.shape[0] > 1 else s


def _gather_group(z: torch.Tensor, group: _Group, fill: float) -> torch.Tensor:
    values = z[:, group.index]
    return torch.where(group.mask[None], values, torch.full_like(values, fill))


def _scatter_group(out: torch.Tensor, group: _Group, values: torch.Tensor) -> None:
    index = group.index[group.mask]
    out[:, index] = values[:, group.mask]


def _softmax_group(z: torch.Tensor, group: _Group, s: torch.Tensor) -> torch.Tensor:
    """softmax(z / s) per categorical group, with the max subtracted before dividing by s."""
    values = _gather_group(z, group, -math.inf)
    top = values.max(dim=-1, keepdim=True).values
    s3 = s[..., None] if s.dim() else s
    logits = torch.where(group.mask[None], (values - top) / s3, torch.full_like(values, -math.inf))
    return torch.softmax(logits, dim=-1)


def _sphere_mean_group(z: torch.Tensor, group: _Group, s: torch.Tensor) -> torch.Tensor:
    """A_d(kappa) z/|z| = z / (s T(kappa)), kappa = |z| / s (finite at z = 0)."""
    values = _gather_group(z, group, 0.0)
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
    plan = _plan(table, z.device)
    s = _as_scale(s, z)
    out = z.clone()
    if plan.interval.numel():
        cols = plan.interval
        out[:, cols] = interval_mean(z[:, cols], s, _cast(plan.interval_low, z), _cast(plan.interval_high, z))
    if plan.lower.numel():
        out[:, plan.lower] = lower_halfline_mean(z[:, plan.lower], s, _cast(plan.lower_end, z))
    if plan.upper.numel():
        out[:, plan.upper] = -lower_halfline_mean(-z[:, plan.upper], s, -_cast(plan.upper_end, z))
    if plan.binary.numel():
        out[:, plan.binary] = torch.sigmoid((z[:, plan.binary] - 0.5) / s)
    if plan.lattice.numel():
        cols = plan.lattice
        per_row = cols.numel() * (2 * LATTICE_WINDOW_LIMIT + 1)
        for start, stop in _row_chunks(z.shape[0], per_row):
            out[start:stop, cols] = lattice_mean(
                z[start:stop, cols], _per_row(s, start, stop), plan.lattice_low, plan.lattice_step, plan.lattice_points
            )
    if plan.categorical.index.numel():
        _scatter_group(out, plan.categorical, _softmax_group(z, plan.categorical, s))
    if plan.sphere.index.numel():
        _scatter_group(out, plan.sphere, _sphere_mean_group(z, plan.sphere, s))
    return out


# ----------------------------------------------------------------------------------------
# The Euler step
# ----------------------------------------------------------------------------------------
def step(
    z: torch.Tensor,
    drift: torch.Tensor | None,
    table: SegmentTable,
    remaining: float,
    increment: float,
    seed: int,
    step_index: int,
    row_offset: int = 0,
) -> torch.Tensor:
    """One Euler-Maruyama step in beta-time: z + db [(m(z, s) - z)/s + f] + sqrt(db) xi.

    xi is read from stream 0 of the shared Philox contract at (seed, step_index, row_offset + row, column).
    """
    xi = noise.normals(seed, step_index, row_offset, z.shape[0], z.shape[1], noise.STREAM_STEP, z.dtype, z.device)
    m = posterior_mean(z, table, remaining)
    velocity = (m - z) / remaining
    if drift is not None:
        velocity = velocity + drift.to(z.dtype)
    return z + increment * velocity + math.sqrt(increment) * xi


# ----------------------------------------------------------------------------------------
# The exact last step
# ----------------------------------------------------------------------------------------
def _truncated_normal(mean, sigma, low, high, u):
    """Inverse-CDF draw from N(mean, sigma^2) truncated to [low, high] (either end may be infinite)."""
    alpha = (low - mean) / sigma
    beta = (high - mean) / sigma
    tiny = torch.finfo(mean.dtype).tiny
    # Whole interval above the mean: draw the offset from `low` in the upper tail.
    right = alpha >= 0
    # Whole interval below the mean: mirror.
    left = beta <= 0
    tail_start = torch.where(right, alpha, torch.where(left, -beta, torch.zeros_like(alpha)))
    tail_width = torch.where(right | left, beta - alpha, torch.ones_like(alpha))
    tail_width = torch.where(torch.isnan(tail_width), torch.full_like(tail_width, math.inf), tail_width)
    offset = special.truncated_tail_quantile(tail_start, tail_width, u)
    from_tail = torch.where(right, low + sigma * offset, high - sigma * offset)
    # Mean inside: invert Phi on whichever side of the median the draw falls.
    al = torch.where(right | left, -torch.ones_like(alpha), alpha)
    be = torch.where(right | left, torch.ones_like(beta), beta)
    mass = special.normal_mass(al, be)
    below_median = special.normal_cdf(al) + u * mass
    lower_draw = torch.special.ndtri(torch.clamp(below_median, min=tiny, max=0.5))
    upper_tail = torch.clamp(special.normal_cdf(-be) + (1.0 - u) * mass, min=tiny, max=0.5)
    upper_draw = -torch.special.ndtri(upper_tail)
    y = torch.where(below_median <= 0.5, lower_draw, upper_draw)
    y = torch.minimum(torch.maximum(y, al), be)
    from_inside = mean + sigma * y
    x = torch.where(right | left, from_tail, from_inside)
    return torch.minimum(torch.maximum(x, low), high)


def _inverse_cdf_index(probabilities: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """First index k with cumsum_k >= u * total (u in (0, 1]); probabilities (..., K)."""
    cumulative = torch.cumsum(probabilities, dim=-1)
    threshold = u[..., None] * cumulative[..., -1:]
    index = (cumulative < threshold).sum(-1)
    return torch.clamp(index, max=probabilities.shape[-1] - 1)


def _von_mises_fisher(mean: torch.Tensor, s: torch.Tensor, group: _Group, seed, step_index, row_offset, rows, width):
    """Wood's (1994) rejection sampler for vMF(mean/|mean|, |mean|/s), one draw per sphere group.

    Beta((d-1)/2, (d-1)/2) is drawn as A/(A+B) with A, B chi-square(d-1) sums of
    squared normals, so every attempt uses a fixed count of stream values.
    """
    dtype, device = mean.dtype, mean.device
    d = group.sizes[None, :].to(dtype)  # (1, S)
    norm = torch.linalg.vector_norm(mean, dim=-1)  # (n, S)
    s2 = s.reshape(-1, 1) if s.dim() else s
    kappa = norm / s2
    unit = torch.zeros_like(mean)
    unit[..., 0] = 1.0
    direction = torch.where(norm[..., None] > 0, mean / torch.where(norm > 0, norm, 1.0)[..., None], unit)
    b = (d - 1.0) / (2.0 * kappa + torch.sqrt(4.0 * kappa * kappa + (d - 1.0) ** 2))
    one_minus_x0 = 2.0 * b / (1.0 + b)
    x0 = 1.0 - one_minus_x0
    log_one_minus_x0_squared = torch.log(one_minus_x0) + torch.log1p(x0)
    chi_mask = group.mask.clone()
    chi_mask[torch.arange(chi_mask.shape[0]), group.sizes - 1] = False  # d - 1 entries
    first = group.index[:, 0]
    accepted = torch.zeros_like(norm, dtype=torch.bool)
    one_minus_w = torch.ones_like(norm)
    for attempt in range(noise.VMF_MAX_ATTEMPTS):
        stream_a, stream_b, stream_u = noise.vmf_streams(attempt)
        normals_a = noise.normals(seed, step_index, row_offset, rows, width, stream_a, dtype, device)
        normals_b = noise.normals(seed, step_index, row_offset, rows, width, stream_b, dtype, device)
        uniform = noise.uniforms(seed, step_index, row_offset, rows, width, stream_u, dtype, device)[:, first]
        chi_a = (normals_a[:, group.index] ** 2 * chi_mask[None]).sum(-1)
        chi_b = (normals_b[:, group.index] ** 2 * chi_mask[None]).sum(-1)
        beta_draw = chi_a / (chi_a + chi_b)
        candidate = 2.0 * b * beta_draw / (1.0 - (1.0 - b) * beta_draw)  # 1 - W
        w = 1.0 - candidate
        log_ratio = torch.log(candidate + w * one_minus_x0) - log_one_minus_x0_squared
        accept = kappa * (one_minus_x0 - candidate) + (d - 1.0) * log_ratio >= torch.log(uniform)
        take = accept & ~accepted
        one_minus_w = torch.where(take, candidate, one_minus_w)
        accepted |= accept
        if bool(accepted.all()):
            break
    w = 1.0 - one_minus_w
    xi = noise.normals(seed, step_index, row_offset, rows, width, noise.STREAM_SPHERE_DIRECTION, dtype, device)
    xi = torch.where(group.mask[None], xi[:, group.index], torch.zeros_like(mean))
    tangent = xi - (xi * direction).sum(-1, keepdim=True) * direction
    tangent = tangent / torch.linalg.vector_norm(tangent, dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    spread = torch.sqrt(torch.clamp(one_minus_w * (1.0 + w), min=0.0))
    sample = w[..., None] * direction + spread[..., None] * tangent
    return sample / torch.linalg.vector_norm(sample, dim=-1, keepdim=True)


def final_step(
    z: torch.Tensor,
    drift: torch.Tensor | None,
    table: SegmentTable,
    remaining: float,
    seed: int,
    step_index: int,
    row_offset: int = 0,
    final: str = "exact",
) -> torch.Tensor:
    """The last step: a draw from N(z + s f, s I) restricted to the domain (every output in it).

    ``final="project"`` instead takes the Euler endpoint and projects it to the nearest member.
    """
    rows, width = z.shape
    mean = z if drift is None else z + remaining * drift.to(z.dtype)
    if final == "project":
        xi = noise.normals(seed, step_index, row_offset, rows, width, noise.STREAM_STEP, z.dtype, z.device)
        endpoint = posterior_mean(z, table, remaining) + (mean - z) + math.sqrt(remaining) * xi
        return project(endpoint, table)
    if final != "exact":
        raise ValueError(f"final must be 'exact' or 'project', got {final!r}")
    plan = _plan(table, z.device)
    s = _as_scale(remaining, z)
    sigma = math.sqrt(remaining)
    u = noise.uniforms(seed, step_index, row_offset, rows, width, noise.STREAM_FINAL_UNIFORM, z.dtype, z.device)
    out = torch.empty_like(z)
    if plan.real.numel():
        xi = noise.normals(seed, step_index, row_offset, rows, width, noise.STREAM_STEP, z.dtype, z.device)
        out[:, plan.real] = mean[:, plan.real] + sigma * xi[:, plan.real]
    for cols, low, high in (
        (plan.interval, plan.interval_low, plan.interval_high),
        (plan.lower, plan.lower_end, torch.full_like(plan.lower_end, math.inf)),
        (plan.upper, torch.full_like(plan.upper_end, -math.inf), plan.upper_end),
    ):
        if cols.numel():
            out[:, cols] = _truncated_normal(mean[:, cols], sigma, _cast(low, z), _cast(high, z), u[:, cols])
    if plan.binary.numel():
        p_one = torch.sigmoid((mean[:, plan.binary] - 0.5) / s)
        out[:, plan.binary] = (u[:, plan.binary] <= p_one).to(z.dtype)
    if plan.lattice.numel():
        cols = plan.lattice
        for start, stop in _row_chunks(rows, cols.numel() * (2 * LATTICE_WINDOW_LIMIT + 1)):
            out[start:stop, cols] = lattice_draw(
                mean[start:stop, cols], s, plan.lattice_low, plan.lattice_step, plan.lattice_points, u[start:stop, cols]
            )
    if plan.categorical.index.numel():
        group = plan.categorical
        probabilities = _softmax_group(mean, group, s)
        index = _inverse_cdf_index(probabilities, u[:, group.index[:, 0]])
        one_hot = torch.nn.functional.one_hot(index, group.index.shape[1]).to(z.dtype)
        _scatter_group(out, group, one_hot)
    if plan.sphere.index.numel():
        group = plan.sphere
        sample = _von_mises_fisher(
            _gather_group(mean, group, 0.0), s, group, seed, step_index, row_offset, rows, width
        )
        _scatter_group(out, group, sample)
    return out


# ----------------------------------------------------------------------------------------
# The training target
# ----------------------------------------------------------------------------------------
def bridge_target(
    x: torch.Tensor,
    table: SegmentTable,
    mean_scale: torch.Tensor,
    noise_scale: torch.Tensor,
    remaining: torch.Tensor,
    seed: int,
    step_index: int = 0,
    row_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Z_t = c x + sigma_t eps and y = (x - m(Z_t, s)) / s, per-row c, sigma_t, s of shape (n, 1).

    eps comes from stream ``STREAM_TRAIN`` at (seed, step_index, row_offset + row, column).
    """
    eps = noise.normals(seed, step_index, row_offset, x.shape[0], x.shape[1], noise.STREAM_TRAIN, x.dtype, x.device)
    z_t = mean_scale * x + noise_scale * eps
    target = (x - posterior_mean(z_t, table, remaining)) / remaining
    return z_t, target


# ----------------------------------------------------------------------------------------
# Membership and projection
# ----------------------------------------------------------------------------------------
def _lattice_nearest(x: torch.Tensor, plan: _Plan) -> torch.Tensor:
    cols = plan.lattice
    position = torch.round((x[:, cols].to(torch.float64) - plan.lattice_low) / plan.lattice_step)
    position = torch.minimum(torch.clamp(position, min=0.0), (plan.lattice_points - 1).to(torch.float64))
    position = torch.nan_to_num(position, nan=0.0)
    return (plan.lattice_low + position * plan.lattice_step).to(x.dtype)


def membership(x: torch.Tensor, table: SegmentTable) -> torch.Tensor:
    """Bool (n, width): is each column's value in its factor, in the precision of x?

    Bounds and lattice points are rounded to x's dtype; a categorical group is
    valid when it is exactly one-hot; a sphere when | |x|^2 - 1 | <= 8 d eps.
    Every column of a multi-column factor carries the factor's verdict.
    """
    plan = _plan(table, x.device)
    finite = torch.isfinite(x)
    ok = finite.clone()
    if plan.interval.numel():
        v = x[:, plan.interval]
        ok[:, plan.interval] &= (v >= _cast(plan.interval_low, x)) & (v <= _cast(plan.interval_high, x))
    if plan.lower.numel():
        ok[:, plan.lower] &= x[:, plan.lower] >= _cast(plan.lower_end, x)
    if plan.upper.numel():
        ok[:, plan.upper] &= x[:, plan.upper] <= _cast(plan.upper_end, x)
    if plan.binary.numel():
        v = x[:, plan.binary]
        ok[:, plan.binary] &= (v == 0) | (v == 1)
    if plan.lattice.numel():
        ok[:, plan.lattice] &= x[:, plan.lattice] == _lattice_nearest(x, plan)
    if plan.categorical.index.numel():
        group = plan.categorical
        values = _gather_group(x, group, 0.0)
        binary = ((values == 0) | (values == 1)) | ~group.mask[None]
        valid = binary.all(-1) & (values.sum(-1) == 1) & _gather_group(finite, group, True).all(-1)
        _scatter_group(ok, group, valid[..., None].expand_as(values))
    if plan.sphere.index.numel():
        group = plan.sphere
        values = _gather_group(x, group, 0.0)
        tolerance = 8.0 * group.sizes.to(torch.float64) * torch.finfo(x.dtype).eps
        error = (values.to(torch.float64).pow(2).sum(-1) - 1.0).abs()
        valid = (error <= tolerance[None]) & _gather_group(finite, group, True).all(-1)
        _scatter_group(ok, group, valid[..., None].expand_as(values))
    return ok


def project(x: torch.Tensor, table: SegmentTable) -> torch.Tensor:
    """The nearest member of the domain to each row (Euclidean, per factor)."""
    plan = _plan(table, x.device)
    out = x.clone()
    if plan.interval.numel():
        v = x[:, plan.interval]
        out[:, plan.interval] = torch.minimum(torch.maximum(v, _cast(plan.interval_low, x)), _cast(plan.interval_high, x))
    if plan.lower.numel():
        out[:, plan.lower] = torch.maximum(x[:, plan.lower], _cast(plan.lower_end, x))
    if plan.upper.numel():
        out[:, plan.upper] = torch.minimum(x[:, plan.upper], _cast(plan.upper_end, x))
    if plan.binary.numel():
        out[:, plan.binary] = (x[:, plan.binary] >= 0.5).to(x.dtype)
    if plan.lattice.numel():
        out[:, plan.lattice] = _lattice_nearest(x, plan)
    if plan.categorical.index.numel():
        group = plan.categorical
        index = _gather_group(x, group, -math.inf).argmax(-1)
        _scatter_group(out, group, torch.nn.functional.one_hot(index, group.index.shape[1]).to(x.dtype))
    if plan.sphere.index.numel():
        group = plan.sphere
        values = _gather_group(x, group, 0.0)
        norm = torch.linalg.vector_norm(values, dim=-1, keepdim=True)
        unit = torch.zeros_like(values)
        unit[..., 0] = 1.0
        _scatter_group(out, group, torch.where(norm > 0, values / torch.where(norm > 0, norm, 1.0), unit))
    return out
