"""The fused ops, validated once and run on a backend chosen through one registry.

``posterior_mean``, ``step``, ``bridge_step``, ``final_step``, ``bridge_target`` and ``scheduled_step`` (see
``omegabridge.ops.functional``); ``omegabridge.dispatch`` is the same module under its older name.

Example:
    >>> import torch, omegabridge as ob
    >>> table = ob.Interval(0.0, 1.0).segment_table()
    >>> ob.ops.step(torch.zeros(2, 1), None, table, remaining=1.0, increment=0.1, seed=0, step_index=0).shape
    torch.Size([2, 1])
"""

from omegabridge.ops.functional import (
    BACKENDS,
    MAX_COORDINATE,
    MAX_REMAINING,
    MAX_STATE,
    MIN_REMAINING,
    bridge_step,
    bridge_target,
    check_float32_range,
    check_state,
    first_out_of_range,
    state_in_range,
    check_device,
    final_step,
    posterior_mean,
    resolve_backend,
    scheduled_step,
    step,
)

__all__ = [
    "MAX_STATE", "MAX_COORDINATE", "MIN_REMAINING", "MAX_REMAINING", "check_float32_range", "state_in_range", "first_out_of_range",
    "check_state",
    "BACKENDS", "check_device", "resolve_backend", "posterior_mean", "step", "bridge_step", "scheduled_step", "final_step", "bridge_target",
]
