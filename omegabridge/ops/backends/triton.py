"""The fused Triton kernels (package ``kernels``, installed as ``omegabridge.kernels``) behind torch tensors.

Rows may keep any stride as long as columns are contiguous; f and x stay in float32, bfloat16 or
float16 and are widened on load. The layout's work items are built once per (table, device) and
cached on the table.

On a machine without a GPU the kernels run under Triton's interpreter when ``TRITON_INTERPRET=1``
was set before triton was imported (that is how the test suite runs them on CPU tensors); it is
exact but slow, so ``backend="auto"`` never picks it.

Example:
    >>> import torch, omegabridge as ob
    >>> from omegabridge.ops.backends import triton
    >>> device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    >>> if triton.is_available(device):
    ...     z = torch.tensor([[-3.0], [2.0]], device=device)
    ...     m = triton.BACKEND.posterior_mean(z, ob.HalfLine(low=0.0).segment_table(), torch.ones(2, 1, device=device))
    ...     assert bool((m >= 0).all())
"""

from __future__ import annotations

import os

import torch

from omegabridge import kernels
from omegabridge.core.noise import NoiseAddress
from omegabridge.core.segments import SegmentTable
from omegabridge.errors import BackendUnavailableError
from omegabridge.ops.backends.fused import FusedBackend

__all__ = ["BACKEND", "TritonBackend", "is_available", "unavailable_reason", "interpreting"]


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def unavailable_reason(device: torch.device) -> str:
    """Why the Triton kernels cannot run on ``device`` ("" when they can)."""
    reason = kernels.unavailable_reason()
    if reason:
        return reason
    if device.type == "cuda":
        return ""
    if device.type == "cpu":
        if interpreting():
            return ""
        return "Triton kernels run on CUDA tensors (on CPU only under TRITON_INTERPRET=1, for testing)"
    return f"Triton kernels do not run on {device.type} tensors"


def is_available(device: torch.device) -> bool:
    """Whether the Triton kernels can run on ``device``."""
    return unavailable_reason(torch.device(device)) == ""


def _plan(table: SegmentTable, device: torch.device):
    from omegabridge.kernels.plan import build_plan  # triton is imported only once a Triton kernel runs

    return build_plan(table, device)


class TritonBackend(FusedBackend):
    """The Triton kernels on CUDA tensors (and on CPU tensors in the interpreter)."""

    name = "triton"
    storage = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}
    row_strided = True

    def device_reason(self, device: torch.device) -> str:
        return unavailable_reason(device)

    def launch_mean(self, table, z, remaining_rows, out) -> None:
        from omegabridge.kernels import bridge

        bridge.launch(bridge.MEAN.value, _plan(table, z.device), z, out=out, remaining_rows=remaining_rows)

    def launch_step(self, table, z, drift, out, remaining, increment, address: NoiseAddress) -> None:
        from omegabridge.kernels import bridge

        bridge.launch(bridge.STEP.value, _plan(table, z.device), z, drift=drift, out=out, remaining=remaining,
                      increment=increment, address=address)

    def launch_bridge_step(self, table, z, drift, previous, out, prediction, remaining, fraction, weight, spread,
                           address: NoiseAddress) -> None:
        from omegabridge.kernels import bridge

        bridge.launch(bridge.BRIDGE_STEP.value, _plan(table, z.device), z, drift=drift, out=out, target=prediction,
                      remaining=remaining, increment=fraction, address=address, previous=previous, spread=spread,
                      weight=weight)

    def launch_final(self, table, z, drift, out, remaining, address: NoiseAddress) -> None:
        from omegabridge.kernels import final_step

        final_step.launch(_plan(table, z.device), z, drift, out, remaining, address)

    def final_step(self, z, drift, table, remaining, address, out=None):
        plan = _plan(table, z.device)
        if plan.wide_sphere:
            raise BackendUnavailableError(
                f"backend='triton': the exact last step of a sphere wider than 1021 dimensions is not implemented "
                f"({plan.wide_sphere}); use backend='reference' or 'cpu'"
            )
        return super().final_step(z, drift, table, remaining, address, out=out)

    def launch_target(self, table, x, mean_scale_rows, noise_scale_rows, remaining_rows, z_t, target,
                      address: NoiseAddress) -> None:
        from omegabridge.kernels import bridge

        bridge.launch(bridge.TARGET.value, _plan(table, x.device), x, out=z_t, target=target,
                      remaining_rows=remaining_rows, mean_scale_rows=mean_scale_rows, noise_scale_rows=noise_scale_rows,
                      address=address)


BACKEND = TritonBackend()
