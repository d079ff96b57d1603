"""``fit`` with the default ``DriftMLP``: it must learn a small mixed toy, and reject bad arguments.

The toy (built here from a seeded generator, no files) has 4000 rows of a
Lattice(0..16) column next to a Categorical(3) group: a mode (0 or 1, even odds)
picks the lattice value uniformly from {2, 3, 4} or {11, 12, 13}, and the class
equals the mode with probability 0.85, else it is class 2. The within-mode flat
shape is what an underfitting model misses: it piles mass on the middle value
and leaks to the neighbours 1, 5, 10, 14.

Schedule: Exp(a=3, b=30), so beta(T) = 30 (1 - e^-3) = 28.5, about 1.4 times the
lattice column's variance (~21) or (range / 3)^2: the f = 0 bridge then spreads over
the whole 0..16 range without swamping it (b = 10 and b = 64 learn as well; b = 3
does not). 200 steps: the oracle drift (bridge-math.md section 5) reproduces the
target within TV 0.03 with them.
"""

from __future__ import annotations

import time

import pytest
import torch

import omegabridge as ob

ROWS = 4000
SAMPLES = 2000

# Thresholds on the total variation distance between the sampled and the data marginals.
# With 2000 samples against 4000 rows the lattice histogram's TV has a noise floor of about
# 0.03 (six bins of 1/6), the 3-class and the 6-cell joint tables about 0.01-0.02.
# Trained with the defaults (1500 iterations here), seeds 0..5 of this toy gave lattice TV
# 0.018-0.051, categorical 0.006-0.020, joint 0.008-0.020; the untrained model (zero drift,
# the plain Omega-bridge) gives about 0.6, 0.17 and 0.55. The old direct-drift model with
# sinusoidal time features stayed near lattice TV 0.5 here.
LATTICE_TV = 0.10
CATEGORY_TV = 0.05
JOINT_TV = 0.10


def toy(seed: int = 0, rows: int = ROWS) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mode = torch.randint(0, 2, (rows,), generator=generator)
    low = torch.randint(2, 5, (rows,), generator=generator)
    high = torch.randint(11, 14, (rows,), generator=generator)
    lattice = torch.where(mode == 0, low, high).to(torch.float32)
    category = torch.where(torch.rand(rows, generator=generator) < 0.85, mode, torch.full_like(mode, 2))
    return torch.cat([lattice[:, None], torch.nn.functional.one_hot(category, 3).to(torch.float32)], dim=1)


def toy_bridge() -> ob.Bridge:
    domain = ob.Product([ob.Lattice(0, 16, step=1), ob.Categorical(3)])
    return ob.Bridge(domain, ob.schedules.Exp(a=3.0, b=30.0), steps=200)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def distances(x: torch.Tensor, data: torch.Tensor) -> dict[str, float]:
    """TV of the lattice histogram, of the class frequencies, and of the (lattice < 8, class) table."""

    def histogram(rows):
        return torch.bincount(rows[:, 0].long(), minlength=17).to(torch.float64) / rows.shape[0]

    def joint(rows):
        low = rows[:, 0] < 8
        cells = [(side & (rows[:, 1 + c] == 1)).to(torch.float64).mean() for side in (low, ~low) for c in range(3)]
        return torch.stack(cells)

    return {
        "lattice": total_variation(histogram(x), histogram(data)),
        "category": total_variation(x[:, 1:].mean(0).double(), data[:, 1:].mean(0).double()),
        "joint": total_variation(joint(x), joint(data)),
    }


def trained_distances(seed: int = 0, iterations: int = 1500) -> tuple[dict[str, float], float]:
    """Train the default model on toy(seed) with fit's defaults; return the sample's TVs and the seconds."""
    data = toy(seed)
    bridge = toy_bridge()
    torch.manual_seed(seed)
    model = ob.models.DriftMLP(bridge)
    start = time.perf_counter()
    losses = ob.fit(bridge, model, data, iterations=iterations, seed=seed, progress=False)
    seconds = time.perf_counter() - start
    assert len(losses) == iterations and all(torch.isfinite(torch.tensor(losses)))
    x = bridge.sample(model, n=SAMPLES, seed=seed + 1, progress=False)
    assert bridge.domain.contains(x).all()
    return distances(x, data), seconds



def test_untrained_model_is_the_plain_bridge_and_fails_the_thresholds():
    data = toy()
    bridge = toy_bridge()
    model = ob.models.DriftMLP(bridge)
    z = torch.cat([torch.zeros(1, bridge.width), 20.0 * torch.randn(255, bridge.width)])
    t = torch.cat([torch.zeros(1), bridge.time_grid.t[:-1].to(torch.float32), torch.rand(55)])
    assert model(z, t).abs().max().item() == 0.0  # zero drift, so its samples are those of model=None
    tv = distances(bridge.sample(None, n=SAMPLES, seed=1, progress=False), data)
    assert tv["lattice"] > LATTICE_TV, tv
    assert tv["category"] > CATEGORY_TV, tv
    assert tv["joint"] > JOINT_TV, tv


def test_default_model_learns_lattice_categorical_toy(one_torch_thread):
    # About 25-30 s of training on one free CPU core (plus ~5 s of sampling).
    tv, seconds = trained_distances(seed=0)
    message = f"{tv} after {seconds:.0f} s of training"
    assert tv["lattice"] <= LATTICE_TV, message
    assert tv["category"] <= CATEGORY_TV, message
    assert tv["joint"] <= JOINT_TV, message


def test_one_model_trained_on_continuous_times_serves_every_step_count(one_torch_thread):
    # Trained once on continuous times, sampled on grids it never saw as a whole.
    # Euler on grid t: lattice TV about 0.16-0.17 at 10 steps, 0.08-0.095 at 25 and 0.045-0.047
    # at 200 on seeds 0..2 (8000 samples: noise ~0.015), so the margins below are 3-5x the noise.
    # The bridge solver at 50 steps reached 0.037-0.046 (joint 0.009-0.013) against Euler's
    # 0.047 (0.018-0.023) at 200: a quarter of the evaluations for the same quality.
    data = toy(0)
    bridge = toy_bridge()
    torch.manual_seed(0)
    model = ob.models.DriftMLP(bridge)
    ob.fit(bridge, model, data, iterations=1500, seed=0, times="continuous", progress=False)
    model.eval()

    def sampled(solver, steps):
        other = ob.Bridge(bridge.domain, bridge.schedule, steps=steps, grid="t")
        return distances(other.sample(model, n=8000, seed=1, batch_size=8000, solver=solver, progress=False), data)

    euler = {steps: sampled("euler", steps) for steps in (10, 25, 200)}
    message = str(euler)
    assert euler[10]["lattice"] > euler[25]["lattice"] + 0.03, message
    assert euler[25]["lattice"] > euler[200]["lattice"] + 0.015, message
    few = sampled("bridge", 50)
    assert few["lattice"] <= euler[200]["lattice"] + 0.01, (few, message)
    assert few["joint"] <= euler[200]["joint"] + 0.01, (few, message)


# ----------------------------------------------------------------------------------------
# bad arguments
# ----------------------------------------------------------------------------------------
@pytest.fixture
def small():
    bridge = toy_bridge()
    return bridge, ob.models.DriftMLP(bridge, hidden=8, depth=1), toy(rows=32)


@pytest.mark.parametrize(
    "arguments, words",
    [
        (dict(iterations=0), "iterations"),
        (dict(iterations=-3), "iterations"),
        (dict(iterations=2.0), "iterations"),
        (dict(iterations=True), "iterations"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=1.5), "batch_size"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(learning_rate=-1e-3), "learning_rate"),
        (dict(learning_rate=float("nan")), "learning_rate"),
        (dict(learning_rate=float("inf")), "learning_rate"),
        (dict(clip=-1.0), "clip"),
        (dict(weight="squared"), "weight"),
    ],
)
def test_fit_rejects_bad_arguments(small, arguments, words):
    bridge, model, data = small
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=words):
        ob.fit(bridge, model, data, progress=False, **{"iterations": 1, **arguments})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing was trained


@pytest.mark.parametrize(
    "column, value",
    [(0, 17.0), (0, 2.5), (0, -1.0), (1, 0.5)],  # past the lattice's end, between its points, below it; not one-hot
)
def test_fit_rejects_data_outside_the_domain(small, column, value):
    bridge, model, data = small
    data = data.clone()
    data[3, column] = value
    with pytest.raises(ob.DomainError, match="row 3"):
        ob.fit(bridge, model, data, iterations=1, progress=False)


def test_fit_rejects_data_of_the_wrong_width(small):
    bridge, model, data = small
    with pytest.raises(ValueError, match="shape"):
        ob.fit(bridge, model, data[:, :3], iterations=1, progress=False)


@pytest.mark.parametrize("domain, model_options, expected", [
    (ob.Lattice(0, 255, shape=(1, 4, 4)), {}, "remaining_squared"),  # the U-Net predicting means
    (ob.Categorical(3, shape=(4, 4)), {}, "remaining"),  # the U-Net with log-odds
    (ob.Lattice(0, 63, shape=(8, 3)), {"hidden": 8}, "remaining_squared"),  # the set network
    (ob.Product([ob.Lattice(0, 4), ob.Categorical(3)]), {"hidden": 8}, "remaining"),  # DriftMLP
], ids=["8-bit image", "categorical map", "point cloud", "table"])
def test_the_trainer_takes_the_models_own_loss_weight_by_default(domain, model_options, expected):
    """weight=None resolves to the model's loss_weight, and training with it is bit for bit training with that weight
    named (two models built alike, two iterations each)."""
    bridge = ob.Bridge(domain, steps=10)
    data = bridge.sample(None, n=16, seed=1, progress=False)
    def build():
        torch.manual_seed(0)
        return ob.models.for_domain(bridge, data=data, **model_options)

    implicit, explicit = build(), build()
    trainer = ob.Trainer(bridge, implicit, batch_size=8, progress=False)
    assert trainer.weight == expected
    trainer.fit(data, 2)
    assert trainer.settings()["weight"] == expected  # what a checkpoint records and a resume must match
    ob.Trainer(bridge, explicit, batch_size=8, weight=expected, progress=False).fit(data, 2)
    for (name, a), b in zip(implicit.state_dict().items(), explicit.state_dict().values()):
        assert torch.equal(a, b), name
    other = "remaining" if expected == "remaining_squared" else "remaining_squared"
    assert ob.Trainer(bridge, build(), weight=other, progress=False).weight == other  # a named one wins


def test_a_plain_module_trains_with_lambda_s_and_a_bad_model_weight_is_named():
    bridge = ob.Bridge(ob.Lattice(0, 4), steps=10)
    assert ob.Trainer(bridge, torch.nn.Linear(1, 1), progress=False).weight == "remaining"
    model = torch.nn.Linear(1, 1)
    model.loss_weight = "squared"
    with pytest.raises(ValueError, match="weight must be one of"):
        ob.Trainer(bridge, model, progress=False)
