"""Sampling steps replayed from a CUDA graph (``Bridge.sample(..., device="cuda", cuda_graph=True)``).

One Euler step (model evaluation + the fused CUDA step) is captured once per batch and replayed
for every further step. Nothing changes between replays on the host: the step index lives in a
device counter that the captured step advances, the schedule's scalars are read on the GPU from
a device table (``cuda.step_schedule``), t is gathered from the device time grid at the
counter, and the model's drift is checked for non-finite values into a device flag that the
caller reads once per batch. So the loop neither synchronises with the host nor pays a launch
overhead per kernel.

Step 0 runs eagerly first (on a side stream, as torch's graph documentation asks: it warms the
model up, e.g. lazy initialisation and cuBLAS handles); when capturing step 1 fails (a model
that synchronises, e.g. ``.item()``, or calls the host), a warning says why and the caller
continues eagerly from step 1, giving the same sample.

Example:
    >>> import torch, omegabridge as ob
    >>> from omegabridge.ops import cuda_graphs
    >>> cuda_graphs.unavailable_reason(torch.device("cpu"), "auto")
    'sampling on cpu, not on a CUDA device'
"""

from __future__ import annotations

import warnings

import torch

from omegabridge.ops import functional
from omegabridge.ops.backends import cuda

__all__ = ["unavailable_reason", "graphed_steps"]


def unavailable_reason(device: torch.device, backend: str, steps: int | None = None) -> str:
    """Why one step cannot be captured in a CUDA graph here ("" when it can)."""
    if device.type != "cuda":
        return f"sampling on {device}, not on a CUDA device"
    if backend not in ("auto", "cuda"):
        return f"the graph replays the fused step of backend='cuda', but backend={backend!r} was asked for"
    reason = cuda.unavailable_reason(device)
    if reason:
        return f"backend='cuda' cannot run: {reason}"
    if steps is not None and steps < 3:
        return f"{steps} steps leave no step to replay (step 0 runs eagerly, the last step is the exact draw)"
    return ""


def graphed_steps(bridge, model, z: torch.Tensor, times: torch.Tensor, seed: int, row_offset: int, finite: torch.Tensor,
                  check_output, bar) -> int:
    """Run steps 0 .. N-2 of one batch in place on ``z``; returns how many ran.

    ``times`` is the device time grid (t_0 .. t_{N-1}, float32), ``finite`` a device bool that is
    cleared when the model returns a non-finite drift, ``check_output(drift, z)`` checks shape and
    dtype without synchronising. Returns N - 1, or 1 when the capture failed (after a warning):
    the caller then runs steps 1 .. N-2 itself.
    """
    device = z.device
    last = bridge.steps - 1
    schedule = cuda.step_schedule(bridge._remaining[:last], bridge._increment[:last], device)
    counter = torch.zeros(1, dtype=torch.int64, device=device)
    rows = z.shape[0]

    def one_step():
        t = times.index_select(0, counter).expand(rows)
        drift = None
        if model is not None:
            drift = model(z, t)
            check_output(drift, z)
            finite.logical_and_(torch.isfinite(drift).all())
        functional.scheduled_step(z, drift, bridge.table, schedule=schedule, counter=counter, seed=seed, row_offset=row_offset)
        finite.logical_and_(functional.state_in_range(z))  # a drift that overflows the state, read once per batch
        counter.add_(1)

    with torch.cuda.device(device):  # the streams, the capture and torch's synchronisations on z's GPU
        caller_stream = torch.cuda.current_stream(device)
        side = torch.cuda.Stream(device)
        side.wait_stream(caller_stream)
        with torch.cuda.stream(side):
            one_step()  # step 0, eagerly: warms the model up (and uploads the layout) before the capture
        caller_stream.wait_stream(side)
        bar.update(1)
        graph = torch.cuda.CUDAGraph()
        try:
            # A capture stream of z's device: torch's shared default one belongs to whichever device
            # captured first in this process, and capturing there would record nothing of this step.
            with torch.cuda.graph(graph, stream=torch.cuda.Stream(device)):
                one_step()
        except Exception as error:  # the model cannot be captured: continue without the graph
            # A capture that fails in capture_end leaves torch.cuda.graph's stream current: restore ours.
            torch.cuda.set_stream(caller_stream)
            torch.cuda.synchronize(device)
            warnings.warn(
                f"cuda_graph=True: capturing a sampling step failed ({type(error).__name__}: {error}); "
                "sampling continues without a CUDA graph (same sample, slower)",
                RuntimeWarning,
                stacklevel=3,
            )
            return 1
        for _ in range(1, last):
            graph.replay()
            bar.update(1)
        # One read per batch (the caller reads its finiteness flag once per batch too): a graph that
        # replayed without advancing the counter would otherwise give a sample short of its steps.
        replayed = int(counter)
        if replayed != last:
            raise RuntimeError(f"cuda_graph=True: the replayed graph ran {replayed} of {last} steps; please report this")
    return last
