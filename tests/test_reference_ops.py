"""The reference's step, exact last step and training target, op by op.

The last step's draws are checked against their exact laws (scipy) one primitive at
a time, including the far tails where a naive inverse CDF fails; every output lies
in the domain.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import omegabridge as ob
from omegabridge import ops as dispatch, reference
from omegabridge.core import noise

ROWS = 20000
P_MIN = 1e-4  # a correct sampler fails a single check at most 1 time in 10,000


def _column(domain, mean, s, rows=ROWS, seed=11, step_index=5):
    z = torch.full((rows, domain.width), 0.0)
    z[:] = torch.as_tensor(mean, dtype=torch.float32)
    out = dispatch.final_step(z, None, domain.segment_table(), remaining=s, seed=seed, step_index=step_index)
    assert domain.contains(out).all(), "a last-step output left the domain"
    return out


@pytest.mark.parametrize(
    "low, high, mean, s",
    [
        (0.0, 1.0, 0.3, 0.04),  # mean inside
        (0.0, 1.0, -5.0, 0.5),  # interval above the mean: tail sampler
        (0.0, 1.0, 40.0, 1.0),  # far below
        (-1.0, 1.0, 0.0, 100.0),  # almost uniform
        (2.0, 2.001, 0.0, 1e-2),  # narrow and 20 sigma away
        (0.0, math.inf, -3.0, 1.0),  # lower half-line, mean outside
        (0.0, math.inf, 2.0, 4.0),  # lower half-line, mean inside
        (-math.inf, 1.0, 30.0, 0.25),  # upper half-line, 58 sigma outside
    ],
)
def test_truncated_normal_draws_follow_the_exact_law(low, high, mean, s):
    if math.isinf(high):
        domain = ob.HalfLine(low=low)
    elif math.isinf(low):
        domain = ob.HalfLine(high=high)
    else:
        domain = ob.Interval(low, high)
    x = _column(domain, mean, s)[:, 0].double().numpy()
    sigma = math.sqrt(s)
    law = stats.truncnorm((low - mean) / sigma, (high - mean) / sigma, loc=mean, scale=sigma)
    if law.std() > 0 and np.isfinite(law.mean()):
        statistic = stats.kstest(x, law.cdf)
        assert statistic.pvalue > P_MIN, f"KS p = {statistic.pvalue:.2g} for {domain!r}, mean {mean}, s {s}"
    # the tail draws must keep their resolution: many distinct values, not a few rounded ones
    # (bounded by the float32 values the domain holds near its ends)
    magnitude = max(abs(v) for v in (low, high, mean, 1.0) if np.isfinite(v))
    representable = min(high - low, 50 * sigma) / np.spacing(np.float32(magnitude))
    assert len(np.unique(x)) > min(ROWS // 4, representable / 4)


def _exact_tail_offsets(start: np.ndarray, u: np.ndarray) -> np.ndarray:
    """t with Q(start + t) = (1 - u) Q(start), solved in float64 on scipy's log Q (log_ndtr(-x))."""
    from scipy import optimize, special as scipy_special

    def equation(t, a, target):
        return scipy_special.log_ndtr(-(a + t)) - scipy_special.log_ndtr(-a) - target

    roots = []
    for a, v in zip(start, u):
        target = math.log1p(-v)
        high = 1.0
        while equation(high, a, target) > 0:
            high *= 2.0
        roots.append(optimize.brentq(equation, 0.0, high, args=(a, target), xtol=1e-300, rtol=1e-15, maxiter=1000))
    return np.array(roots)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_tail_quantile_solves_its_equation_to_rounding(dtype, tolerance):
    """special.truncated_tail_quantile (Halley steps from an upper bound, the formula every backend shares)
    against the root found by bisection on scipy's log Q: error at most `tolerance` x max(1, start + t),
    over starts from 0 to 60 sigma and uniforms from 1e-7 to 1 - 1e-7 (float32 rounding of the log
    difference is about 6e-8 x |log R|, so its tolerance is a few times that)."""
    from omegabridge.core import special

    starts = np.array([0.0, 1e-3, 0.05, 0.3, 1.0, 2.5, 6.0, 15.0, 60.0])
    uniforms = np.concatenate([np.geomspace(1e-7, 0.5, 12), 1.0 - np.geomspace(1e-7, 0.5, 12)[::-1]])
    start, u = (torch.tensor(grid.ravel(), dtype=dtype) for grid in np.meshgrid(starts, uniforms))
    t = special.truncated_tail_quantile(start, torch.full(start.shape, math.inf, dtype=dtype), u).double().numpy()
    start, u = start.double().numpy(), u.double().numpy()  # the exact root of the inputs as the dtype holds them
    exact = _exact_tail_offsets(start, u)
    error = np.abs(t - exact) / np.maximum(1.0, start + exact)
    worst = int(np.argmax(error))
    assert error[worst] <= tolerance, f"start {start[worst]}, u {u[worst]}: t = {t[worst]!r}, exact {exact[worst]!r}"


def test_far_tail_truncated_normal_is_exponential_near_the_end():
    # 1e4 sigma below [0, inf): the law is (to 1e-8 relative) exponential with rate |u| / sigma from the end.
    s, mean = 1e-6, -10.0
    x = _column(ob.HalfLine(low=0.0), mean, s)[:, 0].double().numpy()
    rate = (0.0 - mean) / s
    statistic = stats.kstest(x * rate, stats.expon.cdf)
    assert statistic.pvalue > P_MIN


@pytest.mark.parametrize(
    "points, mean, s",
    [((0, 16, 1), 3.3, 2.0), ((-1.0, 1.0, 0.25), 0.1, 0.01), ((0, 16, 1), 40.0, 1.0), ((0, 4095, 1), 2000.3, 30.0)],
)
def test_lattice_draws_follow_the_softmax_weights(points, mean, s):
    low, high, step = points
    domain = ob.Lattice(low, high, step=step)
    x = _column(domain, mean, s)[:, 0].double()
    grid = low + step * torch.arange(domain.points, dtype=torch.float64)
    weights = torch.softmax(-((grid - mean) ** 2) / (2 * s), 0)
    counts = torch.stack([(x == float(g.to(torch.float32))).sum() for g in grid]).double()
    assert int(counts.sum()) == ROWS
    _chi_square(counts, weights)


def _chi_square(counts, probabilities):
    keep = probabilities * ROWS >= 5
    observed = torch.cat([counts[keep], counts[~keep].sum()[None]]).numpy()
    expected = torch.cat([probabilities[keep], probabilities[~keep].sum()[None]]).numpy() * ROWS
    if expected[-1] < 5:
        observed, expected = observed[:-1], expected[:-1]
        assert counts[~keep].sum() <= 10
    if len(observed) < 2:
        return
    pvalue = stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue
    assert pvalue > P_MIN, f"chi-square p = {pvalue:.2g}"


def test_large_categorical_draws():
    mean = torch.linspace(-1.0, 1.0, 4096)
    s = 0.5
    x = _column(ob.Categorical(4096), mean, s, rows=4000).double()
    probabilities = torch.softmax(mean.double() / s, 0)
    # 4096 cells at 4000 draws: compare the draws' mean class index with the law's (CLT, 5 sigma)
    index = x.argmax(1).double()
    classes = torch.arange(4096, dtype=torch.float64)
    mean_index = float((probabilities * classes).sum())
    spread = math.sqrt(float((probabilities * (classes - mean_index) ** 2).sum()) / len(index))
    assert abs(float(index.mean()) - mean_index) < 5 * spread


def test_categorical_and_binary_draws():
    domain = ob.Product([ob.Categorical(5), ob.Binary()])
    mean = [0.2, -0.1, 0.5, 0.0, 0.3, 0.8]
    s = 0.3
    x = _column(domain, mean, s).double()
    probabilities = torch.softmax(torch.tensor(mean[:5], dtype=torch.float64) / s, 0)
    _chi_square(x[:, :5].sum(0), probabilities)
    p_one = 1 / (1 + math.exp(-(mean[5] - 0.5) / s))
    _chi_square(torch.stack([(x[:, 5] == 0).sum(), (x[:, 5] == 1).sum()]).double(), torch.tensor([1 - p_one, p_one], dtype=torch.float64))


@pytest.mark.parametrize("dimension, kappa", [(3, 0.0), (3, 2.5), (3, 1e5), (2, 4.0), (5, 3.0)])
def test_von_mises_fisher_draws(dimension, kappa):
    s = 0.5
    direction = torch.nn.functional.normalize(torch.arange(1.0, dimension + 1), dim=0)
    mean = direction * kappa * s
    x = _column(ob.Sphere(dimension), mean, s, rows=8000).double()
    w = (x @ direction.double()).numpy()
    if dimension == 3:
        # exact law of w = <x, mu> for d = 3: density proportional to exp(kappa w) on [-1, 1]
        if kappa == 0:
            cdf = lambda v: (v + 1) / 2  # noqa: E731
        else:
            # (e^{kappa v} - e^{-kappa}) / (e^{kappa} - e^{-kappa}), written without overflow
            cdf = lambda v: np.exp(kappa * (v - 1)) * -np.expm1(-kappa * (v + 1)) / -np.expm1(-2 * kappa)  # noqa: E731
        assert stats.kstest(w, cdf).pvalue > P_MIN
    else:
        # E[w] = A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa)
        from scipy.special import ive

        expected = ive(dimension / 2, kappa) / ive(dimension / 2 - 1, kappa)
        assert abs(w.mean() - expected) < 5 * w.std() / math.sqrt(len(w))
    # the tangent direction is uniform: its projection on any fixed orthogonal vector averages 0
    assert abs(float((x - torch.as_tensor(w)[:, None] * direction.double()).mean(0).abs().max())) < 0.05


def test_step_is_the_euler_formula():
    domain = ob.Product([ob.Interval(-1.0, 1.0), ob.Categorical(3), ob.Lattice(0, 5), ob.Real()])
    table = domain.segment_table()
    z = torch.randn(64, domain.width)
    drift = torch.randn(64, domain.width).to(torch.bfloat16)
    s, db = 0.7, 0.05
    out = dispatch.step(z, drift, table, remaining=s, increment=db, seed=9, step_index=4, row_offset=1000)
    xi = noise.normals(9, 4, 1000, 64, domain.width)
    m = reference.posterior_mean(z, table, s)
    expected = z + db * ((m - z) / s + drift.float()) + math.sqrt(db) * xi
    assert torch.allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_bridge_target_is_the_marginal_and_the_target():
    domain = ob.Product([ob.HalfLine(low=0.0), ob.Categorical(4), ob.Sphere(3)])
    table = domain.segment_table()
    x = domain.project(torch.randn(32, domain.width).abs())
    c = torch.rand(32, 1)
    sigma = torch.rand(32, 1)
    s = torch.rand(32, 1) + 0.1
    z_t, target = dispatch.bridge_target(
        x, table, mean_scale=c, noise_scale=sigma, remaining=s, seed=4, step_index=2, backend="reference"
    )
    eps = noise.normals(4, 2, 0, 32, domain.width, noise.STREAM_TRAIN)
    assert torch.allclose(z_t, c * x + sigma * eps)
    assert torch.allclose(target, (x - reference.posterior_mean(z_t, table, s)) / s)


def test_final_project_lands_in_the_domain():
    domain = ob.Product([ob.Interval(-1.0, 1.0), ob.Categorical(3), ob.Lattice(0, 5), ob.Sphere(3), ob.HalfLine(high=0.0)])
    z = torch.randn(256, domain.width) * 4
    out = dispatch.final_step(z, torch.randn_like(z), domain.segment_table(), remaining=0.01, seed=0, step_index=9, final="project")
    assert domain.contains(out).all()


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_last_step_outputs_stay_in_domain_for_extreme_states(backend):
    domain = ob.Product([ob.Interval(-1.0, 1.0), ob.HalfLine(low=0.0), ob.HalfLine(high=0.0), ob.Lattice(0, 255),
                         ob.Binary(), ob.Categorical(6), ob.Sphere(3), ob.Real()])
    values = torch.tensor([-1e8, -1e3, -1.0, 0.0, 1e-20, 0.5, 1.0, 254.5, 1e3, 1e8])
    z = values[:, None].expand(-1, domain.width).contiguous()
    for s in (1e-10, 1e-4, 1.0, 1e4):
        out = dispatch.final_step(z, None, domain.segment_table(), remaining=s, seed=1, step_index=3, backend=backend)
        assert domain.contains(out).all(), f"outside at s={s}"
