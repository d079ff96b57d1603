"""Samplers of the bridge SDE: the step a ``Bridge`` takes between network evaluations (docs/math.md, "Solvers").

Every solver evaluates the network once per step and ends with the same exact last step
(``ops.final_step``), so every sample lies in the domain whatever the solver. They differ in
how they move the state from remaining variance s to s - delta, given the data prediction
x_hat = m(z, s) + s f (the drift's estimate of E[X | Z = z], bridge-math section 3):

* ``"euler"``: Euler-Maruyama, z + delta (x_hat - z)/s + sqrt(delta) xi (order 1/2 strong,
  1 weak); bit for bit what the fused ``ops.step`` computes.
* ``"bridge"`` (the default, ``DEFAULT_SOLVER``): the Brownian bridge from z to the data prediction, which integrates the linear
  -z/s part of the drift exactly: mean z + (delta/s)(x_hat' - z), variance delta (s - delta)/s,
  plus (delta/s)^2 v_k where a posterior variance v (``Bridge.posterior_variance``) is given.
  x_hat' extrapolates the data prediction from the previous step's, in lambda = log SNR / 2, as
  DPM-Solver++(2M) does: x_hat' = x_hat + (x_hat - x_hat_prev) / (2 r), r = h_prev / h, so it
  is second order in the data prediction at one evaluation per step (first order on the first
  steps, where the previous lambda is -inf).

Both draw the step stream's normals (``noise.STREAM_STEP`` at (seed, k, row, column), docs/noise.md)
and nothing else before the last step, so a sample depends on (seed, row) only, not on the
batch size or the backend.

Example:
    >>> import omegabridge as ob
    >>> bridge = ob.Bridge(ob.Lattice(0, 4), steps=10, grid="s")
    >>> x = bridge.sample(None, n=3, seed=0, solver="bridge", progress=False)
    >>> bool(bridge.domain.contains(x).all())
    True
"""

from __future__ import annotations

import math

import torch

from omegabridge import ops
from omegabridge.core import noise
from omegabridge.core.segments import Kind

__all__ = ["FINAL_SPREADS", "posterior_spread_last_step", "continuous_columns", "SOLVERS", "DEFAULT_SOLVER", "TABLE_GRID", "MAX_VARIANCE", "MAX_EXTRAPOLATION", "BridgeSolver", "check_solver", "check_posterior_variance",
           "domain_grid", "log_signal_to_noise"]

SOLVERS = ("euler", "bridge")
#: The solver of ``Bridge.sample`` and ``TabularBridge.sample`` when none is named (measured in
#: bench/results/solvers.md and bench/results/few-step-tables.md).
DEFAULT_SOLVER = "bridge"

#: ``TabularBridge``'s time grid: the power of s chosen from the columns' spacings (``domain_grid``), which puts
#: the last steps where a fine lattice (a count column) decides between its values. On the mixed table of
#: bench/rare_values.py a count's zero at 1.5% of the rows comes out at 0.022 instead of 0.038 on grid "t"; on
#: fair the mean discrete TV is 0.030 against 0.032 (bench/results/few-step-tables.md).
TABLE_GRID = "domain"
#: Largest posterior variance accepted: (1e-2 * ops.MAX_STATE)^2, so ten standard deviations of it stay in range.
MAX_VARIANCE = (1e-2 * ops.MAX_STATE) ** 2
#: Largest multistep weight h / (2 h_prev): a grid whose step grows more than twofold falls back towards first order.
MAX_EXTRAPOLATION = 1.0


def check_solver(solver) -> str:
    """``solver`` if it names one of ``SOLVERS``; ``ValueError`` otherwise.

    >>> check_solver("bridge")
    'bridge'
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    return solver


#: The ``"domain"`` grid's largest last s on a discrete factor: (spacing / 5)^2, where the exact last
#: step puts all but 1e-6 of a centred point's mass on it (2.5 sd to the midpoint).
DISCRETE_LAST_SPREAD = 0.2
#: The power on continuous factors, and on discrete ones whose s_0 is 16 spacings squared or more:
#: s^3, the best measured power at 25 and 50 steps on the interval, half-line and mixed
#: lattice x categorical targets (bench/results/solvers.md).
GRID_POWER = 3.0


def discrete_spacing(segment) -> float | None:
    """The distance between neighbouring values of a discrete segment (a lattice's step; 1 for a binary or
    categorical, whose values are 0/1 corners), None for a continuous one.

    >>> import omegabridge as ob
    >>> [discrete_spacing(segment) for segment in ob.Product([ob.Lattice(0, 4, step=0.5), ob.Real()]).segment_table().segments]
    [0.5, None]
    """
    if segment.kind == Kind.LATTICE:
        return float(segment.step)
    return 1.0 if segment.kind in (Kind.BINARY, Kind.CATEGORICAL) else None


def domain_grid(table, schedule, steps: int) -> str:
    """The ``"domain"`` grid as an ``"s^RHO"`` name: s_k = s_0 (1 - k/N)^RHO with RHO from the domain.

    A discrete factor (lattice, binary, categorical; spacing 1 but for a lattice's step)
    decides between its points while s falls through the spacing squared. When s_0 is not far
    above it (the ratio r = s_0 / spacing^2 near 1), the whole run is that decision and steps
    uniform in s serve it best (RHO = 1, the ``"beta"`` grid); when s_0 is far above it, the
    steps belong at small s: RHO = 1 + log_4 r, from 1 at r = 1 to ``GRID_POWER`` at r = 16. At
    least the RHO whose last s, s_0 / N^RHO, is (``DISCRETE_LAST_SPREAD`` x spacing)^2, and at
    most 8 (8-bit pixels at 10 steps ask 6.2). Continuous factors (real, interval, half-line,
    sphere) want their last spread far below any scale of theirs and take ``GRID_POWER``; a
    row takes the largest power of its factors. Fitted to the targets of bench/solvers.py at
    10 to 50 steps, where bench/results/solvers.md measures it.

    >>> import omegabridge as ob
    >>> domain_grid(ob.Lattice(0, 9).segment_table(), ob.schedules.Exp(3.0, 1.0), 25)
    's^1'
    >>> domain_grid(ob.Interval(0, 1).segment_table(), ob.schedules.Exp(3.0, 1.0), 25)
    's^3'
    """
    s_0 = float(schedule.beta(torch.tensor(1.0, dtype=torch.float64)))
    rho = 1.0
    for segment in table.segments:
        spacing = discrete_spacing(segment)
        if spacing is not None:
            ratio = s_0 / spacing**2
            from_ratio = min(GRID_POWER, 1.0 + math.log(max(ratio, 1.0)) / math.log(4.0))
            from_last = math.log(max(s_0 / (DISCRETE_LAST_SPREAD * spacing) ** 2, 1.0)) / math.log(steps)
            rho = max(rho, from_ratio, from_last)
        else:
            rho = max(rho, GRID_POWER)
    # Two decimals keep one spelling per grid; grid_power's range and the float64 floor of Schedule.grid
    # (s_last >= 1e-14 s_0) bound it from above.
    rho = min(rho, 8.0, 14.0 / math.log10(steps))
    return f"s^{math.floor(rho * 100) / 100:g}"


def check_posterior_variance(variance, steps: int, width: int, solver: str) -> torch.Tensor | None:
    """The posterior variance table (steps, width) as float64 on the CPU, checked; None stays None.

    >>> check_posterior_variance(torch.zeros(4, 2), 4, 2, "bridge").dtype
    torch.float64
    """
    if variance is None:
        return None
    if solver != "bridge":
        raise ValueError(f"posterior_variance is used by solver='bridge' only, got solver={solver!r}")
    if not isinstance(variance, torch.Tensor):
        raise TypeError(f"posterior_variance must be a torch.Tensor (from Bridge.posterior_variance), got {type(variance).__name__}")
    if variance.shape != (steps, width):
        raise ValueError(f"posterior_variance must have shape (steps, width) = ({steps}, {width}) for this bridge, "
                         f"got {tuple(variance.shape)}")
    variance = variance.detach().to(device="cpu", dtype=torch.float64)
    # Its square root scales the noise of a float32 state: beyond MAX_VARIANCE the state would overflow
    # and the failure would be blamed on the model.
    bad = ~(torch.isfinite(variance) & (variance >= 0) & (variance <= MAX_VARIANCE))
    if bool(bad.any()):
        step, column = (int(v) for v in torch.nonzero(bad)[0])
        raise ValueError(f"posterior_variance must be finite and in [0, {MAX_VARIANCE:g}]; step {step}, column {column} "
                         f"holds {float(variance[step, column])!r}")
    return variance


def log_signal_to_noise(remaining: list[float], beta_end: float) -> list[float]:
    """lambda_k = log(c / sqrt(v)) of the x-bridge marginal Z = c X + sqrt(v) eps started at 0, at each s_k,
    and +inf for the end (s = 0): e^(2 lambda) = c^2 / v = 1/s - 1/beta(1), with c = beta/beta(1) and
    v = beta s / beta(1). The bridge's drift does not depend on the start, so neither does lambda: a
    random start (``start_std``) widens Z_t but not the transition the solver integrates. -inf at s = beta(1).

    >>> log_signal_to_noise([1.0, 0.5], 1.0) + log_signal_to_noise([0.0], 1.0)
    [-inf, 0.0, inf]
    """
    values = []
    for s in remaining:
        ratio = 1.0 / s - 1.0 / beta_end if s > 0 else math.inf
        values.append(0.5 * math.log(ratio) if 0 < ratio < math.inf else (-math.inf if ratio <= 0 else math.inf))
    return values


class BridgeSolver:
    """The ``"bridge"`` solver's steps for one sample; within a batch it keeps the previous data prediction.

    ``remaining``, ``increment`` and ``log_snr`` are the grid's s_k, delta_k and lambda_k (k = 0..N,
    lambda with N + 1 entries); ``variance`` the optional (steps, width) posterior variance. Each step
    is one fused ``ops.bridge_step``; the predictions alternate between two buffers; ``reset()``
    starts a batch.
    """

    def __init__(self, table, remaining: list[float], increment: list[float], log_snr: list[float],
                 variance: torch.Tensor | None, backend: str):
        self.table = table
        self.remaining = remaining
        self.increment = increment
        self.log_snr = log_snr
        self.variance = variance
        self.backend = backend
        self.previous: torch.Tensor | None = None
        self._spare: torch.Tensor | None = None
        self._spreads: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the previous prediction: a new batch starts (the buffers and spreads are kept)."""
        self.previous = None

    def extrapolation(self, k: int) -> float:
        """1 / (2 r_k), the weight of x_hat_k - x_hat_{k-1}, at most ``MAX_EXTRAPOLATION``; 0 where a lambda is
        infinite (first order)."""
        if k == 0 or self.previous is None:
            return 0.0
        before, now, after = self.log_snr[k - 1], self.log_snr[k], self.log_snr[k + 1]
        if not all(math.isfinite(v) for v in (before, now, after)) or after <= now or now <= before:
            return 0.0
        return min(MAX_EXTRAPOLATION, 0.5 * (after - now) / (now - before))

    def spreads(self, width: int, device) -> torch.Tensor:
        """(steps - 1, width) standard deviations of each step's noise, sqrt(delta (s - delta)/s + (delta/s)^2 v),
        computed once in float64 and kept on ``device``."""
        if self._spreads is None or self._spreads.device != torch.device(device):
            s = torch.tensor(self.remaining[:-1], dtype=torch.float64)[:, None]
            delta = torch.tensor(self.increment[:-1], dtype=torch.float64)[:, None]
            variance = (delta * (s - delta) / s).expand(-1, width)
            if self.variance is not None:
                variance = variance + (delta / s) ** 2 * self.variance[:-1]
            self._spreads = variance.sqrt().to(torch.float32).to(device)
        return self._spreads

    def step(self, z: torch.Tensor, drift: torch.Tensor | None, k: int, seed: int, row_offset: int) -> torch.Tensor:
        """Z at grid point k + 1 from Z at k (in place); ``drift`` is the model's f at (z, t_k)."""
        s = self.remaining[k]
        weight = self.extrapolation(k)
        if self._spare is None or self._spare.shape != z.shape:
            self._spare = torch.empty_like(z)
        z, prediction = ops.bridge_step(
            z, drift, self.previous if weight != 0.0 else None, self.table, remaining=s, fraction=self.increment[k] / s,
            weight=weight, spread=self.spreads(z.shape[1], z.device)[k], seed=seed, step_index=k, row_offset=row_offset,
            backend=self.backend, out=z, prediction=self._spare,
        )
        self._spare, self.previous = self.previous, prediction
        return z


#: How the exact last step spreads a continuous factor (Real, Interval, HalfLine) around the data
#: prediction: ``"remaining"`` (with the remaining variance s, as a discrete factor) or ``"posterior"``
#: (with the posterior variance, estimated by second-order Tweedie: ``posterior_spread_last_step``).
FINAL_SPREADS = ("remaining", "posterior")
CONTINUOUS_KINDS = (Kind.REAL, Kind.INTERVAL, Kind.HALFLINE_LOWER, Kind.HALFLINE_UPPER)


def continuous_columns(table) -> list[int]:
    """The flat columns of the table's continuous factors (every element of a field).

    >>> import omegabridge as ob
    >>> continuous_columns(ob.Bridge(ob.Product([ob.Binary(), ob.HalfLine(low=0), ob.Real(shape=(2,))]), steps=4).table)
    [1, 2, 3]
    """
    return sorted(segment.offset for segment in table.elements if segment.kind in CONTINUOUS_KINDS)


def posterior_spread_last_step(model_drift, z: torch.Tensor, drift: torch.Tensor, drawn: torch.Tensor, table,
                               remaining: float, columns: list[int]) -> torch.Tensor:
    """``drawn`` (the exact last step's sample, spread N(x_hat, s) restricted to the domain) with each continuous
    column's spread around the data prediction x_hat = z + s f rescaled to the posterior's.

    The last step's draw has the posterior's mean but the remaining variance s as its spread; the
    posterior's is Var(X | z) ~ s dx_hat/dz (second-order Tweedie: for Z = X + sqrt(s) eps,
    E[X | z] = z + s grad log p(z) and Var(X | z) = s (1 + s grad^2 log p(z)) = s dE[X | z]/dz, per column
    here, its derivative by a finite difference of one batched network evaluation per continuous column).
    A column of data that is broad at the scale sqrt(s) keeps its spread (dx_hat/dz ~ 1), a narrow peak gets
    its own (dx_hat/dz ~ 0). The result is x_hat + r (drawn - x_hat), r = sqrt(clamp(dx_hat/dz, 0, 1)): a
    convex combination of two points of a convex factor, so it stays in the domain; the noise is the last
    step's own (docs/noise.md). ``model_drift(states)`` evaluates the model at the last step's time.
    """
    if not columns:
        return drawn
    rows, count = z.shape[0], len(columns)
    s = float(remaining)
    step = 0.05 * math.sqrt(s)  # small against the spread it measures, large against float32 rounding of z
    index = torch.tensor(columns, device=z.device)
    which = torch.arange(count, device=z.device)
    perturbed = z.unsqueeze(0).repeat(count, 1, 1)  # copy j has column j moved by one step
    perturbed[which, :, index] += step
    moved = model_drift(perturbed.reshape(count * rows, -1)).reshape(count, rows, -1)[which, :, index].transpose(0, 1)
    # x_hat = z + s f, so dx_hat/dz = 1 + s df/dz
    derivative = 1.0 + s * (moved.to(z.dtype) - drift[:, index].to(z.dtype)) / step
    scale = derivative.clamp(0.0, 1.0).sqrt()
    prediction = table.project(z + s * drift.to(z.dtype))[:, index]  # x_hat inside its factor
    out = drawn.clone()
    out[:, index] = prediction + scale * (drawn[:, index] - prediction)
    return out
