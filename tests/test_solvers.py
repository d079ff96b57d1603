"""The solvers of ``Bridge.sample`` (omegabridge/solvers.py): the step written out independently,
the sampling contracts (domain, batch size, backends, seeds), the error they buy back with an
oracle drift, the posterior-variance estimate, and named errors for bad arguments."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

import omegabridge as ob
from omegabridge import reference
from omegabridge.core import noise
from omegabridge.reference import oracle_drift
from omegabridge.solvers import BridgeSolver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from solvers import TARGETS, total_variation  # noqa: E402  (the benchmark's targets and statistic)
from native_helpers import require_extension  # noqa: E402

F64 = torch.float64


def _every_kind():
    return ob.Product([ob.Interval(-1.0, 1.0), ob.HalfLine(low=0.0), ob.Categorical(4), ob.Lattice(0, 16, step=1),
                       ob.Binary(), ob.Sphere(3), ob.Real()])


def _smooth_model(width: int):
    """A fixed drift that depends on z and t, so the multistep term is not zero; elementwise, so a row's
    drift does not depend on the other rows of its batch (a matrix product's rounding would)."""
    generator = torch.Generator().manual_seed(3)
    weight, bias = torch.randn(width, generator=generator), torch.randn(width, generator=generator)

    def model(z, t):
        return torch.tanh(z * weight + bias) * (1.0 + t[:, None])

    return model


def _written_out_bridge_steps(bridge: ob.Bridge, model, z: torch.Tensor, seed: int, steps: int, variance=None):
    """The "bridge" solver's first ``steps`` steps from the formulas of docs/math.md, in float64:
    lambda from the schedule's beta, x_hat = m + s f, x_hat' = x_hat + (x_hat - x_hat_prev) h / (2 h_prev)."""
    grid = bridge.time_grid
    beta = grid.beta.to(F64)
    total = float(beta[-1])
    lam = []
    for b in beta.tolist():
        s = total - b
        lam.append(0.5 * math.log((b / total) ** 2 / (b * s / total)) if 0 < b < total else (-math.inf if b == 0 else math.inf))
    z = z.to(F64)
    previous = None
    for k in range(steps):
        s, delta = float(grid.remaining[k]), float(grid.increment[k])
        t = grid.t[k].to(torch.float32).expand(z.shape[0])
        f = model(z.to(torch.float32), t).to(F64)
        prediction = reference.posterior_mean(z, bridge.table, s) + s * f
        moved = prediction
        if previous is not None and math.isfinite(lam[k - 1]):
            moved = prediction + (prediction - previous) * (lam[k + 1] - lam[k]) / (2 * (lam[k] - lam[k - 1]))
        previous = prediction
        xi = noise.normals(seed, k, 0, z.shape[0], z.shape[1], noise.STREAM_STEP, F64)
        spread = delta * (s - delta) / s + (0.0 if variance is None else (delta / s) ** 2 * variance[k].to(F64))
        z = z + (delta / s) * (moved - z) + torch.sqrt(torch.as_tensor(spread, dtype=F64)) * xi
    return z


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("with_variance", [False, True])
def test_bridge_steps_match_the_formulas_written_out(backend, with_variance):
    # tolerance: float32 state against the float64 formulas over 6 steps, 2e-4 on O(1) values (unit schedule)
    if backend == "cpu":
        require_extension()
    bridge = ob.Bridge(_every_kind(), ob.schedules.Exp(3.0, 1.0), steps=8, grid="s")
    model = _smooth_model(bridge.width)
    rows, seed, steps = 64, 11, 6
    variance = torch.rand(bridge.steps, bridge.width, generator=torch.Generator().manual_seed(1), dtype=F64) if with_variance else None
    z0 = torch.zeros(rows, bridge.width)
    solver = BridgeSolver(bridge.table, bridge._remaining, bridge._increment, bridge._log_snr, variance, backend)
    z = z0.clone()
    for k in range(steps):
        z = solver.step(z, model(z, bridge.time_grid.t[k].to(torch.float32).expand(rows)), k, seed, 0)
    expected = _written_out_bridge_steps(bridge, model, z0, seed, steps, variance)
    assert torch.allclose(z.to(F64), expected, atol=2e-4, rtol=1e-4), float((z.to(F64) - expected).abs().max())


def test_the_multistep_weight_is_first_order_at_the_start_and_second_order_after():
    bridge = ob.Bridge(ob.Binary(), steps=10, grid="t")
    solver = BridgeSolver(bridge.table, bridge._remaining, bridge._increment, bridge._log_snr, None, "reference")
    solver.previous = torch.zeros(1, 1)
    assert solver.extrapolation(0) == 0.0
    assert solver.extrapolation(1) == 0.0  # lambda_0 = -inf (Z_0 = 0 carries no signal)
    lam = bridge._log_snr
    assert solver.extrapolation(4) == pytest.approx((lam[5] - lam[4]) / (2 * (lam[4] - lam[3])), rel=1e-12)


@pytest.mark.parametrize("solver", ["euler", "bridge"])
def test_every_sample_lies_in_the_domain_and_is_reproducible(solver):
    bridge = ob.Bridge(_every_kind(), steps=6, grid="s")
    model = _smooth_model(bridge.width)
    a = bridge.sample(model, n=50, seed=4, batch_size=50, progress=False, solver=solver)
    b = bridge.sample(model, n=50, seed=4, batch_size=7, progress=False, solver=solver)
    c = bridge.sample(model, n=50, seed=5, batch_size=50, progress=False, solver=solver)
    assert bridge.domain.contains(a).all()
    assert torch.equal(a, b)  # row r's draws depend on (seed, r) only, not on the batch
    assert not torch.equal(a, c)
    assert torch.equal(bridge.sample(model, n=20, seed=4, row_offset=30, progress=False, solver=solver), a[30:])


def test_the_bridge_solver_is_the_default_sampler():
    bridge = ob.Bridge(_every_kind(), steps=6)
    model = _smooth_model(bridge.width)
    assert torch.equal(bridge.sample(model, n=40, seed=2, progress=False),
                       bridge.sample(model, n=40, seed=2, progress=False, solver="bridge"))
    assert not torch.equal(bridge.sample(model, n=40, seed=2, progress=False),
                           bridge.sample(model, n=40, seed=2, progress=False, solver="euler"))
    # Under cuda_graph=True the default is the Euler step a graph captures (off a GPU: no graph, a warning).
    with pytest.warns(RuntimeWarning, match="cuda_graph"):
        graphed = bridge.sample(model, n=40, seed=2, progress=False, cuda_graph=True)
    assert torch.equal(graphed, bridge.sample(model, n=40, seed=2, progress=False, solver="euler"))


def test_the_default_steps_and_grid_are_the_measured_ones():
    bridge = ob.Bridge(ob.Binary())
    assert (bridge.steps, bridge.grid) == (250, "t")


def test_bridge_solver_agrees_across_cpu_backends():
    # Tolerances: continuous columns (interval, half-line, real, sphere) to 1e-4 relative in every row;
    # the discrete draws (categorical, lattice, binary) equal in at least 99% of rows (float rounding may
    # move a state across a draw's boundary). The drift is elementwise, so each column is its own check.
    require_extension()
    bridge = ob.Bridge(_every_kind(), steps=6, grid="s")
    model = _smooth_model(bridge.width)
    a = bridge.sample(model, n=400, seed=9, progress=False, solver="bridge", backend="reference")
    b = bridge.sample(model, n=400, seed=9, progress=False, solver="bridge", backend="cpu")
    continuous = [0, 1, 8, 9, 10, 11]  # Interval, HalfLine, Sphere(3), Real
    discrete = [2, 3, 4, 5, 6, 7]  # Categorical(4), Lattice, Binary
    close = (a[:, continuous] - b[:, continuous]).abs() <= 1e-4 * (1 + a[:, continuous].abs())
    assert bool(close.all()), float((a[:, continuous] - b[:, continuous]).abs().max())
    same = (a[:, discrete] == b[:, discrete]).all(dim=1).float().mean()
    assert float(same) >= 0.99, float(same)


def _oracle_tv(target, steps, grid, solver, variance_rows=0, rows=20_000):
    domain, schedule, support, probabilities = TARGETS[target]()
    bridge = ob.Bridge(domain, schedule, steps=steps, grid=grid)
    drift = oracle_drift(bridge, support, probabilities)
    variance = None
    if variance_rows:
        index = torch.multinomial(probabilities.float(), variance_rows, replacement=True,
                                  generator=torch.Generator().manual_seed(5))
        variance = bridge.posterior_variance(drift, support[index], progress=False)
    x = bridge.sample(drift, rows, seed=0, batch_size=rows, progress=False, solver=solver, posterior_variance=variance)
    assert domain.contains(x).all()
    return total_variation(x, support, probabilities)


def test_bridge_solver_reaches_in_25_steps_what_euler_needs_200_for_on_the_mixed_target():
    # Measured (bench/results/solvers.md, 20,000 rows): bridge 0.015 at 25 steps on grid s; Euler 0.099 at
    # 25 on the same grid and 0.013 at 200 on grid t. The bounds leave room for the floor (0.006).
    bridge_tv = _oracle_tv("mixed", 25, "s", "bridge")
    euler_tv = _oracle_tv("mixed", 25, "s", "euler")
    assert bridge_tv < 0.025, bridge_tv
    assert bridge_tv < euler_tv / 3, (bridge_tv, euler_tv)


def test_posterior_variance_is_what_the_bridge_solver_needs_on_the_multimodal_target():
    # Measured (bench/results/solvers.md): 0.015 with the variance at 25 steps (grid s), 0.10 without; Euler 0.12.
    with_variance = _oracle_tv("multimodal", 25, "s", "bridge", variance_rows=4000)
    without = _oracle_tv("multimodal", 25, "s", "bridge")
    assert with_variance < 0.03, with_variance
    assert with_variance < without / 3, (with_variance, without)


def test_posterior_variance_estimate_is_exact_where_it_is_known():
    # At t = 0 (Z_0 = 0) the data prediction is E[X], so the estimate is the data's variance; with the
    # oracle of a one-point target the prediction is the point at every step, so it is zero.
    domain = ob.Binary()
    bridge = ob.Bridge(domain, steps=5)
    data = torch.tensor([[0.0], [1.0], [1.0], [1.0]]).repeat(1000, 1)
    support, probabilities = torch.tensor([[0.0], [1.0]]), torch.tensor([0.25, 0.75], dtype=F64)
    variance = bridge.posterior_variance(oracle_drift(bridge, support, probabilities), data, progress=False)
    assert variance.shape == (5, 1) and variance.dtype == F64
    assert float(variance[0, 0]) == pytest.approx(0.1875, abs=1e-6)  # 3/4 * 1/4
    assert bool((variance[1:, 0] < variance[:-1, 0]).all())  # later states tell more about X (4000 rows: clear of noise)
    point = bridge.posterior_variance(oracle_drift(bridge, torch.tensor([[1.0]]), torch.tensor([1.0], dtype=F64)),
                                      torch.ones(8, 1), progress=False)
    assert float(point.max()) < 1e-8


def test_posterior_variance_batches_give_the_same_estimate():
    bridge = ob.Bridge(ob.Product([ob.Lattice(0, 4), ob.Categorical(3)]), steps=5)
    data = torch.tensor([[x, *(1.0 if c == x % 3 else 0.0 for c in range(3))] for x in range(5)] * 6)
    model = _smooth_model(bridge.width)
    a = bridge.posterior_variance(model, data, batch_size=30, progress=False)
    b = bridge.posterior_variance(model, data, batch_size=7, progress=False)
    assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(solver="heun"), ValueError, "solver must be one of"),
        (dict(solver=""), ValueError, "solver must be one of"),
        (dict(solver="euler", posterior_variance=torch.zeros(6, 2)), ValueError, "solver='bridge' only"),
        (dict(solver="bridge", posterior_variance=[[0.0]]), TypeError, "torch.Tensor"),
        (dict(solver="bridge", posterior_variance=torch.zeros(5, 2)), ValueError, r"\(steps, width\) = \(6, 2\)"),
        (dict(solver="bridge", posterior_variance=torch.full((6, 2), -1.0)), ValueError, "step 0, column 0"),
        (dict(solver="bridge", posterior_variance=torch.tensor([[0.0, 0.0]] * 5 + [[0.0, math.nan]])), ValueError,
         "step 5, column 1"),
    ],
)
def test_bad_solver_arguments_are_named(kwargs, error, match):
    bridge = ob.Bridge(ob.Product([ob.Binary(), ob.Interval(0.0, 1.0)]), steps=6)
    with pytest.raises(error, match=match):
        bridge.sample(None, n=3, progress=False, **kwargs)


def test_posterior_variance_refuses_bad_data_by_name():
    bridge = ob.Bridge(ob.Binary(), steps=4)
    with pytest.raises(ob.DomainError, match="outside the domain"):
        bridge.posterior_variance(None, torch.tensor([[0.5]]), progress=False)
    with pytest.raises(TypeError, match="callable"):
        bridge.posterior_variance("model", torch.tensor([[1.0]]), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        bridge.posterior_variance(None, torch.tensor([[1.0]]), batch_size=0, progress=False)


def _bridge_step_arguments(table, rows=4):
    z = torch.zeros(rows, table.width)
    return dict(z=z, drift=None, previous=None, table=table, remaining=0.5, fraction=0.25, weight=0.0,
                spread=torch.ones(table.width), seed=0, step_index=0)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(fraction=1.5), ValueError, r"fraction \(delta / s\) must lie in \(0, 1\]"),
        (dict(fraction=0.0), ValueError, "fraction must be finite and > 0"),
        (dict(weight=0.5), ValueError, "needs the previous prediction"),
        (dict(weight=math.inf, previous=torch.zeros(4, 2)), ValueError, "weight must be a finite number"),
        (dict(previous=torch.zeros(3, 2)), ValueError, "previous must match the state"),
        (dict(previous=torch.zeros(4, 2, dtype=F64)), ValueError, "previous must match the state"),
        (dict(spread=torch.ones(3)), ValueError, r"spread must be a float tensor of shape \(2,\)"),
        (dict(spread=[1.0, 1.0]), ValueError, "spread must be a float tensor"),
        (dict(spread=torch.tensor([1.0, -1.0])), ValueError, "spread must be finite and >= 0"),
        (dict(spread=torch.tensor([1.0, math.nan])), ValueError, "spread must be finite and >= 0"),
        (dict(remaining=0.0), ValueError, "remaining must be finite and > 0"),
        (dict(z=torch.zeros(4, 3)), ValueError, r"z must have shape \(rows, 2\)"),
    ],
)
def test_bridge_step_op_names_bad_arguments(change, error, match):
    arguments = {**_bridge_step_arguments(ob.Product([ob.Binary(), ob.Interval(0.0, 1.0)]).segment_table()), **change}
    with pytest.raises(error, match=match):
        ob.ops.bridge_step(arguments.pop("z"), arguments.pop("drift"), arguments.pop("previous"), arguments.pop("table"),
                           **arguments)


def test_bridge_step_op_refuses_a_prediction_buffer_that_shares_memory():
    table = ob.Product([ob.Binary(), ob.Interval(0.0, 1.0)]).segment_table()
    z, previous = torch.zeros(4, 2), torch.zeros(4, 2)
    common = dict(remaining=0.5, fraction=0.25, spread=torch.ones(2), seed=0, step_index=0)
    with pytest.raises(ValueError, match="prediction must not share memory with z"):
        ob.ops.bridge_step(z, None, None, table, weight=0.0, prediction=z, **common)
    with pytest.raises(ValueError, match="prediction must not share memory with previous"):
        ob.ops.bridge_step(z, None, previous, table, weight=0.5, prediction=previous, **common)


def test_a_random_start_changes_the_state_not_the_solvers_weights():
    # lambda comes from s alone (e^(2 lambda) = 1/s - 1/beta(1)): the bridge's drift does not depend on the start
    plain = ob.Bridge(_every_kind(), steps=10)
    started = ob.Bridge(_every_kind(), steps=10, start_std=2.0)
    assert started._log_snr == plain._log_snr
    model = _smooth_model(plain.width)
    a = started.sample(model, n=64, seed=1, progress=False, solver="bridge")
    assert started.domain.contains(a).all()
    assert not torch.equal(a, plain.sample(model, n=64, seed=1, progress=False, solver="bridge"))


def test_the_multistep_weight_is_capped_where_a_step_grows_more_than_twofold():
    beta = torch.tensor([0.0, 0.5, 0.51, 0.52, 2.0, 3.0], dtype=F64)  # a tiny step, then a large one
    bridge = ob.Bridge(ob.Binary(), ob.schedules.Table(beta))
    solver = BridgeSolver(bridge.table, bridge._remaining, bridge._increment, bridge._log_snr, None, "reference")
    solver.previous = torch.zeros(1, 1)
    weights = [solver.extrapolation(k) for k in range(bridge.steps - 1)]
    assert max(weights) == ob.solvers.MAX_EXTRAPOLATION
    x = bridge.sample(_smooth_model(1), n=50, seed=0, progress=False, solver="bridge")
    assert bridge.domain.contains(x).all()


def test_cuda_graphs_with_the_bridge_solver_warn_and_sample_without_one():
    bridge = ob.Bridge(ob.Binary(), steps=4)
    with pytest.warns(RuntimeWarning, match="solver='bridge'"):
        x = bridge.sample(None, n=5, progress=False, solver="bridge", cuda_graph=True)
    assert torch.equal(x, bridge.sample(None, n=5, progress=False, solver="bridge"))


def test_a_posterior_variance_too_large_for_float32_is_refused_by_name():
    bridge = ob.Bridge(ob.Binary(), steps=4)
    with pytest.raises(ValueError, match="posterior_variance must be finite and in"):
        bridge.sample(None, n=2, progress=False, solver="bridge", posterior_variance=torch.full((4, 1), 1e60, dtype=F64))


def test_bridge_step_op_names_a_bad_prediction_buffer_and_a_non_finite_previous():
    table = ob.Product([ob.Binary(), ob.Interval(0.0, 1.0)]).segment_table()
    z = torch.zeros(4, 2)
    common = dict(remaining=0.5, fraction=0.25, spread=torch.ones(2), seed=0, step_index=0)
    with pytest.raises(ValueError, match="prediction must match the state"):
        ob.ops.bridge_step(z, None, None, table, weight=0.0, prediction=torch.zeros(4, 2, dtype=F64), **common)
    with pytest.raises(ValueError, match="previous has nan at row 1, column 0"):
        ob.ops.bridge_step(z, None, torch.tensor([[0.0, 0.0], [math.nan, 0.0], [0.0, 0.0], [0.0, 0.0]]), table,
                           weight=0.5, **common)
