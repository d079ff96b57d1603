"""The fused CUDA C++ kernels (csrc/cuda, extension ``omegabridge._cuda_ext``) behind torch tensors.

The extension is loaded lazily, on the first call that needs it (never at package import), and
does not link libtorch: this module passes it raw device addresses, sizes and the caller's CUDA
stream (``torch.cuda.current_stream().cuda_stream``), so every kernel runs on the stream torch
uses for the tensors and nothing synchronises. The buffers are prepared by ``FusedBackend`` (f
and x stay in float32, bfloat16 or float16 and are widened on load); the layout of a segment
table is serialised once per (table, device) into a device tensor that every launch reads.

Example:
    >>> import torch, omegabridge as ob
    >>> from omegabridge.ops.backends import cuda
    >>> table = ob.HalfLine(low=0.0).segment_table()
    >>> if cuda.is_available(torch.device("cuda")):
    ...     m = cuda.BACKEND.posterior_mean(torch.tensor([[-3.0], [2.0]], device="cuda"), table, torch.ones(2, 1, device="cuda"))
    ...     assert bool((m >= 0).all())
    ... else:
    ...     assert cuda.unavailable_reason(torch.device("cuda"))  # says why (no GPU, not built)
"""

from __future__ import annotations

from types import ModuleType

import torch

from omegabridge.core.noise import NoiseAddress
from omegabridge.core.segments import SegmentTable
from omegabridge.ops import native
from omegabridge.ops.backends.fused import FusedBackend

__all__ = [
    "BACKEND", "CudaBackend", "EXTENSION", "load", "extension_reason", "unavailable_reason", "is_available", "layout",
    "step_schedule", "scheduled_step", "uniforms", "normals",
]

EXTENSION = "omegabridge._cuda_ext"
ABI = 2  # the `abi` attribute this Python code expects of the extension
_STORAGE = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}

_extension = native.LazyExtension(
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
        plan = native.make_layout(load(), table)
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


# The four places that talk to torch.cuda (tests/cuda_emulation.py replaces them to run this
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


class CudaBackend(FusedBackend):
    """The CUDA C++ kernels on CUDA tensors, launched on torch's current stream of the tensors' device."""

    name = "cuda"
    storage = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}

    def device_reason(self, device: torch.device) -> str:
        return unavailable_reason(device)

    def _drift(self, drift):
        return (0, 0) if drift is None else (drift.data_ptr(), self.storage[drift.dtype])

    def launch_mean(self, table, z, remaining_rows, out) -> None:
        plan, buffer = layout(table, z.device)
        with _on(z.device):
            load().posterior_mean(plan, buffer.data_ptr(), z.data_ptr(), remaining_rows.data_ptr(), out.data_ptr(),
                                  z.shape[0], _stream(z.device))

    def launch_step(self, table, z, drift, out, remaining, increment, address: NoiseAddress) -> None:
        plan, buffer = layout(table, z.device)
        with _on(z.device):
            load().step(
                plan, buffer.data_ptr(), z.data_ptr(), *self._drift(drift), out.data_ptr(), z.shape[0],
                remaining, increment, address.seed, address.step_index, address.row_offset, _stream(z.device),
            )

    def launch_bridge_step(self, table, z, drift, previous, out, prediction, remaining, fraction, weight, spread,
                           address: NoiseAddress) -> None:
        plan, buffer = layout(table, z.device)
        with _on(z.device):
            load().bridge_step(
                plan, buffer.data_ptr(), z.data_ptr(), *self._drift(drift), 0 if previous is None else previous.data_ptr(),
                out.data_ptr(), prediction.data_ptr(), z.shape[0], remaining, fraction, weight, spread.data_ptr(),
                address.seed, address.step_index, address.row_offset, _stream(z.device),
            )

    def launch_final(self, table, z, drift, out, remaining, address: NoiseAddress) -> None:
        plan, buffer = layout(table, z.device)
        with _on(z.device):
            load().final_step(
                plan, buffer.data_ptr(), z.data_ptr(), *self._drift(drift), out.data_ptr(), z.shape[0],
                remaining, address.seed, address.step_index, address.row_offset, _stream(z.device),
            )

    def launch_target(self, table, x, mean_scale_rows, noise_scale_rows, remaining_rows, z_t, target,
                      address: NoiseAddress) -> None:
        plan, buffer = layout(table, x.device)
        with _on(x.device):
            load().bridge_target(
                plan, buffer.data_ptr(), x.data_ptr(), self.storage[x.dtype], mean_scale_rows.data_ptr(),
                noise_scale_rows.data_ptr(), remaining_rows.data_ptr(), z_t.data_ptr(), target.data_ptr(), x.shape[0],
                address.seed, address.step_index, address.row_offset, _stream(x.device),
            )


BACKEND = CudaBackend()


def scheduled_step(z, drift, table, schedule: torch.Tensor, counter: torch.Tensor, seed: int, row_offset: int):
    """The Euler step k = ``counter`` (a device int64) in place on contiguous float32 ``z``, its scalars read
    on the device from ``schedule[k]`` (``step_schedule``): a launch a CUDA graph can replay every step.
    A counter outside the schedule's rows makes ``z`` NaN (the device is not asked, which would synchronise)."""
    drift = None if drift is None else BACKEND.stored(drift)
    plan, buffer = layout(table, z.device)
    with _on(z.device):
        load().scheduled_step(
            plan, buffer.data_ptr(), z.data_ptr(), *BACKEND._drift(drift), z.data_ptr(), z.shape[0],
            schedule.data_ptr(), schedule.shape[0], counter.data_ptr(), seed, row_offset, _stream(z.device),
        )
    return z


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
