"""The lattice posterior mean at a cost bounded whatever K (issue: fields, item 2).

Every backend evaluates m(z, s) on a lattice of K points as a window of at most
``reference.LATTICE_WINDOW_LIMIT`` points on either side of the nearest one when few points
carry weight, and as the truncated-Gaussian mean plus Euler-Maclaurin end corrections when many
do. Checked here against the exact K-term sum in float64 (computed in this file, not by the
code under test), on fresh random inputs that cover the window, the formula, the switch between
them (sigma' = sqrt(s)/step near (LIMIT - 2)/9, and the outside rate near its threshold) and
z far outside the lattice.
"""

from __future__ import annotations

import math

import pytest
import torch

import omegabridge as ob
from omegabridge import ops as dispatch, reference

F64 = torch.float64


def _fresh_generator(request) -> torch.Generator:
    seed = torch.randint(0, 2**31 - 1, (1,)).item()
    print(f"{request.node.name}: input seed {seed}")
    return torch.Generator().manual_seed(seed)


def _exact_mean(z: torch.Tensor, s: torch.Tensor, low: float, step: float, points: int) -> torch.Tensor:
    """sum_k x_k w_k over all K points, w = softmax(-(x_k - z)^2 / (2 s)), in float64."""
    x = low + step * torch.arange(points, dtype=F64)
    logits = -((x[None, :] - z.to(F64)[:, None]) ** 2) / (2.0 * s.to(F64)[:, None])
    return (torch.softmax(logits, dim=1) * x[None, :]).sum(dim=1)


def _inputs(generator, rows: int, low: float, step: float, points: int):
    """(z, s) in float64: quarters of window, formula, switch and far-outside cases."""
    def uniform(a, b):
        return a + (b - a) * torch.rand(rows, generator=generator, dtype=F64)

    quarter = rows // 4
    last = points - 1
    # sigma' = sqrt(s)/step log-uniform over [1e-3, 3 K]; y = (z - low)/step over [-K, 2K]
    sigma_points = torch.exp(uniform(math.log(1e-3), math.log(3 * points)))
    y = uniform(-points, 2 * points)
    # near the window/formula switch: sigma' within 30% of (LIMIT - 2)/9, y near an end or inside
    switch = (reference.LATTICE_WINDOW_LIMIT - 2.0) / reference.LATTICE_WINDOW_SIGMAS
    sigma_points[:quarter] = switch * uniform(0.7, 1.3)[:quarter]
    y[:quarter] = uniform(-3 * switch, last + 3 * switch)[:quarter]
    # near the outside-rate switch: distance outside = rate * sigma'^2 * (0.5 .. 1.5)
    band = slice(quarter, 2 * quarter)
    sigma_points[band] = torch.exp(uniform(math.log(switch), math.log(points)))[band]
    distance = reference.LATTICE_OUTSIDE_RATE * sigma_points[band] ** 2 * uniform(0.5, 1.5)[band]
    side = torch.rand(quarter, generator=generator) < 0.5
    y[band] = torch.where(side, -distance, last + distance)
    z = low + step * y
    return z, (step * sigma_points) ** 2


LATTICES = [(0.0, 1.0, 36), (0.0, 1.0, 256), (-3.0, 0.25, 4096), (-2.0, 0.5, 40)]
LATTICE_IDS = ["K36", "K256", "K4096-quarter-step", "K40-half-step"]


@pytest.mark.parametrize("low, step, points", LATTICES, ids=LATTICE_IDS)
def test_float64_matches_the_exact_sum_in_both_regimes(low, step, points, request):
    generator = _fresh_generator(request)
    z, s = _inputs(generator, 4000, low, step, points)
    lows, steps, counts = torch.tensor([low], dtype=F64), torch.tensor([step], dtype=F64), torch.tensor([points])
    m = reference.lattice_mean(z[:, None], s[:, None], lows, steps, counts)[:, 0]
    exact = _exact_mean(z, s, low, step, points)
    error = (m - exact).abs() / (exact.abs() + s.sqrt())
    formula = reference.lattice_uses_euler_maclaurin(z[:, None], s[:, None], lows, steps, counts)[:, 0]
    # both regimes are exercised, each in a good share of the rows
    assert 0.2 < float(formula.double().mean()) < 0.8, float(formula.double().mean())
    worst = int(error.argmax())
    assert float(error.max()) <= 1e-6, f"error {float(error.max()):.3g} at z={float(z[worst])}, s={float(s[worst])}"


def _backend_mean(backend: str, z, s, table):
    if backend == "reference":
        return reference.posterior_mean(z, table, s)
    return dispatch.posterior_mean(z, table, s, backend=backend)


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton"])
@pytest.mark.parametrize("low, step, points", LATTICES[:3], ids=LATTICE_IDS[:3])
def test_float32_kernels_hold_the_accuracy_contract(backend, low, step, points, request):
    """|m - m_exact| <= 1e-5 (|m_exact| + sqrt(s)) in float32 (bridge-math.md section 2), every backend."""
    generator = _fresh_generator(request)
    rows = 400 if backend == "triton" else 4000  # the Triton interpreter is slow
    z64, s64 = _inputs(generator, rows, low, step, points)
    z, s = z64.to(torch.float32), s64.to(torch.float32)
    table = ob.Lattice(low, low + (points - 1) * step, step=step).segment_table()
    m = _backend_mean(backend, z[:, None], s[:, None], table)[:, 0]
    exact = _exact_mean(z, s, low, step, points)
    bound = 1e-5 * (exact.abs() + s.to(F64).sqrt())
    error = (m.to(F64) - exact).abs()
    worst = int((error / bound).argmax())
    assert bool(torch.isfinite(m).all())
    assert bool((error <= bound).all()), f"{backend}: error {float(error[worst]):.3g} > {float(bound[worst]):.3g} at z={float(z[worst])}, s={float(s[worst])}"


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_a_row_mixing_lattices_of_different_steps_takes_each_columns_regime(backend, request):
    """One run of lattice columns with different K and steps: the window and the formula per column."""
    generator = _fresh_generator(request)
    domain = ob.Product([ob.Lattice(0, 255, step=1, shape=(3,)), ob.Lattice(0, 8, step=0.5), ob.Lattice(-1, 1, step=0.01)])
    table = domain.segment_table()
    rows = 64
    s = torch.tensor(4.0) * torch.exp(torch.randn(rows, 1, generator=generator)).clamp(0.01, 100.0)
    z = 300.0 * torch.rand(rows, domain.width, generator=generator) - 20.0
    m = dispatch.posterior_mean(z, table, s, backend=backend)
    for column, segment in enumerate(table.elements):
        exact = _exact_mean(z[:, column], s[:, 0], segment.low, segment.step, segment.points)
        bound = 1e-5 * (exact.abs() + s[:, 0].to(F64).sqrt())
        assert bool(((m[:, column].to(F64) - exact).abs() <= bound).all()), table.describe_column(column)
