"""What is particular to the fused CUDA C++ kernels (csrc/cuda, backend="cuda").

Their contract with the torch reference is tests/test_kernel_contract.py, shared by every backend:
there they run on a GPU (backend "cuda") and, everywhere, compiled for the CPU (backend
"cuda-emulated", tests/cuda_emulation.py). Here, in three parts:

1. Everywhere (no GPU needed): the extension ``omegabridge._cuda_ext`` is built and imports where
   nvcc is found (``make test`` sets OMEGABRIDGE_REQUIRE_CUDA_BUILD=1 there, so a missing build
   fails instead of skipping); asking for backend="cuda" without a GPU is a clear
   ``BackendUnavailableError`` while everything else still works; the bindings reject bad
   arguments with ValueError before any CUDA call; a CUDA call without a device raises an
   exception naming the call; the host-side layout gives every column to exactly one thread;
   ``cuda_graph=True`` off a GPU warns and gives the same sample.
2. On a GPU (skipped without one): a CUDA-graph sample equals the eager one bit for bit, a model
   that cannot be captured falls back with a warning, and the errors that need CUDA itself.
3. Everywhere, on the emulated kernels: ``omegabridge.ops`` with backend="cuda" (outputs in place,
   reduced and strided inputs, the target into given buffers), the sampling bench's cuda variant
   and the last step's lattice draw.

The exact-law and oracle-drift checks run on this backend in tests/test_statistics.py.
"""

from __future__ import annotations

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
from omegabridge import ops as dispatch
from omegabridge.errors import BackendUnavailableError

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers, also under --import-mode=importlib
from kernel_cases import DOMAINS, F64, states  # noqa: E402
from native_helpers import require_extension  # noqa: E402

NAN = float("nan")
GPU = torch.cuda.is_available()
needs_real_gpu = pytest.mark.skipif(not GPU, reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
needs_no_gpu = pytest.mark.skipif(GPU, reason="checks what happens where there is no GPU")


def _extension():
    """The extension module, or a skip (a failure under OMEGABRIDGE_REQUIRE_CUDA_BUILD=1)."""
    ext = cuda_backend.load()
    if ext is None:
        why = cuda_backend.extension_reason()
        if os.environ.get("OMEGABRIDGE_REQUIRE_CUDA_BUILD") == "1":
            pytest.fail(f"OMEGABRIDGE_REQUIRE_CUDA_BUILD=1 but the CUDA extension is unavailable: {why}")
        pytest.skip(f"CUDA extension not built: {why}")
    return ext


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

    expected = bridge.sample(model, n=6, seed=4, progress=False, solver="euler")  # the graphed step, the default with a graph
    with pytest.warns(RuntimeWarning, match="cuda_graph=True: sampling on cpu, not on a CUDA device; sampling without a CUDA graph"):
        graphed = bridge.sample(model, n=6, seed=4, progress=False, cuda_graph=True)
    assert torch.equal(graphed, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bridge.sample(model, n=2, seed=4, progress=False)  # no warning unless asked for a graph


# ========================================================================================
# 2. On a GPU
# ========================================================================================
DEVICE = torch.device("cuda") if GPU else None


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


# ========================================================================================
# 3. backend="cuda" on the emulated kernels
# ========================================================================================
@pytest.fixture
def emulated_backend(monkeypatch):
    """cuda_backend with the kernels compiled for the CPU behind it, its torch.cuda calls replaced."""
    import cuda_emulation

    extension = cuda_emulation.load_or_skip()
    cuda_emulation.patch_backend(monkeypatch, extension)
    return extension


def test_ops_run_backend_cuda_with_outputs_in_place_and_reduced_and_strided_inputs(emulated_backend, generator):
    domain = DOMAINS["mixed"]
    table = domain.segment_table()
    z = states(domain, 120, generator)
    f = torch.randn(z.shape, generator=generator)
    kwargs = dict(remaining=0.3, increment=0.05, seed=4, step_index=3, row_offset=9)
    expected = dispatch.step(z, f, table, backend="cuda", **kwargs)
    state = z.clone()
    assert dispatch.step(state, f.to(torch.float16).float(), table, backend="cuda", out=state, **kwargs) is state
    assert torch.equal(state, dispatch.step(z, f.to(torch.float16), table, backend="cuda", **kwargs))
    strided = torch.cat([z, z], dim=1)[:, : z.shape[1]]  # rows not contiguous: copied, then written back into out
    assert torch.equal(dispatch.step(strided, f, table, backend="cuda", **kwargs), expected)
    x = domain.project(z)
    s = torch.full((120, 1), 0.2)
    direct = dispatch.bridge_target(x, table, mean_scale=s, noise_scale=s, remaining=s, seed=8, backend="cuda")
    buffers = (torch.full_like(z, NAN), torch.full_like(z, NAN))
    returned = dispatch.bridge_target(x, table, mean_scale=s, noise_scale=s, remaining=s, seed=8, backend="cuda", out=buffers)
    assert returned[0] is buffers[0] and torch.equal(buffers[0], direct[0]) and torch.equal(buffers[1], direct[1])


def test_the_sampling_bench_runs_its_cuda_variant(emulated_backend, tmp_path):
    """bench/sampling.py's backend='cuda' path (the GPU session's end-to-end bench) on the emulated
    kernels: it samples, times the step alone, and agrees with the CPU kernels' sample."""
    require_extension()  # the CPU kernels, to compare with
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
