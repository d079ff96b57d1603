"""``Trainer``: the production training loop for a drift model, one process or many (torchrun + DDP).

What it does each iteration: take the next global minibatch of ``batch_size`` rows (the
data is read in epochs, each a seeded permutation of the rows), draw every row's time and
noise, take this worker's contiguous slice of the batch, one Adam step on
``bridge.loss_at`` (bf16 autocast on GPU), gradient clipping, a warmup + cosine learning
rate, and an exponential moving average (EMA) of the weights.

Everything random is a function of ``(seed, iteration)`` or ``(seed, epoch)`` (a fresh
generator per draw), so the "RNG and data-order state" of a run is its iteration
number. That is what makes resume exact: a checkpoint holds the weights, the Adam
moments, the learning-rate schedule, the EMA, the losses so far and the iteration; a run
resumed from it draws exactly what an uninterrupted run would, and on CPU ends with the
same weights bit for bit. Under ``torchrun`` every worker draws the whole global batch
and keeps its slice (with its row offset into the noise stream), and DDP averages the
gradients, so K workers compute the gradient one process would, up to float rounding.

Example:
    >>> import torch, omegabridge as ob
    >>> bridge = ob.Bridge(ob.Binary(), steps=20)
    >>> model = ob.models.DriftMLP(bridge, hidden=16, depth=1)
    >>> trainer = ob.Trainer(bridge, model, batch_size=16, ema_decay=0.9, progress=False)
    >>> losses = trainer.fit(torch.ones(64, 1), iterations=3)
    >>> len(losses), trainer.iteration
    (3, 3)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import numbers
import os
import time
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from omegabridge.training import distributed
from omegabridge.bridge import check_loss_weight, check_training_times
from omegabridge.checksums import state_sha256
from omegabridge.files import atomic_write, output_lock, remove_temporaries
from omegabridge.errors import TrainingCheckpointError

__all__ = ["Trainer", "TrainingRecord", "FORMAT", "FORMAT_VERSION", "default_loss_weight"]

FORMAT = "omegabridge.training"
FORMAT_VERSION = 2  # 2: a "sha256" entry, the checksum of the rest (version 1 files still resume)
PRECISIONS = ("auto", "fp32", "bf16")
_EPOCH, _ITERATION, _KNOWN = 1, 2, 3
#: DistributedDataParallel settings. Buffers are not re-broadcast before every forward: each
#: worker builds its model from the same data (DriftMLP's buffers are fixed data moments),
#: and the broadcast is one more collective per iteration. A model whose buffers change in
#: training (BatchNorm) should pass ``ddp_options={"broadcast_buffers": True}``.
DDP_DEFAULTS = {"broadcast_buffers": False, "gradient_as_bucket_view": True}  # tags that keep the permutation and the per-iteration streams apart


@dataclasses.dataclass(frozen=True)
class TrainingRecord:
    """What a logging hook receives, every ``log_every`` iterations and at the end (rank 0 only).

    ``loss`` is the mean, over the iterations since the previous record, of the global
    minibatch loss (the same number on every worker).
    """

    iteration: int
    iterations: int
    loss: float
    learning_rate: float
    gradient_norm: float
    seconds: float
    rows_per_second: float


def default_loss_weight(model: torch.nn.Module) -> str:
    """The loss weight ``model`` trains with when none is given: its ``loss_weight`` (``BridgeDrift``'s), else
    ``"remaining"``.

    >>> import omegabridge as ob
    >>> default_loss_weight(torch.nn.Linear(2, 2)), default_loss_weight(ob.models.for_domain(ob.Lattice(0, 255, shape=(1, 4, 4))))
    ('remaining', 'remaining_squared')
    """
    return getattr(model, "loss_weight", "remaining")


class Trainer:
    """Train ``model`` (any ``torch.nn.Module`` with ``model(z, t) -> drift``) for ``bridge``.

    Args:
        bridge: the ``ob.Bridge`` whose loss is minimised.
        model: the drift model; it trains where its parameters live (CPU or a GPU).
        batch_size: the global minibatch: under torchrun each of K workers takes
            ``batch_size / K`` of its rows (so it must divide by K).
        learning_rate: Adam's peak learning rate.
        warmup: iterations of linear warmup from 0; then a cosine decay to 0 at the end.
        weight: the loss weight lambda(t): ``"none"``, ``"remaining"`` or ``"remaining_squared"``; ``None`` (the
            default): the model's own ``loss_weight`` (``BridgeDrift.loss_weight``: ``"remaining"`` for
            ``DriftMLP`` and log-odds models, ``"remaining_squared"`` for the mean-predicting U-Net and the set
            network), ``"remaining"`` for a model without one.
        times: each row's training time: ``"grid"`` (the default: one of the bridge's N grid
            times) or ``"continuous"`` (t uniform on [0, 1), so the model serves any sampler's
            grid and step count, at some cost in short runs: docs/math.md, Training) or ``"decisions"``
            (continuous, with half the rows where the discrete factors' values are decided: docs/math.md,
            Rare values); ``Bridge.draw_times``.
        clip: gradient-norm clipping threshold (0: no clipping).
        ema_decay: decay of the moving average of the weights (``None``: no EMA).
            ``averaged_model`` is the EMA model when there is one.
        precision: ``"auto"`` (bf16 autocast on CUDA, float32 elsewhere), ``"fp32"`` or ``"bf16"``.
        checkpoint: path of the resumable training checkpoint (``None``: none), written
            atomically by rank 0 every ``checkpoint_every`` iterations and at the end.
        seed: every draw (data order, times, noise) derives from it and the iteration.
        hooks: callables receiving a ``TrainingRecord`` (rank 0), for users' own logging.
        log_every: iterations between records (losses are gathered across workers then).
        progress: a progress bar on rank 0.
        backend: kernel backend of the training target (see ``ob.Bridge.sample``).
        log: where messages go (resuming, checkpoints); rank 0 only.
        ddp_options: keyword arguments for ``DistributedDataParallel`` over ``DDP_DEFAULTS``.
    """

    def __init__(
        self,
        bridge,
        model: torch.nn.Module,
        *,
        batch_size: int = 512,
        learning_rate: float = 3e-3,
        warmup: int = 0,
        weight: str | None = None,
        times: str = "grid",
        clip: float = 1.0,
        ema_decay: float | None = None,
        precision: str = "auto",
        checkpoint: str | None = None,
        checkpoint_every: int = 1000,
        seed: int = 0,
        hooks: Sequence[Callable[[TrainingRecord], None]] = (),
        log_every: int = 50,
        progress: bool = True,
        backend: str = "auto",
        log: Callable[[str], None] = print,
        ddp_options: dict | None = None,
    ):
        _positive_integer("batch_size", batch_size)
        _positive_integer("checkpoint_every", checkpoint_every)
        _positive_integer("log_every", log_every)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
        if not _is_real(learning_rate) or not math.isfinite(learning_rate) or learning_rate <= 0:
            raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate!r}")
        if not _is_real(clip) or not math.isfinite(clip) or clip < 0:
            raise ValueError(f"clip must be finite and >= 0 (0: no clipping), got {clip!r}")
        if ema_decay is not None and (not _is_real(ema_decay) or not 0.0 < ema_decay < 1.0):
            raise ValueError(f"ema_decay must be in (0, 1) or None, got {ema_decay!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if weight is None:
            weight = default_loss_weight(model)
        check_loss_weight(weight)
        check_training_times(times)
        for hook in hooks:
            if not callable(hook):
                raise TypeError(f"hooks must be callables taking a TrainingRecord, got {type(hook).__name__}")
        self.bridge, self.model = bridge, model
        self.batch_size, self.learning_rate, self.warmup = batch_size, float(learning_rate), warmup
        self.weight, self.times, self.clip, self.ema_decay = weight, times, float(clip), ema_decay
        self.checkpoint, self.checkpoint_every, self.seed = checkpoint, checkpoint_every, seed
        self.hooks, self.log_every, self.progress, self.backend = list(hooks), log_every, progress, backend
        self.log = log
        self.ddp_options = {**DDP_DEFAULTS, **(ddp_options or {})}
        parameters = list(model.parameters())
        if not parameters:
            raise ValueError(f"model ({type(model).__name__}) has no parameters to train")
        self.device = parameters[0].device
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        self.precision = precision
        self.iteration = 0
        self.losses: list[float] = []
        self.ema: torch.optim.swa_utils.AveragedModel | None = None
        self._permutations: dict[int, torch.Tensor] = {}

    # ------------------------------------------------------------------------------------
    @property
    def averaged_model(self) -> torch.nn.Module:
        """The EMA of the weights when ``ema_decay`` is set (what to sample with), else the model."""
        return self.ema.module if self.ema is not None else self.model

    def fit(self, data: torch.Tensor, iterations: int, *, resume: bool = True) -> list[float]:
        """Train to ``iterations`` iterations in all and return the per-iteration losses.

        With a ``checkpoint`` path that holds a checkpoint of this run (same settings,
        same data), training resumes there (``resume=False`` starts over and replaces it).
        Raises ``DomainError`` for rows outside the domain, ``TrainingCheckpointError``
        for a checkpoint of another run or a damaged one, ``ValueError`` when the
        global batch does not divide among the workers, ``OutputLockedError`` when another
        live job trains into the same ``checkpoint`` (the main worker holds its lock).
        """
        locked = self.checkpoint is not None and distributed.is_main()
        with output_lock(self.checkpoint) if locked else contextlib.nullcontext():
            return self._fit(data, iterations, resume)

    def _fit(self, data: torch.Tensor, iterations: int, resume: bool) -> list[float]:
        _positive_integer("iterations", iterations)
        workers, rank = distributed.world_size(), distributed.rank()
        if self.batch_size % workers:
            raise ValueError(f"batch_size {self.batch_size} does not divide among {workers} workers; "
                             f"use a multiple of {workers}")
        data = self.bridge.check_data(data, name="data").to(self.device)
        self.iterations = iterations
        self._data_rows = data.shape[0]
        self._data_fingerprint = fingerprint(data)
        self._permutations = {}
        self._optimizer = torch.optim.Adam(self.model.parameters(), lr=self.learning_rate)
        self._scheduler = torch.optim.lr_scheduler.LambdaLR(self._optimizer, self._learning_rate_factor)
        if self.ema_decay is not None:
            self.ema = torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(self.ema_decay), use_buffers=True
            )
        self.iteration, self.losses = 0, []
        if self.checkpoint is not None:
            if distributed.is_main():
                folder, name = os.path.split(os.path.abspath(self.checkpoint))
                if os.path.isdir(folder):
                    remove_temporaries(folder, name)
            if resume and os.path.exists(self.checkpoint):
                self._restore(self.checkpoint)
                self._say(f"resuming from {self.checkpoint} at iteration {self.iteration} of {iterations}")
        trained = self.model
        if distributed.is_distributed():
            ids = [self.device.index] if self.device.type == "cuda" else None
            trained = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids, **self.ddp_options)
        share = self.batch_size // workers
        first_row = rank * share
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        pending: list[torch.Tensor] = []
        norm = torch.zeros(())
        start, started_at = self.iteration, time.perf_counter()
        self.model.train()
        bar = tqdm(total=iterations, initial=self.iteration, disable=not (self.progress and distributed.is_main()),
                   desc="training", unit="it")
        try:
            while self.iteration < iterations:
                rows, times, noise_seed = self.draws(self.iteration)
                rows, times = rows[first_row:first_row + share], times[first_row:first_row + share]
                known_mask = self.known_mask(self.iteration)
                if known_mask is not None:
                    known_mask = known_mask[first_row:first_row + share]
                with autocast:
                    loss = self.bridge.loss_at(trained, data[rows.to(self.device)], times, noise_seed,
                                               row_offset=first_row, weight=self.weight, backend=self.backend,
                                               known_mask=known_mask)
                self._optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip if self.clip else math.inf)
                self._optimizer.step()
                self._scheduler.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                pending.append(loss.detach().float())
                self.iteration += 1
                bar.update(1)
                done = self.iteration == iterations
                due = self.checkpoint is not None and (self.iteration % self.checkpoint_every == 0 or done)
                if due or done or self.iteration % self.log_every == 0:
                    gathered = self._gather(pending)
                    pending = []
                    self.losses.extend(gathered)
                    record = TrainingRecord(
                        iteration=self.iteration, iterations=iterations, loss=sum(gathered) / len(gathered),
                        learning_rate=self._scheduler.get_last_lr()[0], gradient_norm=float(norm),
                        seconds=time.perf_counter() - started_at,
                        rows_per_second=(self.iteration - start) * self.batch_size / max(time.perf_counter() - started_at, 1e-9),
                    )
                    bar.set_postfix(loss=f"{record.loss:.4g}")
                    if distributed.is_main():
                        for hook in self.hooks:
                            hook(record)
                if due:
                    self.save_checkpoint(self.checkpoint)
        finally:
            bar.close()
            self.model.eval()
        return list(self.losses)

    # ------------------------------------------------------------------------------------
    def draws(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Global minibatch ``iteration``: (row indices, times, noise seed), all on CPU.

        The rows are positions ``iteration * batch_size ...`` of the stream of epochs, each
        epoch a permutation of the data seeded by (seed, epoch); a batch may span two
        epochs. The times (grid indices or times t, per ``times``; ``Bridge.draw_times``) and
        the seed come from a generator seeded by (seed, iteration).
        """
        rows_total = self._data_rows
        positions = torch.arange(iteration * self.batch_size, (iteration + 1) * self.batch_size, dtype=torch.int64)
        epochs, offsets = positions // rows_total, positions % rows_total
        rows = torch.empty_like(positions)
        for epoch in torch.unique(epochs).tolist():
            chosen = epochs == epoch
            rows[chosen] = self._permutation(epoch)[offsets[chosen]]
        generator = _generator(self.seed, _ITERATION, iteration)
        times = self.bridge.draw_times(self.batch_size, self.times, generator)
        noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return rows, times, noise_seed

    def known_mask(self, iteration: int) -> torch.Tensor | None:
        """The known cells of global minibatch ``iteration`` for a model that takes them (``takes_known_cells``;
        ``Bridge.draw_known_mask``, from a generator seeded by (seed, iteration) of its own), else None."""
        if not getattr(self.model, "takes_known_cells", False):
            return None
        return self.bridge.draw_known_mask(self.batch_size, _generator(self.seed, _KNOWN, iteration))

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._permutations:
            if len(self._permutations) > 2:
                self._permutations.pop(min(self._permutations))
            self._permutations[epoch] = torch.randperm(self._data_rows, generator=_generator(self.seed, _EPOCH, epoch))
        return self._permutations[epoch]

    def _learning_rate_factor(self, iteration: int) -> float:
        if iteration < self.warmup:
            return (iteration + 1) / self.warmup
        span = max(self.iterations - self.warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(iteration - self.warmup, span) / span))

    def _gather(self, pending: list[torch.Tensor]) -> list[float]:
        """The global losses of the pending iterations: each worker's mean loss, averaged over workers."""
        if not pending:
            return []
        values = torch.stack(pending).to(torch.float64)
        if distributed.is_distributed():
            torch.distributed.all_reduce(values)
            values /= distributed.world_size()
        return values.cpu().tolist()

    def _say(self, message: str) -> None:
        if distributed.is_main():
            self.log(message)

    # ------------------------------------------------------------------------------------
    def settings(self) -> dict:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        return {
            "batch_size": self.batch_size, "learning_rate": self.learning_rate, "warmup": self.warmup,
            "weight": self.weight, "times": self.times, "clip": self.clip, "ema_decay": self.ema_decay, "precision": self.precision,
            "seed": self.seed, "iterations": self.iterations, "steps": self.bridge.steps, "width": self.bridge.width,
        }

    def checkpoint_state(self) -> dict:
        """The checkpoint's content (CPU tensors and plain types; the same on every worker)."""
        from omegabridge.version import __version__

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "versions": {"omegabridge": __version__, "torch": str(torch.__version__)},
            "iteration": self.iteration,
            "settings": self.settings(),
            "data": {"rows": self._data_rows, "sha256": self._data_fingerprint},
            "model": _to_cpu(self.model.state_dict()),
            "optimizer": _to_cpu(self._optimizer.state_dict()),
            "scheduler": self._scheduler.state_dict(),
            "ema": _to_cpu(self.ema.state_dict()) if self.ema is not None else None,
            "losses": torch.tensor(self.losses, dtype=torch.float64),
        }

    def save_checkpoint(self, path: str) -> None:
        """Write ``checkpoint_state()`` to ``path`` atomically (rank 0 writes; the others wait)."""
        if distributed.is_main():
            state = self.checkpoint_state()
            state["sha256"] = state_sha256(state)
            atomic_write(path, lambda temporary: torch.save(state, temporary))
        distributed.barrier()

    def _restore(self, path: str) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # zip, EOF and unpickling errors: a damaged file
            raise TrainingCheckpointError(f"{path}: not a training checkpoint, or a damaged one "
                                          f"({type(error).__name__}: {error})") from error
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise TrainingCheckpointError(f"{path}: not an omegabridge training checkpoint")
        if state.get("format_version") not in (1, FORMAT_VERSION):
            raise TrainingCheckpointError(f"{path}: training checkpoint version {state.get('format_version')!r}; "
                                          f"this omegabridge reads versions 1..{FORMAT_VERSION}")
        if state["format_version"] >= 2 or "sha256" in state:
            stored = state.pop("sha256", None)
            try:
                computed = state_sha256(state)
            except TypeError as error:
                raise TrainingCheckpointError(f"{path}: damaged training checkpoint ({error})") from None
            if stored != computed:
                raise TrainingCheckpointError(f"{path}: corrupt training checkpoint: its SHA-256 does not match the one it "
                                              f"records; the file was changed after it was written")
        restart = "pass resume=False (omegabridge fit: --restart) to start over"
        saved = {"times": "grid", **state["settings"]}  # checkpoints from before "times" trained on the grid
        differences = [f"{key} {saved.get(key)!r} there, {value!r} here"
                       for key, value in self.settings().items() if saved.get(key) != value]
        if differences:
            raise TrainingCheckpointError(f"{path} belongs to another run ({'; '.join(differences)}); {restart}")
        if state["data"] != {"rows": self._data_rows, "sha256": self._data_fingerprint}:
            raise TrainingCheckpointError(f"{path} was trained on other data ({state['data']['rows']} rows there, "
                                          f"{self._data_rows} here, or other values); {restart}")
        try:
            self.model.load_state_dict(state["model"])
            self._optimizer.load_state_dict(state["optimizer"])
            self._scheduler.load_state_dict(state["scheduler"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
        except (KeyError, RuntimeError, ValueError) as error:
            raise TrainingCheckpointError(f"{path}: does not fit this model ({error}); {restart}") from error
        self.iteration = int(state["iteration"])
        self.losses = state["losses"].tolist()


def fingerprint(data: torch.Tensor) -> str:
    """sha256 of the rows' float32 bytes: which data a checkpoint was trained on."""
    return hashlib.sha256(data.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


def _generator(seed: int, tag: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, tag, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value


def _positive_integer(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
