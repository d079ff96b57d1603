"""``TabularBridge``: DataFrame in, DataFrame out, every sampled value valid by construction.

The shape users know from CTGAN and SDV: ``fit(frame)``, ``sample(num_rows)``,
``save(path)`` / ``TabularBridge.load(path)``. Underneath it is a ``Schema`` (inferred,
overridable, printed), a ``TableEncoder`` (invertible per-column maps onto an
``ob.Product`` domain), an ``ob.Bridge`` and the default ``DriftMLP``.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"colour": ["red", "blue", "red", "green"] * 25, "count": [0, 3, 2, 1] * 25})
    >>> model = TabularBridge(steps=20, hidden=16, depth=1, verbose=False, progress=False)
    >>> model = model.fit(frame, iterations=5, batch_size=16)
    >>> rows = model.sample(50, seed=1)
    >>> set(rows["colour"]) <= {"red", "blue", "green"}, bool(rows["count"].between(0, 3).all())
    (True, True)
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, Mapping, Sequence

import torch

from omegabridge.training import distributed
from omegabridge.core import schedules
from omegabridge.bridge import Bridge, check_training_times
from omegabridge.models import DriftMLP
from omegabridge.models.marginal_prior import check_value_loss
from omegabridge.errors import CheckpointError
from omegabridge.tabular.checkpoint import read_checkpoint, write_checkpoint
from omegabridge.tabular.encoding import TableEncoder
from omegabridge.tabular.schema import Schema, infer_schema, plain_value
from omegabridge.errors import SchemaError
from omegabridge.training.trainer import Trainer
from omegabridge.errors import NotFittedError
from omegabridge.files import output_lock, refuse_existing
from omegabridge.solvers import DEFAULT_SOLVER, FINAL_SPREADS, TABLE_GRID, check_solver, domain_grid

__all__ = ["TabularBridge", "FINAL_SPREAD", "default_iterations"]

#: ``fit``'s training budget when it is given none: about this many passes over the rows, within the bounds below.
DEFAULT_PASSES = 1000
MIN_DEFAULT_ITERATIONS = 2000
MAX_DEFAULT_ITERATIONS = 20000


def default_iterations(rows: int, batch_size: int = 512) -> int:
    """The iterations ``TabularBridge.fit`` trains for when given none: ``DEFAULT_PASSES`` passes over ``rows``
    at ``batch_size`` rows an iteration, at least ``MIN_DEFAULT_ITERATIONS`` and at most ``MAX_DEFAULT_ITERATIONS``.

    Measured (docs/benchmarks.md, "Training budget"): on 275 rows of anes96 1000, 3000 and 6000 iterations
    score alike against held-out rows and take 17 to 96 s; on fair (5093 rows) going from 6000 to 12000 and
    24000 iterations brings more conditions within the per-column bar of conditional sampling.

    >>> default_iterations(275), default_iterations(5093), default_iterations(10**6)
    (2000, 9948, 20000)
    """
    if rows < 1 or batch_size < 1:
        raise ValueError(f"rows and batch_size must be positive, got {rows} and {batch_size}")
    passes = -(-DEFAULT_PASSES * rows // batch_size)  # ceiling division
    return max(MIN_DEFAULT_ITERATIONS, min(MAX_DEFAULT_ITERATIONS, passes))


#: The last step's spread of continuous columns (``Bridge.sample``'s ``final_spread``): the posterior's, so a
#: narrow continuous column is not widened to the remaining variance of a 50-step grid (randhie, bench/results/
#: sdv-comparison.md: column shapes 0.910 -> 0.940, fair unchanged).
FINAL_SPREAD = "posterior"


class TabularBridge:
    """A diffusion bridge for a table (a pandas DataFrame) with mixed, constrained columns.

    Args:
        steps: time steps of the sampler (default 50, with the default ``"bridge"`` solver on grid
            ``"domain"``, ``solvers.TABLE_GRID``; on fair 200 Euler steps come a little closer to held-out
            data at 4x the evaluations, bench/results/few-step-tables.md).
        schedule: an ``ob.schedules`` schedule; default ``Exp(a=3, b=16)``: its spread
            (sd 3.9 at the end) covers the encoded extent of every column (``encoding.EXTENT``).
        hidden, depth: size of the default ``DriftMLP``.
        learning_rate, weight, times, ema_decay: passed to ``omegabridge.Trainer``; with an
            ``ema_decay`` the moving average of the weights is the model kept and sampled.
            ``times="continuous"`` (the default) trains on every t in [0, 1), so samplers with other
            step counts and grids than ``steps`` find a trained drift; ``"grid"`` on the ``steps`` grid times only;
            ``"decisions"`` as continuous, with half the rows where discrete values are decided (rare values
            come closer to their shares in short training: docs/math.md, Rare values).
        device: where training and sampling run (``"cpu"`` or a CUDA device; under
            torchrun ``"cuda"`` means each worker's own GPU).
        conditional: train the network on random known cells too (``DriftMLP(conditional=True)``), so
            that ``sample(conditions=...)`` and ``impute`` draw from the conditional it learned; off,
            conditioned sampling steers only the conditioned columns (bench/results/conditions-fair.md).
        marginal_prior: (with ``posterior_logits=False``) the network predicts the data around each discrete
            column's posterior mean under its marginal law in the training rows (``DriftMLP(marginal_prior=True)``):
            rare values keep their shares, but some of the columns' dependence is lost (docs/math.md, "Rare values").
        posterior_logits: the network gives each discrete column a log-odds per value on top of its marginal
            shares, and its prediction is that column's posterior mean under them with the column's own state's
            exact term (``DriftMLP(posterior_logits=True)``): the default, which keeps rare values at their shares
            and the columns' dependence (on fair, association error 0.020 against 0.038 predicting means;
            bench/results/rare-values.md, docs/math.md "Rare values"). False: the network predicts each column's mean.
        value_loss: how the log-odds are trained (``DriftMLP(value_loss=...)``): ``"squared"`` error of the
            drift, or ``"cross_entropy"`` of the training rows' values.
        verbose: print the schema and a summary at ``fit``; ``log`` is the printing function.
        progress: progress bars for training and sampling.
    """

    def __init__(
        self,
        steps: int = 50,
        *,
        schedule: schedules.Schedule | None = None,
        hidden: int = 256,
        depth: int = 3,
        learning_rate: float = 3e-3,
        weight: str = "remaining",
        times: str = "continuous",
        ema_decay: float | None = None,
        conditional: bool = True,
        marginal_prior: bool = False,
        posterior_logits: bool = True,
        value_loss: str = "squared",
        device: str = "cpu",
        verbose: bool = True,
        progress: bool = True,
        log: Callable[[str], None] = print,
    ):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
        self.steps = steps
        self.schedule = schedules.Exp(a=3.0, b=16.0) if schedule is None else schedule
        if not isinstance(self.schedule, schedules.Schedule):
            raise TypeError(f"schedule must come from omegabridge.schedules, got {type(self.schedule).__name__}")
        self.hidden, self.depth = hidden, depth
        check_training_times(times)
        self.learning_rate, self.weight, self.times, self.ema_decay = learning_rate, weight, times, ema_decay
        if not isinstance(conditional, bool):
            raise TypeError(f"conditional must be True or False, got {conditional!r}")
        self.conditional = conditional
        if not isinstance(marginal_prior, bool):
            raise TypeError(f"marginal_prior must be True or False, got {marginal_prior!r}")
        self.marginal_prior = marginal_prior
        if not isinstance(posterior_logits, bool):
            raise TypeError(f"posterior_logits must be True or False, got {posterior_logits!r}")
        self.posterior_logits = posterior_logits
        self.value_loss = check_value_loss(value_loss, posterior_logits, "TabularBridge")
        #: The last step's spread of continuous columns; a checkpoint from before it was recorded keeps "remaining".
        self.final_spread = FINAL_SPREAD
        self.device = distributed.device_for_rank(device)
        self.verbose, self.progress, self.log = verbose, progress, log
        self.schema: Schema | None = None
        self.encoder: TableEncoder | None = None
        self.bridge: Bridge | None = None
        self.model: DriftMLP | None = None
        self.training: dict = {}
        self.losses: list[float] = []
        # Bridges of other samplers, (steps, grid) -> Bridge, for the bridge they were made for: a new fit
        # or load replaces self.bridge and so starts afresh.
        self._sampling_bridges: tuple[Bridge | None, dict] = (None, {})

    # ------------------------------------------------------------------------------------
    def fit(
        self,
        data,
        schema: Schema | Mapping | None = None,
        *,
        iterations: int | None = None,
        batch_size: int = 512,
        seed: int = 0,
        checkpoint: str | None = None,
        checkpoint_every: int = 1000,
        resume: bool = True,
        hooks: Sequence[Callable] = (),
    ) -> "TabularBridge":
        """Infer (or take) the schema, encode ``data`` and train the drift model; returns ``self``.

        ``iterations``: the training budget; None (the default) follows the table's size, ``default_iterations``
        (about 1000 passes over the rows, 2000 to 20000 iterations).

        ``schema`` is ``None`` (infer every column), a dict of overrides
        (``{"occupation": "categorical", "share": {"kind": "interval", "low": 0, "high": 1}}``)
        or a full ``Schema``. Raises ``SchemaError`` naming the column and row of a value
        the schema does not allow.

        ``checkpoint`` names a resumable training checkpoint (``omegabridge.Trainer``):
        written every ``checkpoint_every`` iterations; a later ``fit`` of the same data and
        settings resumes from it unless ``resume=False``. ``hooks`` receive a
        ``TrainingRecord`` every 50 iterations. Under torchrun each worker calls ``fit``
        with the same data; the global ``batch_size`` is split among them (DDP).
        """
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
        start = time.perf_counter()
        self.schema = schema if isinstance(schema, Schema) else infer_schema(data, schema)
        if self.verbose and distributed.is_main():
            self.log(f"schema ({len(data)} rows, {len(self.schema)} columns):\n{self.schema.describe()}")
        self.encoder = TableEncoder.fit(self.schema, data)
        x = self.encoder.encode(data, what="training data").to(self.device)
        self.bridge = Bridge(self.encoder.domain, self.schedule, steps=self.steps, grid="t")
        torch.manual_seed(seed)
        self.model = DriftMLP(self.bridge, hidden=self.hidden, depth=self.depth, data=x,
                              conditional=self.conditional, marginal_prior=self.marginal_prior,
                              posterior_logits=self.posterior_logits, value_loss=self.value_loss).to(self.device)
        if self.verbose and distributed.is_main():
            self.log(f"domain of width {self.bridge.width}: {describe_factors(self.encoder.domain)}")
        trainer = Trainer(
            self.bridge, self.model, batch_size=batch_size, learning_rate=self.learning_rate, weight=self.weight,
            times=self.times, ema_decay=self.ema_decay, checkpoint=checkpoint, checkpoint_every=checkpoint_every, seed=seed,
            hooks=hooks, progress=self.progress and distributed.is_main(), log=self.log,
        )
        if iterations is None:
            iterations = default_iterations(len(data), batch_size)
        losses = trainer.fit(x, iterations, resume=resume)
        self.model = trainer.averaged_model.eval()
        tail = losses[-max(1, len(losses) // 10):]
        self.training = {
            "rows": len(data),
            "iterations": iterations,
            "batch_size": batch_size,
            "seed": seed,
            "final_loss": float(sum(tail) / len(tail)),
            "seconds": time.perf_counter() - start,
        }
        self.losses = losses
        return self

    # ------------------------------------------------------------------------------------
    def sample(self, num_rows: int, seed: int = 0, *, conditions=None, batch_size: int = 8192, row_offset: int = 0,
               solver: str = DEFAULT_SOLVER, steps: int | None = None, grid: str = TABLE_GRID):
        """``num_rows`` synthetic rows as a DataFrame in the original columns, units and dtypes.

        ``conditions`` fixes cells: a dict ``{column: value}`` (the same in every row) or a
        DataFrame of ``num_rows`` rows whose non-missing cells are fixed. Conditioned cells
        come back exactly as given; the other columns come from the model given them, without
        rejection: the conditioned columns' states follow the exact bridge to their values
        while the network's drift moves the rest (docs/math.md, "Known cells"). A condition
        outside its column's domain is a ``SchemaError`` naming the column and value.

        Rows are numbered from ``row_offset``; row r depends only on (seed, r) and its
        conditions, so ``sample(n, seed)`` equals the concatenation of chunks drawn with their
        offsets (up to the model's float rounding, which may depend on the batch size).
        ``solver`` (``"euler"`` or ``"bridge"``, ``omegabridge.solvers``), ``steps`` (default:
        the model's) and ``grid`` (``Bridge``'s) choose the sampler; the network was trained at
        the times of its own grid and is evaluated between them on another one.

        >>> import pandas as pd
        >>> frame = pd.DataFrame({"colour": ["red", "blue"] * 20, "count": [0, 3] * 20})
        >>> model = TabularBridge(steps=10, hidden=8, depth=1, verbose=False, progress=False)
        >>> rows = model.fit(frame, iterations=2, batch_size=8).sample(4, conditions={"colour": "blue"})
        >>> rows["colour"].tolist()
        ['blue', 'blue', 'blue', 'blue']
        """
        from omegabridge.tabular.conditions import condition_frame, known_cells

        self._require_fitted("sample")
        sampler = self._sampler(solver, steps, grid)
        if isinstance(num_rows, bool) or not isinstance(num_rows, int) or num_rows < 1:
            raise ValueError(f"num_rows must be a positive integer, got {num_rows!r}")
        given = None if conditions is None else condition_frame(self.schema, conditions, num_rows)
        known = None if given is None else known_cells(self.encoder, given)
        frame = self._sample_rows(sampler, num_rows, seed, batch_size, row_offset, known, given)
        frame.index = range(row_offset, row_offset + num_rows)
        return frame

    def _sample_rows(self, sampler: dict, num_rows: int, seed: int, batch_size: int, row_offset: int,
                     known: torch.Tensor | None = None, given=None):
        """``num_rows`` decoded rows of the sampler ``sampler`` (from ``_sampler``), with the ``known`` cells of
        ``omegabridge.tabular.conditions`` and the ``given`` values put back exactly (index from 0)."""
        from omegabridge.tabular.conditions import with_given

        x = self._sampling_bridge(sampler).sample(
            self.model, n=num_rows, seed=seed, batch_size=batch_size, device=self.device,
            progress=self.progress, row_offset=row_offset, solver=sampler["solver"], known=known,
            final_spread=self.final_spread,
        )
        frame = self.encoder.decode(x)
        return frame if given is None else with_given(frame, given)

    def _sampler(self, solver: str, steps: int | None, grid: str) -> dict:
        """The sampler settings checked and in one spelling: ``steps`` None for the model's own, ``grid`` "s^RHO"
        for every power grid ("s" is "s^2"), so two spellings of one sampler are one job."""
        check_solver(solver)
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 2):
            raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
        if grid == "domain":  # resolved here, so "domain" and the power it names are one job
            grid = domain_grid(self.bridge.table, self.schedule, self.steps if steps is None else steps)
        rho = schedules.grid_power(grid)  # ValueError naming a bad grid
        return {"solver": solver, "steps": None if steps == self.steps else steps,
                "grid": grid if rho is None else f"s^{rho:g}"}

    def _sampling_bridge(self, sampler: dict) -> Bridge:
        """The fitted bridge, or one on the same domain and schedule with the steps and grid of ``sampler``
        (from ``_sampler``), kept for the next call."""
        steps, grid = sampler["steps"] or self.steps, sampler["grid"]
        if steps == self.steps and grid == "t":
            return self.bridge
        made_for, bridges = self._sampling_bridges
        if made_for is not self.bridge:
            made_for, bridges = self._sampling_bridges = (self.bridge, {})
        if (steps, grid) not in bridges:
            bridges[(steps, grid)] = Bridge(self.encoder.domain, self.schedule, steps=steps, grid=grid)
        return bridges[(steps, grid)]

    def sample_chunks(self, num_rows: int, seed: int = 0, *, conditions=None, chunk_rows: int = 100_000,
                      batch_size: int = 8192, solver: str = DEFAULT_SOLVER, steps: int | None = None,
                      grid: str = TABLE_GRID) -> Iterator:
        """Yield ``num_rows`` rows as DataFrames of at most ``chunk_rows`` rows, in row order (bounded memory);
        ``conditions``, ``solver``, ``steps`` and ``grid`` as in ``sample`` (a DataFrame of conditions has
        ``num_rows`` rows, cut into the chunks)."""
        import pandas as pd

        from omegabridge.tabular.conditions import condition_frame

        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        if isinstance(num_rows, bool) or not isinstance(num_rows, int) or num_rows < 1:
            raise ValueError(f"num_rows must be a positive integer, got {num_rows!r}")
        self._require_fitted("sample")
        self._sampling_bridge(self._sampler(solver, steps, grid))  # bad settings fail before the first chunk
        if conditions is not None:  # bad conditions too
            condition_frame(self.schema, conditions, num_rows)
        for start in range(0, num_rows, chunk_rows):
            count = min(chunk_rows, num_rows - start)
            chunk = conditions.iloc[start:start + count] if isinstance(conditions, pd.DataFrame) else conditions
            yield self.sample(count, seed, conditions=chunk, batch_size=batch_size, row_offset=start,
                              solver=solver, steps=steps, grid=grid)

    def sample_to(self, path: str, num_rows: int, seed: int = 0, *, chunk_rows: int = 100_000, batch_size: int = 8192,
                  overwrite: bool = False, on_chunk: Callable[[int], None] | None = None, manifest_extra: dict | None = None,
                  solver: str = DEFAULT_SOLVER, steps: int | None = None, grid: str = TABLE_GRID,
                  conditions: Mapping | None = None) -> dict:
        """Sample ``num_rows`` rows to the folder ``path`` (Parquet parts + manifest.json) in bounded memory.

        Resumable: a run killed part-way leaves ``path.partial``; the same call again
        finishes it without redoing complete parts. Under torchrun every worker makes
        this call and writes its contiguous share of the parts; the folder equals the one
        a single process writes. See ``omegabridge.tabular.sample_parts``. ``solver``,
        ``steps`` and ``grid`` as in ``sample`` (a resumed job must use the same), and so are
        ``conditions``, here a dict ``{column: value}`` (recorded in the job).
        """
        from omegabridge.tabular.conditions import condition_frame
        from omegabridge.tabular.sample_parts import write_sample_parts

        self._require_fitted("sample")
        sampler = self._sampler(solver, steps, grid)
        self._sampling_bridge(sampler)  # bad settings fail before the job starts
        if conditions is not None:
            if not isinstance(conditions, Mapping):
                raise TypeError(f"sample_to takes conditions as a dict {{column: value}} (recorded in the job), got "
                                f"{type(conditions).__name__}; sample per-row conditions with sample or sample_chunks")
            condition_frame(self.schema, conditions, 1)  # named errors before the job starts
            sampler["conditions"] = {str(name): plain_value(value) for name, value in conditions.items()}
        return write_sample_parts(self, num_rows, path, seed=seed, chunk_rows=chunk_rows, batch_size=batch_size,
                                  overwrite=overwrite, on_chunk=on_chunk, manifest_extra=manifest_extra,
                                  sampler=sampler)

    def impute(self, frame, seed: int = 0, *, draws: int = 1, batch_size: int = 8192, solver: str = DEFAULT_SOLVER,
               steps: int | None = None, grid: str = TABLE_GRID):
        """``frame`` with every missing cell filled from the model given the row's observed cells; observed
        cells come back unchanged (``omegabridge.tabular.imputation``). ``draws=1``: each filled cell is a
        draw from the conditional; an odd ``draws`` > 1: the per-cell median / most frequent of that many
        draws (a point estimate). ``solver``, ``steps``, ``grid`` as in ``sample``.

        >>> import pandas as pd
        >>> frame = pd.DataFrame({"colour": ["red", "blue"] * 20, "count": [0, 3] * 20})
        >>> model = TabularBridge(steps=10, hidden=8, depth=1, verbose=False, progress=False).fit(frame, iterations=2, batch_size=8)
        >>> holes = pd.DataFrame({"colour": ["red", None], "count": [None, 3]})
        >>> filled = model.impute(holes)
        >>> bool(filled.notna().all().all()), filled.loc[0, "colour"], int(filled.loc[1, "count"])
        (True, 'red', 3)
        """
        from omegabridge.tabular.imputation import impute

        self._require_fitted("impute")
        return impute(self, frame, seed, draws=draws, batch_size=batch_size, solver=solver, steps=steps, grid=grid)

    def transform(self, data) -> torch.Tensor:
        """Rows of the bridge's domain for ``data`` (``SchemaError`` names a bad column and row)."""
        self._require_fitted("transform")
        return self.encoder.encode(data)

    def inverse_transform(self, x: torch.Tensor):
        """The DataFrame for rows ``x`` of the bridge's domain."""
        self._require_fitted("inverse_transform")
        return self.encoder.decode(x)

    # ------------------------------------------------------------------------------------
    def save(self, path: str, *, overwrite: bool = False) -> str:
        """Write a checkpoint (weights, schema, encoder, schedule, settings, versions) atomically; an
        existing ``path`` is refused (``FileExistsError``) unless ``overwrite``."""
        self._require_fitted("save")
        content = {
            "schema": self.schema.to_dict(),
            "encoder": self.encoder.to_dict(),
            "bridge": {"steps": self.steps, "schedule": schedules_to_dict(self.schedule)},
            "model": {
                "hidden": self.hidden, "depth": self.depth,
                "learning_rate": self.learning_rate, "weight": self.weight, "times": self.times,
                "ema_decay": self.ema_decay, "conditional": self.conditional, "marginal_prior": self.marginal_prior,
                "posterior_logits": self.posterior_logits, "final_spread": self.final_spread,
                "value_loss": self.value_loss,
            },
            "weights": self.model.state_dict(),  # write_checkpoint detaches them to the CPU
            "training": self.training,
        }
        with output_lock(path):
            refuse_existing(path, overwrite)
            return write_checkpoint(path, content)

    @classmethod
    def load(cls, path: str, *, device: str = "cpu", progress: bool = True, verbose: bool = False) -> "TabularBridge":
        """The ``TabularBridge`` saved at ``path``; ``CheckpointError`` names the file and the problem."""
        content = read_checkpoint(path)
        try:
            schema = Schema.from_dict(content["schema"], source="checkpoint")
            encoder = TableEncoder.from_dict(schema, content["encoder"])
            model_settings = content["model"]
            result = cls(
                steps=int(content["bridge"]["steps"]),
                schedule=schedules_from_dict(content["bridge"]["schedule"]),
                hidden=int(model_settings["hidden"]),
                depth=int(model_settings["depth"]),
                learning_rate=float(model_settings["learning_rate"]),
                weight=str(model_settings["weight"]),
                times=str(model_settings.get("times", "grid")),  # checkpoints from before "times": grid
                ema_decay=model_settings.get("ema_decay"),
                conditional=bool(model_settings.get("conditional", False)),  # checkpoints from before: unconditioned
                marginal_prior=bool(model_settings.get("marginal_prior", False)),  # and on the flat prior
                posterior_logits=bool(model_settings.get("posterior_logits", False)),  # and predict means
                value_loss=str(model_settings.get("value_loss", "squared")),  # and trained on squared error
                device=device,
                verbose=verbose,
                progress=progress,
            )
            result.schema, result.encoder = schema, encoder
            result.final_spread = str(model_settings.get("final_spread", "remaining"))  # older: the remaining variance
            if result.final_spread not in FINAL_SPREADS:
                raise ValueError(f"unknown final_spread {result.final_spread!r}")
            result.bridge = Bridge(encoder.domain, result.schedule, steps=result.steps, grid="t")
            result.model = DriftMLP(result.bridge, hidden=result.hidden, depth=result.depth,
                                    conditional=result.conditional, marginal_prior=result.marginal_prior,
                                    posterior_logits=result.posterior_logits, value_loss=result.value_loss)
            result.model.load_state_dict(content["weights"], strict=True)
            result.model.to(result.device).eval()
            result.training = dict(content.get("training", {}))
        except (KeyError, TypeError, ValueError, RuntimeError, SchemaError) as error:
            raise CheckpointError(f"{path}: incompatible or damaged checkpoint ({type(error).__name__}: {error})") from error
        return result

    # ------------------------------------------------------------------------------------
    def _require_fitted(self, what: str) -> None:
        if self.model is None:
            raise NotFittedError(f"{what}: this TabularBridge is not fitted; call fit(data) or TabularBridge.load(path)")

    def __repr__(self) -> str:
        state = f"{len(self.schema)} columns, width {self.bridge.width}" if self.schema is not None else "not fitted"
        return f"TabularBridge(steps={self.steps}, schedule={self.schedule!r}, hidden={self.hidden}, depth={self.depth}; {state})"


def describe_factors(domain) -> str:
    """``"3 x Lattice, 2 x Categorical(6), 1 x Binary"``: the factors of a Product, counted by their repr.

    >>> from omegabridge.core import domains
    >>> describe_factors(domains.Product([domains.Binary(), domains.Binary(), domains.Real()]))
    '2 x Binary(), 1 x Real()'
    """
    from collections import Counter

    counts = Counter(repr(f) for f in getattr(domain, "factors", [domain]))
    return ", ".join(f"{count} x {name}" for name, count in counts.items())


def schedules_to_dict(schedule: schedules.Schedule) -> dict:
    """``{"name": class name, "parameters": {...}}`` of a schedule (``Table`` keeps its beta values)."""
    if isinstance(schedule, schedules.Table):
        return {"name": "Table", "parameters": {"beta": schedule.values.tolist()}}
    return {"name": type(schedule).__name__, "parameters": {k: float(v) for k, v in vars(schedule).items()}}


def schedules_from_dict(entry: dict) -> schedules.Schedule:
    """Inverse of ``schedules_to_dict``; an unknown name is a ``ValueError``."""
    names = {"Constant", "Exp", "Linear", "InverseExp", "Table"}
    if entry.get("name") not in names:
        raise ValueError(f"unknown schedule {entry.get('name')!r}")
    return getattr(schedules, entry["name"])(**entry["parameters"])
