"""The last step's lattice draw at a cost bounded whatever K (issue: fields, item 2, "last step").

Every backend draws a lattice element by the inverse CDF of its weights with the noise contract's
uniform: over a window of at most ``reference.LATTICE_WINDOW_LIMIT`` points on either side of the
nearest when few points carry weight (or the mean is far outside), and from Euler-Maclaurin partial
sums when many do. Checked here against the exact inverse CDF over all K points, computed in this
file in float64 from the same uniforms, on fresh random means inside and outside the lattice and
spreads on both sides of the switch.
"""

from __future__ import annotations

import math

import pytest
import torch

import omegabridge as ob
from omegabridge.ops.backends import cpu as cpu_backend
from omegabridge import ops as dispatch, reference
from omegabridge.core import noise

F64 = torch.float64
LATTICES = [(0.0, 1.0, 256), (-3.0, 0.25, 4096), (0.0, 1.0, 36), (-2.0, 0.5, 40)]
LATTICE_IDS = ["K256", "K4096-quarter-step", "K36", "K40-half-step"]
# sigma' = sqrt(s)/step: window only, just below and above the switch ((LIMIT - 2)/9 = 3.56), and wide
SPREADS = [0.4, 3.3, 3.8, 12.0, 90.0]
ROWS, ELEMENTS = 6, 1500


def _exact_index(mean: torch.Tensor, s: float, low: float, step: float, points: int, u: torch.Tensor) -> torch.Tensor:
    """First k with sum_{j<=k} w_j >= u sum_j w_j over all K points, w = softmax(-(x_k - mean)^2 / (2 s)), float64."""
    x = low + step * torch.arange(points, dtype=F64)
    flat_mean, flat_u = mean.reshape(-1).to(F64), u.reshape(-1).to(F64)
    indices = []
    for start in range(0, flat_mean.numel(), 512):  # rows of K weights, a chunk at a time
        logits = -((x[None, :] - flat_mean[start:start + 512, None]) ** 2) / (2.0 * s)
        cumulative = torch.cumsum(torch.softmax(logits, dim=1), dim=1)
        below = (cumulative < flat_u[start:start + 512, None] * cumulative[:, -1:]).sum(1)
        indices.append(torch.clamp(below, max=points - 1))
    return torch.cat(indices).reshape(mean.shape).to(F64)


def _means(generator, shape, low: float, step: float, points: int, sigma_points: float) -> torch.Tensor:
    """Means in points over [-K/2, 3K/2] and, for a fifth of them, within a few sigma' of an end."""
    y = -points / 2 + 2 * points * torch.rand(shape, generator=generator, dtype=F64)
    near_end = torch.rand(shape, generator=generator) < 0.2
    end = torch.where(torch.rand(shape, generator=generator) < 0.5, 0.0, points - 1.0).to(F64)
    y = torch.where(near_end, end + sigma_points * 4 * (torch.rand(shape, generator=generator, dtype=F64) - 0.5), y)
    return low + step * y


def _draws(backend: str, domain, mean: torch.Tensor, s: float, seed: int) -> torch.Tensor:
    return dispatch.final_step(mean, None, domain.segment_table(), remaining=s, seed=seed, step_index=7, backend=backend)


def _check(backend: str, dtype, low, step, points, generator, required_agreement: float,
           rows: int = ROWS, elements: int = ELEMENTS, device: str = "cpu", spreads=SPREADS) -> None:
    domain = ob.Lattice(low, low + step * (points - 1), step=step, shape=(elements,))
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    print(f"input seed {seed}")
    formula_share = []
    for sigma_points in spreads:
        s = (step * sigma_points) ** 2
        mean = _means(generator, (rows, elements), low, step, points, sigma_points).to(dtype)
        u = noise.uniforms(seed, 7, 0, rows, elements, noise.STREAM_FINAL_UNIFORM, dtype, mean.device)
        out = _draws(backend, domain, mean.to(device), s, seed).cpu()
        assert bool(domain.contains(out).all()), "a draw left the lattice"
        drawn = torch.round((out.to(F64) - low) / step)
        exact = _exact_index(mean, s, low, step, points, u)
        difference = (drawn - exact).abs()
        lows, steps = torch.tensor([low], dtype=F64), torch.tensor([step], dtype=F64)
        formula = reference.lattice_uses_euler_maclaurin(mean.to(F64), torch.tensor(s, dtype=F64), lows, steps, torch.tensor([points]))
        formula_share.append(float(formula.double().mean()))
        agreement = float((difference == 0).double().mean())
        worst = int(difference.reshape(-1).argmax())
        assert agreement >= required_agreement and float(difference.max()) <= 1.0, (
            f"sigma'={sigma_points}: {agreement:.5f} of draws equal the exact inverse CDF; worst off by "
            f"{float(difference.max())} at mean={float(mean.reshape(-1)[worst])}, u={float(u.reshape(-1)[worst])}"
        )
    if points - 1 > reference.LATTICE_WINDOW_LIMIT:  # both regimes ran
        assert min(formula_share) == 0.0 and max(formula_share) > 0.5, formula_share


@pytest.mark.parametrize("low, step, points", LATTICES, ids=LATTICE_IDS)
def test_reference_float64_draws_the_exact_inverse_cdf(low, step, points, generator):
    _check("reference", F64, low, step, points, generator, required_agreement=1.0)


@pytest.mark.parametrize("low, step, points", LATTICES, ids=LATTICE_IDS)
def test_reference_float32_draws_the_exact_inverse_cdf_to_rounding(low, step, points, generator):
    _check("reference", torch.float32, low, step, points, generator, required_agreement=0.999)


@pytest.mark.parametrize("low, step, points", LATTICES, ids=LATTICE_IDS)
def test_cpu_kernel_draws_the_exact_inverse_cdf_to_rounding(low, step, points, generator):
    if not cpu_backend.is_available():
        pytest.skip(cpu_backend.unavailable_reason())
    _check("cpu", torch.float32, low, step, points, generator, required_agreement=0.999)


def test_a_wide_lattice_draw_does_not_touch_every_point(generator):
    """K = 2^20 points (the most a Lattice takes) at sigma' = 2 10^4: the whole-K sum would be a
    million weights per element; the bounded draw still lands on the inverse CDF (at this spread the
    discrete CDF is the normal CDF at k + 1/2 to 1e-9, and the ends are 26 sigma away), to float32's
    resolution of the CDF."""
    points, sigma_points = 1 << 20, 2e4
    domain = ob.Lattice(0, points - 1, step=1, shape=(64,))
    mean = (points / 2 + sigma_points * torch.randn(4, 64, generator=generator, dtype=F64)).to(torch.float32)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    u = noise.uniforms(seed, 7, 0, 4, 64, noise.STREAM_FINAL_UNIFORM, torch.float32, mean.device).to(F64)
    quantile = torch.special.ndtri(u)  # of the normal; the ends are 26 sigma away
    expected = torch.floor(mean.to(F64) + sigma_points * quantile + 0.5)
    # float32 resolves the CDF to a few ulps (6e-8 each) of the total: in the tails that is several points
    density = torch.exp(-0.5 * quantile**2) / math.sqrt(2.0 * math.pi) / sigma_points  # per point
    tolerance = 1.0 + 5e-7 / density
    for backend in ("reference", "cpu") if cpu_backend.is_available() else ("reference",):
        drawn = _draws(backend, domain, mean, sigma_points**2, seed).to(F64)
        assert bool(((drawn - expected).abs() <= tolerance).all()), (backend, float((drawn - expected).abs().max()))


@pytest.mark.parametrize("low, step, points", LATTICES[:2], ids=LATTICE_IDS[:2])
def test_triton_kernel_draws_the_exact_inverse_cdf_to_rounding(low, step, points, generator):
    from triton_helpers import require_triton

    device = require_triton()
    # smaller than the other backends' case: Triton's CPU interpreter runs a program at a time
    _check("triton", torch.float32, low, step, points, generator, required_agreement=0.996, rows=2, elements=128,
           device=str(device), spreads=(0.4, 3.8, 90.0))
