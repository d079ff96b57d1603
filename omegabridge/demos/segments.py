"""Field demos: ``omegabridge demo segments`` (``digit_demo`` and ``point_demo`` hold digits and points).

segments: seeded procedural scenes (``omegabridge.fields.datasets.segmentation_scenes``, 32 x 32,
6 classes) as a ``Categorical(6, shape=(32, 32))`` field, the default model for it (a
``DriftUNet``), trained on 2000 maps and sampled; scored against 400 held-out maps and an
independent-pixel baseline (each pixel drawn from its own class frequencies in the training
maps): class-frequency TV, neighbour co-occurrence TV, and the distribution of connected
components. Writes ``segments.png`` (samples beside real maps), ``segments_metrics.json`` and
``segments_samples.npy`` (the sampled maps, uint8 classes).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from omegabridge.demos import common

__all__ = ["SegmentsConfig", "SEGMENTS_QUICK", "SEGMENTS_PAPER", "run_segments", "train_segments", "score_maps", "maps_of",
           "independent_classes"]

PALETTE = np.array([[135, 190, 235], [150, 110, 60], [250, 210, 40], [200, 50, 40], [40, 140, 60], [40, 80, 200]]) / 255


@dataclass(frozen=True)
class SegmentsConfig(common.FieldDemoSampler):
    """Everything the segments demo depends on; the defaults are the full run.

    The U-Net takes log-odds per class (``DriftUNet``'s default for a categorical map), is trained
    for 1200 iterations with the Trainer's default loss weight and sampled by 50 bridge-solver steps
    on the "domain" grid: 5.9 and 5.4 connected regions per map (real 4.7) and co-occurrence TV
    0.016 and 0.024 on seeds 0 and 1. At 600 iterations: 7.1 and 0.021 on seed 0, against 9.4 and
    0.020 with plain x-prediction MSE (``loss_weight="remaining_squared"``) and 15.5 and 0.046 for
    the mean-predicting U-Net with that MSE and 50 Euler steps on grid "t"
    (bench/field_models_segments.py, bench/results/field-models.md).

    >>> SegmentsConfig().loss_weight, SegmentsConfig().solver
    ('remaining', 'bridge')
    """

    output: str = "omegabridge-demo"
    train_maps: int = 2000
    test_maps: int = 400
    size: int = 32
    steps: int = 50
    iterations: int = 1200
    batch_size: int = 32
    learning_rate: float = 2e-3
    loss_weight: str = "remaining"
    solver: str = "bridge"
    sampling_grid: str = "domain"
    channels: tuple = (32, 64)
    seed: int = 0
    threads: int = 1
    progress: bool = True


#: Tiny sizes for tests and smoke runs (seconds; quality is not the point).
SEGMENTS_QUICK = dict(train_maps=64, test_maps=32, size=16, steps=10, iterations=10, batch_size=8, channels=(8, 16))
#: The GPU recipe (``omegabridge demo segments --paper --device cuda``): five times the maps, 33 times the
#: training of a wider, deeper U-Net, the same sampler. Not yet measured on a GPU.
SEGMENTS_PAPER = dict(train_maps=10000, iterations=20000, batch_size=128, channels=(64, 128, 256))


def independent_classes(train: np.ndarray, count: int, classes: int, seed: int) -> np.ndarray:
    """``count`` maps whose pixels are drawn independently from each position's class frequencies in ``train``."""
    rng = np.random.default_rng(seed)
    frequencies = np.stack([(train == k).mean(axis=0) for k in range(classes)], axis=-1)  # (H, W, K)
    cumulative = frequencies.cumsum(axis=-1)
    draws = rng.random((count,) + train.shape[1:])[..., None]
    return np.minimum((draws > cumulative[None]).sum(axis=-1), classes - 1).astype(np.int64)


def score_maps(samples: np.ndarray, reference: np.ndarray, classes: int) -> dict:
    """The demo's judge of class maps ``samples`` against ``reference`` (both (count, H, W) integer classes):
    class-frequency TV, neighbour co-occurrence TV, the TV of connected-region counts and regions per map.

    >>> maps = np.array([[[0, 1], [1, 1]]])
    >>> score_maps(maps, maps, classes=2)["cooccurrence_tv"], score_maps(maps, maps, classes=2)["components_mean"]
    (0.0, 2.0)
    """
    from omegabridge.fields import metrics as fm

    counts = fm.component_counts(samples)
    return {
        "class_frequency_tv": fm.class_frequency_tv(samples, reference, classes),
        "cooccurrence_tv": fm.cooccurrence_tv(samples, reference, classes),
        "component_count_tv": fm.component_count_tv(samples, reference),
        "components_mean": float(counts.mean()),
    }


def maps_of(trained: common.TrainedField, rows: torch.Tensor) -> np.ndarray:
    """Flat one-hot rows of ``trained.domain`` as (count, H, W) integer class maps."""
    return trained.domain.unflatten(rows).argmax(dim=-1).numpy()


def _plot(real: np.ndarray, frames: dict, path: str, count: int = 12) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from omegabridge.files import save_figure

    rows = {"held-out real": real, **frames}
    figure, axes = plt.subplots(len(rows), count, figsize=(count * 0.9, len(rows) * 1.0))
    for row, (name, maps) in enumerate(rows.items()):
        for column in range(count):
            axis = axes[row, column]
            axis.imshow(PALETTE[maps[column]], interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    figure.tight_layout()
    save_figure(figure, path, dpi=110)


def train_segments(config: SegmentsConfig, log: Callable[[str], None] = print) -> common.TrainedField:
    """Generate the scenes and train the demo's model on them (``config``'s settings); the held-out maps come with it."""
    import omegabridge as ob
    from omegabridge.fields import datasets

    if config.threads:
        torch.set_num_threads(config.threads)
    classes = len(datasets.SCENE_CLASSES)
    maps = datasets.segmentation_scenes(config.train_maps + config.test_maps, size=config.size, seed=config.seed)
    train, test = maps[:config.train_maps], maps[config.train_maps:]
    domain = ob.Categorical(classes, shape=(config.size, config.size))
    bridge = ob.Bridge(domain, steps=config.steps)  # trained at the times of its grid "t", sampled on config's grid
    data = domain.flatten(torch.nn.functional.one_hot(torch.from_numpy(train), classes).float())
    log(f"== segments: {len(maps)} procedural {config.size}x{config.size} scenes, {classes} classes; training on "
        f"{len(train)}, {len(test)} held out; domain {domain!r} (width {domain.width}) ==")
    torch.manual_seed(config.seed)
    model = ob.models.for_domain(bridge, data=data, channels=tuple(config.channels)).to(config.device)
    log(f"model: {type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters")
    mark = time.perf_counter()
    trainer = ob.Trainer(bridge, model, batch_size=config.batch_size, learning_rate=config.learning_rate,
                         weight=config.loss_weight, times=config.times, seed=config.seed, progress=config.progress)
    losses = trainer.fit(data, config.iterations)
    return common.TrainedField(domain, bridge.schedule, model, train, test, losses, time.perf_counter() - mark)


def run_segments(config: SegmentsConfig, log: Callable[[str], None] = print) -> dict:
    """Generate, train, sample, score; writes segments.png and segments_metrics.json under ``config.output``."""
    from omegabridge.fields import datasets
    from omegabridge.fields.metrics import component_counts
    from omegabridge.files import write_json

    classes = len(datasets.SCENE_CLASSES)
    trained = train_segments(config, log)
    train, test, domain = trained.train, trained.test, trained.domain
    seconds = {"train": trained.seconds}
    x, seconds["sample"] = common.sample_field(trained, config.test_maps, solver=config.solver, steps=config.steps,
                                               grid=config.sampling_grid, seed=config.seed, progress=config.progress)
    inside = domain.contains(x)
    assert bool(inside.all())
    samples = maps_of(trained, x)
    baseline = independent_classes(train, config.test_maps, classes, config.seed)
    losses = trained.losses
    result = {
        "config": asdict(config),
        "valid": float(inside.float().mean()),
        "scores": {"omegabridge": score_maps(samples, test, classes),
                   "independent pixels": score_maps(baseline, test, classes),
                   "held-out real (train vs test)": score_maps(train[:config.test_maps], test, classes)},
        "reference_components_mean": float(np.mean(component_counts(test))),
        "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):])),
        "seconds": seconds,
    }
    output = os.path.abspath(config.output)
    os.makedirs(output, exist_ok=True)
    _plot(test, {"omegabridge": samples, "independent pixels": baseline}, os.path.join(output, "segments.png"))
    write_json(os.path.join(output, "segments_metrics.json"), result)
    np.save(os.path.join(output, "segments_samples.npy"), samples.astype(np.uint8))
    lines = [f"{'':32} {'class TV':>9} {'co-occ. TV':>11} {'components TV':>14} {'components':>11}"]
    for name, score in result["scores"].items():
        lines.append(f"{name:32} {score['class_frequency_tv']:9.3f} {score['cooccurrence_tv']:11.3f} "
                     f"{score['component_count_tv']:14.3f} {score['components_mean']:11.1f}")
    lines.append(f"(held-out maps: {result['reference_components_mean']:.1f} components on average; rows valid "
                 f"{100 * result['valid']:.0f}%; train {seconds['train']:.0f} s, sample {seconds['sample']:.0f} s)")
    log("\n".join(lines))
    return result
