"""The public API: sampling contracts, reproducibility, and clear errors for bad input."""

from __future__ import annotations

import math

import pytest
import torch

import omegabridge as ob
from omegabridge import ops as dispatch
from omegabridge.errors import BackendUnavailableError, DomainError, ModelOutputError


def _issue_domain():
    return ob.Product([ob.Interval(-1.0, 1.0), ob.HalfLine(low=0.0), ob.Categorical(4), ob.Lattice(0, 16, step=1),
                       ob.Binary(), ob.Sphere(3), ob.Real()])


@pytest.fixture(scope="module")
def bridge():
    return ob.Bridge(_issue_domain(), ob.schedules.Exp(a=3.0, b=1.0), steps=40, grid="t")


def test_issue_example_samples_lie_in_the_domain(bridge):
    x = bridge.sample(None, n=300, seed=0, batch_size=128, device="cpu", backend="auto", progress=False)
    assert x.dtype == torch.float32 and x.shape == (300, bridge.width)
    assert bridge.domain.contains(x).all()
    one_hot = x[:, 2:6]
    assert torch.equal(one_hot.sum(1), torch.ones(300))


def test_sample_is_reproducible_and_independent_of_batch_size(bridge):
    a = bridge.sample(None, n=30, seed=5, batch_size=30, progress=False)
    b = bridge.sample(None, n=30, seed=5, batch_size=11, progress=False)
    c = bridge.sample(None, n=30, seed=6, batch_size=30, progress=False)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the first rows of a larger sample are the smaller sample
    assert torch.equal(bridge.sample(None, n=45, seed=5, progress=False)[:30], a)


def test_model_receives_state_and_times(bridge):
    seen = []

    def model(z, t):
        seen.append((z.shape, t.shape, t.dtype, float(t[0])))
        return torch.zeros_like(z)

    bridge.sample(model, n=3, seed=0, progress=False)
    assert len(seen) == bridge.steps
    assert all(shape == (3, bridge.width) and tshape == (3,) and dtype == torch.float32 for shape, tshape, dtype, _ in seen)
    assert [t for *_, t in seen] == pytest.approx(bridge.time_grid.t[:-1].tolist())
    # a zero model is the pure bridge
    assert torch.equal(bridge.sample(lambda z, t: torch.zeros_like(z), n=20, seed=1, progress=False),
                       bridge.sample(None, n=20, seed=1, progress=False))


def test_beta_grid_and_random_start():
    domain = ob.Product([ob.Interval(0.0, 1.0), ob.Categorical(3)])
    bridge = ob.Bridge(domain, ob.schedules.Linear(1.0, 0.5), steps=30, grid="beta", start_std=0.5)
    x = bridge.sample(None, n=64, seed=2, progress=False)
    assert domain.contains(x).all()
    assert bridge.time_grid.increment.std() < 1e-9


def test_progress_bar_can_be_shown(bridge, capsys):
    bridge.sample(None, n=4, seed=0, progress=True)
    assert "sampling" in capsys.readouterr().err


def test_loss_is_finite_and_differentiable(bridge):
    x = bridge.sample(None, n=64, seed=0, progress=False)
    model = ob.models.DriftMLP(bridge, hidden=16, depth=1)
    torch.manual_seed(0)
    loss = bridge.loss(model, x)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    torch.manual_seed(0)
    assert float(bridge.loss(model, x).detach()) == float(loss.detach())  # torch.manual_seed makes a loss repeatable
    for weight in ("remaining", "remaining_squared"):
        assert torch.isfinite(bridge.loss(model, x, weight=weight))


# ----------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------
def test_loss_rejects_data_outside_the_domain_naming_column_and_rows(bridge):
    x = bridge.sample(None, n=50, seed=0, progress=False)
    x[3, 3] = 2.0  # categorical group not one-hot
    x[[4, 9], 6] = 2.5  # lattice column off the lattice
    with pytest.raises(DomainError) as error:
        bridge.loss(lambda z, t: torch.zeros_like(z), x)
    message = str(error.value)
    assert "3 of 50 rows" in message
    assert "column 2 (factor 2: Categorical(4)" in message and "1 rows, first at row 3" in message
    assert "column 6 (factor 3: Lattice(0.0, 16.0, step=1.0))" in message and "2 rows, first at row 4 with value 2.5" in message


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda b: torch.zeros(5, b.width + 1), ValueError, r"shape \(rows, 12\)"),
        (lambda b: torch.zeros(b.width), ValueError, r"shape \(rows, 12\)"),
        (lambda b: "data", TypeError, "torch.Tensor"),
        (lambda b: torch.zeros(0, b.width), ValueError, "no rows"),
        (lambda b: torch.full((4, b.width), math.nan), DomainError, "4 of 4 rows"),
        (lambda b: torch.zeros(4, b.width, dtype=torch.complex64), TypeError, "float or integer"),
    ],
)
def test_loss_rejects_bad_tensors(bridge, make, error, match):
    with pytest.raises(error, match=match):
        bridge.loss(lambda z, t: torch.zeros_like(z), make(bridge))


def test_model_errors_name_the_step(bridge):
    with pytest.raises(ModelOutputError, match=r"shape \(2, 11\) at step 0 \(t = 0\); expected \(2, 12\)"):
        bridge.sample(lambda z, t: z[:, :-1], n=2, seed=0, progress=False)

    def nan_later(z, t):
        return torch.full_like(z, math.nan) if float(t[0]) > 0.5 else torch.zeros_like(z)

    with pytest.raises(ModelOutputError, match=r"non-finite values in 2 rows at step 21 \(t = 0.525\)"):
        bridge.sample(nan_later, n=2, seed=0, progress=False)
    with pytest.raises(ModelOutputError, match="in loss"):
        x = bridge.sample(None, n=2, seed=0, progress=False)
        bridge.loss(lambda z, t: z[:, :2], x)
    with pytest.raises(ModelOutputError, match="must return a tensor"):
        bridge.sample(lambda z, t: 0.0, n=2, seed=0, progress=False)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n=0), ValueError, "n must be"),
        (dict(n=2.5), ValueError, "n must be"),
        (dict(n=2, batch_size=0), ValueError, "batch_size"),
        (dict(n=2, seed=-1), ValueError, "seed"),
        (dict(n=2, seed=2**64), ValueError, "seed"),
        (dict(n=2, final="round"), ValueError, "final"),
        (dict(n=2, backend="fast"), ValueError, "backend must be one of"),
        (dict(n=2, backend="cuda"), BackendUnavailableError, r"backend=.cuda. cannot run"),
        (dict(n=2, device="meta"), ValueError, "device 'meta' cannot hold a sample"),
        (dict(n=2, device="gpu"), ValueError, "device"),
    ],
)
def test_sample_rejects_bad_arguments(bridge, kwargs, error, match):
    with pytest.raises(error, match=match):
        bridge.sample(None, progress=False, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
def test_sample_on_cuda_without_a_gpu_says_so(bridge):
    with pytest.raises(BackendUnavailableError, match="CUDA is not available"):
        bridge.sample(None, n=2, device="cuda", progress=False)


def test_sample_rejects_a_model_that_is_not_callable(bridge):
    with pytest.raises(TypeError, match="callable"):
        bridge.sample(3, n=2, progress=False)


def test_bridge_rejects_bad_construction():
    with pytest.raises(TypeError, match="domain"):
        ob.Bridge("interval")
    with pytest.raises(TypeError, match="schedule"):
        ob.Bridge(ob.Binary(), schedule=1.0)
    with pytest.raises(ValueError, match="start_std"):
        ob.Bridge(ob.Binary(), start_std=-1.0)
    with pytest.raises(ValueError, match="steps"):
        ob.Bridge(ob.Binary(), steps=1)


def test_dispatch_validates_once_with_named_errors():
    table = ob.Product([ob.Interval(0.0, 1.0), ob.Real()]).segment_table()
    z = torch.zeros(4, 2)
    common = dict(remaining=1.0, increment=0.1, seed=0, step_index=0)
    with pytest.raises(TypeError, match="dtype float32, float64; got int64"):
        dispatch.step(z.long(), None, table, **common)
    with pytest.raises(ValueError, match=r"drift must have the shape of the state \(4, 2\)"):
        dispatch.step(z, torch.zeros(3, 2), table, **common)
    with pytest.raises(TypeError, match="drift must have dtype"):
        dispatch.step(z, torch.zeros(4, 2, dtype=torch.int32), table, **common)
    with pytest.raises(ValueError, match="increment .* must not exceed remaining"):
        dispatch.step(z, None, table, remaining=0.1, increment=0.2, seed=0, step_index=0)
    with pytest.raises(ValueError, match="remaining must be finite and > 0"):
        dispatch.step(z, None, table, remaining=0.0, increment=0.1, seed=0, step_index=0)
    with pytest.raises(ValueError, match="step_index"):
        dispatch.step(z, None, table, remaining=1.0, increment=0.1, seed=0, step_index=-1)
    with pytest.raises(ValueError, match=r"mean_scale must be a scalar or have one entry per row \(4\), got \(3,\)"):
        dispatch.bridge_target(z, table, mean_scale=torch.zeros(3), noise_scale=1.0, remaining=1.0, seed=0)
    with pytest.raises(ValueError, match=r"drift is on meta"):
        dispatch.step(z, torch.zeros(4, 2, device="meta"), table, **common)
    # half-precision drifts are accepted and accumulated in the state's precision
    out = dispatch.step(z, torch.zeros(4, 2, dtype=torch.float16), table, **common)
    assert out.dtype == torch.float32
