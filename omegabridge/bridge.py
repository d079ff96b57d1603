"""``Bridge``: the object users hold to train a drift model and sample from a constrained domain.

Example:
    >>> import omegabridge as ob
    >>> bridge = ob.Bridge(ob.Product([ob.Interval(-1.0, 1.0), ob.Categorical(3)]), steps=50)
    >>> x = bridge.sample(None, n=4, seed=0, progress=False)   # model=None: the pure Omega-bridge
    >>> bool(bridge.domain.contains(x).all())
    True
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Callable, NamedTuple

import torch
from tqdm.auto import tqdm

from omegabridge import ops
from omegabridge.core import noise
from omegabridge.core.domains import Domain, Lattice
from omegabridge.core.schedules import Schedule, Table, for_reach
from omegabridge.core.segments import membership
from omegabridge.errors import DomainError, ModelOutputError
from omegabridge.ops import cuda_graphs
from omegabridge.solvers import (
    DEFAULT_SOLVER, FINAL_SPREADS, BridgeSolver, check_posterior_variance, check_solver, continuous_columns, discrete_spacing,
    domain_grid,
    log_signal_to_noise, posterior_spread_last_step,
)

__all__ = ["Bridge"]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSS_WEIGHTS = ("none", "remaining", "remaining_squared")  # lambda(t) = 1, s, s^2
#: How training draws each row's time: ``"grid"`` (one of the N grid times t_k, uniformly),
#: ``"continuous"`` (t uniform on [0, 1), so one model serves any sampler's grid and step count) or
#: ``"decisions"`` (``continuous`` for half the rows, the others where discrete values are decided:
#: ``draw_times``).
TRAINING_TIMES = ("grid", "continuous", "decisions")
#: ``times="decisions"``: the share of rows drawn in the decision window, s log-uniform between
#: spacing^2 / DECISION_SPAN and spacing^2 over the discrete factors' spacings (capped at s_0). There a
#: factor's value is settled and the prior's odds move the boundary between neighbouring values; a
#: model trained on uniform t learns it last (bench/results/rare-values.md).
DECISION_SHARE = 0.5
DECISION_SPAN = 32.0
#: Continuous training times stop where s falls to this fraction of s_0: below it the loss target
#: (x - m)/s is noise of variance ~1/s, and every grid ``domain_grid`` picks ends above it (the
#: lowest, 8-bit pixels in 10 steps, at 6.5e-7 s_0).
MIN_TRAINED_REMAINING = 1e-9
#: Share of training rows in which a conditional model is shown known cells (``draw_known_mask``).
KNOWN_ROWS = 0.25

#: An image field of a lattice with more points than this (8-bit pixels) starts spread over its range when
#: ``Bridge`` is given no ``start_std`` (``default_start_std``); fewer points (digits' 17 levels) and every
#: other domain start at zeros.
SPREAD_START_POINTS = 64


def default_start_std(domain: Domain) -> float:
    """The ``start_std`` a ``Bridge`` on ``domain`` takes when given none: for an image field (two or more
    dimensions) of a ``Lattice`` with more than ``SPREAD_START_POINTS`` points, the sd of the uniform law on
    its points; else 0 (a start at zeros).

    From one point every sample begins the same, and a briefly trained network draws them back toward it:
    16 x 16 RGB patches after 300 iterations came out too dark (pixel-histogram TV 0.133 / 0.178 on seeds
    0 / 1, patch means short of the bright ones); with this start, TV 0.077 / 0.097 (bench/results/
    field-models.md).

    >>> import omegabridge as ob
    >>> round(default_start_std(ob.Lattice(0, 255, shape=(3, 8, 8))), 1), default_start_std(ob.Lattice(0, 16, shape=(8, 8)))
    (73.9, 0.0)
    """
    if isinstance(domain, Lattice) and len(domain.shape) >= 2 and domain.points > SPREAD_START_POINTS:
        return float(domain.step) * math.sqrt((domain.points**2 - 1) / 12.0)
    return 0.0


#: Steps and grid of a ``Bridge`` made without them: with the default ``"bridge"`` solver, 250 steps on grid
#: ``"t"`` reach with exact drifts what 1000 Euler steps did on lattice targets, not on continuous ones (W1
#: 0.021 against 0.012 in an interval; bench/results/solvers-defaults/solvers.md), where grid ``"domain"``
#: does better in 50. That grid is worse with trained networks (bench/results/few-step-tables.md), so "t" stays.
DEFAULT_STEPS = 250
DEFAULT_GRID = "t"


class Bridge:
    """A diffusion bridge on ``domain`` with noise ``schedule`` and ``steps`` time steps.

    Args:
        domain: any omegabridge domain (a factor or a ``Product``).
        schedule: a schedule from ``ob.schedules``; by default one scaled to the domain,
            ``schedules.for_reach(domain.reach)`` = ``Exp(a=3, b=max(1, reach)^2)`` (``Exp(3, 1)``
            for unit-scale domains, ``Exp(3, 255^2)`` for 8-bit pixels).
        steps: number of time steps N (default ``DEFAULT_STEPS`` = 250; a ``Table`` schedule fixes it itself).
        grid: ``"t"`` (uniform in t, the default), ``"beta"`` (uniform in beta(t)), ``"s"`` / ``"s^RHO"``
            (s_k = s_0 (1 - k/N)^RHO, for few steps; ``Schedule.grid``), or ``"domain"``: the power RHO chosen
            from the domain's spacings and the step count (``solvers.domain_grid``); ``grid`` holds the name
            it resolves to.
        start_std: gamma of a random start Z_0 ~ N(0, gamma^2 I); 0 starts at zeros. None (the default):
            ``default_start_std(domain)``, 0 but for an 8-bit image field, which starts spread over its range.

    >>> import omegabridge as ob
    >>> Bridge(ob.Binary(), ob.schedules.Constant(1.0), steps=10).steps
    10
    """

    def __init__(
        self,
        domain: Domain,
        schedule: Schedule | None = None,
        steps: int | None = None,
        grid: str = DEFAULT_GRID,
        start_std: float | None = None,
    ):
        if not isinstance(domain, Domain):
            raise TypeError(f"domain must be an omegabridge domain, got {type(domain).__name__}")
        self.domain = domain
        self.table = domain.segment_table()
        self.schedule = for_reach(domain.reach) if schedule is None else schedule
        if not isinstance(self.schedule, Schedule):
            raise TypeError(f"schedule must come from omegabridge.schedules, got {type(self.schedule).__name__}")
        if isinstance(self.schedule, Table):
            #: The grid's name, with ``"domain"`` resolved (``solvers.domain_grid``); a Table has its own grid.
            self.grid = "t" if grid == "domain" else grid
            self.time_grid = self.schedule.grid(steps, self.grid)
        else:
            steps = DEFAULT_STEPS if steps is None else steps
            self.grid = domain_grid(self.table, self.schedule, steps) if grid == "domain" and _is_steps(steps) else grid
            self.time_grid = self.schedule.grid(steps, self.grid)
        self.start_std = default_start_std(domain) if start_std is None else float(start_std)
        if not math.isfinite(self.start_std) or self.start_std < 0:
            raise ValueError(f"start_std must be finite and >= 0, got {start_std!r}")
        grid_values = self.time_grid
        self._remaining = grid_values.remaining.tolist()
        # Refused here, by name, rather than sampled as NaN: ends, widths and s that float32 cannot carry.
        ops.check_float32_range(self.table, max(self._remaining), min(self._remaining))
        self._increment = grid_values.increment.tolist()
        beta_end = grid_values.beta_end
        beta = grid_values.beta[:-1]
        remaining = grid_values.remaining
        self._mean_scale, self._noise_variance = self._marginal(beta, remaining)
        # lambda_k = log SNR / 2 at every grid point k = 0..N (the last one, s = 0, is +inf), for the bridge solver.
        self._log_snr = log_signal_to_noise(self._remaining + [0.0], beta_end)

    @property
    def steps(self) -> int:
        """Number of time steps N."""
        return self.time_grid.steps

    @property
    def width(self) -> int:
        """Number of columns of the flat layout."""
        return self.table.width

    def remaining_at(self, t: torch.Tensor) -> torch.Tensor:
        """s(t) = beta(T) - beta(t) for times t in [0, 1) (any shape; float64 math, t's dtype out)."""
        beta_t = self.schedule.beta(t.detach().to(torch.float64).cpu())
        return (self.time_grid.beta_end - beta_t).to(dtype=t.dtype, device=t.device)

    # ------------------------------------------------------------------------------------
    # data checks
    # ------------------------------------------------------------------------------------
    def check_data(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        """Validate rows of data and return them as float32; raises ``DomainError`` naming columns and rows."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.width:
            raise ValueError(f"{name} must have shape (rows, {self.width}) for this domain, got {tuple(x.shape)}")
        if not (x.dtype.is_floating_point or x.dtype in (torch.int64, torch.int32, torch.uint8, torch.bool)):
            raise TypeError(f"{name} must be a float or integer tensor, got {x.dtype}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} has no rows")
        x = x.to(torch.float32)
        inside = membership(x, self.table)
        if not bool(inside.all()):
            raise DomainError(_describe_outside(x, inside, self.table, name))
        return x

    # ------------------------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------------------------
    def loss(
        self,
        model: Model,
        x: torch.Tensor,
        *,
        weight: str = "none",
        times: str = "grid",
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ) -> torch.Tensor:
        """Mean over rows of lambda(t) || model(Z_t, t) - (x - m(Z_t, s)) / s ||^2, t drawn per row.

        ``weight`` is lambda: ``"none"`` (1, the paper's), ``"remaining"`` (s) or
        ``"remaining_squared"`` (s^2). ``times``: ``"grid"`` (the default) draws t among the N grid
        times, ``"continuous"`` uniformly on [0, 1), so the model serves any grid and step count
        (``draw_times``). Randomness comes from ``generator``
        (or torch's default generator), so ``torch.manual_seed`` makes a run repeatable.
        """
        check_loss_weight(weight)
        check_training_times(times)
        return self.checked_loss(model, self.check_data(x), weight=weight, times=times, generator=generator,
                                 backend=backend)

    def checked_loss(
        self,
        model: Model,
        x: torch.Tensor,
        *,
        weight: str = "none",
        times: str = "grid",
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ) -> torch.Tensor:
        """``loss`` on rows already returned by ``check_data`` and a ``weight`` and ``times`` already checked.

        For training loops that validate their data set once (``fit`` does), so the
        membership check does not run again on every minibatch.
        """
        drawn = self.draw_times(x.shape[0], times, generator)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return self.loss_at(model, x, drawn, seed, weight=weight, backend=backend)

    def draw_times(self, rows: int, times: str = "grid", generator: torch.Generator | None = None) -> torch.Tensor:
        """One training time per row, on the CPU: int64 grid indices (``times="grid"``) or float64 times t.

        ``"continuous"`` draws t uniformly on [0, 1), with t held where s(t) reaches
        ``MIN_TRAINED_REMAINING`` s_0, so the model learns the drift at every time a sampler
        of any grid and step count asks for (``sample(..., steps=, grid=)`` on another bridge
        of the same schedule). ``"decisions"`` draws a ``DECISION_SHARE`` of the rows instead with s
        log-uniform over the window where discrete values are decided (``DECISION_SPAN``); without a
        discrete factor it is ``"continuous"``.

        >>> import omegabridge as ob
        >>> bridge = ob.Bridge(ob.Binary(), steps=10)
        >>> bridge.draw_times(3, "grid").dtype, bridge.draw_times(3, "continuous").dtype
        (torch.int64, torch.float64)
        """
        check_training_times(times)
        if times == "grid":
            return torch.randint(0, self.steps, (rows,), generator=generator)
        t = torch.rand(rows, generator=generator, dtype=torch.float64)
        window = self._decision_window if times == "decisions" else None
        if window is not None:
            low, high = window
            remaining = high * (low / high) ** torch.rand(rows, generator=generator, dtype=torch.float64)
            decided = self.schedule.beta_inverse(self.time_grid.beta_end - remaining)
            t = torch.where(torch.rand(rows, generator=generator, dtype=torch.float64) < DECISION_SHARE, decided, t)
        return t.clamp_(max=self._latest_training_time)

    @functools.cached_property
    def _decision_window(self) -> tuple[float, float] | None:
        """(lowest, highest) s of ``times="decisions"``' window; None without discrete factors."""
        spacings = [spacing for spacing in map(discrete_spacing, self.table.segments) if spacing is not None]
        if not spacings:
            return None
        beta_end = self.time_grid.beta_end
        high = min(max(spacings) ** 2, beta_end)
        return min(min(spacings) ** 2 / DECISION_SPAN, 0.5 * high), high

    def draw_known_mask(self, rows: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Which cells a conditional model is shown as known in training: a bool (rows, width) mask, on the CPU.

        Three rows in four know nothing (the unconditioned model); in the fourth each factor
        (a categorical group or sphere whole) is known with a probability drawn per row,
        uniform on [0, 1), so the model meets every number of known factors. (A fourth, not a
        half: on fair the conditionals came out as close either way, and the unconditioned
        samples lost less, bench/results/conditions-fair.md.)

        >>> import omegabridge as ob
        >>> ob.Bridge(ob.Product([ob.Binary(), ob.Categorical(3)]), steps=10).draw_known_mask(2).shape
        torch.Size([2, 4])
        """
        elements = self.table.elements
        share = torch.rand(rows, 1, generator=generator) * (torch.rand(rows, 1, generator=generator) < KNOWN_ROWS)
        known = torch.rand(rows, len(elements), generator=generator) < share
        widths = torch.tensor([segment.width for segment in elements])
        return torch.repeat_interleave(known, widths, dim=1)

    def loss_at(
        self,
        model: Model,
        x: torch.Tensor,
        times: torch.Tensor,
        seed: int,
        *,
        row_offset: int = 0,
        weight: str = "none",
        backend: str = "auto",
        known_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``checked_loss`` with the draws given: ``times`` (one per row, on the CPU: int64 grid
        indices, or floating times t in [0, 1), ``draw_times``) and the noise ``seed``; row i's
        noise is row ``row_offset + i`` of the training stream.

        ``known_mask`` (bool, x's shape; ``draw_known_mask``) trains a conditional model
        (``takes_known_cells``): it is shown x at the masked cells (NaN elsewhere) as
        ``model(z, t, known=...)``, and the loss counts the free cells only, whose drift it predicts
        given them (a known cell's drift is the exact bridge's when sampling).

        A model with ``value_loss == "cross_entropy"`` (log-odds per value, ``DriftUNet`` or
        ``DriftMLP``) is scored on the free columns its log-odds cover by the cross-entropy of x's
        values (``value_cross_entropy``), on the other free columns by the drift's squared error;
        ``weight`` multiplies both.

        For data-parallel training: every rank draws the whole global batch's times and
        seed, and takes its slice with its ``row_offset``, so the ranks' rows see exactly
        the times and noise a single process would give them.
        """
        device = x.device
        t_float64, remaining_float64, mean_scale, noise_variance = self._training_times(times)
        remaining = remaining_float64.to(torch.float32).to(device)
        z_t, target = ops.bridge_target(
            x,
            self.table,
            mean_scale=mean_scale.to(torch.float32).to(device),
            noise_scale=noise_variance.sqrt().to(torch.float32).to(device),
            remaining=remaining,
            seed=seed,
            row_offset=row_offset,
            backend=backend,
        )
        t = t_float64.to(torch.float32).to(device)
        cross_entropy, known = None, None
        if known_mask is not None:
            known_mask = known_mask.to(device)
            known = torch.where(known_mask, x, torch.full_like(x, float("nan")))
        if getattr(model, "value_loss", "squared") == "cross_entropy":
            cross_entropy, drift = model.value_cross_entropy(z_t, t, x, known=known)
        elif known is None:
            drift = model(z_t, t)
        else:
            drift = model(z_t, t, known=known)
        _check_model_output(drift, z_t, "in loss()")
        squared = (drift.to(torch.float32) - target) ** 2
        if known_mask is not None:
            squared = squared.masked_fill(known_mask, 0.0)  # a known cell's drift is the exact bridge's
        if cross_entropy is None:
            squared = squared.sum(dim=1)
        else:  # the values' columns are scored by their cross-entropy instead
            squared = squared.index_fill(1, model.marginal_prior.covered_columns, 0.0).sum(dim=1) + cross_entropy
        if weight == "remaining":
            squared = squared * remaining
        elif weight == "remaining_squared":
            squared = squared * (remaining_float64**2).to(torch.float32).to(device)
        return squared.mean()

    def _training_times(self, times: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(t, s, mean scale c, noise variance v), float64 on the CPU, for grid indices or times t."""
        if not isinstance(times, torch.Tensor) or times.dim() != 1:
            raise TypeError(f"times must be a 1-d tensor of grid indices or times t, got "
                            f"{type(times).__name__ if not isinstance(times, torch.Tensor) else tuple(times.shape)}")
        if not times.dtype.is_floating_point:
            index = times.to(device="cpu", dtype=torch.int64)
            if index.numel() and not (0 <= int(index.min()) and int(index.max()) < self.steps):
                raise ValueError(f"times: grid indices must be in [0, {self.steps}), got {int(index.min())}..{int(index.max())}")
            return (self.time_grid.t[index], self.time_grid.remaining[index], self._mean_scale[index],
                    self._noise_variance[index])
        t = times.to(device="cpu", dtype=torch.float64)
        if not bool(((t >= 0) & (t < 1)).all()):
            raise ValueError("times: continuous times t must lie in [0, 1) (at t = 1 no noise is left to learn from)")
        beta = self.schedule.beta(t)
        remaining = self.time_grid.beta_end - beta
        if not bool((remaining > 0).all()):
            raise ValueError("times: some t is so close to 1 that s(t) = beta(1) - beta(t) rounds to 0; "
                             "draw them with draw_times")
        return (t, remaining, *self._marginal(beta, remaining))

    def _marginal(self, beta: torch.Tensor, remaining: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(c, v) of the x-bridge marginal Z_t = c x + sqrt(v) eps at beta(t) and s(t) (bridge-math.md section 4)."""
        beta_end = self.time_grid.beta_end
        return beta / beta_end, beta * remaining / beta_end + (remaining / beta_end) ** 2 * self.start_std**2

    @functools.cached_property
    def _latest_training_time(self) -> float:
        """The t where s(t) = ``MIN_TRAINED_REMAINING`` s_0: where continuous training times stop."""
        return float(self.schedule.beta_inverse(torch.tensor(self.time_grid.beta_end * (1.0 - MIN_TRAINED_REMAINING),
                                                             dtype=torch.float64)))

    @torch.no_grad()
    def posterior_variance(
        self,
        model: Model | None,
        x: torch.Tensor,
        *,
        seed: int = 0,
        batch_size: int = 4096,
        backend: str = "auto",
        progress: bool = True,
    ) -> torch.Tensor:
        """Per grid step k and column, the mean squared error E (X - x_hat(Z_k))^2 of the data prediction.

        x_hat = m(Z_k, s_k) + s_k f(Z_k, t_k) is the model's estimate of E[X | Z_k]; over data
        rows ``x`` and Z_k drawn from the x-bridge at step k, its error is the posterior variance
        E Var(X | Z_k) plus the model's own error (Analytic-DPM's estimate, one per time). The
        ``"bridge"`` solver adds (delta/s)^2 times it to its noise, which the exact transition
        has and a point prediction lacks (bench/results/solvers.md measures what it buys).
        Costs ``steps`` network evaluations per row of ``x``; a few thousand rows suffice.
        Returns float64 (steps, width) on the CPU; pass it to ``sample(..., solver="bridge",
        posterior_variance=...)``.

        >>> import omegabridge as ob
        >>> bridge = ob.Bridge(ob.Binary(), steps=4)
        >>> bridge.posterior_variance(None, torch.tensor([[0.0], [1.0]]), progress=False).shape
        torch.Size([4, 1])
        """
        if model is not None and not callable(model):
            raise TypeError(f"model must be callable as model(z, t) or None, got {type(model).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        x = self.check_data(x)
        total = torch.zeros(self.steps, self.width, dtype=torch.float64)
        for k in tqdm(range(self.steps), disable=not progress, desc="posterior variance", unit="step", leave=False):
            s = self._remaining[k]
            for start in range(0, x.shape[0], batch_size):
                rows = x[start:start + batch_size]
                z_t, target = ops.bridge_target(
                    rows, self.table, mean_scale=float(self._mean_scale[k]),
                    noise_scale=math.sqrt(float(self._noise_variance[k])), remaining=s, seed=seed, step_index=k,
                    row_offset=start, backend=backend,
                )
                error = target if model is None else target - _drift(model, z_t, self.time_grid.t[k].to(torch.float32).to(x.device), k)
                # x - x_hat = s (target - f): target = (x - m)/s and x_hat = m + s f
                total[k] += ((s * error.to(torch.float64)) ** 2).sum(dim=0).cpu()
        return total / x.shape[0]

    # ------------------------------------------------------------------------------------
    # sampling
    # ------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        model: Model | None,
        n: int,
        *,
        seed: int = 0,
        batch_size: int = 4096,
        device: str | torch.device = "cpu",
        backend: str = "auto",
        progress: bool = True,
        final: str = "exact",
        row_offset: int = 0,
        cuda_graph: bool = False,
        solver: str | None = None,
        posterior_variance: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
        final_spread: str = "remaining",
    ) -> torch.Tensor:
        """Draw ``n`` rows (float32, flat layout, exactly in the domain).

        Row r's noise depends only on (seed, step, r, column), so the sample does
        not depend on ``batch_size`` (as long as the model treats rows independently).
        ``row_offset`` numbers the rows from there: rows ``[a, b)`` of a large sample can
        be drawn alone with ``n=b - a, row_offset=a`` (how the CLI streams chunks).
        ``model=None`` samples the pure Omega-bridge (zero neural drift). ``backend="auto"``
        runs the fused C++ kernels on CPU when they are built (``"cpu"`` insists on them),
        the Triton kernels on a CUDA device (``"triton"``), and the torch reference
        otherwise (``"reference"`` insists on it); ``"cuda"`` runs the CUDA C++ kernels;
        all give the same sample up to float rounding.

        On a CUDA device the step loop does not synchronise with the host: the model's drift
        is checked for non-finite values into a device flag read once per batch.
        ``cuda_graph=True`` (with ``device="cuda"`` and backend ``"cuda"`` or ``"auto"``)
        captures one step, model plus fused CUDA step, in a CUDA graph per batch and replays
        it for every step (``omegabridge.ops.cuda_graphs``); where that is impossible (another
        device or backend, a model that cannot be captured) it warns and samples without a
        graph, giving the same sample.

        ``solver`` picks the step between network evaluations (``omegabridge.solvers``):
        ``"bridge"`` (the default; the Brownian bridge to the data prediction with a
        second-order multistep correction: with exact drifts and the ``"domain"`` grid it reaches
        in 50 steps what Euler on grid ``"t"`` reaches in 200 on every target of
        bench/results/solvers.md; with trained networks on grid ``"t"`` in 50 what Euler does in
        200, bench/results/few-step-tables.md),
        whose noise may add ``posterior_variance``, a (steps, width) table from
        ``posterior_variance()``, or ``"euler"`` (Euler-Maruyama; the default under
        ``cuda_graph=True``, the one step a graph captures). Both end with the exact last step.

        ``known`` (optional, ``n`` x width, NaN where a cell is free) fixes cells: each known
        factor follows the exact bridge to its value (its drift replaced by the one that makes
        the data prediction that value, (x - m(z, s))/s) and comes back as given; the free
        cells follow the model's drift, which sees the known cells' states (inpainting in bridge
        form; docs/math.md, "Known cells"). A categorical group or sphere is known whole or not
        at all, and known values must lie in their factor's domain (``ValueError`` naming the row).

        ``final_spread`` (``omegabridge.solvers.FINAL_SPREADS``): ``"remaining"`` (the default) spreads the
        last step's draw of a continuous factor around the data prediction with the remaining variance
        s; ``"posterior"`` rescales that spread to the posterior's, estimated from the model's
        derivative (``solvers.posterior_spread_last_step``; one more network evaluation per continuous
        column at the last step): a narrow peak of continuous data is no longer widened to sqrt(s).

        >>> import torch, omegabridge as ob
        >>> bridge = ob.Bridge(ob.Product([ob.Lattice(0, 4), ob.Categorical(3)]), steps=20)
        >>> known = torch.full((4, 4), float("nan")); known[:, 1:] = torch.tensor([0.0, 1.0, 0.0])
        >>> x = bridge.sample(None, 4, seed=0, progress=False, known=known)
        >>> x[:, 1:].tolist() == [[0.0, 1.0, 0.0]] * 4
        True
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2^64), got {seed!r}")
        if isinstance(row_offset, bool) or not isinstance(row_offset, int) or not 0 <= row_offset <= 2**48 - n:
            raise ValueError(f"row_offset must be an integer in [0, 2^48 - n] (rows are addressed by 48 bits), got {row_offset!r}")
        if final not in ("exact", "project"):
            raise ValueError(f"final must be 'exact' or 'project', got {final!r}")
        if model is not None and not callable(model):
            raise TypeError(f"model must be callable as model(z, t) or None, got {type(model).__name__}")
        if solver is None:
            solver = "euler" if cuda_graph else DEFAULT_SOLVER
        check_solver(solver)
        if final_spread not in FINAL_SPREADS:
            raise ValueError(f"final_spread must be one of {FINAL_SPREADS}, got {final_spread!r}")
        if known is not None:
            known = self._checked_known(known, n)
            if cuda_graph:
                warnings.warn("cuda_graph=True: a graph captures the unconditioned step, not known cells; sampling "
                              "without a CUDA graph", RuntimeWarning, stacklevel=2)
                cuda_graph = False
        variance = check_posterior_variance(posterior_variance, self.steps, self.width, solver)
        device = ops.check_device(device)
        use_graph = False
        if cuda_graph and solver != "euler":
            warnings.warn(f"cuda_graph=True: CUDA graphs capture the Euler step only, not solver={solver!r}; sampling "
                          "without a CUDA graph", RuntimeWarning, stacklevel=2)
            cuda_graph = False
        if cuda_graph:
            reason = cuda_graphs.unavailable_reason(device, backend, self.steps)
            if reason:
                warnings.warn(f"cuda_graph=True: {reason}; sampling without a CUDA graph", RuntimeWarning, stacklevel=2)
            else:
                use_graph, backend = True, "cuda"
        ops.resolve_backend(backend, device)
        times = self.time_grid.t[:-1].to(torch.float32).to(device)
        try:
            out = torch.empty(n, self.width, dtype=torch.float32, device=device)
        except (RuntimeError, MemoryError) as error:  # torch's allocator message does not say which sizes
            raise MemoryError(f"cannot allocate the sample: {n} rows x {self.width} columns of float32 is "
                              f"{n * self.width * 4 / 2**30:.1f} GiB on {device}; sample fewer rows at a time "
                              f"(row_offset= draws rows [a, b) alone)") from error
        batches = [(start, min(n, start + batch_size)) for start in range(0, n, batch_size)]
        bar = tqdm(total=len(batches) * self.steps, disable=not progress, desc="sampling", unit="step", leave=False)
        solver_state = None if solver == "euler" else BridgeSolver(
            self.table, self._remaining, self._increment, self._log_snr, variance, backend)
        try:
            for start, stop in batches:
                self._sample_batch(
                    model, row_offset + start, stop - start, seed, times, device, backend, final, bar, use_graph,
                    solver_state, None if known is None else known[start:stop].to(device), final_spread,
                    out=out[start:stop],
                )
        finally:
            bar.close()
        return out

    def _checked_known(self, known, n: int) -> torch.Tensor:
        """``known`` as float32 on the CPU, checked: shape (n, width), every group whole, values in the domain."""
        if not isinstance(known, torch.Tensor) or not known.is_floating_point():
            raise TypeError(f"known must be a float tensor (NaN where a cell is free), got {type(known).__name__}"
                            + (f" of dtype {known.dtype}" if isinstance(known, torch.Tensor) else ""))
        if tuple(known.shape) != (n, self.width):
            raise ValueError(f"known must have shape ({n}, {self.width}) (n rows x the domain's width), got {tuple(known.shape)}")
        known = known.detach().to("cpu", torch.float32)
        mask = ~torch.isnan(known)
        for segment in self.table.elements:
            cells = mask[:, segment.offset:segment.offset + segment.width]
            if segment.width > 1:
                partial = cells.any(1) & ~cells.all(1)
                if bool(partial.any()):
                    row = int(partial.nonzero()[0])
                    raise ValueError(f"known: row {row} fixes part of {self.table.describe_column(segment.offset)} "
                                     "and leaves the rest free; a group is known whole or not at all")
        anywhere = self.domain.project(torch.zeros(1, self.width))
        filled = torch.where(mask, known, anywhere.expand_as(known))
        inside = self.domain.contains(filled)
        if not bool(inside.all()):
            row = int((~inside).nonzero()[0])
            for segment in self.table.elements:  # the factor whose known value is outside
                cells = slice(segment.offset, segment.offset + segment.width)
                alone = anywhere.clone()
                alone[0, cells] = filled[row, cells]
                if not bool(self.domain.contains(alone).all()):
                    raise ValueError(f"known: row {row} has a value outside the domain in "
                                     f"{self.table.describe_column(segment.offset)}: {known[row, cells].tolist()[:8]}")
        return known

    def _start(self, rows: int, row_offset: int, seed: int, device) -> torch.Tensor:
        z = torch.zeros(rows, self.width, dtype=torch.float32, device=device)
        if self.start_std > 0:
            z = self.start_std * noise.normals(seed, 0, row_offset, rows, self.width, noise.STREAM_START, device=device)
        return z

    def _sample_batch(self, model, row_offset, rows, seed, times, device, backend, final, bar, use_graph=False,
                      solver_state: BridgeSolver | None = None, known: torch.Tensor | None = None,
                      final_spread: str = "remaining", *, out: torch.Tensor) -> None:
        """One batch of rows, written into ``out`` (its row block of the sample)."""
        z = self._start(rows, row_offset, seed, device)
        if known is not None:
            known = KnownCells(~torch.isnan(known), torch.nan_to_num(known))
        if solver_state is not None:
            solver_state.reset()
        last = self.steps - 1
        # On a GPU the drift's finiteness goes into a device flag, read once per batch: a check per
        # step would wait for the device every step.
        finite = torch.ones((), dtype=torch.bool, device=device) if device.type == "cuda" else None
        first = 0
        if use_graph:
            first = cuda_graphs.graphed_steps(
                self, model, z, times, seed, row_offset, finite,
                lambda drift, state: _check_model_shape(drift, state, "in a CUDA-graph step"), bar,
            )
        shown = known.shown_to(model) if known is not None else None
        for k in range(first, last):
            drift = _drift(model, z, times[k], k, finite, shown)
            if known is not None:
                drift = known.drift(drift, z, self.table, self._remaining[k], backend)
            if solver_state is None:
                z = ops.step(
                    z,
                    drift,
                    self.table,
                    remaining=self._remaining[k],
                    increment=self._increment[k],
                    seed=seed,
                    step_index=k,
                    row_offset=row_offset,
                    backend=backend,
                    out=z,  # in place: the state is ours, and the drift was computed from it already
                )
            else:
                z = solver_state.step(z, drift, k, seed, row_offset)
            _check_state_after(z, k, row_offset, finite)
            bar.update(1)
        drift = _drift(model, z, times[last], last, finite, shown)
        if known is not None:
            drift = known.drift(drift, z, self.table, self._remaining[last], backend)
        x = ops.final_step(
            z,
            drift,
            self.table,
            remaining=self._remaining[last],
            seed=seed,
            step_index=last,
            row_offset=row_offset,
            final=final,
            backend=backend,
            out=out,  # straight into the sample: no new tensor and no copy
        )
        if final_spread == "posterior" and model is not None and final == "exact":
            columns = continuous_columns(self.table)
            repeated = None if shown is None else shown.repeat(len(columns), 1)
            x = posterior_spread_last_step(
                lambda states: _drift(model, states, times[last], last, finite, repeated),
                z, drift, x, self.table, self._remaining[last], columns)
        _check_state_after(x, last, row_offset, finite)
        if known is not None:
            x = torch.where(known.mask, known.values, x)  # exactly as given (the last step drew near them)
        bar.update(1)
        if finite is not None and not bool(finite):
            raise ModelOutputError(
                f"model returned non-finite values, or a drift so large that the state overflowed, at some step for rows "
                f"[{row_offset}, {row_offset + rows}) (on a GPU the check runs once per batch, so the step is not named)"
            )
        if x is not out:  # the posterior spread or the known cells made a new tensor
            out.copy_(x)

    def __repr__(self) -> str:
        grid = "" if self.grid == "t" else f", grid={self.grid!r}"
        return f"Bridge({self.domain!r}, {self.schedule!r}, steps={self.steps}{grid})"


def _is_steps(steps) -> bool:
    """Whether ``steps`` is an integer ``Schedule.grid`` may take (it names the problem otherwise)."""
    return not isinstance(steps, bool) and isinstance(steps, int) and steps >= 2


def check_training_times(times: str) -> None:
    """``ValueError`` unless ``times`` is one of ``TRAINING_TIMES``."""
    if times not in TRAINING_TIMES:
        raise ValueError(f"times must be one of {TRAINING_TIMES}, got {times!r}")


def check_loss_weight(weight: str) -> None:
    """Raise ValueError unless ``weight`` names one of ``LOSS_WEIGHTS``."""
    if weight not in LOSS_WEIGHTS:
        raise ValueError(f"weight must be one of {LOSS_WEIGHTS}, got {weight!r}")


class KnownCells(NamedTuple):
    """The known cells of a batch: ``mask`` (bool) and ``values`` (0 where free)."""

    mask: torch.Tensor
    values: torch.Tensor

    def drift(self, drift: torch.Tensor | None, z: torch.Tensor, table, remaining: float, backend: str) -> torch.Tensor:
        """``drift`` (the model's, checked; None for no model) with each known cell's replaced by
        (x - m(z, s))/s, which makes the data prediction m + s f equal the known value x: the Euler
        step's drift is then (x - z)/s, the Brownian bridge to x, and the bridge solver's prediction
        is x itself."""
        bridge = (self.values - ops.posterior_mean(z, table, remaining, backend=backend)) / remaining
        return torch.where(self.mask, bridge, bridge.new_zeros(()) if drift is None else drift.to(bridge.dtype))

    def shown_to(self, model) -> torch.Tensor | None:
        """The known values with NaN where free, for a model that takes known cells
        (``takes_known_cells``, trained with ``Bridge.draw_known_mask``); None for any other."""
        if not getattr(model, "takes_known_cells", False):
            return None
        return torch.where(self.mask, self.values, torch.full_like(self.values, float("nan")))


def _drift(model, z: torch.Tensor, t: torch.Tensor, step_index: int, finite: torch.Tensor | None = None,
           known: torch.Tensor | None = None) -> torch.Tensor | None:
    """The model's drift at step k, checked; with a device flag ``finite`` (GPU sampling) the
    finiteness is recorded there instead of checked on the host (no synchronisation). ``known``
    (NaN where free) goes to a model that takes known cells."""
    if model is None:
        return None
    drift = model(z, t.expand(z.shape[0])) if known is None else model(z, t.expand(z.shape[0]), known=known)
    if finite is None:
        _check_model_output(drift, z, f"at step {step_index} (t = {float(t):.6g})")
    else:
        _check_model_shape(drift, z, f"at step {step_index}")
        finite.logical_and_(torch.isfinite(drift).all())
    return drift


def _check_state_after(z: torch.Tensor, step_index: int, row_offset: int, finite: torch.Tensor | None) -> None:
    """The state after step k is finite and within ``ops.MAX_STATE``: a drift too large for float32 is named
    here, not returned as NaN. On a GPU it goes into the device flag (read once per batch)."""
    in_range = ops.state_in_range(z)
    if finite is not None:
        finite.logical_and_(in_range)
    elif not bool(in_range):
        row, _ = ops.first_out_of_range(z)
        raise ModelOutputError(
            f"the state overflowed float32 range at step {step_index} (row {row_offset + row}): the model's drift is too "
            f"large for the step (the state must stay finite and within {ops.MAX_STATE:g})")


def _check_model_shape(drift, z: torch.Tensor, where: str) -> None:
    """Type, shape and dtype of a model's output (nothing that waits for a GPU)."""
    if not isinstance(drift, torch.Tensor):
        raise ModelOutputError(f"model returned {type(drift).__name__} {where}; it must return a tensor")
    if drift.shape != z.shape:
        raise ModelOutputError(f"model returned shape {tuple(drift.shape)} {where}; expected {tuple(z.shape)}")
    if not drift.dtype.is_floating_point:
        raise ModelOutputError(f"model returned dtype {drift.dtype} {where}; expected a float dtype")


def _check_model_output(drift, z: torch.Tensor, where: str) -> None:
    _check_model_shape(drift, z, where)
    finite = torch.isfinite(drift)
    if not bool(finite.all()):
        bad_rows = int((~finite).any(dim=1).sum())
        raise ModelOutputError(f"model returned non-finite values in {bad_rows} rows {where}")


def _describe_outside(x: torch.Tensor, inside: torch.Tensor, table, name: str) -> str:
    bad_rows = ~inside.all(dim=1)
    lines = [f"{name}: {int(bad_rows.sum())} of {x.shape[0]} rows lie outside the domain"]
    shown = 0
    for segment in table.elements:
        columns = slice(segment.offset, segment.offset + segment.width)
        bad = ~inside[:, columns].all(dim=1)
        count = int(bad.sum())
        if count == 0:
            continue
        row = int(torch.nonzero(bad)[0])
        values = x[row, columns].tolist()
        shown_value = values[0] if len(values) == 1 else values
        lines.append(
            f"  {table.describe_column(segment.offset)}: {count} rows, first at row {row} with value {shown_value}"
        )
        shown += 1
        if shown >= 10:
            lines.append("  ...")
            break
    return "\n".join(lines)
