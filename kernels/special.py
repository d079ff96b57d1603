"""Special functions of the standard normal and branch-free float32 math, in Triton.

The same formulas as ``csrc/include/omegabridge/{fastmath,special}.h`` (the C++/CUDA source of
truth) and ``omegabridge/core/special.py`` (the torch reference), written only from operations
that both the GPU compiler and the CPU interpreter (``TRITON_INTERPRET=1``, which has no
libdevice) can run. Everything rests on the mean excess G(x) = 1/R(x) - x, a fitted
polynomial in q = (x - 2)/(x + 2) (see special.h), so no erfc or erfcx is needed.

``tl.exp`` is used where a relative error of a few 1e-7 (the GPU's ``ex2.approx``) is far
inside the accuracy contract (weights, densities). The noise (``noise_log``, ``noise_sincos_two_pi``,
``square_root``) runs on the GPU's approximate instructions (``lg2.approx``, ``sin.approx``,
``cos.approx``, ``sqrt.approx``: one or two instructions each where the polynomials take tens),
with the log near 1 taken from its series, where ``lg2.approx`` has only an absolute error bound
(docs/noise.md gives the bounds); in the interpreter, which cannot run inline PTX, the
range-reduced polynomials of fastmath.h stand in for them.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

LN2_HIGH = tl.constexpr(0.693145751953125)
LN2_LOW = tl.constexpr(1.428606765330187045e-06)
INV_SQRT_TWO_PI = tl.constexpr(0.398942280401432678)
NEGATIVE_HALF_LOG2E = tl.constexpr(-0.72134752044448170)  # exp(-x^2/2) = exp2(x^2 (-log2(e)/2))
TINY = tl.constexpr(2.0**-126)  # smallest normal float32 (exactly: a literal below it would be typed float64)
LOG_TINY = tl.constexpr(-87.3365447)  # log(TINY)
ROUND_MAGIC = tl.constexpr(12582912.0)  # 1.5 * 2^23: (x + magic) - magic rounds x to an integer
QUADRATURE_POINTS = tl.constexpr(24)
BESSEL_RATIO_TERMS = tl.constexpr(40)
TAIL_OFFSET_STEPS = tl.constexpr(2)  # Halley steps of tail_offset to float32 rounding, as special.h
NEGATIVE_HUGE = tl.constexpr(-3.0e38)  # a finite stand-in for -inf where inf - inf would give NaN
# Whether kernels compile for a GPU (inline PTX available) or run in the interpreter: Triton
# itself decides this from TRITON_INTERPRET when a function is decorated, so this reads it the same way.
HARDWARE_MATH = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") in ("", "0"))
LN2 = tl.constexpr(0.693147180559945309)
TWO_PI = tl.constexpr(6.28318530717958647692)
# Below 1 - u = 1/16 the log of the noise comes from its series (5 terms: relative error < 2e-7),
# where lg2.approx's absolute error (2^-22) would be large against log u itself.
NOISE_LOG_SERIES_BELOW = tl.constexpr(0.0625)


@triton.jit
def log(x):
    """log(x) for normal x > 0: x = m 2^e, m in [sqrt(1/2), sqrt 2), 2 atanh((m-1)/(m+1)) to t^11."""
    bits = x.to(tl.uint32, bitcast=True)
    e = (bits >> 23).to(tl.int32) - 127
    m = ((bits & 0x007FFFFF) | 0x3F800000).to(tl.float32, bitcast=True)
    high = m > 1.41421356
    m = tl.where(high, m * 0.5, m)
    e = e + high.to(tl.int32)
    t = (m - 1.0) / (m + 1.0)
    t2 = t * t
    p = 1.0 / 11.0
    p = p * t2 + 1.0 / 9.0
    p = p * t2 + 1.0 / 7.0
    p = p * t2 + 1.0 / 5.0
    p = p * t2 + 1.0 / 3.0
    p = p * t2 + 1.0
    ef = e.to(tl.float32)
    return ef * LN2_HIGH + (ef * LN2_LOW + 2.0 * t * p)


@triton.jit
def sincos_two_pi(u):
    """(sin 2 pi u, cos 2 pi u) for u in [0, 1]: u = q/4 + r exactly, polynomials on |2 pi r| <= pi/4."""
    q = (4.0 * u + ROUND_MAGIC) - ROUND_MAGIC
    r = u - 0.25 * q
    a = 6.28318530717958647692 * r
    a2 = a * a
    s = -1.0 / 39916800.0
    s = s * a2 + 1.0 / 362880.0
    s = s * a2 - 1.0 / 5040.0
    s = s * a2 + 1.0 / 120.0
    s = s * a2 - 1.0 / 6.0
    s = a + a * a2 * s
    c = 1.0 / 479001600.0
    c = c * a2 - 1.0 / 3628800.0
    c = c * a2 + 1.0 / 40320.0
    c = c * a2 - 1.0 / 720.0
    c = c * a2 + 1.0 / 24.0
    c = c * a2 - 0.5
    c = 1.0 + a2 * c
    quadrant = q.to(tl.int32) & 3
    swap = (quadrant & 1) != 0
    sin_base = tl.where(swap, c, s)
    cos_base = tl.where(swap, s, c)
    sine = tl.where(quadrant >= 2, -sin_base, sin_base)
    cosine = tl.where((quadrant == 1) | (quadrant == 2), -cos_base, cos_base)
    return sine, cosine


@triton.jit
def _ptx(instruction: tl.constexpr, x):
    """One float32 PTX instruction ``instruction d, a`` on every element of ``x``."""
    return tl.inline_asm_elementwise(instruction + " $0, $1;", "=f,f", [x], dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def reciprocal_of_normal(x):
    """1/x for x normal, infinite or NaN (never subnormal or 0): rcp.approx (1 ulp) on a GPU, where
    a full-range division takes several instructions; a division in the interpreter."""
    if HARDWARE_MATH:
        return _ptx("rcp.approx.ftz.f32", x)
    else:
        return 1.0 / x


@triton.jit
def exp2_flushing_subnormals(x):
    """2^x, where a result below 2^-126 may come out 0: ex2.approx.ftz on a GPU (one instruction,
    where ex2.approx keeps subnormals with a few more); tl.exp2 in the interpreter. For weights that
    are summed with terms of order one (a softmax), where such a result changes nothing."""
    if HARDWARE_MATH:
        return _ptx("ex2.approx.ftz.f32", x)
    else:
        return tl.exp2(x)


@triton.jit
def square_root(x):
    """sqrt x for x >= 0 or NaN: sqrt.approx (relative error 2^-23) on a GPU, where the correctly
    rounded square root takes ten instructions and a slow path; correctly rounded in the interpreter."""
    if HARDWARE_MATH:
        return _ptx("sqrt.approx.f32", x)
    else:
        return tl.sqrt_rn(x)


@triton.jit
def noise_log(u):
    """log u for a uniform u in (0, 1] of the noise (docs/noise.md): lg2.approx on a GPU, its series near 1."""
    if HARDWARE_MATH:
        t = 1.0 - u  # exact for u >= 1/2
        series = t * (1.0 + t * (0.5 + t * (1.0 / 3.0 + t * (0.25 + t * 0.2))))
        return tl.where(t < NOISE_LOG_SERIES_BELOW, -series, _ptx("lg2.approx.f32", u) * LN2)
    else:
        return log(u)


@triton.jit
def noise_sincos_two_pi(u):
    """(sin 2 pi u, cos 2 pi u) for u in [0, 1]: sin.approx / cos.approx on 2 pi (u - round u) on a GPU."""
    if HARDWARE_MATH:
        angle = TWO_PI * tl.where(u > 0.5, u - 1.0, u)  # in [-pi, pi], where the approximations' error bound holds
        return _ptx("sin.approx.f32", angle), _ptx("cos.approx.f32", angle)
    else:
        return sincos_two_pi(u)


@triton.jit
def expm1(x):
    """exp(x) - 1 without cancellation near 0 (Taylor to x^9/9! for |x| < 1/2)."""
    p = 1.0 / 362880.0
    p = p * x + 1.0 / 40320.0
    p = p * x + 1.0 / 5040.0
    p = p * x + 1.0 / 720.0
    p = p * x + 1.0 / 120.0
    p = p * x + 1.0 / 24.0
    p = p * x + 1.0 / 6.0
    p = p * x + 0.5
    p = p * x + 1.0
    small = p * x
    return tl.where((x > -0.5) & (x < 0.5), small, tl.exp(x) - 1.0)


@triton.jit
def mean_excess(x):
    """G(x) = 1/R(x) - x for x >= 0 (negative x as 0; G(inf) = 0): degree-14 polynomial of special.h."""
    y = tl.maximum(x, 0.0)
    y = tl.where(x != x, x, y)  # NaN propagates
    r = reciprocal_of_normal(y + 2.0)
    q = 1.0 - 4.0 * r
    p = 3.559471232e-04
    p = p * q + -1.397188685e-04
    p = p * q + -2.319665598e-03
    p = p * q + -6.953506127e-04
    p = p * q + 6.082931555e-03
    p = p * q + 7.054211829e-03
    p = p * q + -4.984542712e-03
    p = p * q + -2.156662451e-02
    p = p * q + -1.828800665e-02
    p = p * q + 2.945365305e-02
    p = p * q + 8.885710150e-02
    p = p * q + 2.361245472e-02
    p = p * q + -2.646813346e-01
    p = p * q + -3.356032015e-01
    p = p * q + 1.492862130e00
    return p * r


@triton.jit
def mills_ratio(x):
    """R(x) = Q(x)/phi(x) for x >= 0."""
    return 1.0 / (mean_excess(x) + x)


@triton.jit
def normal_pdf(x):
    return tl.exp2(x * x * NEGATIVE_HALF_LOG2E) * INV_SQRT_TWO_PI


@triton.jit
def upper_tail(x):
    """Q(x) = P(Y >= x), relative accuracy in the upper tail."""
    t = tl.abs(x)
    q = normal_pdf(t) * mills_ratio(t)
    return tl.where(x < 0.0, 1.0 - q, q)


@triton.jit
def normal_mass(low, high):
    """Phi(high) - Phi(low) for low < 0 < high, as two positive halves."""
    return (0.5 - upper_tail(high)) + (0.5 - upper_tail(-low))


@triton.jit
def log1p(x):
    """log(1 + x) for x > -1 (x = -1 gives log of the smallest normal float)."""
    y = 1.0 + x
    positive = y > 0.0
    y_safe = tl.where(positive, y, 1.0)
    exact = (y_safe - 1.0) == 0.0
    correction = tl.where(exact, 0.0, ((y_safe - 1.0) - x) / y_safe)
    value = tl.where(exact, x, log(y_safe) - correction)
    return tl.where(positive, value, LOG_TINY)


@triton.jit
def short_tail_mean(start, width, quadrature_ptr):
    """E[T] for density ~ exp(-(start t + t^2/2)) on [0, width] (24-point Gauss-Legendre; width <= 1).

    ``quadrature_ptr`` holds the 24 nodes then the 24 weights on [0, 1] (float32).
    """
    rate = start * width
    curvature = 0.5 * width * width
    total = tl.zeros_like(start)
    first_moment = tl.zeros_like(start)
    for k in range(QUADRATURE_POINTS):  # a loop, not unrolled: less code to compile
        node = tl.load(quadrature_ptr + k)
        density = tl.load(quadrature_ptr + QUADRATURE_POINTS + k) * tl.exp(-(rate * node + curvature * node * node))
        total += density
        first_moment += density * node
    return width * first_moment / total


@triton.jit
def bessel_ratio_denominator(kappa, dimension):
    """T(kappa) with kappa/T = A_d(kappa): Perron's continued fraction, 40 terms (T(0) = d)."""
    two_kappa = 2.0 * kappa
    t = dimension + BESSEL_RATIO_TERMS + two_kappa
    k = tl.zeros_like(kappa) + (BESSEL_RATIO_TERMS - 1)
    for _ in range(BESSEL_RATIO_TERMS - 1):
        t = dimension + k + two_kappa - (dimension + 2.0 * k + 1.0) * kappa / t
        k -= 1.0
    return dimension + kappa - (dimension + 1.0) * kappa / t


@triton.jit
def tail_offset(start, log_p):
    """t >= 0 with log Q(start + t) - log Q(start) = log_p: Halley steps on log Q (special.h's tail_offset)."""
    bounded = tl.maximum(log_p, LOG_TINY)
    excess = -bounded
    t = 2.0 * excess / (start + tl.sqrt_rn(start * start + 2.0 * excess))
    log_r_start = log(mills_ratio(start))
    for _ in range(TAIL_OFFSET_STEPS):
        position = start + t
        g = mean_excess(position)
        h = g + position
        value = -(start * t + 0.5 * t * t) - log(h) - log_r_start - bounded
        t = tl.maximum(t + 2.0 * value / (2.0 * h + value * g), 0.0)
    return t


@triton.jit
def truncated_tail_quantile(start, width, u):
    """Inverse-CDF draw of N(0, 1) truncated to [start, start + width] (start >= 0), as the offset from start."""
    start = tl.maximum(start, 0.0)
    end = start + width
    finite_end = (end - end) == 0.0
    end_safe = tl.where(finite_end, end, start)
    ratio = tl.exp(-0.5 * width * (start + end_safe)) * mills_ratio(end_safe) / mills_ratio(start)
    ratio = tl.where(finite_end, ratio, 0.0)
    t = tail_offset(start, log1p(-u * (1.0 - ratio)))
    t = tl.where((t - t) == 0.0, t, 0.0)
    return tl.minimum(t, width)


@triton.jit
def truncated_normal(mean, sigma, low, high, u):
    """Inverse-CDF draw from N(mean, sigma^2) truncated to [low, high] (ends may be infinite), u in (0, 1]."""
    alpha = (low - mean) / sigma
    beta = (high - mean) / sigma
    right = alpha >= 0.0
    tail = right | (beta <= 0.0)
    width = beta - alpha
    width = tl.where(width != width, float("inf"), width)
    start = tl.where(right, alpha, -beta)
    start = tl.where(tail, start, 0.0)
    offset = truncated_tail_quantile(start, tl.where(tail, width, 1.0), u)
    from_tail = tl.where(right, low + sigma * offset, high - sigma * offset)
    # Mean inside: invert Phi on whichever side of the median the draw falls.
    al = tl.where(tail, -1.0, alpha)
    be = tl.where(tail, 1.0, beta)
    mass = normal_mass(al, be)
    below_median = upper_tail(-al) + u * mass
    lower_side = below_median <= 0.5
    below_clamped = tl.maximum(below_median, TINY)
    upper = tl.minimum(tl.maximum(upper_tail(be) + (1.0 - u) * mass, TINY), 0.5)
    log_side = log(2.0 * tl.where(lower_side, tl.minimum(below_clamped, 0.5), upper))
    y = tail_offset(tl.zeros_like(mean), log_side)
    y = tl.where(lower_side, -y, y)
    y = tl.minimum(tl.maximum(y, al), be)
    x = tl.where(tail, from_tail, mean + sigma * y)
    return tl.minimum(tl.maximum(x, low), high)
