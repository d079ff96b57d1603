"""The fused ops as ``torch.library`` custom ops, ``torch.ops.omegabridge.<name>``, so ``torch.compile`` sees them.

A pybind11 call is opaque to the compiler; a custom op with a fake (meta) implementation is traced
as one node whose outputs' shapes and dtypes are known, and runs its real implementation at run
time. So a user's function that calls ``ob.ops.step`` compiles with ``fullgraph=True``.

Each op takes plain values: the segment table by its ``key``, the seed as the int64 with its 64
bits (seeds reach 2^64). The real implementation takes its backend's function from
``omegabridge.ops.registry`` and runs it. Ops that write into a caller's buffers are separate
ops that declare what they mutate (``step_out``, ``bridge_target_out``).

Per-row s is checked on the host in eager mode (``omegabridge.ops.functional``); inside a compiled
region that check would need the data, so the kernels' own rule applies instead, as on a GPU: a
row whose s is not finite and > 0 gets NaN in every output that depends on s (CPU tensors are
handled here; the GPU kernels do it themselves, and treat a subnormal s, below 1.2e-38, as
invalid too: it is one compare of the bits).

Example:
    >>> import torch, omegabridge as ob
    >>> table = ob.Binary().segment_table()
    >>> torch.ops.omegabridge.posterior_mean(torch.zeros(2, 1), table.key, torch.ones(2, 1), "auto").shape
    torch.Size([2, 1])
"""

from __future__ import annotations

import torch

from omegabridge.core.noise import NoiseAddress
from omegabridge.core.segments import Kind, SegmentTable
from omegabridge.ops import registry
from omegabridge.ops.backends.reference import STATE_DTYPES

__all__ = ["seed_word", "posterior_mean", "step", "step_out", "bridge_step", "final_step", "final_step_out", "bridge_target",
           "bridge_target_out"]

Tensor = torch.Tensor


def seed_word(seed: int) -> int:
    """A seed in [0, 2^64) as the int64 with the same bits (what an op's int argument can hold)."""
    return seed - (1 << 64) if seed >= 1 << 63 else seed


def _address(seed: int, step_index: int, row_offset: int) -> NoiseAddress:
    return NoiseAddress(seed & ((1 << 64) - 1), step_index, row_offset)


def _state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the state and of every output for inputs of ``dtype`` (float32 for bfloat16 and float16)."""
    return dtype if dtype in STATE_DTYPES else torch.float32


def _depends_on_remaining(table: SegmentTable, device) -> Tensor:
    """Columns whose mean depends on s (all but Real columns, where m = z)."""
    return (table.column_kinds != int(Kind.REAL)).to(device)


def _run_with_valid_remaining(remaining: Tensor, run):
    """``run(remaining)``, with the s of invalid rows (CPU tensors) replaced by 1 so no kernel sees it:
    returns (outputs, the invalid rows or None), and the caller sets those rows' outputs to NaN."""
    if remaining.device.type == "cpu":
        invalid = ~((remaining > 0) & torch.isfinite(remaining)).reshape(-1)
        if bool(invalid.any()):
            return run(torch.where(invalid[:, None], torch.ones_like(remaining), remaining)), invalid
    return run(remaining), None


# --------------------------------------------------------------------------------------------
# posterior_mean
# --------------------------------------------------------------------------------------------
@torch.library.custom_op("omegabridge::posterior_mean", mutates_args=())
def posterior_mean(z: Tensor, table_key: int, remaining: Tensor, backend: str) -> Tensor:
    """m(z, s) for every column; ``remaining`` (s) is per row, shape (rows, 1), in z's dtype."""
    table = SegmentTable.with_key(table_key)
    run = registry.implementation("posterior_mean", backend, z.device, z.dtype)
    out, invalid = _run_with_valid_remaining(remaining, lambda s: run(z, table, s))
    if invalid is not None:
        out[invalid[:, None] & _depends_on_remaining(table, out.device)[None, :]] = float("nan")
    return out.contiguous()


@posterior_mean.register_fake
def _(z, table_key, remaining, backend):
    return torch.empty(z.shape, dtype=z.dtype, device=z.device)


# --------------------------------------------------------------------------------------------
# step
# --------------------------------------------------------------------------------------------
def _step(z, drift, table_key, remaining, increment, seed, step_index, row_offset, backend, out):
    table = SegmentTable.with_key(table_key)
    run = registry.implementation("step", backend, z.device, z.dtype)
    return run(z, drift, table, remaining, increment, _address(seed, step_index, row_offset), out=out)


@torch.library.custom_op("omegabridge::step", mutates_args=())
def step(z: Tensor, drift: Tensor | None, table_key: int, remaining: float, increment: float, seed: int,
         step_index: int, row_offset: int, backend: str) -> Tensor:
    """One Euler step z + db [(m(z, s) - z)/s + f] + sqrt(db) xi, as a new tensor."""
    return _step(z, drift, table_key, remaining, increment, seed, step_index, row_offset, backend, None).contiguous()


@step.register_fake
def _(z, drift, table_key, remaining, increment, seed, step_index, row_offset, backend):
    return torch.empty(z.shape, dtype=z.dtype, device=z.device)


@torch.library.custom_op("omegabridge::step_out", mutates_args=("out",))
def step_out(z: Tensor, drift: Tensor | None, table_key: int, remaining: float, increment: float, seed: int,
             step_index: int, row_offset: int, backend: str, out: Tensor) -> None:
    """One Euler step written into ``out`` (which may be ``z`` itself: a step in place)."""
    _step(z, drift, table_key, remaining, increment, seed, step_index, row_offset, backend, out)


@step_out.register_fake
def _(z, drift, table_key, remaining, increment, seed, step_index, row_offset, backend, out):
    return None


# --------------------------------------------------------------------------------------------
# bridge_step
# --------------------------------------------------------------------------------------------
@torch.library.custom_op("omegabridge::bridge_step", mutates_args=("out", "prediction"))
def bridge_step(z: Tensor, drift: Tensor | None, previous: Tensor | None, table_key: int, remaining: float, fraction: float,
                weight: float, spread: Tensor, seed: int, step_index: int, row_offset: int, backend: str, out: Tensor,
                prediction: Tensor) -> None:
    """The bridge solver's step into ``out`` (may be ``z``) and its data prediction into ``prediction``."""
    table = SegmentTable.with_key(table_key)
    run = registry.implementation("bridge_step", backend, z.device, z.dtype)
    run(z, drift, previous, table, remaining, fraction, weight, spread, _address(seed, step_index, row_offset), out,
        prediction)


@bridge_step.register_fake
def _(z, drift, previous, table_key, remaining, fraction, weight, spread, seed, step_index, row_offset, backend, out,
      prediction):
    return None


# --------------------------------------------------------------------------------------------
# final_step
# --------------------------------------------------------------------------------------------
def _final_step(z, drift, table_key, remaining, seed, step_index, row_offset, final, backend, out):
    table = SegmentTable.with_key(table_key)
    address = _address(seed, step_index, row_offset)
    if final == "project":
        project = registry.IMPLEMENTATIONS[("final_step", "reference")]
        return project(z, drift, table, remaining, address, final=final, out=out)
    run = registry.implementation("final_step", backend, z.device, z.dtype)
    return run(z, drift, table, remaining, address, out=out)


@torch.library.custom_op("omegabridge::final_step", mutates_args=())
def final_step(z: Tensor, drift: Tensor | None, table_key: int, remaining: float, seed: int, step_index: int,
               row_offset: int, final: str, backend: str) -> Tensor:
    """The exact last step (``final="project"``: the Euler endpoint projected, on the reference)."""
    return _final_step(z, drift, table_key, remaining, seed, step_index, row_offset, final, backend, None).contiguous()


@final_step.register_fake
def _(z, drift, table_key, remaining, seed, step_index, row_offset, final, backend):
    return torch.empty(z.shape, dtype=z.dtype, device=z.device)


@torch.library.custom_op("omegabridge::final_step_out", mutates_args=("out",))
def final_step_out(z: Tensor, drift: Tensor | None, table_key: int, remaining: float, seed: int, step_index: int,
                   row_offset: int, final: str, backend: str, out: Tensor) -> None:
    """The exact last step written into ``out`` (which may be ``z``)."""
    _final_step(z, drift, table_key, remaining, seed, step_index, row_offset, final, backend, out)


@final_step_out.register_fake
def _(z, drift, table_key, remaining, seed, step_index, row_offset, final, backend, out):
    return None


# --------------------------------------------------------------------------------------------
# bridge_target
# --------------------------------------------------------------------------------------------
def _bridge_target(x, table_key, mean_scale, noise_scale, remaining, seed, step_index, row_offset, backend, out):
    table = SegmentTable.with_key(table_key)
    run = registry.implementation("bridge_target", backend, x.device, _state_dtype(x.dtype))
    address = _address(seed, step_index, row_offset)
    (z_t, target), invalid = _run_with_valid_remaining(
        remaining, lambda s: run(x, table, mean_scale, noise_scale, s, address, out=out)
    )
    if invalid is not None:
        target[invalid] = float("nan")  # (x - m) / s depends on s in every column
    return z_t, target


@torch.library.custom_op("omegabridge::bridge_target", mutates_args=())
def bridge_target(x: Tensor, table_key: int, mean_scale: Tensor, noise_scale: Tensor, remaining: Tensor, seed: int,
                  step_index: int, row_offset: int, backend: str) -> tuple[Tensor, Tensor]:
    """(Z_t, target) as new tensors in the state dtype; the scales are per row, shape (rows, 1)."""
    z_t, target = _bridge_target(x, table_key, mean_scale, noise_scale, remaining, seed, step_index, row_offset,
                                 backend, None)
    return z_t.contiguous(), target.contiguous()


@bridge_target.register_fake
def _(x, table_key, mean_scale, noise_scale, remaining, seed, step_index, row_offset, backend):
    dtype = _state_dtype(x.dtype)
    return (torch.empty(x.shape, dtype=dtype, device=x.device), torch.empty(x.shape, dtype=dtype, device=x.device))


@torch.library.custom_op("omegabridge::bridge_target_out", mutates_args=("z_t", "target"))
def bridge_target_out(x: Tensor, table_key: int, mean_scale: Tensor, noise_scale: Tensor, remaining: Tensor,
                      seed: int, step_index: int, row_offset: int, backend: str, z_t: Tensor, target: Tensor) -> None:
    """(Z_t, target) written into the caller's ``z_t`` and ``target``."""
    _bridge_target(x, table_key, mean_scale, noise_scale, remaining, seed, step_index, row_offset, backend,
                   (z_t, target))


@bridge_target_out.register_fake
def _(x, table_key, mean_scale, noise_scale, remaining, seed, step_index, row_offset, backend, z_t, target):
    return None
