"""The last step's spread of continuous factors (Bridge.sample(final_spread="posterior")): with exact drifts
of known targets it narrows a peak the remaining variance would widen, keeps broad data broad, stays in the
domain, reuses the last step's noise, and leaves discrete factors bit for bit as they were."""

from __future__ import annotations

import pytest
import torch

import omegabridge as ob
from omegabridge.models import DriftMLP
from omegabridge.reference.oracle import oracle_drift

# A narrow peak: five points 0.1 apart around 2 in Interval(0, 4); the 20-step grid "t" of the default
# schedule ends at a remaining variance far above the peak's (sd 0.14 against a last sqrt(s) of 0.36).
POINTS = torch.tensor([[1.8], [1.9], [2.0], [2.1], [2.2]])
WEIGHTS = torch.full((5,), 0.2, dtype=torch.float64)


def _peak_sample(final_spread: str, solver: str) -> torch.Tensor:
    bridge = ob.Bridge(ob.Interval(0.0, 4.0), steps=20)
    return bridge.sample(oracle_drift(bridge, POINTS, WEIGHTS), 20_000, seed=3, progress=False, final_spread=final_spread,
                         solver=solver)[:, 0]


@pytest.mark.parametrize("solver", ["euler", "bridge"])
def test_a_narrow_peak_keeps_its_spread_instead_of_the_remaining_variance(solver):
    true_sd = float(POINTS.std(unbiased=False))  # 0.141
    widened, posterior = _peak_sample("remaining", solver), _peak_sample("posterior", solver)
    # measured: sd 0.365 / 0.363 with the remaining variance, 0.147 / 0.142 with the posterior's (Euler /
    # bridge solver; at 10 steps Euler's earlier steps are off too: 0.238)
    assert float(widened.std()) > 2.2 * true_sd
    assert abs(float(posterior.std()) - true_sd) < 0.1 * true_sd
    assert abs(float(posterior.mean()) - 2.0) < 0.01


def test_broad_data_keep_their_spread():
    """Points spread over the interval at a scale above sqrt(s): dx_hat/dz ~ 1 there, the spread stays s."""
    points = torch.linspace(0.2, 3.8, 37)[:, None]
    weights = torch.full((37,), 1.0 / 37, dtype=torch.float64)
    bridge = ob.Bridge(ob.Interval(0.0, 4.0), steps=20)
    drift = oracle_drift(bridge, points, weights)
    remaining = bridge.sample(drift, 20_000, seed=4, progress=False)[:, 0]
    posterior = bridge.sample(drift, 20_000, seed=4, progress=False, final_spread="posterior")[:, 0]
    # the points' sd is 1.068; measured 1.092 for both settings (the last step's spread s around them)
    assert abs(float(posterior.std()) - float(remaining.std())) < 0.01
    assert abs(float(posterior.std()) - float(points.std(unbiased=False))) < 0.05


@pytest.mark.parametrize("solver", ["euler", "bridge"])
def test_samples_stay_in_the_domain_and_discrete_factors_are_unchanged(solver):
    domain = ob.Product([ob.HalfLine(low=0.0), ob.Interval(-1.0, 1.0), ob.Categorical(3), ob.Lattice(0, 4), ob.Real()])
    bridge = ob.Bridge(domain, steps=8)
    torch.manual_seed(0)
    model = DriftMLP(bridge, hidden=16, depth=1)
    torch.nn.init.normal_(model.head.weight, std=0.5)  # a model whose drift is far from zero and uneven
    remaining = bridge.sample(model, 3000, seed=1, progress=False, solver=solver, batch_size=700)
    posterior = bridge.sample(model, 3000, seed=1, progress=False, solver=solver, batch_size=700,
                              final_spread="posterior")
    assert bool(domain.contains(posterior).all())
    assert torch.equal(posterior[:, 2:6], remaining[:, 2:6])  # the categorical and the lattice: bit for bit
    assert not torch.equal(posterior[:, [0, 1, 6]], remaining[:, [0, 1, 6]])
    again = bridge.sample(model, 3000, seed=1, progress=False, solver=solver, batch_size=3000, final_spread="posterior")
    torch.testing.assert_close(again, posterior, rtol=1e-5, atol=1e-5)  # batch-size independent


def test_without_a_model_and_bad_settings():
    bridge = ob.Bridge(ob.Real(), steps=6)
    plain = bridge.sample(None, 50, seed=2, progress=False)
    assert torch.equal(bridge.sample(None, 50, seed=2, progress=False, final_spread="posterior"), plain)
    with pytest.raises(ValueError, match=r"final_spread must be one of \('remaining', 'posterior'\), got 'wide'"):
        bridge.sample(None, 5, progress=False, final_spread="wide")
