"""Schedules: beta(0) = 0, g = beta', closed-form inverses, grids, and bad parameters."""

from __future__ import annotations

import re

import pytest
import torch

import omegabridge as ob
from omegabridge.core import schedules

F64 = torch.float64
SCHEDULES = [
    schedules.Constant(1.3),
    schedules.Exp(3.0, 1.0),
    schedules.Exp(0.5, 20.0),
    schedules.Linear(2.0, 0.1),
    schedules.Linear(0.0, 1.0),
    schedules.InverseExp(3.0, 1.0, 0.05),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_beta_starts_at_zero_and_g_is_its_derivative(schedule):
    assert float(schedule.beta(torch.tensor(0.0, dtype=F64))) == 0.0
    t = torch.linspace(0.01, 0.99, 50, dtype=F64, requires_grad=True)
    (derivative,) = torch.autograd.grad(schedule.beta(t).sum(), t)
    assert torch.allclose(derivative, schedule.g(t.detach()), rtol=1e-10, atol=1e-12)
    assert (schedule.g(t.detach()) > 0).all()


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_beta_inverse(schedule):
    t = torch.linspace(0.0, 1.0, 101, dtype=F64)
    assert torch.allclose(schedule.beta_inverse(schedule.beta(t)), t, atol=1e-12)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
@pytest.mark.parametrize("kind", ["t", "beta", "s", "s^3", "s^1.5"])
def test_grids(schedule, kind):
    grid = schedule.grid(steps=64, kind=kind)
    assert grid.t.shape == (65,) and grid.increment.shape == (64,) and grid.remaining.shape == (64,)
    assert float(grid.t[0]) == 0.0 and float(grid.t[-1]) == 1.0
    assert (grid.increment > 0).all()
    beta_end = float(schedule.beta(torch.tensor(1.0, dtype=F64)))
    assert grid.beta_end == pytest.approx(beta_end, rel=1e-12)
    assert torch.allclose(grid.remaining, beta_end - grid.beta[:-1], rtol=1e-12, atol=1e-14)
    assert float(grid.remaining[-1]) == float(grid.increment[-1])  # the last step covers exactly what remains
    if kind == "t":
        assert torch.allclose(grid.t, torch.linspace(0, 1, 65, dtype=F64))
    elif kind == "beta":
        assert torch.allclose(grid.increment, torch.full((64,), beta_end / 64, dtype=F64), rtol=1e-9)
    else:  # s_k = s_0 (1 - k/N)^rho with s_0 = beta(T)
        rho = {"s": 2.0, "s^3": 3.0, "s^1.5": 1.5}[kind]
        expected = beta_end * (1.0 - torch.arange(64, dtype=F64) / 64) ** rho
        assert torch.allclose(grid.remaining, expected, rtol=1e-9, atol=1e-15 * beta_end)


@pytest.mark.parametrize("kind, steps", [("s^8", 128), ("s^6", 1000), ("s^4", 100_000)])
def test_a_power_grid_whose_last_s_float64_cannot_resolve_is_refused(kind, steps):
    with pytest.raises(ValueError, match=rf"grid '{re.escape(kind)}' with {steps} steps: the last s would be .* below what float64 resolves"):
        schedules.Exp(3.0, 1.0).grid(steps, kind)


@pytest.mark.parametrize("kind", ["x", "s^", "s^0.5", "s^9", "s^abc", 2])
def test_unknown_grid_names_are_refused(kind):
    with pytest.raises(ValueError, match="grid"):
        schedules.Exp(3.0, 1.0).grid(10, kind)
    with pytest.raises(ValueError, match="grid"):
        ob.Bridge(ob.Interval(0, 1), steps=10, grid=kind)


def test_table_schedule():
    beta = [0.0, 0.1, 0.3, 0.7, 1.5]
    table = schedules.Table(beta)
    grid = table.grid()
    assert grid.increment.tolist() == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert grid.t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert float(table.beta(torch.tensor(0.625, dtype=F64))) == pytest.approx(0.5)
    assert float(table.g(torch.tensor(0.6, dtype=F64))) == pytest.approx(0.4 * 4)
    bridge = ob.Bridge(ob.Binary(), table)
    assert bridge.steps == 4
    with pytest.raises(ValueError, match="grid"):
        table.grid(kind="beta")
    with pytest.raises(ValueError, match="steps"):
        ob.Bridge(ob.Binary(), table, steps=10)
    with pytest.raises(ValueError, match="steps"):
        ob.Bridge(ob.Binary(), table, steps=1000)  # an explicit step count must agree with the table
    assert ob.Bridge(ob.Binary(), table, steps=4).steps == 4


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: schedules.Constant(0.0), "sigma"),
        (lambda: schedules.Exp(-1.0, 1.0), "a"),
        (lambda: schedules.Exp(1.0, float("inf")), "b"),
        (lambda: schedules.Linear(-1.0, 1.0), "b"),
        (lambda: schedules.Linear(0.0, 0.0), "b \\+ c"),
        (lambda: schedules.InverseExp(1.0, 1.0, -0.1), "c"),
        (lambda: schedules.Table([0.0, 1.0]), "at least 3"),
        (lambda: schedules.Table([0.1, 0.2, 0.3]), "beta\\[0\\]"),
        (lambda: schedules.Table([0.0, 0.2, 0.2]), "increase"),
        (lambda: schedules.Exp(3.0, 1.0).grid(steps=1), "steps"),
        (lambda: schedules.Exp(3.0, 1.0).grid(steps=10, kind="log"), "grid"),
    ],
)
def test_bad_parameters_name_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()
