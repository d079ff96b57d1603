"""Training on continuous times (``times="continuous"``) and the ``"domain"`` grid.

Continuous times: the x-bridge marginal at a time between grid points must be the one the
schedule gives (checked against the closed forms of Exp, written out here), the loss at a
grid time must equal the loss at that grid index, and the setting must travel through
``Trainer``, its checkpoints and ``TabularBridge`` files (files written before it existed
train and load as ``"grid"``). The domain grid: its power follows the stated rule, and
``"domain"`` samples exactly as the ``"s^RHO"`` grid it names.
"""

from __future__ import annotations

import math

import pytest
import torch

import omegabridge as ob
from omegabridge.bridge import MIN_TRAINED_REMAINING
from omegabridge.checksums import state_sha256
from omegabridge.solvers import DISCRETE_LAST_SPREAD, domain_grid

MIXED = ob.Product([ob.Lattice(0, 4), ob.Categorical(3), ob.Interval(-1.0, 2.0), ob.HalfLine(low=0.0), ob.Binary()])


def exp_beta(a: float, b: float, t: float) -> float:
    """beta(t) of Exp(a, b) = b (1 - e^{-a t}) written out (bridge-math.md: g(t) = a b e^{-a t})."""
    return b * (1.0 - math.exp(-a * t))


# ----------------------------------------------------------------------------------------
# draws
# ----------------------------------------------------------------------------------------
def test_grid_times_are_grid_indices_and_continuous_ones_fill_zero_to_one():
    bridge = ob.Bridge(MIXED, steps=20)
    generator = torch.Generator().manual_seed(3)
    index = bridge.draw_times(50_000, "grid", generator)
    assert index.dtype == torch.int64 and int(index.min()) == 0 and int(index.max()) == 19
    t = bridge.draw_times(50_000, "continuous", torch.Generator().manual_seed(3))
    assert t.dtype == torch.float64 and float(t.min()) >= 0.0 and float(t.max()) < 1.0
    # Uniform on [0, 1): the mean within 5 standard errors (1/sqrt(12 n)), each tenth holding ~10%.
    assert abs(float(t.mean()) - 0.5) < 5 / math.sqrt(12 * t.numel())
    tenths = torch.bincount((t * 10).long(), minlength=10).double() / t.numel()
    assert float((tenths - 0.1).abs().max()) < 0.01
    # Off the grid: almost no draw is a grid time.
    assert float(torch.isin(t, bridge.time_grid.t).double().mean()) < 1e-3
    again = bridge.draw_times(50_000, "continuous", torch.Generator().manual_seed(3))
    assert torch.equal(t, again)


def test_decision_times_put_half_the_rows_where_discrete_values_are_decided():
    """times="decisions": a DECISION_SHARE of rows with s log-uniform over [spacing^2 / DECISION_SPAN, spacing^2]
    (the smallest and largest discrete spacings: here the lattice's 0.5 and the categorical's 1), the rest
    uniform in t; without a discrete factor it is "continuous", draw for draw."""
    from omegabridge.bridge import DECISION_SHARE, DECISION_SPAN

    bridge = ob.Bridge(ob.Product([ob.Lattice(0, 4, step=0.5), ob.Categorical(3), ob.Real()]), ob.schedules.Exp(3.0, 16.0),
                       steps=20)
    rows = 200_000
    t = bridge.draw_times(rows, "decisions", torch.Generator().manual_seed(4))
    assert torch.equal(t, bridge.draw_times(rows, "decisions", torch.Generator().manual_seed(4)))
    assert t.dtype == torch.float64 and float(t.min()) >= 0.0 and float(t.max()) < 1.0
    remaining = bridge.time_grid.beta_end - torch.tensor([exp_beta(3.0, 16.0, v) for v in t[:20_000].tolist()],
                                                         dtype=torch.float64)
    low, high = 0.5**2 / DECISION_SPAN, 1.0
    inside = (remaining >= low * (1 - 1e-9)) & (remaining <= high * (1 + 1e-9))
    def t_at(s: float) -> float:
        return float(bridge.schedule.beta_inverse(torch.tensor(bridge.time_grid.beta_end - s, dtype=torch.float64)))

    def expected_share(lowest: float, highest: float) -> float:
        """Of all rows, those with s in [lowest, highest] within the window: the decided rows' log-uniform
        share of it, and the uniform rows' t-length of it."""
        decided = math.log(highest / lowest) / math.log(high / low)
        return DECISION_SHARE * decided + (1 - DECISION_SHARE) * (t_at(lowest) - t_at(highest))

    middle = math.sqrt(low * high)
    for lowest, highest, share in ((low, high, float(inside.double().mean())),
                                   (low, middle, float((inside & (remaining < middle)).double().mean()))):
        expected = expected_share(lowest, highest)
        assert abs(share - expected) < 5 * math.sqrt(expected * (1 - expected) / 20_000), (lowest, highest, share, expected)
    continuous = ob.Bridge(ob.Real(), steps=20)
    assert torch.equal(continuous.draw_times(1000, "decisions", torch.Generator().manual_seed(5)),
                       continuous.draw_times(1000, "continuous", torch.Generator().manual_seed(5)))


def test_continuous_times_stop_where_s_reaches_its_floor():
    bridge = ob.Bridge(ob.Binary(), ob.schedules.Exp(3.0, 1.0), steps=10)
    t = bridge.draw_times(10, "continuous", torch.Generator().manual_seed(0))
    latest = float(bridge.schedule.beta_inverse(torch.tensor(bridge.time_grid.beta_end * (1 - MIN_TRAINED_REMAINING),
                                                             dtype=torch.float64)))
    s_latest = bridge.time_grid.beta_end - exp_beta(3.0, 1.0, latest)
    assert s_latest == pytest.approx(MIN_TRAINED_REMAINING * bridge.time_grid.beta_end, rel=1e-3)
    assert float(t.max()) <= latest


@pytest.mark.parametrize("start_std", [0.0, 0.7])
def test_the_marginal_at_an_off_grid_time_is_the_schedules(start_std):
    # A Real factor: Z_t = c x + sqrt(v) eps exactly, so the sample mean and variance of many rows
    # at one time t show c and v. c = beta/beta_end, v = beta s/beta_end + (s/beta_end)^2 gamma^2.
    a, b, t = 3.0, 4.0, 0.4137
    bridge = ob.Bridge(ob.Real(), ob.schedules.Exp(a, b), steps=10, start_std=start_std)
    beta_end, beta = exp_beta(a, b, 1.0), exp_beta(a, b, t)
    s = beta_end - beta
    c, v = beta / beta_end, beta * s / beta_end + (s / beta_end) ** 2 * start_std**2
    rows = 200_000
    x = torch.full((rows, 1), 1.5)
    seen = {}

    def model(z, time):
        seen["z"], seen["t"] = z.detach().clone(), time.detach().clone()
        return torch.zeros_like(z)

    bridge.loss_at(model, x, torch.full((rows,), t, dtype=torch.float64), seed=11, backend="reference")
    z = seen["z"][:, 0].double()
    assert torch.allclose(seen["t"], torch.full((rows,), t, dtype=torch.float32))
    # Mean within 5 standard errors; variance within 5 standard errors of a normal's (sqrt(2/n) v).
    assert abs(float(z.mean()) - c * 1.5) < 5 * math.sqrt(v / rows)
    assert abs(float(z.var()) - v) < 5 * math.sqrt(2.0 / rows) * v


@pytest.mark.parametrize("weight", ["none", "remaining", "remaining_squared"])
def test_the_loss_at_a_grid_time_equals_the_loss_at_its_index(weight):
    bridge = ob.Bridge(MIXED, steps=16, start_std=0.3)
    torch.manual_seed(0)
    model = ob.models.DriftMLP(bridge, hidden=16, depth=1)
    generator = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randint(0, 5, (64, 1), generator=generator).float(),
                   torch.nn.functional.one_hot(torch.randint(0, 3, (64,), generator=generator), 3).float(),
                   torch.rand(64, 1, generator=generator) * 3 - 1, torch.rand(64, 1, generator=generator) * 4,
                   torch.randint(0, 2, (64, 1), generator=generator).float()], dim=1)
    index = torch.randint(0, 16, (64,), generator=torch.Generator().manual_seed(2))
    on_grid = bridge.loss_at(model, x, index, seed=5, weight=weight, backend="reference")
    at_times = bridge.loss_at(model, x, bridge.time_grid.t[index], seed=5, weight=weight, backend="reference")
    # s from beta_end - beta(t) against the grid's suffix sums: float64 rounding, then float32.
    torch.testing.assert_close(at_times, on_grid, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "times, words",
    [
        (torch.tensor([0.5, 1.0], dtype=torch.float64), "[0, 1)"),
        (torch.tensor([-0.1], dtype=torch.float64), "[0, 1)"),
        (torch.tensor([float("nan")], dtype=torch.float64), "[0, 1)"),
        (torch.tensor([0, 16]), "grid indices must be in [0, 16)"),
        (torch.tensor([-1]), "grid indices"),
        (torch.zeros(2, 2), "1-d"),
        ([0.5], "1-d tensor"),
    ],
)
def test_bad_times_are_named(times, words):
    bridge = ob.Bridge(ob.Binary(), steps=16)
    model = ob.models.DriftMLP(bridge, hidden=8, depth=1)
    rows = times.shape[0] if isinstance(times, torch.Tensor) else 1
    with pytest.raises((ValueError, TypeError), match="times") as caught:
        bridge.loss_at(model, torch.ones(rows, 1), times, seed=0)
    assert words in str(caught.value)


@pytest.mark.parametrize("call", ["loss", "draw_times", "trainer", "tabular"])
def test_an_unknown_times_setting_is_refused_by_name(call):
    bridge = ob.Bridge(ob.Binary(), steps=8)
    model = ob.models.DriftMLP(bridge, hidden=8, depth=1)
    with pytest.raises(ValueError, match="times must be one of"):
        if call == "loss":
            bridge.loss(model, torch.ones(4, 1), times="uniform")
        elif call == "draw_times":
            bridge.draw_times(4, "uniform")
        elif call == "trainer":
            ob.Trainer(bridge, model, times="uniform")
        else:
            ob.TabularBridge(times="uniform")


# ----------------------------------------------------------------------------------------
# the setting travels
# ----------------------------------------------------------------------------------------
class Interrupted(Exception):
    pass


def _trainer(bridge, path, times, stop_at=None, messages=None):
    torch.manual_seed(0)
    model = ob.models.DriftMLP(bridge, hidden=8, depth=1)

    def stop(record):
        if record.iteration == stop_at:
            raise Interrupted  # after the checkpoint of iteration stop_at - 2, before its own

    return ob.Trainer(bridge, model, batch_size=8, times=times, checkpoint=str(path), checkpoint_every=2,
                      log_every=2, hooks=[stop], progress=False,
                      log=(lambda message: None) if messages is None else messages.append)


def test_trainer_draws_continuous_times_and_resumes_exactly(tmp_path):
    bridge = ob.Bridge(ob.Binary(), steps=8)
    data = torch.randint(0, 2, (40, 1)).float()
    trainer = _trainer(bridge, tmp_path / "a.pt", "continuous", stop_at=4)
    with pytest.raises(Interrupted):
        trainer.fit(data, 6)
    _, times, _ = trainer.draws(4)
    assert times.dtype == torch.float64 and times.shape == (8,) and not bool(torch.isin(times, bridge.time_grid.t).any())
    whole = _trainer(bridge, tmp_path / "b.pt", "continuous")
    whole.fit(data, 6)
    messages = []
    resumed = _trainer(bridge, tmp_path / "a.pt", "continuous", messages=messages)
    resumed.fit(data, 6)
    assert resumed.iteration == 6 and any("at iteration 2 of 6" in message for message in messages), messages
    for left, right in zip(resumed.model.state_dict().values(), whole.model.state_dict().values()):
        assert torch.equal(left, right)
    # Another times setting is another run.
    with pytest.raises(ob.TrainingCheckpointError, match="times 'continuous' there, 'grid' here"):
        _trainer(bridge, tmp_path / "a.pt", "grid").fit(data, 6)


def test_a_training_checkpoint_from_before_times_resumes_as_grid(tmp_path):
    bridge = ob.Bridge(ob.Binary(), steps=8)
    data = torch.randint(0, 2, (40, 1)).float()
    path = tmp_path / "old.pt"
    with pytest.raises(Interrupted):
        _trainer(bridge, path, "grid", stop_at=4).fit(data, 6)
    state = torch.load(path, weights_only=True)
    del state["settings"]["times"], state["sha256"]
    state["sha256"] = state_sha256(state)
    torch.save(state, path)
    with pytest.raises(ob.TrainingCheckpointError, match="times 'grid' there, 'continuous' here"):
        _trainer(bridge, path, "continuous").fit(data, 6)
    messages = []
    resumed = _trainer(bridge, path, "grid", messages=messages)
    assert len(resumed.fit(data, 6)) == 6 and any("at iteration 2 of 6" in message for message in messages), messages


def test_tabular_times_is_saved_and_old_files_load_as_grid(tmp_path):
    pd = pytest.importorskip("pandas")
    from omegabridge.tabular.checkpoint import read_checkpoint, write_checkpoint

    frame = pd.DataFrame({"kind": ["a", "b", "c", "a"] * 8, "count": [0, 1, 2, 3] * 8})
    model = ob.TabularBridge(steps=8, hidden=8, depth=1, times="continuous", verbose=False, progress=False)
    model.fit(frame, iterations=2, batch_size=8)
    path = str(tmp_path / "model.pt")
    model.save(path)
    assert ob.TabularBridge.load(path).times == "continuous"
    content = read_checkpoint(path)
    del content["model"]["times"]
    old = str(tmp_path / "old.pt")
    write_checkpoint(old, content)
    assert ob.TabularBridge.load(old).times == "grid"


# ----------------------------------------------------------------------------------------
# the domain grid
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [10, 25, 50, 200])
@pytest.mark.parametrize(
    "domain, schedule, spacing",
    [
        (ob.Lattice(0, 9), ob.schedules.Exp(3.0, 1.0), 1.0),                   # s_0 / spacing^2 = 0.95
        (ob.Lattice(0, 9), ob.schedules.Exp(3.0, 4.0), 1.0),                   # 3.8
        (ob.Product([ob.Lattice(0, 4), ob.Categorical(3)]), None, 1.0),        # 15.2
        (ob.Lattice(0, 20, step=0.5), None, 0.5),                              # 1520
        (ob.Lattice(0, 255, shape=(3,)), None, 1.0),                           # 61774
        (ob.Product([ob.Binary(), ob.Categorical(4)]), ob.schedules.Exp(3.0, 0.5), 1.0),  # 0.48
    ],
)
def test_the_domain_grid_follows_its_rule(domain, schedule, spacing, steps):
    bridge = ob.Bridge(domain, schedule, steps=steps, grid="domain")
    s_0, last = bridge.time_grid.beta_end, float(bridge.time_grid.remaining[-1])
    rho = float(bridge.grid[2:])
    ratio = s_0 / spacing**2
    # The last spread is at most a fifth of the spacing (the power is rounded down to two decimals:
    # up to N^0.01 above), unless the power is at its cap of 8.
    if rho < 8.0:
        assert last <= (DISCRETE_LAST_SPREAD * spacing) ** 2 * steps**0.01 * (1 + 1e-9), (bridge.grid, last)
    # Uniform in s where s_0 is near the spacing squared and nothing smaller is needed for the
    # last spread; at least cubic once s_0 is 16 spacings squared.
    if ratio <= 1.0 and s_0 / steps <= (DISCRETE_LAST_SPREAD * spacing) ** 2:
        assert bridge.grid == "s^1"
    if ratio >= 16.0:
        assert rho >= 2.99
    assert 1.0 <= rho <= 8.0
    assert last >= MIN_TRAINED_REMAINING * s_0  # continuous training reaches every domain grid's last time
    # Above cubic the power is the last-spread rule's: the last s sits at the fifth of the spacing
    # squared (within the rounding), no finer.
    if rho > 3.0:
        assert last >= (DISCRETE_LAST_SPREAD * spacing) ** 2 / steps**0.02


@pytest.mark.parametrize("factor", [ob.Interval(0, 1), ob.HalfLine(low=0.0), ob.Real(), ob.Sphere(3)])
def test_a_continuous_factor_makes_the_domain_grid_cubic(factor):
    domain = ob.Product([ob.Lattice(0, 9), factor])
    assert domain_grid(domain.segment_table(), ob.schedules.Exp(3.0, 1.0), 25) == "s^3"


def test_domain_samples_exactly_as_the_power_it_names():
    domain = ob.Product([ob.Lattice(0, 4), ob.Categorical(3)])
    named = ob.Bridge(domain, steps=25, grid="domain")
    power = ob.Bridge(domain, steps=25, grid=named.grid)
    assert torch.equal(named.time_grid.remaining, power.time_grid.remaining)
    for solver in ("euler", "bridge"):
        assert torch.equal(named.sample(None, 64, seed=4, solver=solver, progress=False),
                           power.sample(None, 64, seed=4, solver=solver, progress=False))


def test_a_table_schedule_keeps_its_own_grid_under_domain():
    bridge = ob.Bridge(ob.Lattice(0, 4), ob.schedules.Table([0.0, 1.0, 3.0, 4.0]), grid="domain")
    assert bridge.grid == "t" and bridge.steps == 3


def test_tabular_domain_grid_is_one_job_with_the_power_it_names():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"kind": ["a", "b", "c", "a"] * 8, "count": [0, 1, 2, 3] * 8})
    model = ob.TabularBridge(steps=8, hidden=8, depth=1, verbose=False, progress=False).fit(frame, iterations=2,
                                                                                             batch_size=8)
    sampler = model._sampler("bridge", 25, "domain")
    assert sampler["grid"] == ob.Bridge(model.encoder.domain, model.schedule, steps=25, grid="domain").grid
    pd.testing.assert_frame_equal(model.sample(20, seed=1, solver="bridge", steps=25, grid="domain"),
                                  model.sample(20, seed=1, solver="bridge", steps=25, grid=sampler["grid"]))
