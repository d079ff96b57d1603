"""What is particular to the fused Triton kernels (kernels/, backend="triton").

Their contract with the torch reference is tests/test_kernel_contract.py, shared by every backend
(on a GPU compiled at full size, else in Triton's CPU interpreter, TRITON_INTERPRET=1 set in
conftest.py). Here: the Philox building block of kernels/philox.py gives the contract's uniforms
bit for bit and its normals to 1e-5 across the 2^32 row carry; row-strided inputs are read in
place; the GPU's tile sizes on groups wider than a tile; the plan covers every column once; and
the dispatch and error paths of backend="triton".
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers, also under --import-mode=importlib
from kernel_cases import DOMAINS, F64, assert_within, check_step, factor_rows_agree, states  # noqa: E402
from triton_helpers import on_gpu, require_triton  # noqa: E402

DEVICE = require_triton()

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import omegabridge as ob  # noqa: E402
from omegabridge.core.noise import NoiseAddress  # noqa: E402
from omegabridge import ops as dispatch, reference  # noqa: E402
from omegabridge.core import noise
from omegabridge.ops.backends import triton as triton_backend
from omegabridge.errors import BackendUnavailableError  # noqa: E402
from omegabridge.kernels import bridge, final_step, philox, special  # noqa: E402
from omegabridge.core.segments import Kind  # noqa: E402
from omegabridge.kernels.plan import (FIRST_ALIGNED_CLASS, FIRST_GROUP_CLASS, FIRST_SMALL_GROUP_CLASS_INDEX,  # noqa: E402
                                      SINGLE_COLUMN_CLASS, SMALL_GROUP_WIDTH, TILE_WIDTHS, build_plan, small_group_class)

NAN = float("nan")


def _poisoned(like: torch.Tensor) -> torch.Tensor:
    return torch.full(like.shape, NAN, dtype=torch.float32, device=DEVICE)


def kernel_step(table, z, f, s, db, seed, step, row_offset=0):
    z = z.to(DEVICE)
    out = _poisoned(z)
    bridge.launch(bridge.STEP.value, build_plan(table, DEVICE), z, drift=None if f is None else f.to(DEVICE), out=out,
                  remaining=s, increment=db, address=NoiseAddress(seed, step, row_offset))
    return out.cpu()


def kernel_final(table, z, f, s, seed, step, row_offset=0):
    z = z.to(DEVICE)
    out = _poisoned(z)
    final_step.launch(build_plan(table, DEVICE), z, None if f is None else f.to(DEVICE), out, s, NoiseAddress(seed, step, row_offset))
    return out.cpu()


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


@triton.jit
def _lone_column_normal_kernel(normal_ptr, rows, width, seed_low, seed_high, step, stream):
    """The normals of column program_id(0), computed as the lone-column tiles of kernels/plan.py do (BLOCK = 1)."""
    column = tl.program_id(0)
    local = tl.arange(0, 16)[:, None]
    row_low, row_high = philox.global_rows(local, 0, 0)
    n = philox.normals(seed_low, seed_high, step, row_low, row_high, stream, column, 1)
    tl.store(normal_ptr + local * width + column, n, mask=local < rows)


def test_a_lone_column_draws_the_normal_of_its_place_in_the_block(generator):
    rows, width = 16, 13
    seed, step, stream = int(torch.randint(0, 2**62, (1,), generator=generator)), 5, 0
    normal = torch.full((rows, width), NAN, device=DEVICE)
    _lone_column_normal_kernel[(width,)](normal, rows, width, seed & 0xFFFFFFFF, seed >> 32, step, stream)
    expected = noise.normals(seed, step, 0, rows, width, stream, F64)
    assert_within(normal.cpu(), expected, torch.full_like(expected, 1e-5) * (1 + expected.abs()), "lone-column normals")


@triton.jit
def _noise_transform_kernel(u_ptr, out_ptr, count, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < count
    u = tl.load(u_ptr + offsets, mask=mask, other=1.0)
    sine, cosine = special.noise_sincos_two_pi(u)
    tl.store(out_ptr + offsets, special.square_root(-2.0 * special.noise_log(u)), mask=mask)
    tl.store(out_ptr + count + offsets, sine, mask=mask)
    tl.store(out_ptr + 2 * count + offsets, cosine, mask=mask)


def test_64_bit_offsets_give_the_32_bit_offsets_result(monkeypatch, generator):
    """Rows strided so far apart that 32-bit offsets within a program would overflow take the
    WIDE_OFFSETS path; forced here on ordinary rows, it must give the same step bit for bit."""
    domain, table, z = _mixed(generator, rows=40)
    z = z.to(DEVICE)
    f = torch.randn(z.shape, generator=generator).to(DEVICE)
    plan = build_plan(table, DEVICE)
    outputs = []
    for limit in (bridge.THIRTY_TWO_BIT_OFFSETS_BELOW, 0):
        monkeypatch.setattr(bridge, "THIRTY_TWO_BIT_OFFSETS_BELOW", limit)
        out = _poisoned(z)
        bridge.launch(bridge.STEP.value, plan, z, drift=f, out=out, remaining=0.3, increment=0.01, address=NoiseAddress(5, 2))
        outputs.append(out.cpu())
    assert not outputs[0].isnan().any(), "an element of the step was not written"
    assert torch.equal(outputs[0], outputs[1])


def test_noise_transforms_are_within_their_bound():
    """The Box-Muller radius and sin/cos of every uniform (on a GPU, with its approximate
    instructions; on the CPU the 2^20 uniforms at either end and 2^20 between, with the
    polynomials) against float64: the error bounds of docs/noise.md, "Normals on a GPU"."""
    points = 1 << 24  # the uniforms are k 2^-24, k = 1 .. 2^24
    if on_gpu():
        k = torch.arange(1, points + 1, dtype=torch.float64)
    else:
        edge = 1 << 20
        k = torch.cat([torch.arange(1, edge + 1), torch.arange(points - edge + 1, points + 1),
                       torch.linspace(edge + 1, points - edge, edge).round()]).to(torch.float64)
    u64 = k * 2.0**-24
    u = u64.to(torch.float32).to(DEVICE)  # exact
    out = torch.full((3 * u.numel(),), NAN, device=DEVICE)
    block = 1024 if on_gpu() else 1 << 20  # the largest tensor Triton allows
    _noise_transform_kernel[(triton.cdiv(u.numel(), block),)](u, out, u.numel(), BLOCK=block)
    radius, sine, cosine = out.cpu().to(torch.float64).reshape(3, -1)
    radius64 = torch.sqrt(-2.0 * torch.log(u64))
    radius_error = ((radius - radius64).abs() / radius64.clamp_min(2.0**-12)).max().item()  # relative, ~absolute near 0
    trig_error = max((sine - torch.sin(2 * math.pi * u64)).abs().max().item(),
                     (cosine - torch.cos(2 * math.pi * u64)).abs().max().item())
    worst_normal = radius_error * radius64.max().item() + radius64.max().item() * trig_error
    print(f"noise transforms on {DEVICE}: radius relative error {radius_error:.3g}, sin/cos absolute error "
          f"{trig_error:.3g}, a normal's error at most {worst_normal:.3g}")
    assert radius_error <= 3e-6, f"radius relative error {radius_error:.3g} above the bound 3e-6 of docs/noise.md"
    assert trig_error <= 2.0**-20, f"sin/cos absolute error {trig_error:.3g} above the bound 2^-20 of docs/noise.md"
    assert worst_normal <= 1e-5, f"a normal's error could reach {worst_normal:.3g}, above the contract's 1e-5"


# ----------------------------------------------------------------------------------------
# Strides, launch settings
# ----------------------------------------------------------------------------------------
def _mixed(generator, rows=None):
    domain = DOMAINS["mixed"]
    return domain, domain.segment_table(), states(domain, rows or (3000 if on_gpu() else 60), generator)


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
            if item_class == SINGLE_COLUMN_CLASS:
                assert end - start == 1, f"{name}: item {start}..{end} in the lone-column class"
            elif item_class >= FIRST_SMALL_GROUP_CLASS_INDEX:  # the class names the width and the first column % 4
                assert kind == int(Kind.CATEGORICAL) and 1 <= end - start <= SMALL_GROUP_WIDTH, name
                assert not (start % 4 == 0 and (end - start) % 4 == 0), f"{name}: whole Philox blocks in a small class"
                assert item_class == small_group_class(start, end), name
                assert (item_class - FIRST_SMALL_GROUP_CLASS_INDEX) // 4 + 1 == end - start, name
                assert (item_class - FIRST_SMALL_GROUP_CLASS_INDEX) % 4 == start % 4, name
            else:
                assert end - (start - start % 4) <= (TILE_WIDTHS.value + (10**9,))[item_class], name
            if FIRST_ALIGNED_CLASS.value <= item_class < FIRST_GROUP_CLASS.value:  # vector loads assume this
                assert start % 4 == 0 and end % 4 == 0, f"{name}: item {start}..{end} in an aligned class"
            elif item_class < FIRST_ALIGNED_CLASS.value:
                assert start % 4 != 0 or end % 4 != 0, f"{name}: aligned item {start}..{end} in an unaligned class"
        assert bool((covered == 1).all()), f"{name}: columns covered {covered.tolist()}"
