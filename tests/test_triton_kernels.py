"""The fused Triton kernels (kernels/, backend="triton") against the torch reference.

On a GPU they run compiled, at full size; without one they run in Triton's CPU interpreter
(TRITON_INTERPRET=1, set in conftest.py) at reduced row counts, which checks the same code.
Every kernel runs on fresh random inputs (a new seed per run, printed on failure) for every
domain and a mixed layout, with its outputs poisoned (NaN) before the launch so an element
the kernel forgets to write shows. Tolerances, against the float64 reference, are those of
the CPU kernels (tests/test_cpu_kernels.py):

* posterior mean: |m - m64| <= 1e-5 (|m64| + sqrt(s)) (bridge-math.md section 2);
* step: that bound carried through z + db [(m - z)/s + f] + sqrt(db) xi, plus rounding;
* training target: z_t to float rounding; the target against the reference at the kernel's z_t;
* exact last step: every row in the domain; draws equal to the reference's with the same
  uniforms in at least 99.5% of rows per factor.

The noise is the contract's: uniforms equal to the torch reference's bit for bit, normals to
1e-5, across the 2^32 row carry. Reduced-precision f and x give the bits of their float32
copies; strided rows need no copy; splitting rows over calls changes no bit.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers, also under --import-mode=importlib
from kernel_cases import DOMAINS, F64, assert_within, check_step, check_target, factor_rows_agree, states, target_inputs  # noqa: E402
from triton_helpers import on_gpu, require_triton  # noqa: E402

DEVICE = require_triton()

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import omegabridge as ob  # noqa: E402
from omegabridge.core.noise import NoiseAddress  # noqa: E402
from omegabridge.core.segments import Kind  # noqa: E402
from omegabridge import ops as dispatch, reference  # noqa: E402
from omegabridge.core import noise
from omegabridge.ops.backends import triton as triton_backend
from omegabridge.errors import BackendUnavailableError  # noqa: E402
from omegabridge.kernels import bridge, final_step, philox  # noqa: E402
from omegabridge.kernels.plan import ELEMENTWISE_BLOCKS, GROUP_BLOCKS, build_plan  # noqa: E402

NAN = float("nan")
# The interpreter runs each program in Python: a few hundred rows per case keep the suite quick.
ROWS = [1, 3, 700, 40000] if on_gpu() else [3, 150]
FINAL_ROWS = 4000 if on_gpu() else 300


@pytest.fixture
def generator(request) -> torch.Generator:
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"{request.node.name}: input seed {seed}")
    return torch.Generator().manual_seed(seed)


def _rows(name: str, rows: int) -> int:
    return min(rows, 2000 if on_gpu() else 8) if name in ("categorical4096", "categorical1000") else rows


def _poisoned(like: torch.Tensor) -> torch.Tensor:
    return torch.full(like.shape, NAN, dtype=torch.float32, device=DEVICE)


def kernel_mean(table, z, s):
    """m(z, s) by a direct launch into a poisoned output (s per row)."""
    z = z.to(DEVICE)
    out = _poisoned(z)
    s = s.reshape(-1).to(torch.float32).to(DEVICE).contiguous()
    bridge.launch(bridge.MEAN.value, build_plan(table, DEVICE), z, out=out, remaining_rows=s)
    return out.cpu()


def kernel_step(table, z, f, s, db, seed, step, row_offset=0):
    z = z.to(DEVICE)
    out = _poisoned(z)
    bridge.launch(bridge.STEP.value, build_plan(table, DEVICE), z, drift=None if f is None else f.to(DEVICE), out=out,
                  remaining=s, increment=db, address=NoiseAddress(seed, step, row_offset))
    return out.cpu()


def kernel_target(table, x, c, sigma, s, seed, step, row_offset=0):
    x = x.to(DEVICE)
    z_t, target = _poisoned(x), _poisoned(x)
    c, sigma, s = (v.reshape(-1).to(torch.float32).to(DEVICE).contiguous() for v in (c, sigma, s))
    bridge.launch(bridge.TARGET.value, build_plan(table, DEVICE), x, out=z_t, target=target, remaining_rows=s,
                  mean_scale_rows=c, noise_scale_rows=sigma, address=NoiseAddress(seed, step, row_offset))
    return z_t.cpu(), target.cpu()


def kernel_final(table, z, f, s, seed, step, row_offset=0):
    z = z.to(DEVICE)
    out = _poisoned(z)
    final_step.launch(build_plan(table, DEVICE), z, None if f is None else f.to(DEVICE), out, s, NoiseAddress(seed, step, row_offset))
    return out.cpu()


def _case(name: str, rows: int, generator):
    domain = DOMAINS[name]
    rows = _rows(name, rows)
    return domain, rows, domain.segment_table(), states(domain, rows, generator)


# ----------------------------------------------------------------------------------------
# Against the reference
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("s", [1e-6, 3.0])
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("name", list(DOMAINS))
def test_posterior_mean_matches_reference(name, rows, s, generator):
    domain, rows, table, z = _case(name, rows, generator)
    per_row = s * 10 ** (torch.rand(rows, 1, generator=generator) - 0.5)
    m = kernel_mean(table, z, per_row)
    exact = reference.posterior_mean(z.to(F64), table, per_row.to(F64))
    assert_within(m, exact, 1e-5 * (exact.abs() + per_row.to(F64).sqrt()), f"m on {name}")


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("name", list(DOMAINS))
def test_step_matches_reference(name, rows, generator):
    with_drift = ROWS.index(rows) % 2 == 1  # with and without drift, alternating over the row counts (the interpreter is slow)
    domain, rows, table, z = _case(name, rows, generator)
    f = torch.randn(z.shape, generator=generator) * 3 if with_drift else None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    s, db = 0.37, 0.01
    out = kernel_step(table, z, f, s, db, seed, 11, row_offset=5)
    check_step(out, z, f, table, s, db, seed, 11, 5, f"step on {name}")


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("name", list(DOMAINS))
def test_bridge_target_matches_reference(name, rows, generator):
    domain = DOMAINS[name]
    rows = _rows(name, rows)
    table = domain.segment_table()
    x, c, sigma, s, seed = target_inputs(domain, rows, generator)
    z_t, target = kernel_target(table, x, c, sigma, s, seed, 7, row_offset=3)
    check_target(z_t, target, x, table, c, sigma, s, seed, 7, 3, name)


@pytest.mark.parametrize("s", [1e-4, 0.5])
@pytest.mark.parametrize("name", list(DOMAINS))
def test_final_step_matches_reference_and_lands_in_the_domain(name, s, generator):
    domain, rows, table, z = _case(name, FINAL_ROWS, generator)
    f = torch.randn(z.shape, generator=generator) if s > 0.1 else None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    out = kernel_final(table, z, f, s, seed, 99, row_offset=2)
    assert torch.isfinite(out).all(), "unwritten or non-finite output"
    assert bool(domain.contains(out).all()), "a draw left the domain"
    expected = reference.final_step(z.to(F64), None if f is None else f.to(F64), table, s, seed, 99, row_offset=2)
    agreement = factor_rows_agree(domain, out, expected, math.sqrt(s))
    assert min(agreement.values()) >= 0.995, agreement


# ----------------------------------------------------------------------------------------
# The noise contract
# ----------------------------------------------------------------------------------------
@triton.jit
def _noise_tile_kernel(uniform_ptr, normal_ptr, rows, width, seed_low, seed_high, step, offset_low, offset_high,
                       stream, BLOCK: tl.constexpr, ROWS_BLOCK: tl.constexpr):
    local = tl.program_id(0) * ROWS_BLOCK + tl.arange(0, ROWS_BLOCK)[:, None]
    first_column = tl.program_id(1) * BLOCK
    columns = first_column + tl.arange(0, BLOCK)[None, :]
    mask = (local < rows) & (columns < width)
    row_low, row_high = philox.global_rows(local, offset_low, offset_high)
    u = philox.uniforms(seed_low, seed_high, step, row_low, row_high, stream, first_column, BLOCK)
    n = philox.normals(seed_low, seed_high, step, row_low, row_high, stream, first_column, BLOCK)
    tl.store(uniform_ptr + local * width + columns, u, mask=mask)
    tl.store(normal_ptr + local * width + columns, n, mask=mask)


@pytest.mark.parametrize("row_offset", [0, 2**32 - 5, 2**47 + 12345])
def test_uniforms_and_normals_are_the_contract_stream(row_offset, generator):
    rows, width = 11, 13  # an odd width: the last normal pairs with the virtual column `width`
    seed = int(torch.randint(0, 2**62, (1,), generator=generator)) * 4 + 3  # high bits set too
    step, stream = 2**31 + 7, int(torch.randint(0, 2**16, (1,), generator=generator))
    uniform = torch.full((rows, width), NAN, device=DEVICE)
    normal = torch.full((rows, width), NAN, device=DEVICE)
    _noise_tile_kernel[(triton.cdiv(rows, 8), triton.cdiv(width, 8))](
        uniform, normal, rows, width, seed & 0xFFFFFFFF, seed >> 32, step, row_offset & 0xFFFFFFFF, row_offset >> 32,
        stream, BLOCK=8, ROWS_BLOCK=8,
    )
    expected_uniform = noise.uniforms(seed, step, row_offset, rows, width, stream, torch.float32)
    assert torch.equal(uniform.cpu(), expected_uniform), "uniforms differ from the torch reference's bits"
    expected_normal = noise.normals(seed, step, row_offset, rows, width, stream, F64)
    assert_within(normal.cpu(), expected_normal, torch.full_like(expected_normal, 1e-5) * (1 + expected_normal.abs()), "normals")


def test_step_noise_is_the_contract_stream(generator):
    """A Real layout with z = 0 and no drift steps to sqrt(db) xi: xi is stream 0 of the contract."""
    table = ob.Product([ob.Real()] * 9).segment_table()
    rows = 40
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    out = kernel_step(table, torch.zeros(rows, 9), None, 1.0, 0.25, seed, 3, row_offset=2**32 - 20)
    expected = 0.5 * noise.normals(seed, 3, 2**32 - 20, rows, 9, noise.STREAM_STEP, F64)
    assert_within(out, expected, torch.full_like(expected, 1e-6) * (1 + expected.abs()), "step noise")


# ----------------------------------------------------------------------------------------
# Dtypes, strides, in place, splits
# ----------------------------------------------------------------------------------------
def _mixed(generator, rows=None):
    domain = DOMAINS["mixed"]
    return domain, domain.segment_table(), states(domain, rows or (3000 if on_gpu() else 60), generator)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_inputs_equal_their_float32_copies(dtype, generator):
    domain, table, z = _mixed(generator)
    f = (torch.randn(z.shape, generator=generator) * 2).to(dtype)
    x = domain.project(torch.randn(z.shape, generator=generator) * 5).to(dtype)
    z, f, x = z.to(DEVICE), f.to(DEVICE), x.to(DEVICE)
    kwargs = dict(remaining=0.3, increment=0.01, seed=5, step_index=2, backend="triton")
    assert torch.equal(dispatch.step(z, f, table, **kwargs), dispatch.step(z, f.float(), table, **kwargs))
    rows = z.shape[0]
    scale = torch.rand(rows, 1, generator=generator).to(DEVICE) + 0.1
    target_kwargs = dict(mean_scale=scale, noise_scale=scale, remaining=scale, seed=9, backend="triton")
    reduced = dispatch.bridge_target(x, table, **target_kwargs)
    full = dispatch.bridge_target(x.float(), table, **target_kwargs)
    assert torch.equal(reduced[0], full[0]) and torch.equal(reduced[1], full[1])
    final = dict(remaining=0.3, seed=5, step_index=2, backend="triton")
    assert torch.equal(dispatch.final_step(z, f, table, **final), dispatch.final_step(z, f.float(), table, **final))


def test_strided_rows_are_read_in_place_and_give_the_contiguous_result(generator):
    domain, table, z = _mixed(generator)
    wide = torch.randn(z.shape[0], z.shape[1] + 7, generator=generator)
    wide[:, 3 : 3 + z.shape[1]] = z
    view = wide.to(DEVICE)[:, 3 : 3 + z.shape[1]]  # row stride width + 7, columns contiguous
    assert triton_backend.BACKEND.stored(view) is view, "a row-strided input was copied"
    f = torch.randn(z.shape, generator=generator).to(DEVICE)
    kwargs = dict(remaining=0.3, increment=0.01, seed=5, step_index=2, backend="triton")
    assert torch.equal(dispatch.step(view, f, table, **kwargs), dispatch.step(view.contiguous(), f, table, **kwargs))
    s = torch.full((z.shape[0], 1), 0.2, device=DEVICE)
    assert torch.equal(dispatch.posterior_mean(view, table, s, backend="triton"),
                       dispatch.posterior_mean(view.contiguous(), table, s, backend="triton"))


def test_step_in_place_equals_out_of_place(generator):
    domain, table, z = _mixed(generator)
    z = z.to(DEVICE)
    kwargs = dict(remaining=0.3, increment=0.01, seed=5, step_index=2, backend="triton")
    expected = dispatch.step(z, None, table, **kwargs)
    state = z.clone()
    assert dispatch.step(state, None, table, out=state, **kwargs) is state
    assert torch.equal(state, expected)


def test_outputs_do_not_depend_on_how_rows_are_split(generator):
    domain, table, z = _mixed(generator)
    z = z.to(DEVICE)
    rows = z.shape[0]
    cut = rows // 3 + 1
    whole = dispatch.final_step(z, None, table, remaining=0.2, seed=3, step_index=9, backend="triton")
    parts = torch.cat([
        dispatch.final_step(z[:cut], None, table, remaining=0.2, seed=3, step_index=9, backend="triton"),
        dispatch.final_step(z[cut:], None, table, remaining=0.2, seed=3, step_index=9, row_offset=cut, backend="triton"),
    ])
    assert torch.equal(whole, parts)
    step = dict(remaining=0.3, increment=0.01, seed=5, step_index=2, backend="triton")
    whole = dispatch.step(z, None, table, **step)
    parts = torch.cat([dispatch.step(z[:cut], None, table, **step), dispatch.step(z[cut:], None, table, row_offset=cut, **step)])
    assert torch.equal(whole, parts)


def test_cpu_and_triton_backends_agree_on_a_sample(generator):
    """The same seed gives the same sample on the C++ CPU kernels and on Triton (draws to float rounding)."""
    from omegabridge.ops.backends import cpu as cpu_backend

    if not cpu_backend.is_available():
        pytest.skip("the C++ extension is not built here")  # make test requires it in test_cpu_kernels
    domain = ob.Product([ob.Interval(0.0, 1.0), ob.Categorical(4), ob.Lattice(0, 9), ob.HalfLine(low=0.0)])
    bridge_ = ob.Bridge(domain, ob.schedules.Exp(a=3.0, b=1.0), steps=20)
    rows = 200
    on_cpu = bridge_.sample(None, n=rows, seed=17, progress=False, backend="cpu")
    on_triton = bridge_.sample(None, n=rows, seed=17, progress=False, backend="triton", device=DEVICE).cpu()
    agreement = factor_rows_agree(domain, on_triton, on_cpu.to(F64), 1.0)
    assert min(agreement.values()) >= 0.99, agreement


@pytest.mark.parametrize("tile", [512, 1024])
def test_gpu_launch_settings_match_the_reference(tile, monkeypatch, generator):
    """The GPU's tile sizes (smaller than the interpreter's) on a layout mixing kinds with groups
    wider than a tile: a tile of 512 gives a 1024-wide group one row per iteration."""
    if not on_gpu():
        monkeypatch.setattr(bridge, "INTERPRETER_SETTINGS", {"ROWS_PER_PROGRAM": 256, "TILE": tile})
    else:
        monkeypatch.setitem(bridge.GPU_SETTINGS, "TILE", tile)
    domain = ob.Product([ob.HalfLine(low=0.0), ob.Categorical(1000), ob.Lattice(0, 20), ob.Categorical(1500), ob.Sphere(3)])
    table = domain.segment_table()
    z = states(domain, 6, generator)
    check_step(kernel_step(table, z, None, 0.37, 0.01, 77, 4), z, None, table, 0.37, 0.01, 77, 4, 0, f"step with tile {tile}")
    final = kernel_final(table, z, None, 0.2, 77, 5)
    assert bool(domain.contains(final).all()), "a draw left the domain"
    agreement = factor_rows_agree(domain, final, reference.final_step(z.to(F64), None, table, 0.2, 77, 5), math.sqrt(0.2))
    assert min(agreement.values()) >= 0.83, agreement  # 6 rows: at most one may split a boundary differently


@pytest.mark.parametrize("bad", [0.0, -0.5, float("inf"), float("nan")])
def test_a_row_with_an_invalid_s_gets_nan_not_finite_numbers(bad, generator):
    """On a GPU per-row s is not checked on the host (it would synchronise): the kernel marks the row instead."""
    domain = DOMAINS["mixed"]
    table = domain.segment_table()
    z = states(domain, 5, generator)
    s = torch.full((5, 1), 0.3)
    s[2] = bad
    m = kernel_mean(table, z, s)
    depends_on_s = table.column_kinds != int(Kind.REAL)  # m = z on Real columns
    assert torch.isnan(m[2, depends_on_s]).all() and torch.isfinite(m[[0, 1, 3, 4]]).all()
    x = domain.project(z)
    z_t, target = kernel_target(table, x, torch.full((5, 1), 0.5), torch.full((5, 1), 0.5), s, 3, 1)
    assert torch.isnan(target[2]).all() and torch.isfinite(target[[0, 1, 3, 4]]).all()
    assert torch.isfinite(z_t).all(), "z_t = c x + sigma eps does not depend on s"


# ----------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------
def test_triton_backend_refuses_float64_with_a_clear_error():
    table = ob.HalfLine(low=0.0).segment_table()
    with pytest.raises(BackendUnavailableError, match="float32"):
        dispatch.step(torch.zeros(2, 1, dtype=F64, device=DEVICE), None, table, remaining=1.0, increment=0.1,
                      seed=0, step_index=0, backend="triton")


def test_triton_on_cpu_tensors_without_the_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    table = ob.HalfLine(low=0.0).segment_table()
    with pytest.raises(BackendUnavailableError, match="CUDA tensors"):
        dispatch.step(torch.zeros(2, 1), None, table, remaining=1.0, increment=0.1, seed=0, step_index=0, backend="triton")


def test_auto_picks_triton_for_float32_cuda_tensors():
    assert dispatch.resolve_backend("auto", torch.device("cuda"), torch.float32) == "triton"
    assert dispatch.resolve_backend("auto", torch.device("cuda"), F64) == "reference"


def test_exact_last_step_of_a_very_wide_sphere_is_refused_clearly():
    table = ob.Sphere(1500).segment_table()
    with pytest.raises(BackendUnavailableError, match="wider than 1021"):
        dispatch.final_step(torch.zeros(1, 1500, device=DEVICE), None, table, remaining=1.0, seed=0, step_index=0,
                            backend="triton")


def test_plan_covers_every_column_once():
    for name, domain in DOMAINS.items():
        plan = build_plan(domain.segment_table(), "cpu")
        covered = torch.zeros(domain.width, dtype=torch.int64)
        for kind, start, end, item_class in plan.items.tolist():
            covered[start:end] += 1
            assert end - (start - start % 4) <= (ELEMENTWISE_BLOCKS + GROUP_BLOCKS + (10**9,))[item_class], name
        assert bool((covered == 1).all()), f"{name}: columns covered {covered.tolist()}"
