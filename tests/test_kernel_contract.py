"""The kernel contract, one suite for every backend: each kernel against the float64 torch reference.

Backends: ``reference`` (the torch reference itself, run in float32), ``cpu`` (the C++ kernels),
``triton`` (compiled on a GPU, else in Triton's CPU interpreter), ``cuda-emulated`` (the CUDA
kernels' own code compiled for the CPU, tests/cuda_emulation.py, behind the real
``omegabridge.ops.backends.cuda`` with its four torch.cuda calls replaced) and ``cuda`` (on a GPU).
Each backend's kernels are launched through its ``launch_*`` methods, the layer under the public
ops, into outputs poisoned with NaN so an element a kernel forgets to write shows. Inputs are fresh
random ones (a new seed per run, printed on failure) for every domain and a mixed layout.

Tolerances, against the float64 reference (kernel_cases.py states them as code):

* posterior mean: |m - m64| <= 1e-5 (|m64| + sqrt(s)) (bridge-math.md section 2);
* step: that bound carried through z + db [(m - z)/s + f] + sqrt(db) xi, plus rounding of each term;
* training target: z_t to float rounding; the target against the reference evaluated at the
  kernel's own z_t (a rounding change of z_t moves m by up to dm/dz = Var/s times it);
* exact last step: every row in the domain; draws equal to the reference's with the same uniforms
  in at least 99.5% of rows per factor (float32 vs float64 inverse CDFs may split a rare draw that
  falls on a boundary differently);
* noise: the step's noise is stream 0 of the contract to 1e-6 relative; the CUDA kernels' uniforms
  equal the reference's (and the CPU backend's) bit for bit, normals to 1e-5.

Bit-identities every backend keeps: reduced-precision drift or data gives the bits of its float32
copy; in place equals out of place; any split of the rows over calls, and aligned or misaligned
buffers, change no bit. A row with an invalid s gets NaN in the columns that depend on s.

Row counts are per backend (``SPECS``): the interpreter and the emulation run Python or a single
host thread per launch, so they check the same code on fewer rows than a GPU does. What is
particular to one backend (threads, launch settings, bindings, CUDA graphs) lives in
test_cpu_kernels.py, test_triton_kernels.py and test_cuda_kernels.py.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import omegabridge as ob
from omegabridge import ops, reference
from omegabridge.core import noise
from omegabridge.core.noise import NoiseAddress
from omegabridge.core.segments import Kind

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers, also under --import-mode=importlib
from kernel_cases import DOMAINS, F64, assert_within, check_bridge_step, check_step, check_target, factor_rows_agree, states, target_inputs  # noqa: E402

NAN = float("nan")
GPU = torch.cuda.is_available()
F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16
WIDE = ("categorical4096", "categorical1000")  # the widest groups: fewer rows where a launch is slow


@dataclass(frozen=True)
class Spec:
    """What one backend is asked: the cases each contract test runs on it."""

    mean_cases: tuple  # (rows, s)
    step_cases: tuple  # (rows, drift dtype or None)
    target_rows: tuple
    final_cases: tuple  # (rows, s, with drift)
    wide_rows: int  # at most this many rows for the domains in WIDE (categorical4096 on cpu/reference)
    wide: tuple = WIDE
    target_reduced: tuple = ()  # storage dtypes of x checked bit for bit against their float32 copy per case
    reduced: tuple = (BF16, F16)  # storage dtypes checked through the public ops
    mixed_rows: int = 300
    cuts: tuple = (1, 37)
    device: str = "cpu"
    z_t_relative: float = 1e-6  # z_t = c x + sigma eps to this relative error


def _product(rows, values):
    return tuple((r, v) for r in rows for v in values)


def _finals(rows, cases):
    return tuple((rows, s, drift) for s, drift in cases)


BOTH_FINALS = ((1e-4, False), (1e-4, True), (0.5, False), (0.5, True))
GPU_ROWS = (1, 3, 700, 40000)
SPECS = {
    "reference": Spec(
        mean_cases=_product((3, 150), (1e-6, 0.04, 3.0)), step_cases=_product((3, 150), (None, F32)), target_rows=(3, 150),
        final_cases=_finals(300, BOTH_FINALS), wide_rows=64, wide=("categorical4096",), reduced=(),
        z_t_relative=1e-5,  # its float32 normals are torch's log/sin/cos: the noise contract's 1e-5, not the kernels' 1e-6
    ),
    "cpu": Spec(
        mean_cases=_product((1, 3, 700), (1e-6, 0.04, 3.0)), step_cases=_product((1, 3, 700), (None, F32)),
        target_rows=(1, 3, 700), final_cases=_finals(700, BOTH_FINALS), wide_rows=64, wide=("categorical4096",),
        reduced=(BF16,), mixed_rows=1500, cuts=(1, 37, 1000),
    ),
    "triton": Spec(
        mean_cases=_product(GPU_ROWS, (1e-6, 3.0)), step_cases=tuple(zip(GPU_ROWS, (None, F32) * 2)), target_rows=GPU_ROWS,
        final_cases=_finals(4000, ((1e-4, False), (0.5, True))), wide_rows=2000, mixed_rows=3000, cuts=(1001,), device="cuda",
    ) if GPU else Spec(  # the interpreter runs each program in Python: a few hundred rows keep it quick
        mean_cases=_product((3, 150), (1e-6, 3.0)), step_cases=((3, None), (150, F32)), target_rows=(3, 150),
        final_cases=_finals(300, ((1e-4, False), (0.5, True))), wide_rows=8, mixed_rows=60, cuts=(21,),
    ),
    "cuda-emulated": Spec(
        mean_cases=_product((3, 201), (1e-6, 0.04, 3.0)), step_cases=_product((3, 201), (None, F32, BF16, F16)),
        target_rows=(3, 201), final_cases=_finals(700, BOTH_FINALS), wide_rows=16, target_reduced=(BF16, F16),
        mixed_rows=300, cuts=(101,),
    ),
    "cuda": Spec(
        mean_cases=_product(GPU_ROWS, (1e-6, 0.04, 3.0)), step_cases=_product(GPU_ROWS, (None, F32)), target_rows=GPU_ROWS,
        final_cases=_finals(4000, BOTH_FINALS), wide_rows=2000, mixed_rows=3000, cuts=(1001,), device="cuda",
    ),
}


def cases(field: str, backends=tuple(SPECS), domains=tuple(DOMAINS)):
    """pytest params (backend, domain name, *case) of ``SPECS[backend].<field>`` for every domain."""
    params = []
    for backend in backends:
        for case in getattr(SPECS[backend], field):
            case = case if isinstance(case, tuple) else (case,)
            for name in domains:
                ids = "-".join(str(v).replace("torch.", "") for v in case)
                params.append(pytest.param(backend, name, *case, id=f"{backend}-{name}-{ids}"))
    return params


# ----------------------------------------------------------------------------------------
# One backend's raw launches into poisoned outputs
# ----------------------------------------------------------------------------------------
class Kernels:
    """Launch one backend's kernels on CPU inputs and return CPU outputs; outputs start as NaN."""

    def __init__(self, name: str, backend, spec: Spec):
        self.name, self.backend, self.spec = name, backend, spec
        self.device = torch.device(spec.device)

    def rows(self, domain_name: str, rows: int) -> int:
        return min(rows, self.spec.wide_rows) if domain_name in self.spec.wide else rows

    def case(self, name: str, rows: int, generator):
        """(domain, rows, table, float32 states) of one parametrised case."""
        domain = DOMAINS[name]
        rows = self.rows(name, rows)
        return domain, rows, domain.segment_table(), states(domain, rows, generator)

    def poisoned(self, like: torch.Tensor) -> torch.Tensor:
        return torch.full(like.shape, NAN, dtype=torch.float32, device=self.device)

    def on(self, tensor, dtype=None):
        return None if tensor is None else tensor.to(device=self.device, dtype=dtype or tensor.dtype).contiguous()

    def per_row(self, value):
        return value.reshape(-1).to(device=self.device, dtype=torch.float32).contiguous()

    def mean(self, table, z, s):
        z = self.on(z)
        out = self.poisoned(z)
        self.backend.launch_mean(table, z, self.per_row(s), out)
        return out.cpu()

    def step(self, table, z, f, s, db, seed, step, row_offset=0, out=None):
        z = self.on(z)
        out = self.poisoned(z) if out is None else out
        self.backend.launch_step(table, z, self.on(f), out, s, db, NoiseAddress(seed, step, row_offset))
        return out.cpu()

    def bridge_step(self, table, z, f, previous, s, fraction, weight, spread, seed, step, row_offset=0, out=None):
        z = self.on(z)
        out = self.poisoned(z) if out is None else out
        prediction = self.poisoned(z)
        self.backend.launch_bridge_step(table, z, self.on(f), self.on(previous), out, prediction, s, fraction, weight,
                                        self.on(spread, torch.float32), NoiseAddress(seed, step, row_offset))
        return out.cpu(), prediction.cpu()

    def target(self, table, x, c, sigma, s, seed, step, row_offset=0):
        x = self.on(x)
        z_t, target = self.poisoned(x), self.poisoned(x)
        self.backend.launch_target(table, x, self.per_row(c), self.per_row(sigma), self.per_row(s), z_t, target,
                                   NoiseAddress(seed, step, row_offset))
        return z_t.cpu(), target.cpu()

    def final(self, table, z, f, s, seed, step, row_offset=0):
        z = self.on(z)
        out = self.poisoned(z)
        self.backend.launch_final(table, z, self.on(f), out, s, NoiseAddress(seed, step, row_offset))
        return out.cpu()


class ReferenceKernels(Kernels):
    """The torch reference in float32, its results copied into the poisoned outputs."""

    def mean(self, table, z, s):
        return self.poisoned(z).copy_(reference.posterior_mean(z, table, s.to(torch.float32)))

    def step(self, table, z, f, s, db, seed, step, row_offset=0, out=None):
        out = self.poisoned(z) if out is None else out
        return out.copy_(reference.step(z, None if f is None else f.float(), table, s, db, seed, step, row_offset=row_offset))

    def bridge_step(self, table, z, f, previous, s, fraction, weight, spread, seed, step, row_offset=0, out=None):
        state, predicted = reference.bridge_step(z, None if f is None else f.float(), previous, table, s, fraction, weight,
                                                 spread, seed, step, row_offset)
        out = self.poisoned(z) if out is None else out
        return out.copy_(state), self.poisoned(z).copy_(predicted)

    def target(self, table, x, c, sigma, s, seed, step, row_offset=0):
        z_t, target = reference.bridge_target(x.float(), table, c, sigma, s, seed, step, row_offset)
        return self.poisoned(x).copy_(z_t), self.poisoned(x).copy_(target)

    def final(self, table, z, f, s, seed, step, row_offset=0):
        drawn = reference.final_step(z, None if f is None else f.float(), table, s, seed, step, row_offset=row_offset)
        return self.poisoned(z).copy_(drawn)


@pytest.fixture
def open_kernels(monkeypatch):
    """``open_kernels(name)``: the Kernels of backend ``name``, or a skip (a failure where make test requires it)."""
    from omegabridge.ops import registry

    def open_(name: str) -> Kernels:
        spec = SPECS[name]
        if name == "reference":
            return ReferenceKernels(name, registry.BACKENDS["reference"], spec)
        if name == "cuda-emulated":
            import cuda_emulation

            cuda_emulation.patch_backend(monkeypatch, cuda_emulation.load_or_skip())
            return Kernels(name, registry.BACKENDS["cuda"], spec)
        backend = registry.BACKENDS[name]
        why = backend.unavailable_reason(torch.device(spec.device))
        if why:
            if name == "cuda":
                pytest.skip(f"needs a CUDA GPU and the CUDA extension: {why}")
            if os.environ.get("OMEGABRIDGE_REQUIRE_NATIVE") == "1":
                pytest.fail(f"OMEGABRIDGE_REQUIRE_NATIVE=1 but backend {name!r} cannot run: {why}")
            pytest.skip(f"backend {name!r} unavailable: {why}")
        return Kernels(name, backend, spec)

    return open_


def _public_name(backend: str) -> str:
    """The backend= name the public ops take ("cuda-emulated" runs behind backend="cuda")."""
    return "cuda" if backend == "cuda-emulated" else backend


# ----------------------------------------------------------------------------------------
# Against the reference
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend, name, rows, s", cases("mean_cases"))
def test_posterior_mean_matches_reference(backend, name, rows, s, open_kernels, generator):
    kernels = open_kernels(backend)
    domain, rows, table, z = kernels.case(name, rows, generator)
    per_row = s * 10 ** (torch.rand(rows, 1, generator=generator) - 0.5)  # per-row s around the given one
    m = kernels.mean(table, z, per_row)
    exact = reference.posterior_mean(z.to(F64), table, per_row.to(F64))
    assert_within(m, exact, 1e-5 * (exact.abs() + per_row.to(F64).sqrt()), f"m on {name}")


@pytest.mark.parametrize("backend, name, rows, drift", cases("step_cases"))
def test_step_matches_reference(backend, name, rows, drift, open_kernels, generator):
    kernels = open_kernels(backend)
    domain, rows, table, z = kernels.case(name, rows, generator)
    f = None if drift is None else (torch.randn(z.shape, generator=generator) * 3).to(drift)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    s, db = 0.37, 0.01
    out = kernels.step(table, z, f, s, db, seed, 11, row_offset=5)
    check_step(out, z, None if f is None else f.float(), table, s, db, seed, 11, 5, f"step on {name}")
    if drift not in (None, F32):
        assert torch.equal(out, kernels.step(table, z, f.float(), s, db, seed, 11, row_offset=5)), "reduced f != its float32 copy"


@pytest.mark.parametrize("backend, name, rows, drift", cases("step_cases"))
def test_bridge_step_matches_reference(backend, name, rows, drift, open_kernels, generator):
    # With a drift the multistep term is on (previous given, weight 0.3); without one it is off.
    kernels = open_kernels(backend)
    domain, rows, table, z = kernels.case(name, rows, generator)
    f = None if drift is None else (torch.randn(z.shape, generator=generator) * 3).to(drift)
    previous = None if drift is None else z + torch.randn(z.shape, generator=generator)
    weight = 0.0 if drift is None else 0.3
    spread = 0.5 * torch.rand(table.width, generator=generator)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    s, fraction = 0.37, 0.2
    out, prediction = kernels.bridge_step(table, z, f, previous, s, fraction, weight, spread, seed, 11, row_offset=5)
    check_bridge_step(out, prediction, z, None if f is None else f.float(), previous, table, s, fraction, weight, spread,
                      seed, 11, 5, f"bridge step on {name}")
    if drift not in (None, F32):
        again, _ = kernels.bridge_step(table, z, f.float(), previous, s, fraction, weight, spread, seed, 11, row_offset=5)
        assert torch.equal(out, again), "reduced f != its float32 copy"


@pytest.mark.parametrize("with_drift", [True, False], ids=["drift without previous", "previous without drift"])
@pytest.mark.parametrize("backend", list(SPECS))
def test_bridge_step_with_one_of_drift_and_previous(backend, with_drift, open_kernels, generator):
    """The two cases the test above leaves out: a drift and no multistep term (the solver's first step), and the
    multistep term with no drift (model=None); each a separate path of the kernels."""
    kernels = open_kernels(backend)
    domain, table, z = _mixed(kernels, generator)
    f = (torch.randn(z.shape, generator=generator) * 3) if with_drift else None
    previous = None if with_drift else z + torch.randn(z.shape, generator=generator)
    weight = 0.0 if with_drift else 0.3
    spread = 0.5 * torch.rand(table.width, generator=generator)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    out, prediction = kernels.bridge_step(table, z, f, previous, 0.37, 0.2, weight, spread, seed, 11, row_offset=5)
    check_bridge_step(out, prediction, z, f, previous, table, 0.37, 0.2, weight, spread, seed, 11, 5,
                      f"bridge step on the mixed layout, {'drift' if with_drift else 'previous'} only")


@pytest.mark.parametrize("backend", list(SPECS))
def test_bridge_step_in_place_equals_out_of_place(backend, open_kernels, generator):
    kernels = open_kernels(backend)
    domain, table, z = _mixed(kernels, generator)
    z = kernels.on(z)
    f = kernels.on(torch.randn(z.shape, generator=generator))
    previous = kernels.on(z + torch.randn(z.shape, generator=generator))
    spread = kernels.on(torch.rand(table.width, generator=generator))
    expected, predicted = kernels.bridge_step(table, z, f, previous, 0.3, 0.25, 0.4, spread, 1, 1)
    state = z.clone()
    kernels.bridge_step(table, state, f, previous, 0.3, 0.25, 0.4, spread, 1, 1, out=state)
    assert torch.equal(state.cpu(), expected)
    state, prediction = z.clone(), torch.full_like(z, NAN)
    kwargs = dict(remaining=0.3, fraction=0.25, weight=0.4, spread=spread, seed=1, step_index=1, backend=_public_name(backend))
    result = ops.bridge_step(state, f, previous, table, out=state, prediction=prediction, **kwargs)
    assert result[0] is state and result[1] is prediction
    assert torch.equal(state.cpu(), expected) and torch.equal(prediction.cpu(), predicted)


@pytest.mark.parametrize("backend, name, rows", cases("target_rows"))
def test_bridge_target_matches_reference(backend, name, rows, open_kernels, generator):
    kernels = open_kernels(backend)
    domain = DOMAINS[name]
    table = domain.segment_table()
    x, c, sigma, s, seed = target_inputs(domain, kernels.rows(name, rows), generator)
    z_t, target = kernels.target(table, x, c, sigma, s, seed, 7, row_offset=3)
    on_gpu = kernels.device.type == "cuda"  # the GPU's noise runs on approximate instructions (docs/noise.md)
    check_target(z_t, target, x, table, c, sigma, s, seed, 7, 3, name, kernels.spec.z_t_relative, 1e-5 if on_gpu else 0.0)
    for dtype in kernels.spec.target_reduced:  # x on the domain is exact in both (one-hot, lattice points, ...) or rounded
        reduced = x.to(dtype)
        a = kernels.target(table, reduced, c, sigma, s, seed, 7, row_offset=3)
        b = kernels.target(table, reduced.float(), c, sigma, s, seed, 7, row_offset=3)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), f"{dtype} x != its float32 copy"


@pytest.mark.parametrize("backend, name, rows, s, with_drift", cases("final_cases"))
def test_final_step_matches_reference_and_lands_in_the_domain(backend, name, rows, s, with_drift, open_kernels, generator):
    kernels = open_kernels(backend)
    domain, rows, table, z = kernels.case(name, rows, generator)
    f = torch.randn(z.shape, generator=generator) if with_drift else None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    out = kernels.final(table, z, f, s, seed, 99, row_offset=2)
    assert torch.isfinite(out).all(), "unwritten or non-finite output"
    assert bool(domain.contains(out).all()), "a draw left the domain"
    expected = reference.final_step(z.to(F64), None if f is None else f.to(F64), table, s, seed, 99, row_offset=2)
    agreement = factor_rows_agree(domain, out, expected, math.sqrt(s))
    assert min(agreement.values()) >= 0.995, agreement


# ----------------------------------------------------------------------------------------
# The noise contract
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", list(SPECS))
def test_step_noise_is_the_contract_stream(backend, open_kernels, generator):
    """A Real layout with z = 0 and no drift steps to sqrt(db) xi: xi is stream 0 of the contract,
    across the 2^32 row carry."""
    kernels = open_kernels(backend)
    table = ob.Product([ob.Real()] * 13).segment_table()
    rows = 301
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    out = kernels.step(table, torch.zeros(rows, 13), None, 1.0, 0.25, seed, 17, row_offset=2**32 - 20)
    expected = 0.5 * noise.normals(seed, 17, 2**32 - 20, rows, 13, noise.STREAM_STEP, F64)
    assert_within(out, expected, torch.full_like(expected, 1e-6) * (1 + expected.abs()), "step noise")


@pytest.mark.parametrize("backend", ["cuda-emulated", "cuda"])
@pytest.mark.parametrize("row_offset", [0, 2**32 - 5, 2**47 + 12345])
def test_cuda_uniforms_are_the_contracts_bit_for_bit_and_normals_agree(backend, row_offset, open_kernels, generator):
    """(The CPU backend's noise is tested in test_native_noise.py, Triton's building block in test_triton_kernels.py.)"""
    from omegabridge.ops import native
    from omegabridge.ops.backends import cuda as cuda_backend

    kernels = open_kernels(backend)
    rows, width = 11, 13  # an odd width: the last normal pairs with the virtual column `width`
    seed = int(torch.randint(0, 2**62, (1,), generator=generator)) * 4 + 3  # high bits set too
    step, stream = 2**31 + 7, int(torch.randint(0, 2**16, (1,), generator=generator))
    uniform = cuda_backend.uniforms(seed, step, row_offset, rows, width, stream, device=kernels.device).cpu()
    assert torch.equal(uniform, noise.uniforms(seed, step, row_offset, rows, width, stream, torch.float32))
    if native.is_available():  # the CPU backend's own uniforms (make test builds it)
        cpu = torch.empty(rows, width)
        native.load().uniforms(cpu.data_ptr(), rows, width, seed, step, row_offset, stream)
        assert torch.equal(uniform, cpu), "CUDA and CPU uniforms differ"
    normal = cuda_backend.normals(seed, step, row_offset, rows, width, stream, device=kernels.device).cpu()
    expected = noise.normals(seed, step, row_offset, rows, width, stream, F64)
    assert_within(normal, expected, 1e-5 * (1 + expected.abs()), "normals")


# ----------------------------------------------------------------------------------------
# Bit-identities: reduced inputs, in place, splits, alignment
# ----------------------------------------------------------------------------------------
def _mixed(kernels, generator):
    domain = DOMAINS["mixed"]
    return domain, domain.segment_table(), states(domain, kernels.spec.mixed_rows, generator)


@pytest.mark.parametrize("backend, dtype", [(b, d) for b in SPECS for d in SPECS[b].reduced])
def test_reduced_precision_inputs_equal_their_float32_copies(backend, dtype, open_kernels, generator):
    kernels = open_kernels(backend)
    domain, table, z = _mixed(kernels, generator)
    f = kernels.on((torch.randn(z.shape, generator=generator) * 2).to(dtype))
    x = kernels.on(domain.project(torch.randn(z.shape, generator=generator) * 5).to(dtype))
    z = kernels.on(z)
    name = _public_name(backend)
    kwargs = dict(remaining=0.3, increment=0.01, seed=5, step_index=2, backend=name)
    assert torch.equal(ops.step(z, f, table, **kwargs), ops.step(z, f.float(), table, **kwargs))
    scale = kernels.on(torch.rand(z.shape[0], 1, generator=generator) + 0.1)
    target_kwargs = dict(mean_scale=scale, noise_scale=scale, remaining=scale, seed=9, backend=name)
    reduced, full = ops.bridge_target(x, table, **target_kwargs), ops.bridge_target(x.float(), table, **target_kwargs)
    assert torch.equal(reduced[0], full[0]) and torch.equal(reduced[1], full[1])
    final = dict(remaining=0.3, seed=5, step_index=2, backend=name)
    assert torch.equal(ops.final_step(z, f, table, **final), ops.final_step(z, f.float(), table, **final))
    previous = kernels.on(z + torch.randn(z.shape, generator=generator))
    spread = kernels.on(torch.rand(table.width, generator=generator))
    solver = dict(remaining=0.3, fraction=0.25, weight=0.4, spread=spread, seed=5, step_index=2, backend=name)
    reduced, full = ops.bridge_step(z, f, previous, table, **solver), ops.bridge_step(z, f.float(), previous, table, **solver)
    assert torch.equal(reduced[0], full[0]) and torch.equal(reduced[1], full[1])


@pytest.mark.parametrize("backend", list(SPECS))
def test_step_in_place_equals_out_of_place(backend, open_kernels, generator):
    kernels = open_kernels(backend)
    domain, table, z = _mixed(kernels, generator)
    z = kernels.on(z)
    f = kernels.on(torch.randn(z.shape, generator=generator))
    expected = kernels.step(table, z, f, 0.3, 0.01, 1, 1)
    state = z.clone()
    kernels.step(table, state, f, 0.3, 0.01, 1, 1, out=state)
    assert torch.equal(state.cpu(), expected)
    state = z.clone()
    kwargs = dict(remaining=0.3, increment=0.01, seed=1, step_index=1, backend=_public_name(backend))
    assert ops.step(state, f, table, out=state, **kwargs) is state
    assert torch.equal(state.cpu(), expected)


@pytest.mark.parametrize("backend", list(SPECS))
def test_final_step_into_out_equals_a_new_tensor(backend, open_kernels, generator):
    """out= receives exactly the rows a new tensor would: a poisoned buffer, a row block of a larger
    one (how Bridge.sample writes its sample), z itself, and a strided view the kernels cannot address."""
    kernels = open_kernels(backend)
    domain, table, z = _mixed(kernels, generator)
    z = kernels.on(z)
    f = kernels.on(torch.randn(z.shape, generator=generator))
    kwargs = dict(remaining=0.3, seed=int(torch.randint(0, 2**62, (1,), generator=generator)), step_index=4,
                  backend=_public_name(backend))
    expected = ops.final_step(z, f, table, **kwargs)
    poisoned = kernels.poisoned(z)
    assert ops.final_step(z, f, table, out=poisoned, **kwargs) is poisoned
    assert torch.equal(poisoned, expected)
    sample = kernels.poisoned(torch.empty(len(z) + 5, z.shape[1]))
    ops.final_step(z, f, table, out=sample[2:2 + len(z)], **kwargs)
    assert torch.equal(sample[2:2 + len(z)], expected) and sample[:2].isnan().all() and sample[2 + len(z):].isnan().all()
    state = z.clone()
    ops.final_step(state, f, table, out=state, **kwargs)
    assert torch.equal(state, expected)
    wide = kernels.poisoned(torch.empty(len(z), z.shape[1] + 3))
    ops.final_step(z, f, table, out=wide[:, 1:1 + z.shape[1]], **kwargs)
    assert torch.equal(wide[:, 1:1 + z.shape[1]], expected) and wide[:, 0].isnan().all() and wide[:, -2:].isnan().all()
    with pytest.raises(ValueError, match=r"out must match the state: shape"):
        ops.final_step(z, f, table, out=kernels.poisoned(z[1:]), **kwargs)


@pytest.mark.parametrize("backend", [b for b in SPECS if b != "reference"])
def test_outputs_do_not_depend_on_how_rows_are_split(backend, open_kernels, generator):
    """(Not the float32 reference: torch's vectorised reductions may round differently with the row
    count, seen as one last-bit difference in a target; its samples agree to rounding, not in bits.)"""
    kernels = open_kernels(backend)
    domain, table, z = _mixed(kernels, generator)
    f = torch.randn(z.shape, generator=generator)
    x = domain.project(z)
    s = torch.rand(z.shape[0], 1, generator=generator) + 0.1
    whole_step = kernels.step(table, z, f, 0.3, 0.01, 9, 4, row_offset=11)
    whole_final = kernels.final(table, z, f, 0.3, 9, 4, row_offset=11)
    whole_target = kernels.target(table, x, s, s, s, 9, 4, row_offset=11)
    previous, spread = z + torch.randn(z.shape, generator=generator), torch.rand(table.width, generator=generator)
    whole_bridge = kernels.bridge_step(table, z, f, previous, 0.3, 0.25, 0.4, spread, 9, 4, row_offset=11)
    for cut in kernels.spec.cuts:
        parts = [slice(0, cut), slice(cut, z.shape[0])]
        step = torch.cat([kernels.step(table, z[p], f[p], 0.3, 0.01, 9, 4, row_offset=11 + p.start) for p in parts])
        final = torch.cat([kernels.final(table, z[p], f[p], 0.3, 9, 4, row_offset=11 + p.start) for p in parts])
        target = [kernels.target(table, x[p], s[p], s[p], s[p], 9, 4, row_offset=11 + p.start) for p in parts]
        assert torch.equal(step, whole_step), f"step differs when cut at row {cut}"
        assert torch.equal(final, whole_final), f"last step differs when cut at row {cut}"
        assert torch.equal(torch.cat([t[0] for t in target]), whole_target[0]), f"z_t differs when cut at row {cut}"
        assert torch.equal(torch.cat([t[1] for t in target]), whole_target[1]), f"target differs when cut at row {cut}"
        bridge = [kernels.bridge_step(table, z[p], f[p], previous[p], 0.3, 0.25, 0.4, spread, 9, 4, row_offset=11 + p.start)
                  for p in parts]
        for index, what in ((0, "bridge step"), (1, "bridge step's prediction")):
            assert torch.equal(torch.cat([b[index] for b in bridge]), whole_bridge[index]), f"{what} differs when cut at row {cut}"


@pytest.mark.parametrize("backend", list(SPECS))
def test_aligned_and_misaligned_buffers_give_the_same_bits(backend, open_kernels, generator):
    """A width that is a multiple of 4 lets kernels take 16-byte loads; the same rows one float off
    a 16-byte boundary must take another path to the same bits."""
    kernels = open_kernels(backend)
    domain = ob.Product([ob.HalfLine(low=0.0), ob.Interval(0.0, 1.0), ob.Lattice(0, 20), ob.Real()] * 3)
    table = domain.segment_table()
    z = states(domain, 99, generator)
    f = torch.randn(z.shape, generator=generator)

    def at(tensor, misalign):
        storage = torch.empty(tensor.numel() + 8, device=kernels.device)
        start = (-storage.data_ptr()) % 16 // 4 + misalign  # floats to the next 16-byte boundary, plus misalign
        view = storage[start : start + tensor.numel()].view(tensor.shape)
        view.copy_(tensor)
        return view

    aligned = kernels.step(table, at(z, 0), at(f, 0), 0.3, 0.01, 3, 1, out=at(torch.zeros_like(z), 0))
    misaligned = kernels.step(table, at(z, 1), at(f, 1), 0.3, 0.01, 3, 1, out=at(torch.zeros_like(z), 1))
    assert at(z, 0).data_ptr() % 16 == 0 and at(z, 1).data_ptr() % 16 != 0
    assert torch.equal(aligned, misaligned)
    # the bridge step: every buffer aligned, then each of z, f, previous, out and the prediction off the boundary alone
    previous, spread = z + torch.randn(z.shape, generator=generator), torch.rand(table.width, generator=generator)
    buffers = dict(z=z, f=f, previous=previous, out=torch.zeros_like(z), prediction=torch.zeros_like(z))

    def bridge_step(misaligned: str):
        placed = {name: at(tensor, 1 if name == misaligned else 0) for name, tensor in buffers.items()}
        if not hasattr(kernels.backend, "launch_bridge_step"):  # the reference: no raw launch, no alignment
            return kernels.bridge_step(table, placed["z"], placed["f"], placed["previous"], 0.3, 0.25, 0.4, spread, 3, 1)
        kernels.backend.launch_bridge_step(table, placed["z"], placed["f"], placed["previous"], placed["out"],
                                           placed["prediction"], 0.3, 0.25, 0.4, kernels.on(spread), NoiseAddress(3, 1, 0))
        return placed["out"].cpu().clone(), placed["prediction"].cpu().clone()

    expected = bridge_step("")
    for misaligned in buffers:
        got = bridge_step(misaligned)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1]), f"{misaligned} misaligned"


@pytest.mark.parametrize("backend", ["cuda-emulated", "cuda"])
def test_scheduled_step_equals_the_step_with_host_scalars(backend, open_kernels, generator):
    from omegabridge.ops.backends import cuda as cuda_backend

    kernels = open_kernels(backend)
    domain, table, z = _mixed(kernels, generator)
    z, f = kernels.on(z), kernels.on(torch.randn(z.shape, generator=generator))
    schedule = cuda_backend.step_schedule([0.9, 0.5, 0.3], [0.2, 0.1, 0.05], kernels.device)
    counter = torch.tensor([2], dtype=torch.int64, device=kernels.device)
    expected = kernels.step(table, z, f, 0.3, 0.05, 7, 2, row_offset=11)
    state = z.clone()
    ops.scheduled_step(state, f, table, schedule=schedule, counter=counter, seed=7, row_offset=11)
    assert torch.equal(state.cpu(), expected)
    for outside in (3, -1, 2**40):  # a counter past the schedule: NaN everywhere, not a read past its rows
        state = z.clone()
        counter.fill_(outside)
        ops.scheduled_step(state, f, table, schedule=schedule, counter=counter, seed=7, row_offset=11)
        assert bool(state.isnan().all()), outside
    with pytest.raises(ValueError, match="schedule must be"):
        ops.scheduled_step(state, f, table, schedule=schedule[:, :4], counter=counter, seed=7)


# ----------------------------------------------------------------------------------------
# Invalid rows, whole samples
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0.0, -0.5, float("inf"), float("nan"), 1e-40])  # 1e-40: subnormal
@pytest.mark.parametrize("backend", ["triton", "cuda-emulated", "cuda"])
def test_a_row_with_an_invalid_s_gets_nan_not_finite_numbers(backend, bad, open_kernels, generator):
    """The GPU kernels do not check per-row s (that would synchronise with the host): they mark the row
    instead. (On CPU tensors the ops layer replaces such rows' s and sets their outputs to NaN,
    omegabridge/ops/library.py; the CPU kernels leave lattice, binary and sphere columns finite.)"""
    kernels = open_kernels(backend)
    domain = DOMAINS["mixed"]
    table = domain.segment_table()
    z = states(domain, 5, generator)
    s = torch.full((5, 1), 0.3)
    s[2] = bad
    m = kernels.mean(table, z, s)
    depends_on_s = table.column_kinds != int(Kind.REAL)  # m = z on Real columns
    assert torch.isnan(m[2, depends_on_s]).all() and torch.isfinite(m[[0, 1, 3, 4]]).all()
    half = torch.full((5, 1), 0.5)
    z_t, target = kernels.target(table, domain.project(z), half, half, s, 3, 1)
    assert torch.isnan(target[2]).all() and torch.isfinite(target[[0, 1, 3, 4]]).all()
    assert torch.isfinite(z_t).all(), "z_t = c x + sigma eps does not depend on s"


@pytest.mark.parametrize("solver", ["euler", "bridge"])
@pytest.mark.parametrize("backend", ["triton", "cuda-emulated", "cuda"])
def test_a_sample_agrees_with_the_cpu_kernels(backend, solver, open_kernels):
    """The same seed gives the same sample as on the C++ CPU kernels (draws to float rounding), through
    Bridge.sample with a model and batches, for each solver."""
    kernels = open_kernels(backend)
    open_kernels("cpu")
    domain = ob.Product([ob.Interval(0.0, 1.0), ob.Categorical(4), ob.Lattice(0, 9), ob.HalfLine(low=0.0), ob.Sphere(3)])
    bridge = ob.Bridge(domain, ob.schedules.Exp(a=3.0, b=1.0), steps=20)

    def model(z, t):
        return 0.1 * torch.tanh(z) * (1.0 - t[:, None])

    rows = 2000 if kernels.device.type == "cuda" else 200
    interpreted = backend == "triton" and kernels.device.type == "cpu"  # one batch: each launch runs in Python
    sample = bridge.sample(model, n=rows, seed=17, progress=False, backend=_public_name(backend), device=kernels.device,
                           batch_size=rows if interpreted else rows // 2 - 25, solver=solver).cpu()
    on_cpu = bridge.sample(model, n=rows, seed=17, progress=False, backend="cpu", solver=solver)
    assert bool(domain.contains(sample).all())
    agreement = factor_rows_agree(domain, sample, on_cpu.to(F64), 1.0)
    assert min(agreement.values()) >= 0.99, agreement
