"""What is particular to the fused C++ CPU kernels (csrc/cpu, backend="cpu").

Their contract with the torch reference (every domain, tolerances, poisoned outputs, noise,
reduced inputs, in place, splits) is tests/test_kernel_contract.py, shared by every backend.
Here: outputs bit-identical for 1, 2 and 3 threads and for any batch boundary (a vector loop's
scalar remainder must not round differently), the vectorised last step's draws bit-identical to
those of its scalar formulas, the ops' handling of outputs that share memory with inputs, the
layout the extension builds, and the dispatch and error paths of backend="cpu".
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import omegabridge as ob
from omegabridge.ops.backends import cpu as cpu_backend
from omegabridge import ops as dispatch, reference
from omegabridge.errors import BackendUnavailableError

sys.path.insert(0, str(Path(__file__).resolve().parent))  # native_helpers, also under --import-mode=importlib
from kernel_cases import DOMAINS, states  # noqa: E402
from native_helpers import require_extension  # noqa: E402

ext = require_extension()

F64 = torch.float64
NAN = float("nan")

def _rows(name: str, rows: int) -> int:
    return min(rows, 64) if name == "categorical4096" else rows


def _case(name: str, rows: int, generator):
    """(domain, rows, table, float32 states) of one parametrised case."""
    domain = DOMAINS[name]
    rows = _rows(name, rows)
    return domain, rows, domain.segment_table(), states(domain, rows, generator)


def _poisoned(like: torch.Tensor) -> torch.Tensor:
    return torch.full(like.shape, NAN, dtype=torch.float32)


def _threads(threads):
    return torch.get_num_threads() if threads is None else threads


def native_mean(table, z, s, threads=None):
    out = _poisoned(z)
    s = s.reshape(-1).to(torch.float32).contiguous()
    ext.posterior_mean(cpu_backend.layout(table), z.data_ptr(), s.data_ptr(), out.data_ptr(), z.shape[0], _threads(threads))
    return out


def native_step(table, z, f, s, db, seed, step, row_offset=0, threads=None, out=None):
    out = _poisoned(z) if out is None else out
    storage = 0 if f is None or f.dtype == torch.float32 else 1
    ext.step(cpu_backend.layout(table), z.data_ptr(), 0 if f is None else f.data_ptr(), storage, out.data_ptr(), z.shape[0],
             s, db, seed, step, row_offset, _threads(threads))
    return out


def native_target(table, x, c, sigma, s, seed, step, row_offset=0, threads=None):
    z_t, target = _poisoned(x), _poisoned(x)
    storage = 0 if x.dtype == torch.float32 else 1
    c, sigma, s = (v.reshape(-1).to(torch.float32).contiguous() for v in (c, sigma, s))
    ext.bridge_target(cpu_backend.layout(table), x.data_ptr(), storage, c.data_ptr(), sigma.data_ptr(), s.data_ptr(),
                      z_t.data_ptr(), target.data_ptr(), x.shape[0], seed, step, row_offset, _threads(threads))
    return z_t, target


def native_final(table, z, f, s, seed, step, row_offset=0, threads=None, scalar=False):
    """The last step; scalar=True: the row-by-row scalar formulas it is defined by (final_step_scalar)."""
    out = _poisoned(z)
    storage = 0 if f is None or f.dtype == torch.float32 else 1
    launch = ext.final_step_scalar if scalar else ext.final_step
    launch(cpu_backend.layout(table), z.data_ptr(), 0 if f is None else f.data_ptr(), storage, out.data_ptr(),
           z.shape[0], s, seed, step, row_offset, _threads(threads))
    return out


# ----------------------------------------------------------------------------------------
# Determinism: threads
# ----------------------------------------------------------------------------------------
def _mixed(generator, rows=1500):
    domain = DOMAINS["mixed"]
    return domain, domain.segment_table(), states(domain, rows, generator)


def test_outputs_do_not_depend_on_thread_count(generator):
    domain, table, z = _mixed(generator)
    f = torch.randn(z.shape, generator=generator)
    s = torch.full((z.shape[0], 1), 0.3)
    for run in (
        lambda t: native_mean(table, z, s, threads=t),
        lambda t: native_step(table, z, f, 0.3, 0.01, 5, 2, threads=t),
        lambda t: torch.cat(native_target(table, domain.project(z), s, s, s, 5, 2, threads=t), 1),
        lambda t: native_final(table, z, f, 0.3, 5, 2, threads=t),
    ):
        one, two, three = run(1), run(2), run(3)
        assert torch.equal(one, two) and torch.equal(one, three)


# ----------------------------------------------------------------------------------------
# Dispatch and errors
# ----------------------------------------------------------------------------------------
def test_auto_picks_the_cpu_kernels_for_float32_and_the_reference_for_float64(monkeypatch):
    table = ob.Interval(0.0, 1.0).segment_table()
    assert dispatch.resolve_backend("auto", torch.device("cpu"), torch.float32) == "cpu"
    assert dispatch.resolve_backend("auto", torch.device("cpu"), torch.float64) == "reference"

    def refuse(*args, **kwargs):
        raise AssertionError("the reference ran")

    monkeypatch.setattr(reference, "step", refuse)
    dispatch.step(torch.zeros(4, 1), None, table, remaining=1.0, increment=0.1, seed=0, step_index=0)
    with pytest.raises(AssertionError, match="reference ran"):
        dispatch.step(torch.zeros(4, 1, dtype=F64), None, table, remaining=1.0, increment=0.1, seed=0, step_index=0)


def test_cpu_backend_refuses_float64_with_a_clear_error():
    table = ob.Interval(0.0, 1.0).segment_table()
    with pytest.raises(BackendUnavailableError, match="float32"):
        dispatch.step(torch.zeros(2, 1, dtype=F64), None, table, remaining=1.0, increment=0.1, seed=0, step_index=0, backend="cpu")


def test_out_must_match_the_state():
    table = ob.Interval(0.0, 1.0).segment_table()
    with pytest.raises(ValueError, match="out must match"):
        dispatch.step(torch.zeros(2, 1), None, table, remaining=1.0, increment=0.1, seed=0, step_index=0, out=torch.zeros(3, 1))


def test_drift_aliasing_the_output_elsewhere_is_copied_first(generator):
    domain = ob.Product([ob.HalfLine(low=0.0)] * 4)
    table = domain.segment_table()
    buffer = torch.randn(9, 4, generator=generator)
    z, drift = buffer[1:].clone(), buffer[:-1].clone()
    expected = dispatch.step(z, drift, table, remaining=0.5, increment=0.1, seed=2, step_index=0, backend="cpu")
    state = buffer[1:]  # drift = buffer[:-1] overlaps the state one row over
    dispatch.step(state, buffer[:-1], table, remaining=0.5, increment=0.1, seed=2, step_index=0, backend="cpu", out=state)
    assert torch.equal(state, expected)


def test_layout_rejects_an_inconsistent_table():
    kinds = torch.tensor([9], dtype=torch.int32)
    offsets = torch.tensor([0], dtype=torch.int64)
    widths = torch.tensor([1], dtype=torch.int64)
    points = torch.tensor([1], dtype=torch.int64)
    repeats = torch.tensor([1], dtype=torch.int64)
    parameters = torch.zeros(1, 3, dtype=F64)

    def make():
        return ext.make_layout(1, kinds.data_ptr(), offsets.data_ptr(), widths.data_ptr(), points.data_ptr(),
                               repeats.data_ptr(), parameters.data_ptr())

    with pytest.raises(ValueError, match="segment 0 of the table: unknown kind 9"):
        make()
    offsets[0] = 2
    kinds[0] = 1
    with pytest.raises(ValueError, match="segment 0 of the table: offset 2"):
        make()
    offsets[0] = 0
    repeats[0] = 0
    with pytest.raises(ValueError, match="segment 0 of the table: bad repeat count 0"):
        make()


def test_a_field_is_one_segment_and_the_layout_unrolls_it_by_arithmetic():
    domain = ob.Product([ob.Categorical(19, shape=(64, 64)), ob.Lattice(0, 255, shape=(3, 4, 4)), ob.Interval(0, 1)])
    table = domain.segment_table()
    assert [segment.repeat for segment in table.segments] == [4096, 48, 1]
    layout = cpu_backend.layout(table)
    assert layout.width == domain.width == 4096 * 19 + 48 + 1
    assert repr(layout) == "Layout(width=77873, runs=[categorical 0:77824, lattice 77824:77872, interval 77872:77873])"


def test_the_extension_reports_its_instruction_set():
    assert ext.simd in ("avx512", "avx2", "baseline")
    assert "categorical 5:109" in repr(cpu_backend.layout(DOMAINS["mixed"].segment_table()))


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_bridge_target_into_given_buffers(backend, generator):
    domain, _, table, z = _case("mixed", 300, generator)
    x = domain.project(z)
    s = torch.full((300, 1), 0.3)
    expected = dispatch.bridge_target(x, table, mean_scale=s, noise_scale=s, remaining=s, seed=8, backend=backend)
    buffers = (torch.full_like(z, NAN), torch.full_like(z, NAN))
    returned = dispatch.bridge_target(x, table, mean_scale=s, noise_scale=s, remaining=s, seed=8, backend=backend, out=buffers)
    assert returned[0] is buffers[0] and returned[1] is buffers[1]
    assert torch.equal(buffers[0], expected[0]) and torch.equal(buffers[1], expected[1])
    strided = (torch.full((300, 2 * domain.width), NAN)[:, ::2], torch.full((300, 2 * domain.width), NAN)[:, ::2])
    dispatch.bridge_target(x, table, mean_scale=s, noise_scale=s, remaining=s, seed=8, backend=backend, out=strided)
    assert torch.equal(strided[0], expected[0]) and torch.equal(strided[1], expected[1])
    with pytest.raises(ValueError, match="out must match"):
        dispatch.bridge_target(x, table, mean_scale=s, noise_scale=s, remaining=s, seed=8, backend=backend, out=(z[:5], z[:5]))


@pytest.mark.parametrize("name", ["halfline-low", "categorical7", "sphere3", "lattice17", "many-halflines", "mixed"])
def test_sample_bits_do_not_depend_on_batch_boundaries(name, generator):
    """Every block's noise must come from the same instructions wherever it falls in a tile or call
    (a vector loop's scalar remainder would round differently at the last ulp)."""
    domain, rows, table, z = _case(name, 777, generator)
    f = torch.randn(z.shape, generator=generator)
    whole = native_step(table, z, f, 0.3, 0.01, 6, 1)
    whole_target = native_target(table, domain.project(z), torch.full((rows, 1), 0.5), torch.full((rows, 1), 0.5), torch.full((rows, 1), 0.2), 6, 1)
    whole_final = native_final(table, z, f, 0.3, 6, 1)
    for size in (1, 5, 11, 100, 400):
        starts = range(0, rows, size)
        parts = [native_step(table, z[a : a + size].contiguous(), f[a : a + size].contiguous(), 0.3, 0.01, 6, 1, row_offset=a) for a in starts]
        assert torch.equal(torch.cat(parts), whole), f"step differs with batches of {size}"
        x = domain.project(z)
        half = torch.full((rows, 1), 0.5)
        targets = [native_target(table, x[a : a + size].contiguous(), half[a : a + size], half[a : a + size], torch.full((min(size, rows - a), 1), 0.2), 6, 1, row_offset=a) for a in starts]
        assert torch.equal(torch.cat([t[1] for t in targets]), whole_target[1]), f"target differs with batches of {size}"
        finals = [native_final(table, z[a : a + size].contiguous(), f[a : a + size].contiguous(), 0.3, 6, 1, row_offset=a) for a in starts]
        assert torch.equal(torch.cat(finals), whole_final), f"last step differs with batches of {size}"


@pytest.mark.parametrize("s", [1e-4, 0.5, 400.0])
@pytest.mark.parametrize("name", list(DOMAINS))
def test_last_step_draws_the_scalar_formulas_bits(name, s, generator):
    """The vectorised last step (planar tiles, branch-free formulas) draws, bit for bit, what the scalar
    formulas of posterior.h draw row by row: every kind, with no, float32 and bfloat16 drift, a row
    count that fills no whole chunk of lanes, rows across the 2^32 carry; s = 400 takes the lattices
    with many points to the Euler-Maclaurin draw."""
    domain, rows, table, z = _case(name, 203, generator)
    z[0], z[-1] = 1e30, -1e30  # far outside every domain
    f = torch.randn(z.shape, generator=generator)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    for drift in (None, f, f.to(torch.bfloat16)):
        vectorised = native_final(table, z, drift, s, seed, 5, row_offset=2**32 - 100)
        scalar = native_final(table, z, drift, s, seed, 5, row_offset=2**32 - 100, scalar=True)
        assert torch.isfinite(scalar).all()
        assert torch.equal(vectorised, scalar), f"{int((vectorised != scalar).sum())} draws differ (drift {None if drift is None else drift.dtype})"


@pytest.mark.parametrize("domain", [ob.HalfLine(low=0.0), ob.HalfLine(high=0.0), ob.Interval(0.0, 1.0)], ids=repr)
def test_last_step_tails_below_the_smallest_float_keep_the_scalar_bits(domain, generator):
    """The vectorised last step takes Q(|alpha|) as +0 beyond 13 sigma (where the scalar formula's value is
    subnormal, and is added to terms of at least 2^-34 or clamped up to the smallest normal float):
    means swept across that threshold at both ends must draw the scalar formulas' bits."""
    s = 1e-4
    sigma = s**0.5
    distance = torch.linspace(12.0, 14.0, 2001, dtype=torch.float64)  # in sigmas, straddling 13
    ends = [end for end in (getattr(domain, "low", None), getattr(domain, "high", None)) if end is not None and abs(end) < 1e30]
    means = torch.cat([torch.cat([end - distance * sigma, end + distance * sigma]) for end in ends])
    z = means.to(torch.float32)[:, None].contiguous()
    table = ob.Product([domain]).segment_table()
    for seed in (1, int(torch.randint(0, 2**62, (1,), generator=generator))):
        vectorised = native_final(table, z, None, s, seed, 5)
        scalar = native_final(table, z, None, s, seed, 5, scalar=True)
        assert torch.equal(vectorised, scalar), f"{int((vectorised != scalar).sum())} of {z.shape[0]} draws differ"


def test_outputs_that_share_memory_with_inputs_are_handled(generator):
    domain, rows, table, z = _case("mixed", 40, generator)
    x = domain.project(z)
    s = torch.full((rows, 1), 0.3)
    expected = dispatch.bridge_target(x, table, mean_scale=s, noise_scale=s, remaining=s, seed=3, backend="cpu")
    data = x.clone()
    result = dispatch.bridge_target(data, table, mean_scale=s, noise_scale=s, remaining=s, seed=3, backend="cpu", out=(data, torch.empty_like(x)))
    assert torch.equal(result[0], expected[0]) and torch.equal(result[1], expected[1])
    # a state stepped into a view of itself one row over
    buffer = torch.cat([z, z[:1]]).contiguous()
    expected_step = dispatch.step(z, None, table, remaining=0.5, increment=0.1, seed=4, step_index=0, backend="cpu")
    dispatch.step(buffer[:-1], None, table, remaining=0.5, increment=0.1, seed=4, step_index=0, backend="cpu", out=buffer[1:])
    assert torch.equal(buffer[1:], expected_step)
