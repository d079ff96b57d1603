"""The torch reference of the exact last step: N(z + s f, s I) restricted to the domain (bridge-math.md section 3).

Each factor is drawn from the shared noise streams (docs/noise.md): inverse-CDF draws from one
uniform per column (truncated normals, lattices, categoricals), Wood's rejection sampler for
the von Mises-Fisher draw on a sphere, the step's normals for Real columns. With f = 0 this is
the bridge's own last transition, so every output lies in the domain exactly.

Example:
    >>> import torch, omegabridge as ob
    >>> table = ob.Lattice(0, 4).segment_table()
    >>> x = final_step(torch.full((3, 1), 1.3), None, table, 0.5, seed=0, step_index=9)
    >>> bool(table.contains(x).all())
    True
"""

from __future__ import annotations

import math

import torch

from omegabridge.core import noise, special
from omegabridge.core.segments import (
    ColumnGroup,
    SegmentTable,
    cast_like,
    gather_group,
    kind_columns,
    project,
    scatter_group,
)
from omegabridge.reference.posterior import (
    LATTICE_EULER_MACLAURIN_COEFFICIENTS,
    LATTICE_WINDOW_LIMIT,
    as_scale,
    lattice_uses_euler_maclaurin,
    lattice_window_logits,
    posterior_mean,
    row_chunks,
    scaled_hermite,
    softmax_group,
)

__all__ = ["final_step", "lattice_draw", "lattice_euler_maclaurin_draw", "LATTICE_DRAW_CORRECTIONS"]

# The last step's draw where Euler-Maclaurin serves the mean: the continuous truncated normal's
# quantile, rounded to a point, is moved this many times by one point towards the discrete
# inverse CDF (it is off by at most one point: the two CDFs differ by O(weight / sigma'^2)).
LATTICE_DRAW_CORRECTIONS = 3


def _lattice_window_draw(mean, s, low, step, points, u):
    """Index (float64) of the inverse-CDF draw over the window around the nearest point."""
    logits, _, _, nearest = lattice_window_logits(mean, s, low, step, points)
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
    low_m, step_m = cast_like(low, mean), cast_like(step, mean)
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
    hermite_0 = scaled_hermite(t_0, sigma_points, degree)

    def partial_sum(k):
        t_k, w_k = weight(k)
        hermite_k = scaled_hermite(t_k, sigma_points, degree)
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
    use_formula = lattice_uses_euler_maclaurin(mean, s, cast_like(low, mean), cast_like(step, mean), points)
    if bool(use_formula.any()):
        index = torch.where(use_formula, lattice_euler_maclaurin_draw(mean, s, low, step, points, u), index)
    return (low + index * step).to(mean.dtype)


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


def _von_mises_fisher(mean: torch.Tensor, s: torch.Tensor, group: ColumnGroup, seed, step_index, row_offset, rows, width):
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
    plan = kind_columns(table, z.device)
    s = as_scale(remaining, z)
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
            out[:, cols] = _truncated_normal(mean[:, cols], sigma, cast_like(low, z), cast_like(high, z), u[:, cols])
    if plan.binary.numel():
        p_one = torch.sigmoid((mean[:, plan.binary] - 0.5) / s)
        out[:, plan.binary] = (u[:, plan.binary] <= p_one).to(z.dtype)
    if plan.lattice.numel():
        cols = plan.lattice
        for start, stop in row_chunks(rows, cols.numel() * (2 * LATTICE_WINDOW_LIMIT + 1)):
            out[start:stop, cols] = lattice_draw(
                mean[start:stop, cols], s, plan.lattice_low, plan.lattice_step, plan.lattice_points, u[start:stop, cols]
            )
    if plan.categorical.index.numel():
        group = plan.categorical
        probabilities = softmax_group(mean, group, s)
        index = _inverse_cdf_index(probabilities, u[:, group.index[:, 0]])
        one_hot = torch.nn.functional.one_hot(index, group.index.shape[1]).to(z.dtype)
        scatter_group(out, group, one_hot)
    if plan.sphere.index.numel():
        group = plan.sphere
        sample = _von_mises_fisher(
            gather_group(mean, group, 0.0), s, group, seed, step_index, row_offset, rows, width
        )
        scatter_group(out, group, sample)
    return out
