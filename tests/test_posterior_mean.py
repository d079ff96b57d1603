"""m(z, s) of every domain against independent references.

1. float64: the closed forms equal s * grad_z log h(z, s) + z with log h written
   directly (log Phi, logsumexp, a quadrature over the sphere) and differentiated
   by autograd (bridge-math.md section 5, third handle).
2. float32: finite and within 1e-5 (|m| + sqrt(s)) of mpmath over the far tails
   (|z - a| / sqrt(s) up to 1e6, s down to 1e-10), bridge-math.md section 2.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

import omegabridge as ob
from omegabridge.core.segments import Kind
from omegabridge import ops as dispatch, reference

F64 = torch.float64


def _fresh_generator(request) -> torch.Generator:
    # Fresh inputs every run, reproducible from the printed seed on failure.
    seed = torch.randint(0, 2**31 - 1, (1,)).item()
    print(f"{request.node.name}: input seed {seed}")
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------
# log h written directly, one function per kind (independent of reference.py)
# ----------------------------------------------------------------------------------------
def _log_h_interval(z, s, a, b):
    sigma = torch.sqrt(s)
    alpha, beta = (a - z) / sigma, (b - z) / sigma
    # log(Phi(beta) - Phi(alpha)); when z lies below a both masses are near 1, so use the mirrored tails
    upper = torch.special.log_ndtr(beta) + torch.log1p(-torch.exp(torch.special.log_ndtr(alpha) - torch.special.log_ndtr(beta)))
    lower = torch.special.log_ndtr(-alpha) + torch.log1p(-torch.exp(torch.special.log_ndtr(-beta) - torch.special.log_ndtr(-alpha)))
    return torch.where(alpha > 0, lower, upper)


def _log_h_lattice(z, s, points):
    return torch.logsumexp(-((points[None, :] - z[:, None]) ** 2) / (2 * s[:, None]), dim=1)


def _log_h_categorical(z, s):
    # log sum_k exp(-|e_k - z|^2 / 2s) = -(|z|^2 + 1)/2s + log sum_k exp(z_k / s)
    return -((z**2).sum(1) + 1) / (2 * s) + torch.logsumexp(z / s[:, None], dim=1)


def _log_h_sphere(z, s, d):
    # h = int_{S^{d-1}} exp(-|x - z|^2 / 2s) dsigma(x), up to a constant:
    # exp(-(1 + |z|^2)/2s) * int_{-1}^{1} exp(kappa w) (1 - w^2)^{(d-3)/2} dw, kappa = |z|/s.
    norm = torch.linalg.vector_norm(z, dim=1)
    kappa = norm / s
    if d % 2:  # (d-3)/2 is an integer: a polynomial times exp, Gauss-Legendre is exact to rounding
        nodes, weights = (torch.tensor(v, dtype=F64) for v in np.polynomial.legendre.leggauss(300))
        log_terms = kappa[:, None] * (nodes[None] - 1) + (d - 3) / 2 * torch.log1p(-nodes**2)[None]
    else:  # w = cos(theta): sin^{d-2} is smooth and periodic, the trapezoid rule converges spectrally
        theta = torch.linspace(0, math.pi, 4001, dtype=F64)
        weights = torch.full((4001,), math.pi / 4000, dtype=F64)
        weights[0] = weights[-1] = 0.5 * math.pi / 4000
        log_terms = kappa[:, None] * (torch.cos(theta)[None] - 1) + (d - 2) * torch.log(torch.sin(theta).clamp_min(1e-300))[None]
    log_integral = kappa + torch.logsumexp(log_terms + torch.log(weights)[None], dim=1)
    return -(1 + norm**2) / (2 * s) + log_integral


def _autograd_mean(log_h, z, s):
    z = z.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(log_h(z).sum(), z)
    return z.detach() + s[:, None] * gradient


def _assert_close(actual, expected, s, rtol, what):
    scale = expected.abs() + torch.sqrt(s)[:, None]
    error = ((actual - expected).abs() / scale).max().item()
    assert error <= rtol, f"{what}: max error {error:.3g} (relative to |m| + sqrt(s)) exceeds {rtol:g}"


ROWS = 400


def _scalar_case(generator, rows=ROWS, spread=6.0):
    s = 10 ** (torch.rand(rows, generator=generator, dtype=F64) * 4 - 3)  # 1e-3 .. 10
    u = (torch.rand(rows, generator=generator, dtype=F64) * 2 - 1) * spread
    return s, u


@pytest.mark.parametrize(
    "factor",
    [ob.Interval(-0.7, 1.3), ob.Interval(2.0, 2.05), ob.HalfLine(low=0.4), ob.HalfLine(high=-1.5)],
    ids=["interval", "narrow-interval", "lower-halfline", "upper-halfline"],
)
def test_continuous_closed_forms_match_autograd(factor, request):
    generator = _fresh_generator(request)
    s, u = _scalar_case(generator)
    segment = factor.segments()[0]
    anchor = segment.high if segment.kind == Kind.HALFLINE_UPPER else segment.low
    z = anchor + u * torch.sqrt(s)
    if segment.kind == Kind.INTERVAL:
        log_h = lambda v: _log_h_interval(v, s, segment.low, segment.high)  # noqa: E731
    elif segment.kind == Kind.HALFLINE_LOWER:
        log_h = lambda v: torch.special.log_ndtr((v - segment.low) / torch.sqrt(s))  # noqa: E731
    else:
        log_h = lambda v: torch.special.log_ndtr((segment.high - v) / torch.sqrt(s))  # noqa: E731
    expected = _autograd_mean(lambda v: log_h(v[:, 0]), z[:, None], s)
    actual = reference.posterior_mean(z[:, None], factor.segment_table(), s[:, None])
    _assert_close(actual, expected, s, 1e-9, repr(factor))


@pytest.mark.parametrize(
    "factor",
    [ob.Lattice(0, 16, step=1), ob.Lattice(-1.5, 2.5, step=0.5), ob.Lattice(0, 4095, step=1), ob.Binary()],
    ids=["lattice17", "lattice-half", "lattice4096", "binary"],
)
def test_lattice_closed_forms_match_autograd(factor, request):
    generator = _fresh_generator(request)
    segment = factor.segments()[0]
    points = segment.low + segment.step * torch.arange(segment.points, dtype=F64)
    rows = 1500 if segment.points > 1000 else ROWS  # > 1024 rows: the reference then works in row chunks
    s = 10 ** (torch.rand(rows, generator=generator, dtype=F64) * 4 - 3)
    z = segment.low - 2 + (segment.high - segment.low + 4) * torch.rand(rows, generator=generator, dtype=F64)
    expected = _autograd_mean(lambda v: _log_h_lattice(v[:, 0], s, points), z[:, None], s)
    actual = reference.posterior_mean(z[:, None], factor.segment_table(), s[:, None])
    _assert_close(actual, expected, s, 1e-9, repr(factor))


@pytest.mark.parametrize("categories", [2, 5, 64, 4096])
def test_categorical_closed_form_matches_autograd(categories, request):
    generator = _fresh_generator(request)
    rows = 64 if categories > 100 else ROWS
    s = 10 ** (torch.rand(rows, generator=generator, dtype=F64) * 4 - 3)
    z = torch.randn(rows, categories, generator=generator, dtype=F64)
    expected = _autograd_mean(lambda v: _log_h_categorical(v, s), z, s)
    actual = reference.posterior_mean(z, ob.Categorical(categories).segment_table(), s[:, None])
    _assert_close(actual, expected, s, 1e-9, f"Categorical({categories})")


@pytest.mark.parametrize("dimension", [2, 3, 4, 7])
def test_sphere_closed_form_matches_autograd(dimension, request):
    generator = _fresh_generator(request)
    rows = 200
    s = 10 ** (torch.rand(rows, generator=generator, dtype=F64) * 2 - 1)  # kappa up to ~ 50
    z = torch.randn(rows, dimension, generator=generator, dtype=F64) * 1.5
    expected = _autograd_mean(lambda v: _log_h_sphere(v, s, dimension), z, s)
    actual = reference.posterior_mean(z, ob.Sphere(dimension).segment_table(), s[:, None])
    _assert_close(actual, expected, s, 1e-8, f"Sphere({dimension})")


def test_mixed_product_matches_each_factor_alone(request):
    """The vectorised gather/scatter over a mixed layout equals each factor computed on its own."""
    generator = _fresh_generator(request)
    factors = [
        ob.Interval(-1.0, 1.0), ob.Categorical(4), ob.HalfLine(low=0.0), ob.Lattice(0, 16, step=1), ob.Sphere(3),
        ob.Binary(), ob.Real(), ob.Categorical(2), ob.Lattice(-2, 2, step=0.5), ob.HalfLine(high=3.0),
        ob.Interval(5.0, 9.0), ob.Sphere(2), ob.Categorical(7),
    ]
    domain = ob.Product(factors)
    rows = 300
    z = torch.randn(rows, domain.width, generator=generator, dtype=F64) * 3
    s = 10 ** (torch.rand(rows, 1, generator=generator, dtype=F64) * 4 - 3)
    together = reference.posterior_mean(z, domain.segment_table(), s)
    offset = 0
    for factor in factors:
        alone = reference.posterior_mean(z[:, offset : offset + factor.width], factor.segment_table(), s)
        assert torch.equal(together[:, offset : offset + factor.width], alone), repr(factor)
        offset += factor.width
    real_column = sum(f.width for f in factors[:6])
    assert torch.equal(together[:, real_column], z[:, real_column])


# ----------------------------------------------------------------------------------------
# float32 far tails against mpmath
# ----------------------------------------------------------------------------------------
mpmath.mp.dps = 60


def _mp_truncated_mean(z, s, a, b):
    z, s = mpmath.mpf(z), mpmath.mpf(s)
    sigma = mpmath.sqrt(s)
    alpha = (mpmath.mpf(a) - z) / sigma if a is not None else -mpmath.inf
    beta = (mpmath.mpf(b) - z) / sigma if b is not None else mpmath.inf
    root2 = mpmath.sqrt(2)
    # mass and first moment of N(0,1) on [alpha, beta] with erfc on the far side (no cancellation)
    if alpha > 0:
        mass = (mpmath.erfc(alpha / root2) - (mpmath.erfc(beta / root2) if beta != mpmath.inf else 0)) / 2
    elif beta < 0:
        mass = (mpmath.erfc(-beta / root2) - (mpmath.erfc(-alpha / root2) if alpha != -mpmath.inf else 0)) / 2
    else:
        mass = 1 - (mpmath.erfc(-alpha / root2) if alpha != -mpmath.inf else 0) / 2 - (
            mpmath.erfc(beta / root2) if beta != mpmath.inf else 0) / 2
    pdf = lambda v: mpmath.npdf(v) if v not in (mpmath.inf, -mpmath.inf) else 0  # noqa: E731
    return z + sigma * (pdf(alpha) - pdf(beta)) / mass


def _mp_lattice_mean(z, s, points):
    z, s = mpmath.mpf(z), mpmath.mpf(s)
    weights = [mpmath.exp(-((mpmath.mpf(p) - z) ** 2) / (2 * s)) for p in points]
    return sum(w * mpmath.mpf(p) for w, p in zip(weights, points)) / sum(weights)


def _tail_inputs(generator, rows, anchor):
    """float32 z, s with |z - anchor| / sqrt(s) log-uniform in [1e-3, 1e6] and s log-uniform in [1e-10, 1e2]."""
    s = (10 ** (torch.rand(rows, generator=generator, dtype=F64) * 12 - 10)).to(torch.float32)
    distance = 10 ** (torch.rand(rows, generator=generator, dtype=F64) * 9 - 3)
    sign = torch.where(torch.rand(rows, generator=generator) < 0.5, -1.0, 1.0).to(F64)
    z = (anchor + sign * distance * torch.sqrt(s.to(F64))).to(torch.float32)
    return z, s


# The float32 accuracy contract holds for every backend that computes in float32 (Triton: on
# the GPU when there is one, else in its CPU interpreter).
BACKENDS = ["reference", "cpu", "triton"]


def _mean(backend, z, table, s):
    if backend == "reference":
        return reference.posterior_mean(z, table, s)
    device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    return dispatch.posterior_mean(z.to(device), table, torch.as_tensor(s).to(device), backend=backend).cpu()


def _check_float32(factor, z, s, exact, what, backend):
    table = factor.segment_table()
    m = _mean(backend, z, table, s[:, None])
    assert torch.isfinite(m).all(), f"{what}: non-finite float32 m"
    error = (m.to(F64) - exact).abs().max(dim=1).values
    bound = 1e-5 * (exact.abs().max(dim=1).values + torch.sqrt(s.to(F64)))
    worst = int(torch.argmax(error / bound))
    assert bool((error <= bound).all()), (
        f"{what}: float32 error {error[worst]:.3g} > bound {bound[worst]:.3g} at z={z[worst].tolist()}, s={float(s[worst]):.3g}"
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "factor", [ob.Interval(-0.5, 1.5), ob.Interval(3.0, 3.001), ob.HalfLine(low=2.0), ob.HalfLine(high=-1.0)],
    ids=["interval", "narrow-interval", "lower-halfline", "upper-halfline"],
)
def test_float32_far_tails_continuous(factor, request, backend):
    generator = _fresh_generator(request)
    segment = factor.segments()[0]
    a = segment.low if segment.kind in (Kind.INTERVAL, Kind.HALFLINE_LOWER) else None
    b = segment.high if segment.kind in (Kind.INTERVAL, Kind.HALFLINE_UPPER) else None
    rows = 300
    zs, ss = [], []
    for anchor in [v for v in (a, b) if v is not None]:
        z, s = _tail_inputs(generator, rows // 2, anchor)
        zs.append(z)
        ss.append(s)
    z, s = torch.cat(zs), torch.cat(ss)
    a32 = None if a is None else float(torch.tensor(a, dtype=torch.float32))
    b32 = None if b is None else float(torch.tensor(b, dtype=torch.float32))
    exact = torch.tensor([[float(_mp_truncated_mean(float(zi), float(si), a32, b32))] for zi, si in zip(z, s)], dtype=F64)
    _check_float32(factor, z[:, None], s, exact, repr(factor), backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("factor", [ob.Lattice(0, 16, step=1), ob.Lattice(-1.0, 1.0, step=0.25), ob.Binary()], ids=["lattice17", "lattice-quarter", "binary"])
def test_float32_far_tails_lattice(factor, request, backend):
    generator = _fresh_generator(request)
    segment = factor.segments()[0]
    points = [float(torch.tensor(segment.low + k * segment.step, dtype=torch.float32)) for k in range(segment.points)]
    rows = 200
    anchors = torch.tensor(points, dtype=F64)[torch.randint(0, len(points), (rows,), generator=generator)]
    anchors = anchors + segment.step * torch.randint(0, 2, (rows,), generator=generator) * 0.5  # points and midpoints
    z, s = _tail_inputs(generator, rows, 0.0)
    z = (anchors + z.to(F64)).to(torch.float32)
    exact = torch.tensor([[float(_mp_lattice_mean(float(zi), float(si), points))] for zi, si in zip(z, s)], dtype=F64)
    _check_float32(factor, z[:, None], s, exact, repr(factor), backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("categories", [3, 40])
def test_float32_far_tails_categorical(categories, request, backend):
    generator = _fresh_generator(request)
    rows = 200
    s = (10 ** (torch.rand(rows, generator=generator, dtype=F64) * 12 - 10)).to(torch.float32)
    # logit gaps (z_i - z_j)/s spread over 1e-3 .. 1e6
    gaps = 10 ** (torch.rand(rows, categories, generator=generator, dtype=F64) * 9 - 3)
    z = (torch.randn(rows, 1, generator=generator, dtype=F64) + gaps * s.to(F64)[:, None] * torch.randn(rows, categories, generator=generator, dtype=F64).sign()).to(torch.float32)
    z64, s64 = z.to(F64), s.to(F64)
    exact = []
    for row in range(rows):
        logits = [mpmath.mpf(float(v)) / mpmath.mpf(float(s64[row])) for v in z64[row]]
        top = max(logits)
        weights = [mpmath.exp(v - top) for v in logits]
        total = sum(weights)
        exact.append([float(w / total) for w in weights])
    _check_float32(ob.Categorical(categories), z, s, torch.tensor(exact, dtype=F64), f"Categorical({categories})", backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dimension", [2, 3, 5])
def test_float32_far_tails_sphere(dimension, request, backend):
    generator = _fresh_generator(request)
    rows = 120
    s = (10 ** (torch.rand(rows, generator=generator, dtype=F64) * 12 - 10)).to(torch.float32)
    kappa = 10 ** (torch.rand(rows, generator=generator, dtype=F64) * 14 - 6)  # 1e-6 .. 1e8
    direction = torch.nn.functional.normalize(torch.randn(rows, dimension, generator=generator, dtype=F64), dim=1)
    z = (direction * (kappa * s.to(F64))[:, None]).to(torch.float32)
    exact = []
    for row in range(rows):
        vector = [mpmath.mpf(float(v)) for v in z[row]]
        norm = mpmath.sqrt(sum(v * v for v in vector))
        k = norm / mpmath.mpf(float(s[row]))
        ratio = mpmath.besseli(mpmath.mpf(dimension) / 2, k) / mpmath.besseli(mpmath.mpf(dimension) / 2 - 1, k)
        exact.append([float(ratio * v / norm) for v in vector])
    _check_float32(ob.Sphere(dimension), z, s, torch.tensor(exact, dtype=F64), f"Sphere({dimension})", backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_extreme_inputs_stay_finite(backend):
    """Huge |z|, tiny s, z exactly on an end point or at a lattice midpoint: every m finite and in the hull."""
    domain = ob.Product([ob.Interval(-1.0, 1.0), ob.HalfLine(low=0.0), ob.HalfLine(high=0.0), ob.Lattice(0, 4), ob.Binary(), ob.Categorical(3), ob.Sphere(3)])
    table = domain.segment_table()
    values = torch.tensor([-1e6, -1.0, -1e-30, 0.0, 0.5, 1.0, 2.5, 1e6], dtype=torch.float32)
    for s in (1e-10, 1e-4, 1.0, 1e4):
        z = values[:, None].expand(-1, domain.width).contiguous()
        m = _mean(backend, z, table, s)
        assert torch.isfinite(m).all(), f"non-finite m at s={s}"
        assert (m[:, 0] >= -1).all() and (m[:, 0] <= 1).all()
        assert (m[:, 1] >= 0).all() and (m[:, 2] <= 0).all()
        assert (m[:, 3] >= 0).all() and (m[:, 3] <= 4).all()
        assert torch.allclose(m[:, 5:8].sum(1), torch.ones(len(values)), atol=1e-6)
        assert (torch.linalg.vector_norm(m[:, 8:11], dim=1) <= 1 + 1e-6).all()
    # exactly at a lattice midpoint with tiny s, the mean is the midpoint (ties stay ties in float32)
    m = _mean(backend, torch.tensor([[2.5]]), ob.Lattice(0, 4).segment_table(), 1e-10)
    assert float(m) == 2.5
