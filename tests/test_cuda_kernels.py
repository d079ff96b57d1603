"""The fused CUDA C++ kernels (csrc/cuda, backend="cuda") against the torch reference.

Two parts:

1. Everywhere (no GPU needed): the extension ``omegabridge._cuda_ext`` is built and imports where
   nvcc is found (``make test`` sets OMEGABRIDGE_REQUIRE_CUDA_BUILD=1 there, so a missing build
   fails instead of skipping); asking for backend="cuda" without a GPU is a clear
   ``BackendUnavailableError`` while everything else still works; the bindings reject bad
   arguments with ValueError before any CUDA call; a CUDA call without a device raises an
   exception naming the call; the host-side layout gives every column to exactly one thread;
   ``cuda_graph=True`` off a GPU warns and gives the same sample.
2. On a GPU (skipped without one): every kernel on fresh random inputs (a new seed per run,
   printed on failure) for every domain and a mixed layout, outputs poisoned (NaN) before the
   launch, with the tolerances of the CPU kernels (tests/test_cpu_kernels.py):

   * posterior mean: |m - m64| <= 1e-5 (|m64| + sqrt(s)) (bridge-math.md section 2);
   * step: that bound carried through z + db [(m - z)/s + f] + sqrt(db) xi, plus rounding;
   * training target: z_t to float rounding; the target against the reference at the kernel's z_t;
   * exact last step: every row in the domain; draws equal to the reference's with the same
     uniforms in at least 99.5% of rows per factor;
   * noise: uniforms equal to the CPU backend's and the torch reference's bit for bit, normals
     to 1e-5; reduced-precision f and x give the bits of their float32 copies; vector (aligned)
     and scalar (misaligned) loads, in place and out of place, and any split of the rows into
     calls give the same bits; a CUDA-graph sample equals the eager one bit for bit.

   The exact-law and oracle-drift checks run on this backend in tests/test_statistics.py.
"""

from __future__ import annotations

import math
import os
import struct
import sys
import warnings
from pathlib import Path

import pytest
import torch

import omegabridge as ob
from omegabridge.core.segments import Kind
from omegabridge.ops.backends import cuda as cuda_backend
from omegabridge import ops as dispatch, reference
from omegabridge.core import noise
from omegabridge.errors import BackendUnavailableError

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers, also under --import-mode=importlib
from kernel_cases import DOMAINS, F64, assert_within, check_step, check_target, factor_rows_agree, states, target_inputs  # noqa: E402

NAN = float("nan")
GPU = torch.cuda.is_available()
# OMEGABRIDGE_TEST_CUDA_EMULATED=1 runs part 2's kernel tests without a GPU, on the kernels compiled
# for the CPU (tests/cuda_emulation.py) behind cuda_backend with its torch.cuda calls replaced: a
# check of these tests' own code before a GPU session (part 2 has no other way to run here).
# Tests that need CUDA itself (streams, graphs, device errors) stay marked needs_real_gpu.
EMULATED = not GPU and os.environ.get("OMEGABRIDGE_TEST_CUDA_EMULATED") == "1"
needs_real_gpu = pytest.mark.skipif(not GPU, reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
needs_no_gpu = pytest.mark.skipif(GPU, reason="checks what happens where there is no GPU")


def needs_gpu(test):
    """Part 2's mark: run on a GPU, or emulated (with the emulated kernels swapped in), else skip."""
    if EMULATED:
        return pytest.mark.usefixtures("_emulated_kernels")(test)
    return needs_real_gpu(test)


def _extension():
    """The extension module, or a skip (a failure under OMEGABRIDGE_REQUIRE_CUDA_BUILD=1)."""
    ext = cuda_backend.load()
    if ext is None:
        why = cuda_backend.extension_reason()
        if os.environ.get("OMEGABRIDGE_REQUIRE_CUDA_BUILD") == "1":
            pytest.fail(f"OMEGABRIDGE_REQUIRE_CUDA_BUILD=1 but the CUDA extension is unavailable: {why}")
        pytest.skip(f"CUDA extension not built: {why}")
    return ext


@pytest.fixture
def generator(request) -> torch.Generator:
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"{request.node.name}: input seed {seed}")
    return torch.Generator().manual_seed(seed)


# ========================================================================================
# 1. Without a GPU
# ========================================================================================
def test_the_extension_is_built_and_imports():
    ext = _extension()
    assert ext.abi == cuda_backend.ABI and ext.step_scalar_count == 5


def test_the_extension_links_neither_libtorch_nor_a_shared_cuda_runtime():
    """No libtorch: one build serves every torch release; the static runtime: it imports without a driver."""
    import shutil
    import subprocess

    ext = _extension()
    if shutil.which("objdump") is None:
        pytest.skip("objdump not found")
    headers = subprocess.run(["objdump", "-p", ext.__file__], capture_output=True, text=True, check=True).stdout
    needed = [line.split()[-1] for line in headers.splitlines() if line.strip().startswith("NEEDED")]
    assert needed and not [n for n in needed if "torch" in n or "c10" in n or "cudart" in n or n.startswith("libcuda")], needed


@needs_no_gpu
def test_backend_cuda_without_a_gpu_is_a_clear_error_and_everything_else_works():
    table = ob.Interval(0.0, 1.0).segment_table()
    expected = "no CUDA GPU is available" if cuda_backend.load() is not None else "not built"
    with pytest.raises(BackendUnavailableError, match=f"backend='cuda' cannot run: .*{expected}"):
        dispatch.step(torch.zeros(2, 1), None, table, remaining=1.0, increment=0.1, seed=0, step_index=0, backend="cuda")
    with pytest.raises(BackendUnavailableError, match="backend='cuda' cannot run"):
        ob.Bridge(ob.Binary(), steps=5).sample(None, n=2, backend="cuda", progress=False)
    assert not cuda_backend.is_available()
    # everything else: auto on CPU, the CPU kernels where built, the reference, sampling
    assert dispatch.resolve_backend("auto", torch.device("cpu")) in ("cpu", "reference")
    x = ob.Bridge(ob.Product([ob.Interval(0.0, 1.0), ob.Categorical(3)]), steps=5).sample(None, n=3, progress=False)
    assert x.shape == (3, 4)


def _plan(domain):
    ext = _extension()
    return ext, cuda_backend.load().make_layout(*_segment_arguments(domain.segment_table()))


def _segment_arguments(table):
    tensors = table.as_tensors()
    kept = [tensors["kinds"].to(torch.int32).contiguous()]
    kept += [tensors[k].to(torch.int64).contiguous() for k in ("offsets", "widths", "points", "repeats")]
    kept.append(tensors["parameters"].to(torch.float64).contiguous())
    _segment_arguments.kept = kept  # the addresses below stay valid while the test runs
    return (kept[0].numel(), *(t.data_ptr() for t in kept))


def test_bindings_reject_bad_arguments_before_any_cuda_call():
    ext, plan = _plan(DOMAINS["mixed"])
    good = dict(layout=plan, layout_address=256, z=256, drift=0, drift_storage=0, out=256, rows=4, remaining=0.5,
                increment=0.1, seed=1, step=0, row_offset=0, stream=0)
    for change, match in [
        (dict(rows=-1), "rows must be non-negative"),
        (dict(stream=-5), "stream must be a CUDA stream handle"),
        (dict(z=0), "z must be a device address, got 0"),
        (dict(out=258), "out must be a device address aligned to 4 bytes"),
        (dict(layout_address=8), "layout_address must be a device address aligned to 16 bytes"),
        (dict(drift_storage=3), "storage must be 0"),
        (dict(drift=257, drift_storage=1), "drift must be a device address aligned to 2 bytes"),
        (dict(step=2**32), r"step must be in \[0, 2\^32\)"),
        (dict(row_offset=2**48), "must lie in"),
        (dict(remaining=0.0), "remaining and increment must be > 0"),
    ]:
        with pytest.raises(ValueError, match=match):
            ext.step(**{**good, **change})
    with pytest.raises(ValueError, match="cannot run in place"):
        ext.final_step(plan, 256, 512, 0, 0, 512, 4, 0.5, 1, 0, 0, 0)
    with pytest.raises(ValueError, match="noise_stream must be"):
        ext.uniforms(256, 1, 1, 0, 0, 0, 2**16, 0)
    with pytest.raises(ValueError, match="segment 0 of the table: unknown kind 9"):
        kinds = torch.tensor([9], dtype=torch.int32)
        rest = [torch.tensor([v], dtype=torch.int64) for v in (0, 1, 1, 1)]
        parameters = torch.zeros(1, 3, dtype=F64)
        ext.make_layout(1, kinds.data_ptr(), *(t.data_ptr() for t in rest), parameters.data_ptr())


@needs_no_gpu
def test_a_cuda_call_without_a_device_raises_naming_the_call():
    ext, plan = _plan(DOMAINS["mixed"])
    with pytest.raises(RuntimeError, match=r"device_count: cudaGetDeviceCount failed: \S+"):
        ext.device_count()
    # Addresses are never dereferenced: without a device the launch itself fails.
    with pytest.raises(RuntimeError, match=r"^step: cudaLaunchKernel failed: \S+"):
        ext.step(plan, 256, 256, 0, 0, 256, 4, 0.5, 0.1, 1, 0, 0, 0)
    with pytest.raises(RuntimeError, match=r"^final_step: cudaLaunchKernel failed"):
        ext.final_step(plan, 256, 256, 0, 0, 512, 4, 0.5, 1, 0, 0, 0)


def _items(plan):
    """The work items (offset, kind, width) from the layout's bytes (they come first)."""
    host = torch.empty(plan.nbytes, dtype=torch.uint8)
    plan.write(host.data_ptr())
    raw = bytes(host[: 16 * plan.items].tolist())
    return [struct.unpack_from("<qii", raw, 16 * i) for i in range(plan.items)]


@pytest.mark.parametrize("name", list(DOMAINS))
def test_layout_gives_every_column_to_exactly_one_thread(name):
    domain = DOMAINS[name]
    _, plan = _plan(domain)
    kinds = domain.segment_table().column_kinds
    covered = torch.zeros(domain.width, dtype=torch.int64)
    for offset, kind, width in _items(plan):
        if kind == 100:  # a Philox block's elementwise columns, as a bit mask
            assert offset % 4 == 0 and 0 < width < 16
            for j in range(4):
                if width >> j & 1:
                    covered[offset + j] += 1
                    assert int(kinds[offset + j]) not in (int(Kind.CATEGORICAL), int(Kind.SPHERE))
        else:
            assert kind == int(kinds[offset]) and kind in (int(Kind.CATEGORICAL), int(Kind.SPHERE))
            covered[offset : offset + width] += 1
    assert bool((covered == 1).all()), f"{name}: columns covered {covered.tolist()}"
    assert plan.width == domain.width and plan.nbytes % 16 == 0


def test_a_field_is_unrolled_into_one_item_per_group():
    domain = ob.Product([ob.Categorical(19, shape=(8, 8)), ob.Lattice(0, 255, shape=(3, 4)), ob.Sphere(3)])
    _, plan = _plan(domain)
    # 64 categorical groups, the 12 lattice columns in 3 whole Philox blocks, the sphere (its block holds no elementwise column)
    assert plan.items == 64 + 3 + 1 and plan.widest_group == 19
    assert "groups=65" in repr(plan)


def test_cuda_graph_off_a_gpu_warns_and_gives_the_same_sample():
    bridge = ob.Bridge(ob.Product([ob.Interval(0.0, 1.0), ob.Categorical(3), ob.Lattice(0, 9)]), steps=8)

    def model(z, t):
        return 0.1 * torch.tanh(z) + t[:, None]

    expected = bridge.sample(model, n=6, seed=4, progress=False)
    with pytest.warns(RuntimeWarning, match="cuda_graph=True: sampling on cpu, not on a CUDA device; sampling without a CUDA graph"):
        graphed = bridge.sample(model, n=6, seed=4, progress=False, cuda_graph=True)
    assert torch.equal(graphed, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bridge.sample(model, n=2, seed=4, progress=False)  # no warning unless asked for a graph


# ========================================================================================
# 2. On a GPU
# ========================================================================================
DEVICE = torch.device("cuda") if GPU else torch.device("cpu") if EMULATED else None
ROWS = [1, 3, 700, 40000]


@pytest.fixture
def _emulated_kernels(monkeypatch):
    """Under OMEGABRIDGE_TEST_CUDA_EMULATED=1: the emulated extension behind cuda_backend and the launches here."""
    import cuda_emulation

    cuda_emulation.patch_backend(monkeypatch, cuda_emulation.load())
    monkeypatch.setitem(globals(), "_stream", lambda: 0)


def _rows(name: str, rows: int) -> int:
    return min(rows, 2000) if name in ("categorical4096", "categorical1000") else rows


def _case(name: str, rows: int, generator):
    domain = DOMAINS[name]
    rows = _rows(name, rows)
    return domain, rows, domain.segment_table(), states(domain, rows, generator)


def _poisoned(like: torch.Tensor) -> torch.Tensor:
    return torch.full(like.shape, NAN, dtype=torch.float32, device=DEVICE)


def _stream() -> int:
    return torch.cuda.current_stream().cuda_stream


_STORAGE = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}


def kernel_mean(table, z, s):
    """m(z, s) by a direct launch into a poisoned output (s per row)."""
    z = z.to(DEVICE).contiguous()
    out = _poisoned(z)
    s = s.reshape(-1).to(torch.float32).to(DEVICE).contiguous()
    plan, buffer = cuda_backend.layout(table, DEVICE)
    _extension().posterior_mean(plan, buffer.data_ptr(), z.data_ptr(), s.data_ptr(), out.data_ptr(), z.shape[0], _stream())
    return out.cpu()


def kernel_step(table, z, f, s, db, seed, step, row_offset=0, out=None):
    z = z.to(DEVICE)
    f = None if f is None else f.to(DEVICE)
    out = _poisoned(z) if out is None else out
    plan, buffer = cuda_backend.layout(table, DEVICE)
    _extension().step(plan, buffer.data_ptr(), z.data_ptr(), 0 if f is None else f.data_ptr(),
                      0 if f is None else _STORAGE[f.dtype], out.data_ptr(), z.shape[0], s, db, seed, step, row_offset,
                      _stream())
    return out.cpu()


def kernel_target(table, x, c, sigma, s, seed, step, row_offset=0):
    x = x.to(DEVICE)
    z_t, target = _poisoned(x), _poisoned(x)
    c, sigma, s = (v.reshape(-1).to(torch.float32).to(DEVICE).contiguous() for v in (c, sigma, s))
    plan, buffer = cuda_backend.layout(table, DEVICE)
    _extension().bridge_target(plan, buffer.data_ptr(), x.data_ptr(), _STORAGE[x.dtype], c.data_ptr(), sigma.data_ptr(),
                               s.data_ptr(), z_t.data_ptr(), target.data_ptr(), x.shape[0], seed, step, row_offset,
                               _stream())
    return z_t.cpu(), target.cpu()


def kernel_final(table, z, f, s, seed, step, row_offset=0):
    z = z.to(DEVICE)
    f = None if f is None else f.to(DEVICE)
    out = _poisoned(z)
    plan, buffer = cuda_backend.layout(table, DEVICE)
    _extension().final_step(plan, buffer.data_ptr(), z.data_ptr(), 0 if f is None else f.data_ptr(),
                            0 if f is None else _STORAGE[f.dtype], out.data_ptr(), z.shape[0], s, seed, step,
                            row_offset, _stream())
    return out.cpu()


@needs_gpu
@pytest.mark.parametrize("s", [1e-6, 0.04, 3.0])
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("name", list(DOMAINS))
def test_posterior_mean_matches_reference(name, rows, s, generator):
    domain, rows, table, z = _case(name, rows, generator)
    per_row = s * 10 ** (torch.rand(rows, 1, generator=generator) - 0.5)
    m = kernel_mean(table, z, per_row)
    exact = reference.posterior_mean(z.to(F64), table, per_row.to(F64))
    assert_within(m, exact, 1e-5 * (exact.abs() + per_row.to(F64).sqrt()), f"m on {name}")


@needs_gpu
@pytest.mark.parametrize("with_drift", [False, True])
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("name", list(DOMAINS))
def test_step_matches_reference(name, rows, with_drift, generator):
    domain, rows, table, z = _case(name, rows, generator)
    f = torch.randn(z.shape, generator=generator) * 3 if with_drift else None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    s, db = 0.37, 0.01
    out = kernel_step(table, z, f, s, db, seed, 11, row_offset=5)
    check_step(out, z, f, table, s, db, seed, 11, 5, f"step on {name}")


@needs_gpu
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("name", list(DOMAINS))
def test_bridge_target_matches_reference(name, rows, generator):
    domain = DOMAINS[name]
    rows = _rows(name, rows)
    table = domain.segment_table()
    x, c, sigma, s, seed = target_inputs(domain, rows, generator)
    z_t, target = kernel_target(table, x, c, sigma, s, seed, 7, row_offset=3)
    check_target(z_t, target, x, table, c, sigma, s, seed, 7, 3, name)


@needs_gpu
@pytest.mark.parametrize("with_drift", [False, True])
@pytest.mark.parametrize("s", [1e-4, 0.5])
@pytest.mark.parametrize("name", list(DOMAINS))
def test_final_step_matches_reference_and_lands_in_the_domain(name, s, with_drift, generator):
    domain, rows, table, z = _case(name, 4000, generator)
    f = torch.randn(z.shape, generator=generator) if with_drift else None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    out = kernel_final(table, z, f, s, seed, 99, row_offset=2)
    assert torch.isfinite(out).all(), "unwritten or non-finite output"
    assert bool(domain.contains(out).all()), "a draw left the domain"
    expected = reference.final_step(z.to(F64), None if f is None else f.to(F64), table, s, seed, 99, row_offset=2)
    agreement = factor_rows_agree(domain, out, expected, math.sqrt(s))
    assert min(agreement.values()) >= 0.995, agreement


@needs_gpu
@pytest.mark.parametrize("row_offset", [0, 2**32 - 5, 2**47 + 12345])
def test_uniforms_are_the_cpu_backends_bit_for_bit_and_normals_agree(row_offset, generator):
    rows, width = 11, 13  # an odd width: the last normal pairs with the virtual column `width`
    seed = int(torch.randint(0, 2**62, (1,), generator=generator)) * 4 + 3  # high bits set too
    step, stream = 2**31 + 7, int(torch.randint(0, 2**16, (1,), generator=generator))
    uniform = cuda_backend.uniforms(seed, step, row_offset, rows, width, stream, device=DEVICE).cpu()
    assert torch.equal(uniform, noise.uniforms(seed, step, row_offset, rows, width, stream, torch.float32))
    from omegabridge.ops import native as _native

    native = _native.load()
    if native is not None:  # the CPU backend's own uniforms (make test builds it)
        cpu = torch.empty(rows, width)
        native.uniforms(cpu.data_ptr(), rows, width, seed, step, row_offset, stream)
        assert torch.equal(uniform, cpu), "CUDA and CPU uniforms differ"
    normal = cuda_backend.normals(seed, step, row_offset, rows, width, stream, device=DEVICE).cpu()
    expected = noise.normals(seed, step, row_offset, rows, width, stream, F64)
    assert_within(normal, expected, 1e-5 * (1 + expected.abs()), "normals")


@needs_gpu
def test_step_noise_is_the_contract_stream(generator):
    table = ob.Product([ob.Real()] * 9).segment_table()
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    out = kernel_step(table, torch.zeros(40, 9), None, 1.0, 0.25, seed, 3, row_offset=2**32 - 20)
    expected = 0.5 * noise.normals(seed, 3, 2**32 - 20, 40, 9, noise.STREAM_STEP, F64)
    assert_within(out, expected, torch.full_like(expected, 1e-6) * (1 + expected.abs()), "step noise")


def _mixed(generator, rows=3000):
    domain = DOMAINS["mixed"]
    return domain, domain.segment_table(), states(domain, rows, generator)


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_inputs_equal_their_float32_copies(dtype, generator):
    domain, table, z = _mixed(generator)
    f = (torch.randn(z.shape, generator=generator) * 2).to(dtype).to(DEVICE)
    x = domain.project(torch.randn(z.shape, generator=generator) * 5).to(dtype).to(DEVICE)
    z = z.to(DEVICE)
    kwargs = dict(remaining=0.3, increment=0.01, seed=5, step_index=2, backend="cuda")
    assert torch.equal(dispatch.step(z, f, table, **kwargs), dispatch.step(z, f.float(), table, **kwargs))
    scale = torch.rand(z.shape[0], 1, generator=generator).to(DEVICE) + 0.1
    target_kwargs = dict(mean_scale=scale, noise_scale=scale, remaining=scale, seed=9, backend="cuda")
    reduced = dispatch.bridge_target(x, table, **target_kwargs)
    full = dispatch.bridge_target(x.float(), table, **target_kwargs)
    assert torch.equal(reduced[0], full[0]) and torch.equal(reduced[1], full[1])
    final = dict(remaining=0.3, seed=5, step_index=2, backend="cuda")
    assert torch.equal(dispatch.final_step(z, f, table, **final), dispatch.final_step(z, f.float(), table, **final))


@needs_gpu
def test_vector_and_scalar_loads_give_the_same_bits(generator):
    """A width that is a multiple of 4 takes 16-byte loads; the same rows one float off alignment take scalar loads."""
    domain = ob.Product([ob.HalfLine(low=0.0), ob.Interval(0.0, 1.0), ob.Lattice(0, 20), ob.Real()] * 3)
    table = domain.segment_table()
    z = states(domain, 999, generator)
    f = torch.randn(z.shape, generator=generator)
    aligned = kernel_step(table, z, f, 0.3, 0.01, 3, 1)
    shifted = torch.empty(z.numel() + 1, device=DEVICE)[1:].view(z.shape)  # 4 bytes past a 16-byte boundary
    shifted.copy_(z.to(DEVICE))
    f_shifted = torch.empty(f.numel() + 1, device=DEVICE)[1:].view(f.shape)
    f_shifted.copy_(f.to(DEVICE))
    assert shifted.data_ptr() % 16 != 0
    assert torch.equal(kernel_step(table, shifted, f_shifted, 0.3, 0.01, 3, 1), aligned)


@needs_gpu
def test_step_in_place_equals_out_of_place_and_splits_change_no_bit(generator):
    domain, table, z = _mixed(generator)
    z = z.to(DEVICE)
    kwargs = dict(remaining=0.3, increment=0.01, seed=5, step_index=2, backend="cuda")
    expected = dispatch.step(z, None, table, **kwargs)
    state = z.clone()
    assert dispatch.step(state, None, table, out=state, **kwargs) is state
    assert torch.equal(state, expected)
    cut = z.shape[0] // 3 + 1
    parts = torch.cat([dispatch.step(z[:cut], None, table, **kwargs), dispatch.step(z[cut:], None, table, row_offset=cut, **kwargs)])
    assert torch.equal(parts, expected)
    final = dict(remaining=0.2, seed=3, step_index=9, backend="cuda")
    whole = dispatch.final_step(z, None, table, **final)
    parts = torch.cat([dispatch.final_step(z[:cut], None, table, **final),
                       dispatch.final_step(z[cut:], None, table, row_offset=cut, **final)])
    assert torch.equal(whole, parts)


@needs_gpu
def test_scheduled_step_equals_the_step_with_host_scalars(generator):
    domain, table, z = _mixed(generator, rows=500)
    z = z.to(DEVICE)
    f = torch.randn(z.shape, generator=generator).to(DEVICE)
    remaining, increment = [0.9, 0.5, 0.3], [0.2, 0.1, 0.05]
    schedule = cuda_backend.step_schedule(remaining, increment, DEVICE)
    counter = torch.tensor([2], dtype=torch.int64, device=DEVICE)
    expected = dispatch.step(z, f, table, remaining=0.3, increment=0.05, seed=7, step_index=2, row_offset=11, backend="cuda")
    state = z.clone()
    dispatch.scheduled_step(state, f, table, schedule=schedule, counter=counter, seed=7, row_offset=11)
    assert torch.equal(state, expected)
    counter.fill_(3)  # past the schedule's rows: NaN, not a read past its end (memcheck would see one)
    dispatch.scheduled_step(state, f, table, schedule=schedule, counter=counter, seed=7, row_offset=11)
    assert bool(state.isnan().all())


@needs_gpu
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


@needs_real_gpu
def test_cpu_and_cuda_backends_agree_on_a_sample():
    from omegabridge.ops.backends import cpu as cpu_backend

    if not cpu_backend.is_available():
        pytest.skip("the C++ CPU extension is not built here")
    domain = ob.Product([ob.Interval(0.0, 1.0), ob.Categorical(4), ob.Lattice(0, 9), ob.HalfLine(low=0.0), ob.Sphere(3)])
    bridge = ob.Bridge(domain, ob.schedules.Exp(a=3.0, b=1.0), steps=20)
    on_cpu = bridge.sample(None, n=2000, seed=17, progress=False, backend="cpu")
    on_cuda = bridge.sample(None, n=2000, seed=17, progress=False, backend="cuda", device="cuda").cpu()
    agreement = factor_rows_agree(domain, on_cuda, on_cpu.to(F64), 1.0)
    assert min(agreement.values()) >= 0.99, agreement


class _Drift(torch.nn.Module):
    """Elementwise, so eager and replayed evaluations give the same bits (a matmul's algorithm may
    depend on the stream's workspace)."""

    def __init__(self, width: int, sync: bool = False):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.linspace(-0.2, 0.2, width))
        self.sync = sync

    def forward(self, z, t):
        if self.sync:
            float(t[0])  # a host synchronisation: cannot be captured
        return self.scale * torch.tanh(z) * (1.0 - t[:, None])


@needs_real_gpu
@pytest.mark.parametrize("batch_size", [300, 1000])
def test_cuda_graph_sample_equals_the_eager_sample(batch_size):
    torch.manual_seed(0)
    domain = DOMAINS["mixed"]
    model = _Drift(domain.width).to(DEVICE)
    bridge = ob.Bridge(domain, steps=30)
    eager = bridge.sample(model, n=700, seed=5, progress=False, device="cuda", backend="cuda", batch_size=batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graphed = bridge.sample(model, n=700, seed=5, progress=False, device="cuda", backend="cuda",
                                batch_size=batch_size, cuda_graph=True)
    assert torch.equal(graphed, eager)
    assert bool(domain.contains(graphed.cpu()).all())


@needs_real_gpu
def test_cuda_graph_falls_back_with_a_warning_when_the_model_cannot_be_captured():
    torch.manual_seed(0)
    domain = ob.Product([ob.Interval(0.0, 1.0), ob.Categorical(5)])
    model = _Drift(domain.width, sync=True).to(DEVICE)
    bridge = ob.Bridge(domain, steps=10)
    eager = bridge.sample(model, n=50, seed=2, progress=False, device="cuda", backend="cuda")
    stream = torch.cuda.current_stream()
    with pytest.warns(RuntimeWarning, match="capturing a sampling step failed"):
        graphed = bridge.sample(model, n=50, seed=2, progress=False, device="cuda", backend="cuda", cuda_graph=True)
    assert torch.equal(graphed, eager)
    assert torch.cuda.current_stream() == stream  # the failed capture's stream is not left current


@needs_real_gpu
def test_a_tables_first_use_inside_a_graph_capture_is_a_clear_error():
    table = ob.Product([ob.HalfLine(low=0.0), ob.Categorical(3)]).segment_table()
    z = torch.randn(8, 4, device=DEVICE)
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="first time inside a CUDA-graph capture"):
        with torch.cuda.graph(graph):
            dispatch.step(z, None, table, remaining=0.5, increment=0.1, seed=0, step_index=0, backend="cuda", out=z)


@needs_real_gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_cuda_graph_sample_on_a_second_gpu_equals_the_eager_sample():
    torch.manual_seed(0)
    domain = DOMAINS["mixed"]
    model = _Drift(domain.width).to("cuda:1")
    bridge = ob.Bridge(domain, steps=12)
    eager = bridge.sample(model, n=64, seed=3, progress=False, device="cuda:1", backend="cuda")
    graphed = bridge.sample(model, n=64, seed=3, progress=False, device="cuda:1", backend="cuda", cuda_graph=True)
    assert torch.equal(graphed, eager)


@needs_real_gpu
def test_a_non_finite_drift_on_a_gpu_is_reported_once_per_batch():
    bridge = ob.Bridge(ob.Interval(0.0, 1.0), steps=10)
    with pytest.raises(ob.errors.ModelOutputError, match="non-finite values at some step"):
        bridge.sample(lambda z, t: torch.full_like(z, NAN), n=4, progress=False, device="cuda", backend="cuda")


@needs_real_gpu
def test_cuda_backend_refuses_float64_and_cpu_tensors_with_clear_errors():
    table = ob.HalfLine(low=0.0).segment_table()
    with pytest.raises(BackendUnavailableError, match="float32"):
        dispatch.step(torch.zeros(2, 1, dtype=F64, device=DEVICE), None, table, remaining=1.0, increment=0.1,
                      seed=0, step_index=0, backend="cuda")
    with pytest.raises(BackendUnavailableError, match="CUDA tensors"):
        dispatch.step(torch.zeros(2, 1), None, table, remaining=1.0, increment=0.1, seed=0, step_index=0, backend="cuda")
