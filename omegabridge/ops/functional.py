"""The public fused ops, validating their inputs once and running them as ``torch.ops.omegabridge`` ops.

Ops: ``posterior_mean``, ``step``, ``bridge_step`` (the bridge solver's), ``final_step`` and ``bridge_target`` (and ``scheduled_step``,
the CUDA-graph form of the step). Backends, chosen through ``omegabridge.ops.registry``:

* ``"reference"``: the torch reference, any device, float32 or float64;
* ``"cpu"``: the fused C++ kernels (csrc/cpu) on CPU tensors with float32 state;
* ``"cuda"``: the fused CUDA C++ kernels (csrc/cuda) on CUDA tensors with float32 state, launched
  on the caller's current stream;
* ``"triton"``: the fused Triton kernels (kernels/) on CUDA tensors with float32 state (and on
  CPU tensors under ``TRITON_INTERPRET=1``, which is how the tests run them without a GPU);
* ``"auto"``: the first that can run of ``registry.AUTO_ORDER``: ``"cpu"`` then the reference
  on CPU tensors, ``"triton"`` then the reference on CUDA tensors.

Asking for a backend that cannot run raises ``BackendUnavailableError`` with the reason. Every
check here looks at shapes, dtypes, devices and Python numbers only, so it traces under
``torch.compile``; the checks that read data (per-row s, and the state of ``step`` and
``final_step``, on CPU tensors) run in eager mode only, and inside a compiled region or on a
GPU the kernels' NaN rule for invalid rows applies instead (``Bridge.sample`` catches it).

Float32 range (``check_float32_range``): a state is at most ``MAX_STATE`` in magnitude, s is
in [``MIN_REMAINING``, ``MAX_REMAINING``], and a domain's finite ends are at most
``MAX_COORDINATE`` with a width resolvable in float32. Inside these limits every square and
ratio the kernels form stays finite; outside them they can overflow to NaN.

Example:
    >>> import torch, omegabridge as ob
    >>> table = ob.Interval(0.0, 1.0).segment_table()
    >>> z = ob.ops.step(torch.zeros(2, 1), None, table, remaining=1.0, increment=0.1, seed=0, step_index=0)
    >>> z.shape
    torch.Size([2, 1])
"""

from __future__ import annotations

import math
import numbers

import torch

from omegabridge.core.segments import Kind, SegmentTable
from omegabridge.errors import BackendUnavailableError
from omegabridge.ops import library, registry
from omegabridge.ops.backends import cuda
from omegabridge.ops.backends.fused import overlaps_elsewhere, shares_storage

__all__ = [
    "MAX_STATE", "MAX_COORDINATE", "MIN_REMAINING", "MAX_REMAINING", "check_float32_range", "state_in_range",
    "first_out_of_range", "check_state", "BACKENDS", "check_device", "resolve_backend", "posterior_mean", "step", "bridge_step", "scheduled_step", "final_step",
    "bridge_target",
]

BACKENDS = registry.NAMES
_STATE_DTYPES = (torch.float32, torch.float64)
_DRIFT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
_DATA_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)

#: Largest |z| a state may hold: its square, summed over a sphere's coordinates, stays below float32's 3.4e38.
MAX_STATE = 1e19
#: Largest |end| of an interval, half-line or lattice: the default schedule's s is about the squared reach
#: (<= 4e32 here), and an end plus ten sqrt(MAX_REMAINING) of noise stays inside MAX_STATE.
MAX_COORDINATE = 1e16
#: Range of s (remaining): 1/s is a normal float32 number, and sqrt(s) of noise stays within MAX_STATE.
MIN_REMAINING, MAX_REMAINING = 1e-30, 1e34
#: Largest |end| / s at the first step (the singular drift from the start state 0).
MAX_START_DRIFT = 1e30
#: A width (or lattice step) must be at least this fraction of the largest |end| (float32 has 24 bits).
MIN_RELATIVE_WIDTH = 1e-6


def check_float32_range(table: SegmentTable, largest_remaining: float, smallest_remaining: float) -> None:
    """``ValueError`` naming the factor or the schedule when a bridge's arithmetic cannot be carried in float32.

    >>> import omegabridge as ob
    >>> check_float32_range(ob.Interval(0, 1).segment_table(), 10.0, 1e-3)  # fine
    >>> check_float32_range(ob.Interval(-1e38, 1e38).segment_table(), 10.0, 1e-3)
    Traceback (most recent call last):
    ...
    ValueError: factor 0 (interval [-1e+38, 1e+38]): |end| 1e+38 is over 1e+16, beyond what float32 sampling can carry; rescale the data
    """
    for index, segment in enumerate(table.segments):
        ends = _finite_ends(segment)
        if not ends:
            continue
        name = f"factor {index} ({segment.kind.name.lower().replace('_', '-')} [{segment.low:g}, {segment.high:g}])"
        largest = max(abs(end) for end in ends)
        if largest > MAX_COORDINATE:
            raise ValueError(f"{name}: |end| {largest:g} is over {MAX_COORDINATE:g}, beyond what float32 sampling can carry; "
                             "rescale the data")
        lattice = segment.kind == Kind.LATTICE
        spacing = segment.step if lattice else segment.high - segment.low
        if len(ends) == 2 and spacing < MIN_RELATIVE_WIDTH * largest:
            raise ValueError(f"{name}: {'step' if lattice else 'width'} {spacing:g} is below "
                             f"{MIN_RELATIVE_WIDTH:g} of |end| {largest:g}, finer than float32 resolves there; shift the data")
        # Sampling starts at z = 0 with the largest s: the singular drift there is about |end| / s.
        if largest > MAX_START_DRIFT * largest_remaining:
            raise ValueError(f"{name}: |end| {largest:g} is too far from the start (0) for the schedule's first s "
                             f"({largest_remaining:.3g}): the singular drift |end| / s would overflow float32; choose a "
                             "larger schedule scale, or shift the data")
    if not MIN_REMAINING <= smallest_remaining <= largest_remaining <= MAX_REMAINING:
        remedy = ("a smaller schedule scale, or rescale the data" if largest_remaining > MAX_REMAINING
                  else "a larger schedule scale, fewer steps or another grid")
        raise ValueError(
            f"the schedule's s runs from {largest_remaining:.3g} down to {smallest_remaining:.3g}; float32 sampling needs s in "
            f"[{MIN_REMAINING:g}, {MAX_REMAINING:g}]: choose {remedy}")


def _finite_ends(segment) -> tuple[float, ...]:
    if segment.kind in (Kind.INTERVAL, Kind.LATTICE):
        return segment.low, segment.high
    if segment.kind == Kind.HALFLINE_LOWER:
        return (segment.low,)
    if segment.kind == Kind.HALFLINE_UPPER:
        return (segment.high,)
    return ()


def state_in_range(z: torch.Tensor) -> torch.Tensor:
    """A 0-dim bool tensor on z's device: every entry finite and at most ``MAX_STATE`` in magnitude (no host sync)."""
    if z.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=z.device)
    low, high = torch.aminmax(z)
    return (low >= -MAX_STATE) & (high <= MAX_STATE)  # NaN compares false


def first_out_of_range(z: torch.Tensor) -> tuple[int, int]:
    """(row, column) of z's first entry that is non-finite or over ``MAX_STATE`` in magnitude (z must have one)."""
    row, column = (int(i) for i in (~(z.abs() <= MAX_STATE)).nonzero()[0])  # NaN compares false
    return row, column


def check_state(z: torch.Tensor, name: str = "z") -> None:
    """On CPU tensors in eager mode: ``ValueError`` naming the first row with a non-finite or out-of-range entry."""
    if z.device.type != "cpu" or torch.compiler.is_compiling() or bool(state_in_range(z)):
        return
    row, column = first_out_of_range(z)
    raise ValueError(f"{name} has {float(z[row, column])!r} at row {row}, column {column}; a state must be finite and "
                     f"at most {MAX_STATE:g} in magnitude")


def check_device(device) -> torch.device:
    """``device`` as a torch.device that can hold data here, or a clear error."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got {device!r}") from error
    if device.type == "meta":
        raise ValueError("device 'meta' cannot hold a sample; use 'cpu' or 'cuda'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device={str(device)!r} was asked for but CUDA is not available on this machine")
    return device


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """The name of the backend that will run an op on ``device`` with state ``dtype`` ('auto': the first of
    ``registry.AUTO_ORDER`` that can run); raises ``BackendUnavailableError`` saying why a named one cannot."""
    return registry.choose("step", backend, torch.device(device), dtype).name


def _check_backend(backend) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(repr(b) for b in BACKENDS)}, got {backend!r}")


def _check_matrix(name: str, tensor, table: SegmentTable, dtypes) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != 2 or tensor.shape[1] != table.width:
        raise ValueError(f"{name} must have shape (rows, {table.width}) for this domain, got {tuple(tensor.shape)}")
    if tensor.dtype not in dtypes:
        allowed = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must have dtype {allowed}; got {str(tensor.dtype).replace('torch.', '')}")


def _check_drift(drift, z: torch.Tensor, table: SegmentTable) -> None:
    if drift is None:
        return
    _check_matrix("drift", drift, table, _DRIFT_DTYPES)
    if drift.shape != z.shape:
        raise ValueError(f"drift must have the shape of the state {tuple(z.shape)}, got {tuple(drift.shape)}")
    if drift.device != z.device:
        raise ValueError(f"drift is on {drift.device} but the state is on {z.device}")


def _check_out(out, z: torch.Tensor, name: str = "out") -> None:
    if out is None:
        return
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(out).__name__}")
    if out.shape != z.shape or out.dtype != z.dtype or out.device != z.device:
        raise ValueError(
            f"{name} must match the state: shape {tuple(z.shape)}, {z.dtype}, {z.device}; "
            f"got {tuple(out.shape)}, {out.dtype}, {out.device}"
        )


def _check_positive(name: str, value) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be one number, got {type(value).__name__} {value!r:.60}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return number


def _check_remaining(name: str, value) -> float:
    number = _check_positive(name, value)
    if not MIN_REMAINING <= number <= MAX_REMAINING:
        raise ValueError(f"{name} ({number:g}) must lie in [{MIN_REMAINING:g}, {MAX_REMAINING:g}], the range float32 sampling carries")
    return number


def _check_address(seed, step_index, row_offset) -> None:
    for name, value, bound in (("seed", seed, 2**64), ("step_index", step_index, 2**32), ("row_offset", row_offset, 2**48)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < bound:
            raise ValueError(f"{name} must be an integer in [0, {bound}), got {value!r}")


def _check_per_row(name: str, value, x: torch.Tensor) -> torch.Tensor:
    dtype = x.dtype if x.dtype in _STATE_DTYPES else torch.float32  # never round s or c to bfloat16
    value = torch.as_tensor(value, dtype=dtype, device=x.device)
    if value.dim() == 0:
        value = value.expand(x.shape[0])
    value = value.reshape(-1, 1) if value.numel() == x.shape[0] else value
    if value.shape != (x.shape[0], 1):
        raise ValueError(f"{name} must be a scalar or have one entry per row ({x.shape[0]}), got {tuple(value.shape)}")
    return value


def _check_remaining_rows(s: torch.Tensor) -> None:
    """Per-row s must be finite and > 0. On a GPU this check would wait for the device every call
    (a training step's worth of idle time), and inside ``torch.compile`` it would need the data, so
    it runs on CPU tensors in eager mode only; elsewhere a row with such an s gets NaN in every
    output that depends on s (the reference, on GPU tensors, computes with it as given)."""
    if s.device.type == "cpu" and not torch.compiler.is_compiling() and not bool(((s > 0) & torch.isfinite(s)).all()):
        raise ValueError("remaining (s) must be finite and > 0 in every row")


def posterior_mean(z: torch.Tensor, table: SegmentTable, remaining, backend: str = "auto") -> torch.Tensor:
    """m(z, s) for every column; ``remaining`` (s) is a scalar or per-row, all > 0."""
    _check_matrix("z", z, table, _STATE_DTYPES)
    _check_backend(backend)
    s = _check_per_row("remaining", remaining, z)
    _check_remaining_rows(s)
    return torch.ops.omegabridge.posterior_mean(z, table.key, s, backend)


def step(
    z: torch.Tensor,
    drift: torch.Tensor | None,
    table: SegmentTable,
    *,
    remaining: float,
    increment: float,
    seed: int,
    step_index: int,
    row_offset: int = 0,
    backend: str = "auto",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """One Euler step z + db [(m(z, s) - z)/s + f] + sqrt(db) xi; returns the new state.

    ``out`` (optional) receives the result and is returned; it may be ``z`` itself, so a
    sampler can step in place without allocating a new state every step.
    """
    _check_matrix("z", z, table, _STATE_DTYPES)
    _check_drift(drift, z, table)
    s = _check_remaining("remaining", remaining)
    db = _check_positive("increment", increment)
    if db > s * (1 + 1e-12):
        raise ValueError(f"increment ({db}) must not exceed remaining ({s})")
    _check_address(seed, step_index, row_offset)
    _check_out(out, z)
    _check_backend(backend)
    check_state(z)
    arguments = (z, drift, table.key, s, db, library.seed_word(seed), step_index, row_offset, backend)
    if out is None:
        return torch.ops.omegabridge.step(*arguments)
    torch.ops.omegabridge.step_out(*arguments, out)
    return out


def bridge_step(
    z: torch.Tensor,
    drift: torch.Tensor | None,
    previous: torch.Tensor | None,
    table: SegmentTable,
    *,
    remaining: float,
    fraction: float,
    weight: float,
    spread: torch.Tensor,
    seed: int,
    step_index: int,
    row_offset: int = 0,
    backend: str = "auto",
    out: torch.Tensor | None = None,
    prediction: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the ``"bridge"`` solver in one pass: returns (new state, data prediction x_hat).

    x_hat = m(z, s) + s f; the new state is z + fraction (x_hat + weight (x_hat - previous) - z)
    + spread xi, ``spread`` one value per column (the solver's noise), xi the step stream's normal
    at (seed, step_index, row), as in ``step``. ``previous`` (the last step's x_hat, or None with
    weight 0) feeds the multistep term. ``out`` may be ``z`` itself; ``prediction`` (optional) is a
    buffer of z's shape and dtype that shares memory with no input.
    """
    _check_matrix("z", z, table, _STATE_DTYPES)
    _check_drift(drift, z, table)
    s = _check_remaining("remaining", remaining)
    fraction = _check_positive("fraction", fraction)
    if fraction > 1 + 1e-12:
        raise ValueError(f"fraction (delta / s) must lie in (0, 1], got {fraction}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise ValueError(f"weight must be a finite number, got {weight!r}")
    if previous is None and weight != 0:
        raise ValueError(f"weight ({weight}) needs the previous prediction; pass previous= or weight=0")
    if previous is not None:
        _check_matrix("previous", previous, table, _STATE_DTYPES)
        _check_out(previous, z, "previous")
    if not isinstance(spread, torch.Tensor) or spread.shape != (table.width,) or not spread.dtype.is_floating_point:
        raise ValueError(f"spread must be a float tensor of shape ({table.width},), one value per column, got "
                         f"{type(spread).__name__ if not isinstance(spread, torch.Tensor) else tuple(spread.shape)}")
    if spread.device != z.device:
        raise ValueError(f"spread is on {spread.device} but the state is on {z.device}")
    if spread.device.type == "cpu" and not bool((torch.isfinite(spread) & (spread >= 0)).all()):
        raise ValueError("spread must be finite and >= 0 in every column")
    _check_out(out, z)
    if prediction is None:
        prediction = torch.empty_like(z)
    else:
        _check_out(prediction, z, "prediction")
        for name, other in (("z", z), ("drift", drift), ("previous", previous), ("out", out)):
            if other is not None and shares_storage(prediction, other):
                raise ValueError(f"prediction must not share memory with {name}")
    if out is None:
        out = torch.empty_like(z)
    _check_address(seed, step_index, row_offset)
    _check_backend(backend)
    check_state(z)
    if previous is not None:
        check_state(previous, "previous")
    torch.ops.omegabridge.bridge_step(z, drift, previous, table.key, s, fraction, float(weight),
                                      spread.to(z.dtype).contiguous(), library.seed_word(seed), step_index, row_offset,
                                      backend, out, prediction)
    return out, prediction


def scheduled_step(
    z: torch.Tensor,
    drift: torch.Tensor | None,
    table: SegmentTable,
    *,
    schedule: torch.Tensor,
    counter: torch.Tensor,
    seed: int,
    row_offset: int = 0,
) -> torch.Tensor:
    """The Euler step k = ``counter`` in place on ``z``, on the CUDA backend, with the step's scalars read
    on the GPU from ``schedule[k]`` (``backends.cuda.step_schedule``): nothing is passed per step from the
    host, so one launch captured in a CUDA graph replays every step (``Bridge.sample(..., cuda_graph=True)``).
    ``z`` must be a contiguous float32 CUDA tensor; ``counter`` a one-element int64 tensor on its device
    (the caller advances it); the step's noise is that of ``step(..., step_index=k)``.
    """
    _check_matrix("z", z, table, (torch.float32,))
    _check_drift(drift, z, table)
    _check_address(seed, 0, row_offset)
    registry.choose("step", "cuda", z.device, z.dtype)
    if not z.is_contiguous():
        raise ValueError("scheduled_step steps z in place and needs it contiguous")
    if drift is not None and overlaps_elsewhere(drift, z):
        drift = drift.clone()
    if not isinstance(schedule, torch.Tensor) or schedule.dtype != torch.float32 or schedule.dim() != 2 or schedule.shape[1] != 5:
        raise ValueError("schedule must be a float32 tensor (steps, 5) from backends.cuda.step_schedule")
    if not isinstance(counter, torch.Tensor) or counter.dtype != torch.int64 or counter.numel() != 1:
        raise ValueError("counter must be a one-element int64 tensor")
    if schedule.device != z.device or counter.device != z.device:
        raise ValueError(f"schedule and counter must be on the state's device {z.device}")
    return cuda.scheduled_step(z, drift, table, schedule.contiguous(), counter, seed, row_offset)


def final_step(
    z: torch.Tensor,
    drift: torch.Tensor | None,
    table: SegmentTable,
    *,
    remaining: float,
    seed: int,
    step_index: int,
    row_offset: int = 0,
    final: str = "exact",
    backend: str = "auto",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The exact last step (or ``final="project"``); every output row lies in the domain.

    ``final="project"`` runs on the torch reference whatever the backend (it is a debugging aid).
    ``out`` (optional, z's shape, dtype and device) receives the rows, so a sampler can write them
    straight into its sample; it may be ``z`` itself (the kernels then write through a copy).
    """
    _check_matrix("z", z, table, _STATE_DTYPES)
    _check_drift(drift, z, table)
    s = _check_remaining("remaining", remaining)
    _check_address(seed, step_index, row_offset)
    if final not in ("exact", "project"):
        raise ValueError(f"final must be 'exact' or 'project', got {final!r}")
    _check_backend(backend)
    _check_out(out, z)
    check_state(z)
    arguments = (z, drift, table.key, s, library.seed_word(seed), step_index, row_offset, final, backend)
    if out is None:
        return torch.ops.omegabridge.final_step(*arguments)
    torch.ops.omegabridge.final_step_out(*arguments, out)
    return out


def bridge_target(
    x: torch.Tensor,
    table: SegmentTable,
    *,
    mean_scale,
    noise_scale,
    remaining,
    seed: int,
    step_index: int = 0,
    row_offset: int = 0,
    backend: str = "auto",
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Z_t = c x + sigma_t eps and the target (x - m(Z_t, s)) / s, with per-row (or scalar) c, sigma_t, s.

    ``out=(z_t, target)`` (optional) receives the results, so a training loop can reuse two
    buffers instead of allocating them every minibatch; both must have x's shape and the
    state dtype (float32 for bfloat16 or float16 x).
    """
    _check_matrix("x", x, table, _DATA_DTYPES)
    _check_backend(backend)
    c = _check_per_row("mean_scale", mean_scale, x)
    sigma = _check_per_row("noise_scale", noise_scale, x)
    s = _check_per_row("remaining", remaining, x)
    _check_remaining_rows(s)
    _check_address(seed, step_index, row_offset)
    state = torch.empty((), dtype=c.dtype, device=x.device).expand(x.shape)  # shape, dtype and device of the outputs
    if out is not None:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError("out must be a pair of tensors (z_t, target)")
        for tensor in out:
            _check_out(tensor, state)
    arguments = (x, table.key, c, sigma, s, library.seed_word(seed), step_index, row_offset, backend)
    if out is None:
        return torch.ops.omegabridge.bridge_target(*arguments)
    torch.ops.omegabridge.bridge_target_out(*arguments, out[0], out[1])
    return out[0], out[1]
