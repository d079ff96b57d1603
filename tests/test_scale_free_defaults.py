"""Scale-free defaults (issue: fields, item 3): ``ob.Bridge(domain, steps=...)`` scales its schedule
to the domain, so an 8-bit lattice and a unit interval both train and sample with no hand tuning."""

from __future__ import annotations

import pytest
import torch

import omegabridge as ob


@pytest.mark.parametrize(
    "domain, reach",
    [
        (ob.Interval(0.0, 1.0), 1.0),
        (ob.Categorical(19, shape=(4, 4)), 1.0),
        (ob.Lattice(0, 255, step=1, shape=(3, 2, 2)), 255.0),
        (ob.Product([ob.Interval(-300.0, 2.0), ob.Binary()]), 300.0),
        (ob.Product([ob.Lattice(0, 16, shape=(1, 8, 8)), ob.Categorical(10)]), 16.0),
        (ob.HalfLine(low=5.0), 1.0),
    ],
)
def test_the_default_schedule_spreads_as_far_as_the_domain_reaches(domain, reach):
    bridge = ob.Bridge(domain, steps=10)
    assert domain.reach == reach
    assert isinstance(bridge.schedule, ob.schedules.Exp)
    assert (bridge.schedule.a, bridge.schedule.b) == (3.0, max(1.0, reach) ** 2)
    # beta(T) = 0.95 reach^2: the base process's spread at T is about the reach
    assert bridge.time_grid.beta_end == pytest.approx((1 - torch.exp(torch.tensor(-3.0)).item()) * max(1.0, reach) ** 2)


def _fit_and_sample(domain, data, schedule=None, iterations=300):
    bridge = ob.Bridge(domain, schedule, steps=50)
    torch.manual_seed(0)
    model = ob.models.for_domain(bridge, data=data, hidden=64, depth=2)
    ob.Trainer(bridge, model, batch_size=128, learning_rate=3e-3, seed=0, progress=False).fit(data, iterations)
    return bridge.sample(model, n=1000, seed=1, progress=False)[:, 0]


def _two_modes(count: int, generator) -> torch.Tensor:
    """60% of the pixels near 50, 40% near 200 (each +-10, uniform on the integers)."""
    near_50 = torch.rand(count, generator=generator) < 0.6
    offset = torch.randint(-10, 11, (count,), generator=generator)
    return torch.where(near_50, 50 + offset, 200 + offset).float()[:, None]


@pytest.mark.parametrize(
    "domain, start_std",
    [
        (ob.Lattice(0, 255, step=1, shape=(3, 2, 2)), (256**2 - 1) ** 0.5 / 12**0.5),  # 8-bit pixels: the uniform sd
        (ob.Lattice(0, 510, step=2, shape=(2, 2)), 2 * (256**2 - 1) ** 0.5 / 12**0.5),
        (ob.Lattice(0, 63, shape=(2, 2)), 0.0),  # 64 points: an image field, but a short lattice
        (ob.Lattice(0, 16, shape=(1, 8, 8)), 0.0),  # digits
        (ob.Lattice(0, 255), 0.0),  # not a field
        (ob.Product([ob.Lattice(0, 255, shape=(2, 2)), ob.Binary()]), 0.0),  # not one field alone
        (ob.Categorical(19, shape=(4, 4)), 0.0),
        (ob.Interval(0.0, 1.0, shape=(2, 2)), 0.0),
    ],
)
def test_an_8_bit_field_starts_spread_over_its_range_and_the_rest_at_zeros(domain, start_std):
    bridge = ob.Bridge(domain, steps=10)
    assert bridge.start_std == pytest.approx(start_std, rel=1e-12)
    assert ob.Bridge(domain, steps=10, start_std=0.0).start_std == 0.0  # an explicit start is kept
    start = bridge._start(2000, 0, 0, "cpu")
    assert float(start.std()) == pytest.approx(start_std, rel=0.05) if start_std else bool((start == 0).all())


def test_an_8_bit_lattice_trains_and_samples_with_no_tuning(one_torch_thread):
    data = _two_modes(4000, torch.Generator().manual_seed(0))
    x = _fit_and_sample(ob.Lattice(0, 255, step=1), data)
    in_modes = ((x - 50).abs() <= 10) | ((x - 200).abs() <= 10)
    # uniform pixels would put 16% in the modes; the unscaled Exp(3, 1) puts none there (below)
    assert abs(float((x < 128).double().mean()) - 0.6) < 0.07
    assert float(in_modes.double().mean()) > 0.3
    # the same run with the paper's unit-scale schedule: the bridge cannot leave the low corner
    unscaled = _fit_and_sample(ob.Lattice(0, 255, step=1), data, schedule=ob.schedules.Exp(3.0, 1.0))
    assert float((unscaled < 128).double().mean()) > 0.95


def test_a_unit_interval_trains_and_samples_with_no_tuning(one_torch_thread):
    data = torch.distributions.Beta(2.0, 5.0).sample((4000,))[:, None]
    x = _fit_and_sample(ob.Interval(0.0, 1.0), data)
    assert float(x.mean()) == pytest.approx(2.0 / 7.0, abs=0.03)
    assert float(x.std()) == pytest.approx(float(data.std()), abs=0.03)
    assert bool(((x >= 0) & (x <= 1)).all())
