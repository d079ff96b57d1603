"""``omegabridge demo digits``: scikit-learn's 8x8 digits as an image field, sampled with the U-Net.

Data: ``load_digits`` (1797 images, pixels 0..16), split 80/20 with the tables demo's seeded
``omegabridge.demos.tables.split``: 1438 training images, 359 held out. The images are one field,
``Lattice(0, 16, shape=(1, 8, 8))``, and the default model for it (``ob.models.for_domain``:
a ``DriftUNet``) is trained on the training split and samples as many images.

Two baselines, scored the same way:

- **flat MLP**: a ``DriftMLP`` (256 x 3, as in the tables demo) on the same bridge (same
  domain, schedule, steps and data), which sees the 64 pixels as flat columns, as the tables
  demo's digits part does. Its budget is of the same order: 6000 iterations of 256 images,
  about 60% of the U-Net's training CPU time (a cheaper step) and 12 times its images. (The
  same bridge rather than a rerun of the tables demo's ``TabularBridge``, so that the model
  is the only difference.)
- **independent pixels**: each pixel drawn on its own from its training marginal.

Scores, all from the tables demo's judge (``omegabridge.demos.tables.digit_classifier``: logistic
regression on standardised pixels, fitted to the training split):

- the class histogram's total variation from uniform and the mean top-class probability
  (``omegabridge.demos.tables.digit_scores``);
- a Frechet distance in the classifier's feature space, against the held-out images. The
  classifier has no hidden layer, so its features are its 10 logits (``decision_function``),
  the evidence it weighs for each class. The row "held-out real" gives the floor: the
  training images against the held-out ones (the classifier has seen the training images,
  so a model that reproduced them exactly would score about this).

Writes ``digits_field.png`` (held-out real, U-Net, flat MLP and independent-pixel grids side
by side), ``digits_metrics.json`` and ``digits_samples.npy`` (the U-Net's images, uint8,
(n, 8, 8)), each atomically.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from omegabridge.demos import common

__all__ = ["DigitsConfig", "DIGITS_QUICK", "DIGITS_PAPER", "run_digits", "load_split", "classifier_features",
           "feature_frechet"]

#: Pixel values of load_digits: the lattice 0..16.
PIXEL_HIGH = 16
IMAGE_SHAPE = (1, 8, 8)


@dataclass(frozen=True)
class DigitsConfig(common.FieldDemoSampler):
    """Everything the digits demo depends on; the defaults are the full run.

    ``schedule_b`` is b of the schedule ``Exp(3, b)``: the bridge's spread at the end is
    sqrt(beta(T)) ~ sqrt(0.95 b), and it should cover the data's extent (16 pixel levels),
    so b is of the order of 16^2 (the tables demo's ratio: extent 4, b = 16). The demo passes
    its schedule itself, so its figures stay those of this setting (``ob.Bridge``'s default,
    ``schedules.for_reach``, would scale b to the lattice's reach). ``samples=None`` samples as many images as the
    training split. ``iterations``, ``batch_size`` and ``channels`` are the U-Net's (the
    command line's ``--iterations`` sets only them); ``mlp_*`` are the flat MLP's.
    """

    output: str = "omegabridge-demo"
    # Sampling: 25 steps of the bridge solver on the "domain" grid (s^3 here), which put the
    # last steps at small s, where the lattice's spacing needs them. Measured with this U-Net
    # (bench/results/few-step-fields.md): Frechet distance 4.9 against 5.6 for 100 Euler steps on
    # grid "t" (the earlier default), at a quarter of the network evaluations; 12 steps gave 4.4.
    steps: int = 25
    solver: str = "bridge"
    sampling_grid: str = "domain"
    # Training: the grid times of 100 steps on grid "t" (100 leave s = 0.38 for the last step,
    # comparable to the lattice spacing 1; a model trained there samples well on the few-step grid).
    training_steps: int = 100
    schedule_b: float = 256.0
    iterations: int = 2000
    batch_size: int = 64
    learning_rate: float = 2e-3
    channels: tuple = (32, 64)
    mlp_iterations: int = 6000
    mlp_batch_size: int = 256
    mlp_hidden: int = 256
    mlp_depth: int = 3
    samples: int | None = None
    seed: int = 0
    threads: int = 1
    progress: bool = True


#: Tiny sizes for tests and smoke runs (seconds; quality is not the point).
DIGITS_QUICK = dict(steps=10, iterations=10, batch_size=16, channels=(8, 16), mlp_iterations=10, mlp_hidden=16,
                    mlp_depth=1, samples=64)
#: The GPU recipe (``omegabridge demo digits --paper --device cuda``): ten times the training of larger networks,
#: the same sampler. Not yet measured on a GPU.
DIGITS_PAPER = dict(iterations=20000, batch_size=256, channels=(64, 128, 256), mlp_iterations=20000,
                    mlp_batch_size=1024, mlp_hidden=512)


def classifier_features(classifier, images) -> np.ndarray:
    """The classifier's logits (``decision_function``, one per class) for images of any shape (n, ...).

    The multinomial logistic regression's logits sum to zero, so their covariance has rank
    K - 1; ``frechet_distance`` copes (projecting onto the K - 1 dimensions first changed the
    demo's distances by less than 1e-6).

    >>> from sklearn.linear_model import LogisticRegression
    >>> points = np.array([[0, 0], [0, 1], [5, 5], [5, 6], [9, 0], [9, 1]])
    >>> classifier = LogisticRegression().fit(points, [0, 0, 1, 1, 2, 2])
    >>> classifier_features(classifier, points).shape
    (6, 3)
    """
    images = np.asarray(images, dtype=float)
    return classifier.decision_function(images.reshape(len(images), -1))


def feature_frechet(classifier, images, reference) -> float:
    """Frechet distance between Gaussians fitted to the classifier's logits of ``images`` and ``reference``.

    >>> from sklearn.linear_model import LogisticRegression
    >>> points = np.array([[0, 0], [0, 1], [5, 5], [5, 6], [9, 0], [9, 1]])
    >>> classifier = LogisticRegression().fit(points, [0, 0, 1, 1, 2, 2])
    >>> feature_frechet(classifier, points, points) < 1e-9, feature_frechet(classifier, points[:4], points) > 1
    (True, True)
    """
    from omegabridge.fields.metrics import frechet_distance

    return frechet_distance(classifier_features(classifier, images), classifier_features(classifier, reference))


def _train_and_sample(bridge, sampling, model, data: torch.Tensor, count: int, config: DigitsConfig, *, iterations: int,
                      batch_size: int) -> tuple[torch.Tensor, float, dict]:
    """Train ``model`` with the Trainer on ``bridge``'s times, sample ``count`` rows with ``sampling``;
    (rows, final loss, seconds).

    Seconds are wall-clock and CPU time of this process (``*_cpu``): on a shared machine the
    CPU time of a one-thread run is the figure that repeats.
    """
    import omegabridge as ob

    clock = _Clock()
    trainer = ob.Trainer(bridge, model, batch_size=batch_size, learning_rate=config.learning_rate, seed=config.seed,
                         times=config.times, progress=config.progress)
    losses = trainer.fit(data, iterations)
    seconds = clock.lap("train")
    rows = sampling.sample(model, n=count, seed=config.seed, batch_size=512, progress=config.progress,
                           solver=config.solver, device=config.device).cpu()
    seconds.update(clock.lap("sample"))
    return rows, float(np.mean(losses[-max(1, len(losses) // 10):])), seconds


class _Clock:
    """Wall-clock and process CPU seconds since the previous lap."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        lap = {name: wall - self.wall, f"{name}_cpu": cpu - self.cpu}
        self.wall, self.cpu = wall, cpu
        return lap


def _score(classifier, images, reference) -> dict:
    """The tables demo's class scores plus the Frechet distance to ``reference`` in the classifier's logits."""
    from omegabridge.demos.tables import digit_scores

    flat = np.asarray(images).reshape(len(images), -1)
    return {**digit_scores(classifier, flat), "frechet_distance": feature_frechet(classifier, images, reference)}


def _save_npy(path: str, array: np.ndarray) -> None:
    from omegabridge.files import atomic_write

    def write(temporary: str) -> None:
        with open(temporary, "wb") as handle:  # a file object: np.save would add ".npy" to a bare name
            np.save(handle, array)

    atomic_write(path, write)


def _versions() -> dict:
    import sklearn

    import omegabridge as ob

    return {"omegabridge": ob.__version__, "torch": torch.__version__, "scikit-learn": sklearn.__version__,
            "numpy": np.__version__, "threads": torch.get_num_threads(), "platform": platform.platform()}


def _format(result: dict) -> str:
    lines = [f"{'images':<20} {'valid':>6} {'class hist. TV from uniform':>28} {'mean top prob.':>15} "
             f"{'Frechet (logits)':>17}"]
    for name, score in result["scores"].items():
        valid = result["valid"].get(name)
        lines.append(f"{name:<20} {'-' if valid is None else f'{valid:.0%}':>6} "
                     f"{score['histogram_tv_from_uniform']:>28.3f} {score['mean_top_probability']:>15.3f} "
                     f"{score['frechet_distance']:>17.2f}")
    times = "; ".join(f"{name} train {seconds['train']:.0f} s, sample {seconds['sample']:.0f} s"
                      for name, seconds in result["seconds"].items())
    lines.append(f"(classifier: logistic regression on the training digits, {result['classifier_accuracy']:.1%} on "
                 "held-out ones; Frechet distance of its logits to the held-out digits; held-out real: the training "
                 f"digits' distance, the floor; {times})")
    return "\n".join(lines)


def load_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train, held_out, train_labels, held_out_labels)``: the digits as (n, 1, 8, 8) int64 images, split by
    ``omegabridge.demos.tables.split`` (80/20, seeded), as the tables demo splits them."""

    pixels, labels = common.load_digits()
    train_rows, test_rows = common.split(len(pixels), seed)
    images = pixels.to_numpy().reshape((-1,) + IMAGE_SHAPE)
    return images[train_rows], images[test_rows], labels[train_rows], labels[test_rows]


def _fit_models(bridge, sampling, data: torch.Tensor, count: int, config: DigitsConfig, log) -> tuple[dict, dict, dict]:
    """Train and sample the U-Net and the flat MLP: (rows, final losses, seconds), each keyed by model."""
    import omegabridge as ob

    torch.manual_seed(config.seed)
    unet = ob.models.for_domain(bridge, data=data, channels=tuple(config.channels)).to(config.device)
    torch.manual_seed(config.seed)
    mlp = ob.models.DriftMLP(bridge, hidden=config.mlp_hidden, depth=config.mlp_depth, data=data).to(config.device)
    runs = {"U-Net": (unet, config.iterations, config.batch_size),
            "flat MLP": (mlp, config.mlp_iterations, config.mlp_batch_size)}
    rows, losses, seconds = {}, {}, {}
    for name, (model, iterations, batch_size) in runs.items():
        log(f"{name}: {type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters, "
            f"{iterations} iterations of {batch_size} images")
        rows[name], losses[name], seconds[name] = _train_and_sample(bridge, sampling, model, data, count, config,
                                                                    iterations=iterations, batch_size=batch_size)
    return rows, losses, seconds


def score_sets(sets: dict, train: np.ndarray, test: np.ndarray, train_labels, test_labels) -> tuple[dict, float]:
    """Scores of each set of images (name -> int images, (n, 1, 8, 8)) and of the held-out real ones (the
    floor): class histogram TV from uniform, mean top-class probability and the classifier-logit Frechet
    distance to ``test``; and the classifier's held-out accuracy (bench/few_step_fields.py uses it too)."""
    from threadpoolctl import threadpool_limits


    with threadpool_limits(limits=1):  # small models: thread teams beside torch's only slow a busy machine down
        classifier = common.digit_classifier(train.reshape(len(train), -1), train_labels)
        scores = {name: _score(classifier, images, test) for name, images in sets.items()}
        scores["held-out real"] = {**common.digit_scores(classifier, test.reshape(len(test), -1)),
                                   "frechet_distance": feature_frechet(classifier, train, test)}
        accuracy = float(classifier.score(test.reshape(len(test), -1).astype(float), test_labels))
    return scores, accuracy


def _write_outputs(output: str, result: dict, test: np.ndarray, sets: dict) -> None:
    from omegabridge.files import write_json

    flat = {name: images.reshape(len(images), -1) for name, images in sets.items()}
    common.plot_digits(test.reshape(len(test), -1), flat, os.path.join(output, "digits_field.png"))
    write_json(os.path.join(output, "digits_metrics.json"), result)
    unet = sets["U-Net"]
    _save_npy(os.path.join(output, "digits_samples.npy"), unet.reshape((len(unet),) + IMAGE_SHAPE[1:]).astype(np.uint8))


def run_digits(config: DigitsConfig, log: Callable[[str], None] = print) -> dict:
    """Train the U-Net and the flat MLP, sample, score; writes the PNG, metrics and samples under ``config.output``."""
    import omegabridge as ob

    common.require_demo_dependencies()
    if config.threads:
        torch.set_num_threads(config.threads)
    output = os.path.abspath(config.output)
    os.makedirs(output, exist_ok=True)  # fail early (before training) if the folder cannot be made
    train, test, train_labels, test_labels = load_split(config.seed)
    count = len(train) if config.samples is None else int(config.samples)
    domain = ob.Lattice(0, PIXEL_HIGH, shape=IMAGE_SHAPE)
    schedule = ob.schedules.Exp(3.0, config.schedule_b)
    bridge = ob.Bridge(domain, schedule, steps=config.training_steps)  # the training times (times="grid")
    grid = config.sampling_grid
    if grid == "domain":
        grid = ob.solvers.domain_grid(domain.segment_table(), schedule, config.steps)
    sampling = ob.Bridge(domain, schedule, steps=config.steps, grid=grid)
    log(f"== digits: {len(train) + len(test)} images of 8x8 pixels in 0..{PIXEL_HIGH}; training on {len(train)}, "
        f"{len(test)} held out; trained on {bridge!r}, sampled by {config.solver} on {sampling!r} ==")
    data = domain.flatten(torch.from_numpy(train).float())
    rows, losses, seconds = _fit_models(bridge, sampling, data, count, config, log)
    rows["independent pixels"] = domain.flatten(torch.tensor(common.independent_pixels(train, count, config.seed)))
    # Validity of the rows as sampled (float32), before they are rounded into integer images.
    valid = {name: float(domain.contains(values.float()).float().mean()) for name, values in rows.items()}
    sets = {name: domain.unflatten(values).round().to(torch.int64).numpy() for name, values in rows.items()}
    scores, accuracy = score_sets(sets, train, test, train_labels, test_labels)
    result = {
        "config": asdict(config),
        "data": {"images": len(train) + len(test), "train": len(train), "held_out": len(test), "samples": count,
                 "split": f"omegabridge.demos.tables.split(seed={config.seed}): 80% train, 20% held out"},
        "bridge": repr(sampling),
        "training_bridge": repr(bridge),
        "classifier": "omegabridge.demos.tables.digit_classifier (logistic regression on standardised pixels), fitted to the "
                      "training split; Frechet distance between Gaussians fitted to its 10 logits, against the held-out "
                      "images ('held-out real': training images against held-out images, the floor)",
        "classifier_accuracy": accuracy,
        "valid": valid,
        "scores": scores,
        "final_loss": losses,
        "seconds": seconds,
        "versions": _versions(),
    }
    _write_outputs(output, result, test, sets)
    log(_format(result))
    return result
