"""Shared pieces of the statistical tests (tests/test_statistics.py, bridge-math.md section 5).

* exact time-T laws of the f = 0 bridge (N(0, beta(T) I) restricted to a factor);
* goodness-of-fit statistics that return ``(statistic, threshold)`` pairs, so one
  check can be asserted to pass (correct sampler) or to fail (planted bug);
* the oracle drift f*(z, t) = (E[X | Z_t = z] - m(z, s)) / s of a discrete target;
* planted-bug copies of ``reference.step`` / ``reference.final_step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

import omegabridge as ob
from omegabridge.core import noise
from omegabridge import reference
from omegabridge.reference import oracle
from omegabridge.core.segments import Kind

F64 = torch.float64


# ----------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """A statistic, the threshold it must stay below, and a description for messages."""

    statistic: float
    threshold: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.statistic <= self.threshold

    def __str__(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return f"{self.statistic:.4g} vs threshold {self.threshold:.4g} ({verdict}; {self.detail})"


# ----------------------------------------------------------------------------------------
# Exact laws of the f = 0 bridge at time T (bridge-math.md section 5, first handle)
# ----------------------------------------------------------------------------------------
def beta_end(schedule) -> float:
    return float(schedule.beta(torch.tensor(1.0, dtype=F64)))


def truncated_normal(low: float, high: float, variance: float):
    """N(0, variance) restricted to [low, high] (ends may be infinite), as a frozen scipy law."""
    sd = math.sqrt(variance)
    return stats.truncnorm(low / sd, high / sd, loc=0.0, scale=sd)


def discrete_gaussian(points: np.ndarray, variance: float) -> np.ndarray:
    """Weights of N(0, variance) restricted to a finite point set (counting measure)."""
    logits = -np.asarray(points, dtype=np.float64) ** 2 / (2.0 * variance)
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def binary_one_probability(variance: float) -> float:
    """P(X = 1) for N(0, variance) restricted to {0, 1}: e^{-1/(2v)} / (1 + e^{-1/(2v)})."""
    return 1.0 / (1.0 + math.exp(1.0 / (2.0 * variance)))


def euler_chain_cdf(domain, schedule, steps: int, points: np.ndarray, h: float = 0.01, span: float = 7.0):
    """CDF at ``points`` of the *discretised* f = 0 sampler's time-T law on a 1-D continuous domain.

    The law of the Euler chain z_{k+1} = z_k + db_k (m(z_k, s_k) - z_k)/s_k + sqrt(db_k) xi
    (z_0 = 0) is propagated as a density on a grid of spacing ``h`` over [-span, span]
    (float64, m from the reference), then pushed through the exact last step
    (N(z_{N-1}, s I) restricted to the domain). Its distance to the exact law is the
    discretisation error of the sampler, free of Monte Carlo noise.
    """
    bridge = ob.Bridge(domain, schedule, steps=steps)
    remaining = bridge.time_grid.remaining.numpy()
    increment = bridge.time_grid.increment.numpy()
    grid = np.arange(-span, span + h / 2, h)

    def euler_mean(z, k):
        m = reference.posterior_mean(torch.tensor(z, dtype=F64)[:, None], bridge.table, float(remaining[k]))
        return z + increment[k] * (m[:, 0].numpy() - z) / remaining[k]

    density = stats.norm.pdf(grid, euler_mean(np.zeros(1), 0)[0], math.sqrt(increment[0])) * h
    for k in range(1, steps - 1):
        kernel = stats.norm.pdf(grid[None, :], euler_mean(grid, k)[:, None], math.sqrt(increment[k])) * h
        density = density @ kernel
    density = density / density.sum()
    (segment,) = bridge.table.segments
    low = segment.low if segment.kind in (Kind.INTERVAL, Kind.HALFLINE_LOWER) else -np.inf
    high = segment.high if segment.kind in (Kind.INTERVAL, Kind.HALFLINE_UPPER) else np.inf
    sd = math.sqrt(remaining[-1])
    cdf = stats.truncnorm.cdf(
        np.asarray(points)[:, None], (low - grid[None]) / sd, (high - grid[None]) / sd, loc=grid[None], scale=sd
    )
    return (density[None] * cdf).sum(1)


# ----------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------
def chi_square(counts, probabilities, alpha: float, min_expected: float = 5.0, what: str = "") -> Check:
    """Pearson chi-square of observed counts against cell probabilities.

    Cells with expected count below ``min_expected`` are pooled into one cell; any
    observation outside the listed cells (``counts.sum() < n``) must be passed as an
    extra cell by the caller (probability 0 cells are pooled with the rest, so a
    sample that lands there inflates the statistic).
    """
    counts = np.asarray(counts, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n = counts.sum()
    expected = n * probabilities
    small = expected < min_expected
    if small.any():
        pooled_count = counts[small].sum()
        pooled_expected = expected[small].sum()
        counts = np.append(counts[~small], pooled_count)
        expected = np.append(expected[~small], pooled_expected)
    if expected[-1] == 0:  # only impossible cells were pooled
        statistic = math.inf if counts[-1] > 0 else 0.0
        counts, expected = counts[:-1], expected[:-1]
        statistic += float(((counts - expected) ** 2 / expected).sum())
    else:
        statistic = float(((counts - expected) ** 2 / expected).sum())
    dof = len(counts) - 1
    threshold = float(stats.chi2.isf(alpha, dof))
    p_value = float(stats.chi2.sf(statistic, dof))
    tv = 0.5 * float(np.abs(counts / n - expected / n).sum())
    return Check(statistic, threshold, f"{what} chi2 dof={dof} p={p_value:.3g} TV={tv:.4f} n={int(n)}")


def ks(values, cdf, alpha: float, what: str = "") -> Check:
    """Kolmogorov-Smirnov distance to a continuous CDF, against the exact Kolmogorov quantile."""
    values = np.asarray(values, dtype=np.float64)
    result = stats.kstest(values, cdf)
    n = len(values)
    threshold = float(stats.kstwo.isf(alpha, n))
    return Check(float(result.statistic), threshold, f"{what} KS p={result.pvalue:.3g} n={n}")


def independence(a_labels, b_labels, alpha: float, min_expected: float = 5.0, what: str = "") -> Check:
    """Chi-square test of independence of two discrete columns (rare values pooled per column)."""

    def pooled(labels):
        labels = np.asarray(labels)
        values, counts = np.unique(labels, return_counts=True)
        rare = set(values[counts < 4 * min_expected].tolist())
        return np.array(["rare" if v in rare else str(v) for v in labels.tolist()])

    a, b = pooled(a_labels), pooled(b_labels)
    table = np.array([[np.sum((a == x) & (b == y)) for y in np.unique(b)] for x in np.unique(a)], dtype=np.float64)
    statistic, p_value, dof, _ = stats.chi2_contingency(table, correction=False)
    threshold = float(stats.chi2.isf(alpha, dof))
    return Check(float(statistic), threshold, f"{what} independence chi2 dof={dof} p={p_value:.3g}")


def row_counts(x: torch.Tensor, support: torch.Tensor) -> np.ndarray:
    """Counts of each support row in x, plus a last cell for rows outside the support."""
    x = x.to(F64)
    match = (x[:, None, :] == support[None, :, :]).all(-1)  # (n, |S|)
    counts = match.sum(0).numpy().astype(np.float64)
    outside = float((~match.any(1)).sum())
    return np.append(counts, outside)


# ----------------------------------------------------------------------------------------
# The oracle drift (bridge-math.md sections 4 and 5)
# ----------------------------------------------------------------------------------------
# One construction, in the package (the benchmarks use it too).
oracle_drift = oracle.oracle_drift


# ----------------------------------------------------------------------------------------
# Planted bugs: small modified copies of reference.step / reference.final_step
# ----------------------------------------------------------------------------------------
_correct_step = reference.step
_correct_final_step = reference.final_step


def step_wrong_sign(z, drift, table, remaining, increment, seed, step_index, row_offset=0):
    """Bug (i): the singular drift with the wrong sign, (z - m)/s."""
    xi = noise.normals(seed, step_index, row_offset, z.shape[0], z.shape[1], noise.STREAM_STEP, z.dtype, z.device)
    m = reference.posterior_mean(z, table, remaining)
    velocity = (z - m) / remaining  # BUG
    if drift is not None:
        velocity = velocity + drift.to(z.dtype)
    return z + increment * velocity + math.sqrt(increment) * xi


def step_missing_inverse_s(z, drift, table, remaining, increment, seed, step_index, row_offset=0):
    """Bug (ii): the singular drift without its 1/s, (m - z)."""
    xi = noise.normals(seed, step_index, row_offset, z.shape[0], z.shape[1], noise.STREAM_STEP, z.dtype, z.device)
    m = reference.posterior_mean(z, table, remaining)
    velocity = m - z  # BUG: should be (m - z) / remaining
    if drift is not None:
        velocity = velocity + drift.to(z.dtype)
    return z + increment * velocity + math.sqrt(increment) * xi


def step_reused_noise(z, drift, table, remaining, increment, seed, step_index, row_offset=0):
    """Bug (iii): the same xi every step (the noise address ignores the step)."""
    xi = noise.normals(seed, 0, row_offset, z.shape[0], z.shape[1], noise.STREAM_STEP, z.dtype, z.device)  # BUG
    m = reference.posterior_mean(z, table, remaining)
    velocity = (m - z) / remaining
    if drift is not None:
        velocity = velocity + drift.to(z.dtype)
    return z + increment * velocity + math.sqrt(increment) * xi


def final_step_unscaled_drift(z, drift, table, remaining, seed, step_index, row_offset=0, final="exact"):
    """Bug (iv): the last step's mean is z + f instead of z + s f (the drift not scaled by the step s).

    (Dropping the drift from the last mean altogether, z instead of z + s f, is a real
    but O(small) error here: the last step is short (s_{N-1} ~ 0.05 on the 0..16
    lattice), and it moves the oracle lattice chi-square from ~25 to ~50 at n = 4000,
    not by a wide margin; it has no effect at all on the categorical oracle.)
    """
    if drift is not None:
        drift = drift / remaining  # BUG: the exact step's mean becomes z + s (f / s) = z + f
    return _correct_final_step(z, drift, table, remaining, seed, step_index, row_offset, final)


BUGS = {
    "wrong_sign": ("step", step_wrong_sign),
    "missing_inverse_s": ("step", step_missing_inverse_s),
    "reused_noise": ("step", step_reused_noise),
    "final_unscaled_drift": ("final_step", final_step_unscaled_drift),
}
