"""The fused CUDA C++ kernels (csrc/cuda, extension ``omegabridge._cuda_ext``) behind torch tensors.

The extension is loaded lazily, on the first call that needs it (never at package import), and
does not link libtorch: this module passes it raw device addresses, sizes and the caller's CUDA
stream (``torch.cuda.current_stream().cuda_stream``), so every kernel runs on the stream torch
uses for the tensors and nothing synchronises. The dispatch layer has already checked shapes,
dtypes and devices; here buffers are made contiguous (f and x stay in float32, bfloat16 or
float16 and are widened on load), outputs are allocated, and the layout of a segment table is
serialised once per (table, device) into a device tensor that every launch reads.

Example:
    >>> import torch, omegabridge as ob
    >>> from omegabridge import cuda_backend
    >>> table = ob.HalfLine(low=0.0).segment_table()
    >>> if cuda_backend.is_available(torch.device("cuda")):
    ...     m = cuda_backend.posterior_mean(torch.tensor([[-3.0], [2.0]], device="cuda"), table, torch.ones(2, 1, device="cuda"))
    ...     assert bool((m >= 0).all())
    ... else:
    ...     assert cuda_backend.unavailable_reason(torch.device("cuda"))  # says why (no GPU, not built)
"""

from __future__ import annotations

from types import ModuleType

import torch

from omegabridge import _native
from omegabridge.domains import SegmentTable

__all__ = [
    "EXTENSION", "load", "extension_reason", "unavailable_reason", "is_available", "layout", "step_schedule",
    "posterior_mean", "step", "scheduled_step", "final_step", "bridge_target", "uniforms", "normals",
]

EXTENSION = "omegabridge._cuda_ext"
ABI = 2  # the `abi` attribute this Python code expects of the extension
_STORAGE = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}

_extension = _native.LazyExtension(
    EXTENSION, ABI, "reinstall omegabridge where nvcc is found (OMEGABRIDGE_BUILD_CUDA=1 makes a failed build an error)"
)


def load() -> ModuleType | None:
    """The extension module, or None when it is not built or cannot be imported (cached)."""
    return _extension.load()


def extension_reason() -> str:
    """Why the extension cannot be imported ("" when it is built and importable)."""
    return _extension.reason()


def unavailable_reason(device: torch.device | str | None = None) -> str:
    """Why the CUDA kernels cannot run on ``device`` ("" when they can): extension, GPU, then device."""
    reason = extension_reason()
    if reason:
        return reason
    if not torch.cuda.is_available():
        build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return f"no CUDA GPU is available (torch.cuda.is_available() is False; torch {torch.__version__} is {build})"
    if device is not None and torch.device(device).type != "cuda":
        return f"the CUDA kernels run on CUDA tensors, but the data is on {torch.device(device)}"
    return ""


def is_available(device: torch.device | str | None = None) -> bool:
    """Whether the CUDA kernels can run (on ``device``, when given)."""
    return unavailable_reason(device) == ""


def layout(table: SegmentTable, device: torch.device):
    """(extension Layout, its bytes as a uint8 tensor on ``device``), built once per (table, device)."""
    device = _placed(device)
    cache = table.__dict__.setdefault("_cuda_layouts", {})
    cached = cache.get(str(device))
    if cached is None:
        ext = load()
        tensors = table.as_tensors()
        kinds = tensors["kinds"].to(torch.int32).contiguous()
        offsets, widths, points, repeats = (tensors[k].to(torch.int64).contiguous() for k in ("offsets", "widths", "points", "repeats"))
        parameters = tensors["parameters"].to(torch.float64).contiguous()
        plan = ext.make_layout(
            kinds.numel(), kinds.data_ptr(), offsets.data_ptr(), widths.data_ptr(), points.data_ptr(),
            repeats.data_ptr(), parameters.data_ptr(),
        )
        host = torch.empty(plan.nbytes, dtype=torch.uint8)
        plan.write(host.data_ptr())
        cached = (plan, _upload(host, device))  # the caching allocator's blocks are 512-byte aligned (16 needed)
        cache[str(device)] = cached
    return cached


def step_schedule(remaining, increment, device) -> torch.Tensor:
    """(steps, 5) float32 rows (s, 1/s, sqrt s, db, sqrt db) rounded from float64 as the kernels round them,
    on ``device``: what ``scheduled_step`` reads at the step counter."""
    s = torch.as_tensor(remaining, dtype=torch.float64)
    db = torch.as_tensor(increment, dtype=torch.float64)
    rows = torch.stack([s, 1.0 / s, s.sqrt(), db, db.sqrt()], dim=1).to(torch.float32)
    return rows.contiguous().to(device)


# The four places that talk to torch.cuda (tests/test_cuda_emulation.py replaces them to run this
# module on CPU tensors with the kernels compiled for the CPU).
def _placed(device) -> torch.device:
    """``device`` with its index (``cuda`` -> ``cuda:<current>``)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _upload(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``host`` copied to ``device`` (synchronously), allocated on the device's default stream: the
    buffer then belongs to the stream most launches use, not to a side stream that happened to need
    it first. Refused inside a CUDA-graph capture, where that copy cannot run."""
    if torch.cuda.is_current_stream_capturing():
        raise RuntimeError(
            f"a segment table is used on {device} for the first time inside a CUDA-graph capture, where its layout "
            "cannot be uploaded; run one step with it (or cuda_backend.layout(table, device)) before capturing"
        )
    with torch.cuda.device(device), torch.cuda.stream(torch.cuda.default_stream(device)):
        return host.to(device)


def _on(device: torch.device):
    """Context making ``device`` current, so a launch goes to the device holding the tensors."""
    return torch.cuda.device(device)


def _stream(device: torch.device) -> int:
    """The handle of torch's current stream on ``device``: kernels run where torch's own work on it runs."""
    return torch.cuda.current_stream(device).cuda_stream


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.float32).contiguous()


def _reduced(tensor: torch.Tensor) -> torch.Tensor:
    """float32, bfloat16 or float16 as given (widened on load); anything else to float32."""
    return tensor.contiguous() if tensor.dtype in _STORAGE else tensor.to(torch.float32).contiguous()


def _per_row(value: torch.Tensor, rows: int) -> torch.Tensor:
    value = value.to(torch.float32)
    return (value.reshape(-1).expand(rows) if value.numel() == 1 else value.reshape(rows)).contiguous()


def _drift(drift):
    if drift is None:
        return None, 0, 0
    drift = _reduced(drift)
    return drift, drift.data_ptr(), _STORAGE[drift.dtype]


def posterior_mean(z: torch.Tensor, table: SegmentTable, remaining: torch.Tensor) -> torch.Tensor:
    """m(z, s) for float32 z (rows, width) and per-row s (rows, 1)."""
    z = _float32(z)
    s = _per_row(remaining, z.shape[0])
    out = torch.empty_like(z)
    plan, buffer = layout(table, z.device)
    with _on(z.device):
        load().posterior_mean(plan, buffer.data_ptr(), z.data_ptr(), s.data_ptr(), out.data_ptr(), z.shape[0], _stream(z.device))
    return out


def step(z, drift, table, remaining: float, increment: float, seed: int, step_index: int, row_offset: int, out=None):
    """One Euler step (see dispatch.step); ``out`` may be ``z`` itself (in place)."""
    z = _float32(z)
    drift, drift_address, storage = _drift(drift)
    out = torch.empty_like(z) if out is None else out
    plan, buffer = layout(table, z.device)
    with _on(z.device):
        load().step(
            plan, buffer.data_ptr(), z.data_ptr(), drift_address, storage, out.data_ptr(), z.shape[0],
            float(remaining), float(increment), seed, step_index, row_offset, _stream(z.device),
        )
    return out


def scheduled_step(z, drift, table, schedule: torch.Tensor, counter: torch.Tensor, seed: int, row_offset: int):
    """The Euler step k = ``counter`` (a device int64) in place on contiguous float32 ``z``, its scalars read
    on the device from ``schedule[k]`` (``step_schedule``): a launch a CUDA graph can replay every step.
    A counter outside the schedule's rows makes ``z`` NaN (the device is not asked, which would synchronise)."""
    drift, drift_address, storage = _drift(drift)
    plan, buffer = layout(table, z.device)
    with _on(z.device):
        load().scheduled_step(
            plan, buffer.data_ptr(), z.data_ptr(), drift_address, storage, z.data_ptr(), z.shape[0],
            schedule.data_ptr(), schedule.shape[0], counter.data_ptr(), seed, row_offset, _stream(z.device),
        )
    return z


def final_step(z, drift, table, remaining: float, seed: int, step_index: int, row_offset: int):
    """The exact last step (see dispatch.final_step)."""
    z = _float32(z)
    drift, drift_address, storage = _drift(drift)
    out = torch.empty_like(z)
    plan, buffer = layout(table, z.device)
    with _on(z.device):
        load().final_step(
            plan, buffer.data_ptr(), z.data_ptr(), drift_address, storage, out.data_ptr(), z.shape[0],
            float(remaining), seed, step_index, row_offset, _stream(z.device),
        )
    return out


def bridge_target(x, table, mean_scale, noise_scale, remaining, seed: int, step_index: int, row_offset: int, out=None):
    """Z_t and the regression target (see dispatch.bridge_target), float32 outputs (into ``out`` if given)."""
    x = _reduced(x)
    rows = x.shape[0]
    c, sigma, s = (_per_row(v, rows) for v in (mean_scale, noise_scale, remaining))
    if out is None:
        z_t = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        target = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    else:
        z_t, target = out
    plan, buffer = layout(table, x.device)
    with _on(x.device):
        load().bridge_target(
            plan, buffer.data_ptr(), x.data_ptr(), _STORAGE[x.dtype], c.data_ptr(), sigma.data_ptr(), s.data_ptr(),
            z_t.data_ptr(), target.data_ptr(), rows, seed, step_index, row_offset, _stream(x.device),
        )
    return z_t, target


def _noise(kind: str, seed: int, step: int, row_offset: int, rows: int, width: int, stream: int, device) -> torch.Tensor:
    out = torch.empty(rows, width, dtype=torch.float32, device=device)
    if rows and width:
        with _on(out.device):
            getattr(load(), kind)(out.data_ptr(), rows, width, seed, step, row_offset, stream, _stream(out.device))
    return out


def uniforms(seed: int, step: int, row_offset: int, rows: int, width: int, stream: int, device="cuda") -> torch.Tensor:
    """The noise contract's uniforms (docs/noise.md) computed on the GPU: bit-identical to ``noise.uniforms``."""
    return _noise("uniforms", seed, step, row_offset, rows, width, stream, device)


def normals(seed: int, step: int, row_offset: int, rows: int, width: int, stream: int, device="cuda") -> torch.Tensor:
    """The noise contract's normals computed on the GPU (equal to ``noise.normals`` up to float rounding)."""
    return _noise("normals", seed, step, row_offset, rows, width, stream, device)
