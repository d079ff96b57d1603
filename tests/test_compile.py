"""The fused ops are torch.library custom ops: a user's function that calls them compiles with
``torch.compile(fullgraph=True)`` (no graph break at our call) and gives what eager gives.

Tolerance: bit for bit against eager on the same backend (the compiled graph calls the same kernel);
the one data-dependent check (per-row s on CPU) becomes the kernels' NaN rule inside the graph.
"""

from __future__ import annotations

import pytest
import torch

import omegabridge as ob

DOMAIN = ob.Product([ob.Interval(0.0, 1.0), ob.Categorical(3), ob.Lattice(0, 16), ob.HalfLine(low=0.0), ob.Real()])
ROWS = 37  # not a multiple of any block


@pytest.fixture
def data():
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(ROWS, DOMAIN.width, generator=generator) * 3
    x = DOMAIN.project(torch.randn(ROWS, DOMAIN.width, generator=generator))
    return DOMAIN.segment_table(), z, x


@pytest.fixture(autouse=True)
def fresh_compiler():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_the_ops_are_registered_with_torch_library():
    for name in ("posterior_mean", "step", "step_out", "final_step", "bridge_target", "bridge_target_out"):
        assert hasattr(torch.ops.omegabridge, name), name


def test_a_compiled_sampling_step_with_inductor_equals_eager(data):
    table, z, _ = data
    drift = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))

    def update(z, drift):
        next_state = ob.dispatch.step(z * 1.0, drift, table, remaining=1.0, increment=0.1, seed=2**64 - 5, step_index=2)
        return ob.dispatch.posterior_mean(next_state, table, 0.5) - next_state

    compiled = torch.compile(update, fullgraph=True)  # the default backend, inductor
    assert torch.equal(compiled(z, drift), update(z, drift))


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_compiled_training_target_and_last_step_equal_eager(data, backend):
    table, z, x = data

    def loss_and_sample(x, z):
        remaining = torch.linspace(0.1, 0.9, x.shape[0])
        z_t, target = ob.dispatch.bridge_target(x, table, mean_scale=0.5, noise_scale=0.3, remaining=remaining, seed=7,
                                                backend=backend)
        sample = ob.dispatch.final_step(z, None, table, remaining=0.2, seed=7, step_index=9, backend=backend)
        return (z_t - target).square().sum(), sample

    compiled = torch.compile(loss_and_sample, fullgraph=True, backend="aot_eager")
    (loss, sample), (expected_loss, expected_sample) = compiled(x, z), loss_and_sample(x, z)
    assert torch.equal(loss, expected_loss) and torch.equal(sample, expected_sample)
    assert bool(DOMAIN.contains(sample).all())


def test_compiled_steps_in_place_and_into_buffers_equal_eager(data):
    table, z, x = data

    def in_place(z):
        state = z.clone()
        ob.dispatch.step(state, None, table, remaining=1.0, increment=0.25, seed=3, step_index=0, out=state)
        return state

    def into_buffers(x):
        buffers = (torch.empty_like(x), torch.empty_like(x))
        ob.dispatch.bridge_target(x, table, mean_scale=0.5, noise_scale=0.3, remaining=0.4, seed=1, out=buffers)
        return buffers[0] + buffers[1]

    assert torch.equal(torch.compile(in_place, fullgraph=True, backend="aot_eager")(z), in_place(z))
    assert torch.equal(torch.compile(into_buffers, fullgraph=True, backend="aot_eager")(x), into_buffers(x))


def test_invalid_per_row_s_raises_in_eager_and_gives_nan_rows_when_compiled(data):
    table, _, x = data
    remaining = torch.full((ROWS,), 0.4)
    remaining[5] = -1.0
    remaining[11] = float("inf")

    def target(x, remaining):
        return ob.dispatch.bridge_target(x, table, mean_scale=0.5, noise_scale=0.3, remaining=remaining, seed=1)[1]

    def mean(x, remaining):
        return ob.dispatch.posterior_mean(x, table, remaining[:, None])

    with pytest.raises(ValueError, match="finite and > 0"):
        target(x, remaining)
    compiled_target = torch.compile(target, fullgraph=True, backend="aot_eager")(x, remaining)
    compiled_mean = torch.compile(mean, fullgraph=True, backend="aot_eager")(x, remaining)
    bad = torch.zeros(ROWS, dtype=torch.bool)
    bad[[5, 11]] = True
    assert torch.isnan(compiled_target[bad]).all() and torch.isfinite(compiled_target[~bad]).all()
    real_column = DOMAIN.width - 1  # m = z on a Real column, whatever s
    assert torch.isnan(compiled_mean[bad][:, :real_column]).all()
    assert torch.equal(compiled_mean[bad][:, real_column], x[bad][:, real_column])
    valid = remaining.clone()
    valid[bad] = 0.4
    assert torch.equal(compiled_target[~bad], target(x, valid)[~bad])
