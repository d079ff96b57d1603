"""Per-domain posterior means m(z, s) of bridge-math.md section 2 on Triton tiles.

The same formulas as ``csrc/include/omegabridge/posterior.h`` (C++/CUDA) and
``omegabridge/reference/`` (torch): element-wise kinds take per-column parameters broadcast
over the tile's rows; group kinds (categorical, sphere) reduce over the tile's columns, one
group per tile. ``sigma`` and ``s`` are scalars (the step) or per-row columns (the target).
"""

from __future__ import annotations

import triton
import triton.language as tl

from . import special

# Segment kinds (omegabridge.core.domains.Kind).
REAL = tl.constexpr(0)
INTERVAL = tl.constexpr(1)
HALFLINE_LOWER = tl.constexpr(2)
HALFLINE_UPPER = tl.constexpr(3)
LATTICE = tl.constexpr(4)
BINARY = tl.constexpr(5)
CATEGORICAL = tl.constexpr(6)
SPHERE = tl.constexpr(7)
# Lattice points beyond this many sqrt(s) (plus one step) from the nearest carry < exp(-40).
LATTICE_WINDOW_SIGMAS = tl.constexpr(9.0)
# As omegabridge.reference (the reasons are written there): at most this many points on either
# side of the nearest; beyond, Euler-Maclaurin with four end corrections, except far outside.
LATTICE_WINDOW_LIMIT = tl.constexpr(34.0)
LATTICE_WINDOW_POINTS = tl.constexpr(34)
LATTICE_OUTSIDE_RATE = tl.constexpr(0.75)
EULER_MACLAURIN = tl.constexpr((1.0 / 12.0, -1.0 / 720.0, 1.0 / 30240.0, -1.0 / 1209600.0))  # B_2p/(2p)!
SQRT_TWO_PI = tl.constexpr(2.5066282746310002)
LOG2E = tl.constexpr(1.4426950408889634)  # exp(x) = exp2(x log2 e): ex2 is the GPU's instruction


@triton.jit
def lower_halfline_mean(z, low, sigma):
    """[low, inf): z + sigma phi(u)/Phi(u) inside (u = (z - low)/sigma), low + sigma G(-u) outside."""
    u = (z - low) * (1.0 / sigma)  # one division per row, not per element
    t = tl.abs(u)
    g = special.mean_excess(t)
    phi = special.normal_pdf(t)
    inside = z + sigma * (phi * (g + t) * special.reciprocal_of_normal(g + t - phi))  # g + t - phi >= 0.39
    outside = low + sigma * g
    return tl.where(u >= 0.0, inside, outside)


@triton.jit
def interval_mean(z, low, high, sigma, valid, quadrature_ptr):
    """[low, high], relative to the nearer end; quadrature for short intervals seen from outside."""
    above = z > 0.5 * (low + high)
    sign = tl.where(above, -1.0, 1.0)
    near = tl.where(above, high, low)
    far = tl.where(above, low, high)
    alpha = sign * (near - z) / sigma  # >= 0: z lies beyond `near`
    beta = sign * (far - z) / sigma
    width = (high - low) / sigma
    outside = alpha >= 0.0
    a = tl.maximum(alpha, 0.0)
    b = a + width
    ratio_tail = tl.exp(-0.5 * width * (a + b))
    r_a = special.mills_ratio(a)
    r_b = special.mills_ratio(b)
    numerator = r_a * special.mean_excess(a) - ratio_tail * r_b * (special.mean_excess(b) + width)
    offset = numerator / (r_a - ratio_tail * r_b)
    short = outside & (width <= 1.0) & (a * width <= 40.0) & valid
    if tl.sum(short.to(tl.int32)) > 0:  # the 24-point rule only where some element needs it
        quadrature = special.short_tail_mean(tl.where(short, a, 0.0), tl.where(short, width, 1.0), quadrature_ptr)
        offset = tl.where(short, quadrature, offset)
    offset = tl.minimum(tl.maximum(offset, 0.0), width)
    from_outside = near + sign * sigma * offset
    al = tl.where(outside, -1.0, alpha)
    be = tl.where(outside, 1.0, beta)
    difference_pdf = special.normal_pdf(al) * -special.expm1(-0.5 * width * (be + al))
    from_inside = z + sign * sigma * difference_pdf / special.normal_mass(al, be)
    return tl.where(outside, from_outside, from_inside)


@triton.jit
def binary_mean(z, s):
    """{0, 1}: logistic((z - 1/2)/s)."""
    return binary_mean_scaled(z, LOG2E / s)


@triton.jit
def binary_mean_scaled(z, log2e_over_s):
    """``binary_mean`` with log2(e) / s given (once per row or per program, not per element)."""
    return 1.0 / (1.0 + tl.exp2((0.5 - z) * log2e_over_s))


@triton.jit
def lattice_logit(offset, delta_near, inverse_two_s):
    """Logit of x_n + offset relative to the nearest point x_n (delta_near = x_n - z)."""
    return -offset * (offset + 2.0 * delta_near) * inverse_two_s


@triton.jit
def lattice_nearest(z, low, inverse_step, last):
    """Index (as float) of the lattice point nearest to z, clamped to [0, last]."""
    position = tl.minimum(tl.maximum((z - low) * inverse_step, -1.0), last + 1.0)
    position = (position + special.ROUND_MAGIC) - special.ROUND_MAGIC
    return tl.minimum(tl.maximum(position, 0.0), last)


@triton.jit
def lattice_radius(sigma_max, step_min, last_max):
    """Half-width (points) of the window carrying weight, for the widest sigma and finest step of a tile."""
    radius = tl.floor(sigma_max * LATTICE_WINDOW_SIGMAS / step_min + 1.0) + 1.0
    return tl.minimum(radius, last_max).to(tl.int32)


@triton.jit
def lattice_uses_euler_maclaurin(y, last, sigma_points):
    """True where an element's mean (and last-step draw) comes from Euler-Maclaurin, not the window:
    y = (z - low)/step, sigma' = sqrt(s)/step; as reference.lattice_uses_euler_maclaurin."""
    outside = tl.maximum(tl.maximum(-y, y - last), 0.0)
    return ((last > LATTICE_WINDOW_LIMIT) & (LATTICE_WINDOW_SIGMAS * sigma_points + 2.0 > LATTICE_WINDOW_LIMIT)
            & (outside < LATTICE_OUTSIDE_RATE * sigma_points * sigma_points))


@triton.jit
def lattice_mean(z, low, step, inverse_step, last, s, sigma, valid, quadrature_ptr):
    """m = x_n + sum_j w_j (j d) over the window j = -R..R around the nearest point x_n.

    Weights relative to x_n follow w_{j+1} = w_j a b^j (a = exp(logit of one step), b =
    exp(-d^2/s)): three exponentials per element however wide the window, as the CPU kernel.
    """
    nearest = lattice_nearest(z, low, inverse_step, last)
    delta = (low + nearest * step) - z
    inverse_two_s = 0.5 / s
    up_ratio = tl.exp(lattice_logit(step, delta, inverse_two_s))
    down_ratio = tl.exp(lattice_logit(-step, delta, inverse_two_s))
    decay = tl.exp(-step * step / s)
    up = tl.full(z.shape, 1.0, tl.float32)
    down = tl.full(z.shape, 1.0, tl.float32)
    weight_sum = tl.full(z.shape, 1.0, tl.float32)
    moment = tl.zeros(z.shape, tl.float32)
    sigma_max = tl.max(tl.where(valid, sigma + tl.zeros(z.shape, tl.float32), 0.0))
    step_min = tl.min(tl.where(valid, step + tl.zeros(z.shape, tl.float32), float("inf")))
    last_max = tl.max(tl.where(valid, last + tl.zeros(z.shape, tl.float32), 0.0))
    # At most LATTICE_WINDOW_LIMIT points on either side: beyond, Euler-Maclaurin serves the elements.
    radius = tl.minimum(lattice_radius(sigma_max, step_min, last_max), LATTICE_WINDOW_POINTS)
    jf = tl.zeros((), tl.float32)
    for _ in range(0, radius):
        jf += 1.0
        up = up * up_ratio
        up_ratio = up_ratio * decay
        down = down * down_ratio
        down_ratio = down_ratio * decay
        w_up = tl.where(nearest + jf <= last, up, 0.0)
        w_down = tl.where(nearest - jf >= 0.0, down, 0.0)
        weight_sum += w_up + w_down
        moment += (jf * step) * (w_up - w_down)
    m = (low + nearest * step) + moment / weight_sum  # not z + delta: that rounds at large |z|
    if (last_max > LATTICE_WINDOW_LIMIT) & (LATTICE_WINDOW_SIGMAS * sigma_max / step_min + 2.0 > LATTICE_WINDOW_LIMIT):
        use_formula = lattice_uses_euler_maclaurin((z - low) * inverse_step, last, sigma * inverse_step)
        m = tl.where(use_formula, lattice_euler_maclaurin_mean(z, low, step, last, sigma, valid, quadrature_ptr), m)
    return m


@triton.jit
def _scaled_hermite_step(v, current, previous, order, inverse_variance):
    """He_(order+1)(u)/sigma'^(order+1) from the two before it (v = u/sigma')."""
    return v * current - order * inverse_variance * previous


@triton.jit
def lattice_euler_maclaurin_mean(z, low, step, last, sigma, valid, quadrature_ptr):
    """m when many lattice points carry weight: the truncated-Gaussian mean on [low, low + last step]
    plus Euler-Maclaurin end corrections (four terms), as reference.lattice_euler_maclaurin_mean."""
    sigma_points = sigma / step
    y = (z - low) / step
    u_low = -y / sigma_points
    u_high = (last - y) / sigma_points
    outside = tl.maximum(tl.maximum(u_low, -u_high), 0.0)
    weight_low = tl.exp(-0.5 * (u_low - outside) * (u_low + outside))
    weight_high = tl.exp(-0.5 * (u_high - outside) * (u_high + outside))
    below_mass = special.mills_ratio(tl.maximum(u_low, 0.0)) - weight_high * special.mills_ratio(tl.maximum(u_high, 0.0))
    above_mass = special.mills_ratio(tl.maximum(-u_high, 0.0)) - weight_low * special.mills_ratio(tl.maximum(-u_low, 0.0))
    inside_mass = SQRT_TWO_PI * special.normal_mass(tl.minimum(u_low, -1e-30), tl.maximum(u_high, 1e-30))
    mass = tl.where(u_low >= 0.0, below_mass, tl.where(u_high <= 0.0, above_mass, inside_mass))
    centre_value = interval_mean(z, low, low + last * step, sigma, valid, quadrature_ptr)
    centre = (centre_value - low) / step
    inverse_variance = 1.0 / (sigma_points * sigma_points)
    v_low = tl.minimum(tl.maximum(u_low / sigma_points, -1e3), 1e3)  # beyond, the end weighs 0: keep finite
    v_high = tl.minimum(tl.maximum(u_high / sigma_points, -1e3), 1e3)
    ends = 0.5 * (weight_low + weight_high)
    ends_centred = 0.5 * ((last - centre) * weight_high - centre * weight_low)
    # p = 1..4, k = 2p - 1: B_2p/(2p)! (f^(k)(n) - f^(k)(0)); h_k = He_k(u)/sigma'^k, h_(k-1) before it.
    low_previous = tl.full(z.shape, 1.0, tl.float32)
    high_previous = tl.full(z.shape, 1.0, tl.float32)
    low_current = v_low
    high_current = v_high
    for p in tl.static_range(1, 5):
        k = 2 * p - 1
        coefficient = EULER_MACLAURIN[p - 1]
        ends += coefficient * (low_current * weight_low - high_current * weight_high)
        high_term = (-(last - centre) * high_current + k * high_previous) * weight_high
        low_term = (centre * low_current + k * low_previous) * weight_low
        ends_centred += coefficient * (high_term - low_term)
        # two steps of the recurrence: h_k -> h_(k+1) -> h_(k+2)
        low_next = _scaled_hermite_step(v_low, low_current, low_previous, k, inverse_variance)
        high_next = _scaled_hermite_step(v_high, high_current, high_previous, k, inverse_variance)
        low_previous = low_next
        low_current = _scaled_hermite_step(v_low, low_next, low_current, k + 1, inverse_variance)
        high_previous = high_next
        high_current = _scaled_hermite_step(v_high, high_next, high_current, k + 1, inverse_variance)
    return centre_value + step * ends_centred / (sigma_points * mass + ends)


@triton.jit
def elementwise_mean(kind, z, low, high, step, inverse_step, last, s, sigma, inverse_s, valid, quadrature_ptr,
                     KINDS: tl.constexpr):
    """m for a tile of one element-wise kind (``kind`` uniform over the tile); KINDS masks the kinds compiled in.
    ``sigma`` and ``inverse_s`` are sqrt(s) and 1/s, computed once per row (or per program) by the caller."""
    m = z
    if (KINDS >> INTERVAL.value) & 1:
        if kind == INTERVAL:
            m = interval_mean(z, low, high, sigma, valid, quadrature_ptr)
    if (KINDS >> HALFLINE_LOWER.value) & 1:
        if kind == HALFLINE_LOWER:
            m = lower_halfline_mean(z, low, sigma)
    if (KINDS >> HALFLINE_UPPER.value) & 1:
        if kind == HALFLINE_UPPER:
            m = -lower_halfline_mean(-z, -high, sigma)
    if (KINDS >> LATTICE.value) & 1:
        if kind == LATTICE:
            m = lattice_mean(z, low, step, inverse_step, last, s, sigma, valid, quadrature_ptr)
    if (KINDS >> BINARY.value) & 1:
        if kind == BINARY:
            m = binary_mean_scaled(z, LOG2E * inverse_s)
    return m


@triton.jit
def categorical_mean(z, inverse_s, valid):
    """softmax(z / s) over each row of the tile (one group), the max subtracted first; ``inverse_s`` is 1/s."""
    logits = tl.where(valid, z, float("-inf"))
    top = tl.max(logits, axis=1)[:, None]
    # exp2(-inf) = 0 for the masked columns (a row with none valid is not stored); log2(e) / s once per row.
    weights = special.exp2_flushing_subnormals((logits - top) * (LOG2E * inverse_s))
    return weights * special.reciprocal_of_normal(tl.sum(weights, axis=1)[:, None])  # the sum is >= 1


@triton.jit
def sphere_mean(z, s, dimension, squared_norm):
    """A_d(kappa) z/|z| = z / (s T(kappa)), kappa = |z|/s (finite at z = 0)."""
    kappa = tl.sqrt_rn(squared_norm) / s
    return z / (s * special.bessel_ratio_denominator(kappa, dimension))


@triton.jit
def group_mean(kind, z, s, inverse_s, valid, dimension, KINDS: tl.constexpr):
    """m for a tile holding one categorical or sphere group per row (``inverse_s``: 1/s, once per row)."""
    m = z
    if (KINDS >> CATEGORICAL.value) & 1:
        if kind == CATEGORICAL:
            m = categorical_mean(z, inverse_s, valid)
    if (KINDS >> SPHERE.value) & 1:
        if kind == SPHERE:
            squared = tl.sum(tl.where(valid, z * z, 0.0), axis=1)[:, None]
            m = sphere_mean(z, s, dimension, squared)
    return m
