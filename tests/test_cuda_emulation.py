"""The CUDA kernels' own code (csrc/cuda/kernels.cu) compiled for the CPU, against the torch reference.

Without a GPU the real kernels cannot run, but their logic can: tests/cuda_emulation.py compiles
kernels.cu with the host compiler (csrc/cuda/host_emulation.h stands in for CUDA; one "thread"
walks the whole grid) behind the same bindings, and the checks below run it on CPU tensors with
the tolerances of tests/test_cpu_kernels.py: work items, masks, vector and scalar loads, noise
addresses, per-element and per-group math, the exact last step. What this cannot see (the GPU's
own compilation and float contraction, coalescing, races, streams, graphs) is left to
tests/test_cuda_kernels.py on a GPU.

Skipped when no C++ compiler is found, unless OMEGABRIDGE_REQUIRE_CUDA_BUILD=1 (then failing).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import torch

import omegabridge as ob
from omegabridge.core.segments import Kind
from omegabridge.ops.backends import cuda as cuda_backend
from omegabridge.core import noise
from omegabridge import reference

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers, also under --import-mode=importlib
import cuda_emulation  # noqa: E402
from kernel_cases import DOMAINS, F64, assert_within, check_step, check_target, factor_rows_agree, states, target_inputs  # noqa: E402

try:
    ext = cuda_emulation.load()
except RuntimeError as error:
    if os.environ.get("OMEGABRIDGE_REQUIRE_CUDA_BUILD") == "1":
        raise
    pytest.skip(f"the emulated CUDA kernels cannot be built: {error}", allow_module_level=True)

NAN = float("nan")
ROWS = [3, 201]
_STORAGE = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}
_LAYOUTS: dict = {}


@pytest.fixture
def generator(request) -> torch.Generator:
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"{request.node.name}: input seed {seed}")
    return torch.Generator().manual_seed(seed)


def _layout(table):
    """(plan, host bytes): the layout as cuda_backend.layout builds it, kept in host memory."""
    key = id(table)
    if key not in _LAYOUTS:
        tensors = table.as_tensors()
        kept = [tensors["kinds"].to(torch.int32).contiguous()]
        kept += [tensors[k].to(torch.int64).contiguous() for k in ("offsets", "widths", "points", "repeats")]
        kept.append(tensors["parameters"].to(F64).contiguous())
        plan = ext.make_layout(kept[0].numel(), *(t.data_ptr() for t in kept))
        host = torch.empty(plan.nbytes + 16, dtype=torch.uint8)
        start = (-host.data_ptr()) % 16
        buffer = host[start : start + plan.nbytes]  # 16-byte aligned, as a device allocation is
        plan.write(buffer.data_ptr())
        _LAYOUTS[key] = (table, plan, buffer)
    return _LAYOUTS[key][1:]


def _poisoned(like):
    return torch.full(like.shape, NAN, dtype=torch.float32)


def kernel_mean(table, z, s):
    out = _poisoned(z)
    s = s.reshape(-1).to(torch.float32).contiguous()
    plan, buffer = _layout(table)
    ext.posterior_mean(plan, buffer.data_ptr(), z.data_ptr(), s.data_ptr(), out.data_ptr(), z.shape[0], 0)
    return out


def kernel_step(table, z, f, s, db, seed, step, row_offset=0, out=None):
    out = _poisoned(z) if out is None else out
    plan, buffer = _layout(table)
    ext.step(plan, buffer.data_ptr(), z.data_ptr(), 0 if f is None else f.data_ptr(), 0 if f is None else _STORAGE[f.dtype],
             out.data_ptr(), z.shape[0], s, db, seed, step, row_offset, 0)
    return out


def kernel_target(table, x, c, sigma, s, seed, step, row_offset=0):
    z_t, target = _poisoned(x), _poisoned(x)
    c, sigma, s = (v.reshape(-1).to(torch.float32).contiguous() for v in (c, sigma, s))
    plan, buffer = _layout(table)
    ext.bridge_target(plan, buffer.data_ptr(), x.data_ptr(), _STORAGE[x.dtype], c.data_ptr(), sigma.data_ptr(), s.data_ptr(),
                      z_t.data_ptr(), target.data_ptr(), x.shape[0], seed, step, row_offset, 0)
    return z_t, target


def kernel_final(table, z, f, s, seed, step, row_offset=0):
    out = _poisoned(z)
    plan, buffer = _layout(table)
    ext.final_step(plan, buffer.data_ptr(), z.data_ptr(), 0 if f is None else f.data_ptr(),
                   0 if f is None else _STORAGE[f.dtype], out.data_ptr(), z.shape[0], s, seed, step, row_offset, 0)
    return out


def _case(name, rows, generator):
    domain = DOMAINS[name]
    rows = min(rows, 16) if name in ("categorical4096", "categorical1000") else rows
    return domain, rows, domain.segment_table(), states(domain, rows, generator)


@pytest.mark.parametrize("s", [1e-6, 0.04, 3.0])
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("name", list(DOMAINS))
def test_posterior_mean_matches_reference(name, rows, s, generator):
    domain, rows, table, z = _case(name, rows, generator)
    per_row = s * 10 ** (torch.rand(rows, 1, generator=generator) - 0.5)
    m = kernel_mean(table, z, per_row)
    exact = reference.posterior_mean(z.to(F64), table, per_row.to(F64))
    assert_within(m, exact, 1e-5 * (exact.abs() + per_row.to(F64).sqrt()), f"m on {name}")


@pytest.mark.parametrize("drift", [None, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("name", list(DOMAINS))
def test_step_matches_reference(name, rows, drift, generator):
    domain, rows, table, z = _case(name, rows, generator)
    f = None if drift is None else (torch.randn(z.shape, generator=generator) * 3).to(drift)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    out = kernel_step(table, z, f, 0.37, 0.01, seed, 11, row_offset=5)
    check_step(out, z, None if f is None else f.float(), table, 0.37, 0.01, seed, 11, 5, f"step on {name}")
    if f is not None and drift != torch.float32:
        assert torch.equal(out, kernel_step(table, z, f.float(), 0.37, 0.01, seed, 11, row_offset=5)), "reduced f != its float32 copy"


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("name", list(DOMAINS))
def test_bridge_target_matches_reference(name, rows, generator):
    domain = DOMAINS[name]
    rows = min(rows, 16) if name in ("categorical4096", "categorical1000") else rows
    table = domain.segment_table()
    x, c, sigma, s, seed = target_inputs(domain, rows, generator)
    z_t, target = kernel_target(table, x, c, sigma, s, seed, 7, row_offset=3)
    check_target(z_t, target, x, table, c, sigma, s, seed, 7, 3, name)
    for dtype in (torch.bfloat16, torch.float16):  # x on the domain is exact in both (one-hot, lattice points, ...) or rounded
        reduced = x.to(dtype)
        a, b = kernel_target(table, reduced, c, sigma, s, seed, 7, row_offset=3), kernel_target(table, reduced.float(), c, sigma, s, seed, 7, row_offset=3)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("with_drift", [False, True])
@pytest.mark.parametrize("s", [1e-4, 0.5])
@pytest.mark.parametrize("name", list(DOMAINS))
def test_final_step_matches_reference_and_lands_in_the_domain(name, s, with_drift, generator):
    domain, rows, table, z = _case(name, 700, generator)
    f = torch.randn(z.shape, generator=generator) if with_drift else None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    out = kernel_final(table, z, f, s, seed, 99, row_offset=2)
    assert torch.isfinite(out).all(), "unwritten or non-finite output"
    assert bool(domain.contains(out).all()), "a draw left the domain"
    expected = reference.final_step(z.to(F64), None if f is None else f.to(F64), table, s, seed, 99, row_offset=2)
    agreement = factor_rows_agree(domain, out, expected, math.sqrt(s))
    assert min(agreement.values()) >= 0.995, agreement


@pytest.mark.parametrize("row_offset", [0, 2**32 - 5, 2**47 + 12345])
def test_uniforms_are_the_contracts_bit_for_bit_and_normals_agree(row_offset, generator):
    rows, width = 11, 13
    seed = int(torch.randint(0, 2**62, (1,), generator=generator)) * 4 + 3
    step, stream = 2**31 + 7, int(torch.randint(0, 2**16, (1,), generator=generator))
    uniform, normal = torch.empty(rows, width), torch.empty(rows, width)
    ext.uniforms(uniform.data_ptr(), rows, width, seed, step, row_offset, stream, 0)
    ext.normals(normal.data_ptr(), rows, width, seed, step, row_offset, stream, 0)
    assert torch.equal(uniform, noise.uniforms(seed, step, row_offset, rows, width, stream, torch.float32))
    expected = noise.normals(seed, step, row_offset, rows, width, stream, F64)
    assert_within(normal, expected, 1e-5 * (1 + expected.abs()), "normals")


def test_vector_and_scalar_loads_give_the_same_bits(generator):
    domain = ob.Product([ob.HalfLine(low=0.0), ob.Interval(0.0, 1.0), ob.Lattice(0, 20), ob.Real()] * 3)
    table = domain.segment_table()
    z = states(domain, 99, generator)
    f = torch.randn(z.shape, generator=generator)

    def at(tensor, misalign):
        storage = torch.empty(tensor.numel() + 8)
        start = (-storage.data_ptr()) % 16 // 4 + misalign  # floats to the next 16-byte boundary, plus misalign
        view = storage[start : start + tensor.numel()].view(tensor.shape)
        view.copy_(tensor)
        return view

    vector = kernel_step(table, at(z, 0), at(f, 0), 0.3, 0.01, 3, 1, out=at(torch.zeros_like(z), 0))
    scalar = kernel_step(table, at(z, 1), at(f, 1), 0.3, 0.01, 3, 1, out=at(torch.zeros_like(z), 1))
    assert at(z, 0).data_ptr() % 16 == 0 and at(z, 1).data_ptr() % 16 != 0
    assert torch.equal(vector, scalar)


def test_in_place_split_and_scheduled_steps_give_the_same_bits(generator):
    domain = DOMAINS["mixed"]
    table = domain.segment_table()
    z = states(domain, 300, generator)
    f = torch.randn(z.shape, generator=generator)
    expected = kernel_step(table, z, f, 0.3, 0.05, 7, 2, row_offset=11)
    state = z.clone()
    kernel_step(table, state, f, 0.3, 0.05, 7, 2, row_offset=11, out=state)
    assert torch.equal(state, expected)
    cut = 101
    parts = torch.cat([kernel_step(table, z[:cut].contiguous(), f[:cut].contiguous(), 0.3, 0.05, 7, 2, row_offset=11),
                       kernel_step(table, z[cut:].contiguous(), f[cut:].contiguous(), 0.3, 0.05, 7, 2, row_offset=11 + cut)])
    assert torch.equal(parts, expected)
    schedule = cuda_backend.step_schedule([0.9, 0.5, 0.3], [0.2, 0.1, 0.05], "cpu")
    counter = torch.tensor([2], dtype=torch.int64)
    state = z.clone()
    plan, buffer = _layout(table)
    ext.scheduled_step(plan, buffer.data_ptr(), state.data_ptr(), f.data_ptr(), 0, state.data_ptr(), 300,
                       schedule.data_ptr(), 3, counter.data_ptr(), 7, 11, 0)
    assert torch.equal(state, expected)
    for outside in (3, -1, 2**40):  # a counter past the schedule: NaN everywhere, no read past its rows
        state = z.clone()
        ext.scheduled_step(plan, buffer.data_ptr(), state.data_ptr(), f.data_ptr(), 0, state.data_ptr(), 300,
                           schedule.data_ptr(), 3, torch.tensor([outside]).data_ptr(), 7, 11, 0)
        assert bool(state.isnan().all()), outside
    with pytest.raises(ValueError, match="schedule_steps must be >= 1"):
        ext.scheduled_step(plan, buffer.data_ptr(), state.data_ptr(), f.data_ptr(), 0, state.data_ptr(), 300,
                           schedule.data_ptr(), 0, counter.data_ptr(), 7, 11, 0)
    final = kernel_final(table, z, f, 0.2, 3, 9)
    parts = torch.cat([kernel_final(table, z[:cut].contiguous(), f[:cut].contiguous(), 0.2, 3, 9),
                       kernel_final(table, z[cut:].contiguous(), f[cut:].contiguous(), 0.2, 3, 9, row_offset=cut)])
    assert torch.equal(parts, final)


@pytest.mark.parametrize("bad", [0.0, -0.5, float("inf"), float("nan")])
def test_a_row_with_an_invalid_s_gets_nan_not_finite_numbers(bad, generator):
    domain = DOMAINS["mixed"]
    table = domain.segment_table()
    z = states(domain, 5, generator)
    s = torch.full((5, 1), 0.3)
    s[2] = bad
    m = kernel_mean(table, z, s)
    depends_on_s = table.column_kinds != int(Kind.REAL)
    assert torch.isnan(m[2, depends_on_s]).all() and torch.isfinite(m[[0, 1, 3, 4]]).all()
    z_t, target = kernel_target(table, domain.project(z), torch.full((5, 1), 0.5), torch.full((5, 1), 0.5), s, 3, 1)
    assert torch.isnan(target[2]).all() and torch.isfinite(target[[0, 1, 3, 4]]).all()
    assert torch.isfinite(z_t).all()


def test_the_emulated_and_cpu_kernels_agree_on_a_whole_sample(generator):
    """Steps 0 .. N-2 and the last step of the pure bridge, chained as Bridge.sample chains them."""
    from omegabridge.ops.backends import cpu as cpu_backend

    if not cpu_backend.is_available():
        pytest.skip("the C++ CPU extension is not built here")
    domain = ob.Product([ob.Interval(0.0, 1.0), ob.Categorical(4), ob.Lattice(0, 9), ob.HalfLine(low=0.0), ob.Sphere(3)])
    bridge = ob.Bridge(domain, ob.schedules.Exp(a=3.0, b=1.0), steps=20)
    rows = 500
    z = torch.zeros(rows, domain.width)
    for k in range(bridge.steps - 1):
        z = kernel_step(bridge.table, z, None, bridge._remaining[k], bridge._increment[k], 17, k)
    emulated = kernel_final(bridge.table, z, None, bridge._remaining[-1], 17, bridge.steps - 1)
    on_cpu = bridge.sample(None, n=rows, seed=17, progress=False, backend="cpu")
    agreement = factor_rows_agree(domain, emulated, on_cpu.to(F64), 1.0)
    assert min(agreement.values()) >= 0.99, agreement


# ----------------------------------------------------------------------------------------
# omegabridge.ops.backends.cuda and dispatch's backend="cuda" on top of the emulated kernels
# ----------------------------------------------------------------------------------------
@pytest.fixture
def emulated_backend(monkeypatch):
    """cuda_backend with the emulated kernels on CPU tensors: its torch.cuda calls replaced."""
    cuda_emulation.patch_backend(monkeypatch, ext)


def test_dispatch_runs_backend_cuda_with_outputs_in_place_and_reduced_inputs(emulated_backend, generator):
    from omegabridge import ops as dispatch

    domain = DOMAINS["mixed"]
    table = domain.segment_table()
    z = states(domain, 120, generator)
    f = torch.randn(z.shape, generator=generator)
    kwargs = dict(remaining=0.3, increment=0.05, seed=4, step_index=3, row_offset=9)
    expected = kernel_step(table, z, f, 0.3, 0.05, 4, 3, row_offset=9)
    assert torch.equal(dispatch.step(z, f, table, backend="cuda", **kwargs), expected)
    state = z.clone()
    assert dispatch.step(state, f.to(torch.float16).float(), table, backend="cuda", out=state, **kwargs) is state
    assert torch.equal(state, dispatch.step(z, f.to(torch.float16), table, backend="cuda", **kwargs))
    strided = torch.cat([z, z], dim=1)[:, : z.shape[1]]  # rows not contiguous: copied, then written back into out
    assert torch.equal(dispatch.step(strided, f, table, backend="cuda", **kwargs), expected)
    s = torch.full((120, 1), 0.2)
    assert torch.equal(dispatch.posterior_mean(z, table, s, backend="cuda"), kernel_mean(table, z, s))
    x = domain.project(z)
    direct = kernel_target(table, x, s, s, s, 8, 0)
    buffers = (torch.full_like(z, NAN), torch.full_like(z, NAN))
    returned = dispatch.bridge_target(x, table, mean_scale=s, noise_scale=s, remaining=s, seed=8, backend="cuda", out=buffers)
    assert returned[0] is buffers[0] and torch.equal(buffers[0], direct[0]) and torch.equal(buffers[1], direct[1])
    final = dispatch.final_step(z, f, table, remaining=0.2, seed=3, step_index=5, backend="cuda")
    assert torch.equal(final, kernel_final(table, z, f, 0.2, 3, 5))
    schedule = cuda_backend.step_schedule([0.9, 0.5, 0.3], [0.2, 0.1, 0.05], "cpu")
    state = z.clone()
    dispatch.scheduled_step(state, f, table, schedule=schedule, counter=torch.tensor([2]), seed=4, row_offset=9)
    assert torch.equal(state, kernel_step(table, z, f, 0.3, 0.05, 4, 2, row_offset=9))
    with pytest.raises(ValueError, match="schedule must be"):
        dispatch.scheduled_step(state, f, table, schedule=schedule[:, :4], counter=torch.tensor([2]), seed=4)


def test_bridge_sample_on_backend_cuda_agrees_with_the_cpu_kernels(emulated_backend):
    from omegabridge.ops.backends import cpu as cpu_backend

    if not cpu_backend.is_available():
        pytest.skip("the C++ CPU extension is not built here")
    domain = ob.Product([ob.Interval(0.0, 1.0), ob.Categorical(4), ob.Lattice(0, 9), ob.HalfLine(low=0.0), ob.Sphere(3)])
    bridge = ob.Bridge(domain, ob.schedules.Exp(a=3.0, b=1.0), steps=20)

    def model(z, t):
        return 0.1 * torch.tanh(z) * (1.0 - t[:, None])

    on_cuda = bridge.sample(model, n=400, seed=17, progress=False, backend="cuda", batch_size=150)
    on_cpu = bridge.sample(model, n=400, seed=17, progress=False, backend="cpu")
    assert bool(domain.contains(on_cuda).all())
    agreement = factor_rows_agree(domain, on_cuda, on_cpu.to(F64), 1.0)
    assert min(agreement.values()) >= 0.99, agreement


def test_the_sampling_bench_runs_its_cuda_variant(emulated_backend, tmp_path):
    """bench/sampling.py's backend='cuda' path (the GPU session's end-to-end bench) on the emulated
    kernels: it samples, times the step alone, and agrees with the CPU kernels' sample."""
    from omegabridge.ops.backends import cpu as cpu_backend

    if not cpu_backend.is_available():
        pytest.skip("the C++ CPU extension is not built here")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from sampling import main as sampling_main

    results = sampling_main(["--device", "cpu", "--rows", "48", "--steps", "5", "--repeats", "2", "--variants", "cuda,cpu",
                             "--out", str(tmp_path)])
    assert [r["variant"] for r in results] == ["cuda", "cpu"] and all(r["in_domain"] for r in results)
    assert results[1]["rows_differing"] == 0.0, results[1]
    assert "| cuda fused step |" in (tmp_path / "sampling-cpu.md").read_text()


@pytest.mark.parametrize("lattice", [0, 1], ids=["K256", "K4096-quarter-step"])
def test_the_last_steps_lattice_draw_is_the_exact_inverse_cdf_at_a_bounded_cost(emulated_backend, lattice, generator):
    """backend='cuda' draws lattice elements as tests/test_lattice_draw checks the other backends do."""
    from test_lattice_draw import LATTICES, _check

    low, step, points = LATTICES[lattice]
    _check("cuda", torch.float32, low, step, points, generator, required_agreement=0.999)
