"""The point-cloud demo: ``omegabridge demo points``.

Seeded procedural shapes (``omegabridge.fields.datasets.point_shapes``: tori, box surfaces and
spheres of random size, orientation and position), each 512 points on the integer grid
0..63, as a ``Lattice(0, 63, step=1, shape=(512, 3))`` field; the default model for it (a
permutation-equivariant ``DriftSetNetwork``) is trained on 2000 clouds and 200 are
sampled. They are scored against 200 held-out clouds beside an independent-coordinate
baseline (``independent_coordinates``) and beside 200 training clouds (real against real:
the floor):

- Chamfer distance to the held-out shapes, both ways: from each held-out cloud to the
  nearest cloud of the row (``chamfer_coverage``: are all kinds of shapes produced?) and
  from each cloud of the row to the nearest held-out cloud (``chamfer_fidelity``: does each
  one look like some real shape?);
- 1-nearest-neighbour accuracy (Chamfer distance, leave-one-out) at telling the row's
  clouds from the held-out ones: 0.5 when they cannot be told apart, 1.0 when they all can.

Writes ``points.png`` (three axis-aligned views of samples beside real shapes),
``points_metrics.json`` and ``points_samples.npy`` (the sampled clouds, uint8 (n, 512, 3)).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from omegabridge.demos import common

__all__ = ["PointsConfig", "POINTS_QUICK", "POINTS_PAPER", "run_points", "train_points", "clouds_of", "independent_coordinates", "score_rows",
           "depth_image"]

BASELINE = "independent coordinates"
REAL = "held-out real (train vs test)"


@dataclass(frozen=True)
class PointsConfig(common.FieldDemoSampler):
    """Everything the points demo depends on; the defaults are the full run.

    The schedule is ``Exp(schedule_a, schedule_b)`` (beta(t) = b (1 - e^{-a t})):

    - ``schedule_b``: the bridge starts at z = 0 and must reach every point of 0..63, so
      beta(T) ~ b must be of the order of the extent squared; ``None`` means (grid - 1)^2.
    - ``schedule_a``: on the uniform time grid the last step's variance is about
      b e^{-a} a / steps, and the final draw adds noise of that variance to every
      coordinate. With a = 3 (the tabular default) and 50 steps it is 12 (sd 3.5 cells):
      even the exact oracle drift over 500 training clouds then returns them blurred
      (Chamfer 17 cells^2 from the cloud it reproduces); a = 10 makes it 0.04 (sd 0.2
      cells, Chamfer 0.01) with the steps evenly spread in log s from s ~ b to below one
      cell. (With the demo's short training the learned model, not this blur, limits the
      scores: a = 3 and a = 10 gave 1-NN accuracies 0.90 and 0.92, one run each.)

    ``loss_weight`` is the Trainer's lambda(t): ``"remaining_squared"`` (plain x-prediction
    MSE, equal weight at every step of the grid) rather than the default ``"remaining"``,
    which weights each step by 1/s and so puts most of the loss on the last steps, where
    the shape is settled (1-NN accuracy 0.93 against 0.97 after 600 iterations, one run each).
    ``hidden`` 64 rather than 128: 2.7 times the iterations per second for the same scores
    at a fixed time budget (measured with the network before it had neighbours: 0.920 after
    1200 iterations against 0.925 after 600 of 128; the learning rate 5e-3 against 2e-3 gave
    0.925 against 0.932).

    ``neighbours``: the set network's local path (``DriftSetNetwork``, EdgeConv over the k
    nearest points). With k = 16, 1200 iterations: 1-NN accuracy 0.745, Chamfer coverage
    49.9 and fidelity 36.2 (held-out real 37.4 / 37.6), against 0.920, 53.4 and 41.6 without
    neighbours, at 4.2 times the training time (674 s against 160 s, one thread); 600
    iterations with neighbours gave 0.803 in 335 s (seed 0, one run each;
    bench/results/field-models.md).

    ``posterior_logits``: the set network's log-odds per lattice value (``DriftSetNetwork``); off, as
    measured: 1-NN accuracy 0.910 with them against 0.745, Chamfer fidelity 41.3 against 36.2.

    Sampling: 50 steps of the bridge solver on the "domain" grid (the model trained at the grid-"t"
    times of its 50 steps, as before). One model sampled with three seeds: 1-NN accuracy 0.725 /
    0.743 / 0.735 and Chamfer coverage 46.9 / 47.5 / 48.7 against 0.745 / 0.792 / 0.762 and 50.0 /
    48.4 / 49.9 for 50 Euler steps on grid "t", at the same 50 network evaluations
    (bench/results/field-models.md).

    >>> PointsConfig().points, PointsConfig(**POINTS_QUICK).points
    (512, 64)
    """

    output: str = "omegabridge-demo"
    train_clouds: int = 2000
    test_clouds: int = 200
    points: int = 512
    grid: int = 64
    steps: int = 50
    iterations: int = 1200
    batch_size: int = 32
    learning_rate: float = 5e-3
    loss_weight: str = "remaining_squared"
    hidden: int = 64
    depth: int = 3
    neighbours: int = 16
    posterior_logits: bool = False
    schedule_a: float = 10.0
    schedule_b: float | None = None
    solver: str = "bridge"
    sampling_grid: str = "domain"
    seed: int = 0
    threads: int = 1
    progress: bool = True


#: Tiny sizes for tests and smoke runs (seconds; quality is not the point). The grid stays 64.
POINTS_QUICK = dict(train_clouds=48, test_clouds=16, points=64, steps=8, iterations=8, batch_size=8, hidden=16, depth=1)
#: The GPU recipe (``omegabridge demo points --paper --device cuda``): 2048 points per cloud (the paper's
#: ShapeNet size), five times the clouds, 17 times the training of a wider, deeper set network. Not yet measured on a GPU.
POINTS_PAPER = dict(train_clouds=10000, points=2048, iterations=20000, batch_size=64, hidden=128, depth=4)


def independent_coordinates(train: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` clouds shaped like ``train``'s, every coordinate drawn on its own.

    Each point's x, y and z are drawn independently, with replacement, from the pooled
    x, y and z values of all points of all training clouds (the per-axis marginals; the
    points are exchangeable, so pooling over them loses nothing). It knows where points
    tend to lie along each axis, and nothing about shapes.

    >>> train = np.array([[[0, 10, 20], [1, 11, 21]]])
    >>> cloud = independent_coordinates(train, count=3, seed=0)
    >>> cloud.shape, set(cloud[..., 0].ravel()) <= {0, 1}, set(cloud[..., 2].ravel()) <= {20, 21}
    ((3, 2, 3), True, True)
    """
    train = np.asarray(train)
    rng = np.random.default_rng(seed)
    pooled = train.reshape(-1, train.shape[2])
    shape = (count, train.shape[1])
    return np.stack([rng.choice(pooled[:, axis], size=shape) for axis in range(pooled.shape[1])], axis=-1)


def score_rows(rows: dict, held_out: np.ndarray) -> dict:
    """Chamfer coverage and fidelity and 1-NN accuracy of each named set of clouds against ``held_out``.

    One exact Chamfer matrix (``field_metrics.grid_chamfer``) over the held-out clouds and
    every row together, so each cloud's distance transform is computed once.

    >>> held_out = np.array([[[0, 0, 0]], [[9, 9, 9]]])
    >>> score_rows({"same": held_out.copy()}, held_out)["same"]["chamfer_fidelity"]
    0.0
    """
    from omegabridge.fields import metrics as fm

    sets = [np.asarray(held_out)] + [np.asarray(clouds) for clouds in rows.values()]
    distances = fm.grid_chamfer(np.concatenate(sets))
    starts = np.cumsum([0] + [len(clouds) for clouds in sets])
    real = np.arange(starts[0], starts[1])
    scores = {}
    for index, name in enumerate(rows, start=1):
        row = np.arange(starts[index], starts[index + 1])
        together = np.r_[row, real]
        scores[name] = {
            "chamfer_coverage": float(distances[np.ix_(real, row)].min(axis=1).mean()),
            "chamfer_fidelity": float(distances[np.ix_(row, real)].min(axis=1).mean()),
            "one_nn_accuracy": fm.nearest_neighbour_accuracy_of(distances[np.ix_(together, together)], len(row)),
        }
    return scores


VIEWS = ((0, 1, 2), (0, 2, 1), (1, 2, 0))  # (horizontal, vertical, depth) axes of the x-y, x-z and y-z views


def depth_image(cloud: np.ndarray, across: int, up: int, depth: int, grid: int) -> np.ndarray:
    """A view of an integer cloud along one axis: each grid column holds the smallest ``depth`` coordinate there, NaN where empty.

    >>> depth_image(np.array([[1, 0, 5], [1, 0, 2], [0, 1, 7]]), 0, 1, 2, grid=2)
    array([[nan,  2.],
           [ 7., nan]])
    """
    image = np.full((grid, grid), np.inf)
    np.minimum.at(image, (cloud[:, up], cloud[:, across]), cloud[:, depth])
    image[np.isinf(image)] = np.nan
    return image


def _plot(sets: dict, grid: int, path: str, count: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from omegabridge.files import save_figure

    colours = plt.get_cmap("viridis").with_extremes(bad="white")
    rows = len(sets) * len(VIEWS)
    figure, axes = plt.subplots(rows, count, figsize=(count * 1.0, rows * 1.0))
    for group, (name, clouds) in enumerate(sets.items()):
        for view, (across, up, depth) in enumerate(VIEWS):
            row = group * len(VIEWS) + view
            for column in range(count):
                axis = axes[row, column]
                # One pixel per grid column, coloured by the nearest point's depth, so a projected shape keeps its relief.
                axis.imshow(depth_image(clouds[column], across, up, depth, grid), origin="lower", cmap=colours,
                            vmin=0, vmax=grid - 1, interpolation="nearest")
                axis.set_xticks([])
                axis.set_yticks([])
            label = "xyz"[across] + "-" + "xyz"[up]
            axes[row, 0].set_ylabel(f"{name}\n{label}" if view == 0 else label, rotation=0, ha="right",
                                    va="center", fontsize=8)
    figure.tight_layout(h_pad=0.2, w_pad=0.2)
    save_figure(figure, path, dpi=80)


def _report(result: dict) -> str:
    seconds = result["seconds"]
    lines = [f"{'':32} {'Chamfer coverage':>17} {'Chamfer fidelity':>17} {'1-NN accuracy':>14}"]
    for name, score in result["scores"].items():
        lines.append(f"{name:32} {score['chamfer_coverage']:17.1f} {score['chamfer_fidelity']:17.1f} "
                     f"{score['one_nn_accuracy']:14.3f}")
    lines.append(f"(Chamfer: mean squared distance in grid cells, both ways; 1-NN accuracy 0.5 is ideal; clouds "
                 f"valid {100 * result['valid']:.0f}%; train {seconds['train']:.0f} s, sample "
                 f"{seconds['sample']:.0f} s, score {seconds['score']:.0f} s)")
    return "\n".join(lines)


def train_points(config: PointsConfig, log: Callable[[str], None] = print) -> common.TrainedField:
    """Generate the shapes and train the demo's set network on them (``config``'s settings); the held-out clouds come with it."""
    import omegabridge as ob
    from omegabridge.fields import datasets

    if config.threads:
        torch.set_num_threads(config.threads)
    top = config.grid - 1
    clouds, _ = datasets.point_shapes(config.train_clouds + config.test_clouds, points=config.points,
                                      grid=config.grid, seed=config.seed)
    train, test = clouds[:config.train_clouds], clouds[config.train_clouds:]
    domain = ob.Lattice(0, top, step=1, shape=(config.points, 3))
    schedule = ob.schedules.Exp(config.schedule_a, float(top**2) if config.schedule_b is None else config.schedule_b)
    bridge = ob.Bridge(domain, schedule, steps=config.steps)  # trained at the times of its grid "t", sampled on config's grid
    data = domain.flatten(torch.from_numpy(train).float())
    log(f"== points: {len(clouds)} procedural shapes (tori, boxes, spheres) of {config.points} points on 0..{top}; "
        f"training on {len(train)}, {len(test)} held out; domain {domain!r}; schedule {schedule!r}, "
        f"{config.steps} steps ==")
    torch.manual_seed(config.seed)
    model = ob.models.for_domain(bridge, data=data, hidden=config.hidden, depth=config.depth,
                                 neighbours=config.neighbours, posterior_logits=config.posterior_logits).to(config.device)
    log(f"model: {type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters")
    mark = time.perf_counter()
    trainer = ob.Trainer(bridge, model, batch_size=config.batch_size, learning_rate=config.learning_rate,
                         weight=config.loss_weight, times=config.times, seed=config.seed, progress=config.progress)
    losses = trainer.fit(data, config.iterations)
    return common.TrainedField(domain, schedule, model, train, test, losses, time.perf_counter() - mark)


def clouds_of(trained: common.TrainedField, rows: torch.Tensor) -> np.ndarray:
    """Flat rows of ``trained.domain`` as (count, points, 3) integer clouds."""
    return trained.domain.unflatten(rows).round().to(torch.int64).numpy()


def run_points(config: PointsConfig, log: Callable[[str], None] = print) -> dict:
    """Generate, train, sample, score; writes points.png, points_metrics.json and points_samples.npy under ``config.output``."""
    from omegabridge.files import write_json

    trained = train_points(config, log)
    train, test, domain, schedule, losses = trained.train, trained.test, trained.domain, trained.schedule, trained.losses
    seconds = {"train": trained.seconds}
    x, seconds["sample"] = common.sample_field(trained, config.test_clouds, solver=config.solver, steps=config.steps,
                                               grid=config.sampling_grid, seed=config.seed, progress=config.progress)
    inside = domain.contains(x)
    assert bool(inside.all()), f"{int((~inside).sum())} sampled clouds have points off the lattice"
    samples = clouds_of(trained, x)
    baseline = independent_coordinates(train, config.test_clouds, config.seed)
    mark = time.perf_counter()
    scores = score_rows({"omegabridge": samples, BASELINE: baseline, REAL: train[:config.test_clouds]}, test)
    seconds["score"] = time.perf_counter() - mark
    result = {
        "config": asdict(config),
        "schedule": repr(schedule),
        "valid": float(inside.float().mean()),
        "scores": scores,
        "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):])),
        "seconds": seconds,
    }
    output = os.path.abspath(config.output)
    os.makedirs(output, exist_ok=True)
    _plot({"held-out real": test, "omegabridge": samples, BASELINE: baseline}, config.grid,
          os.path.join(output, "points.png"))
    write_json(os.path.join(output, "points_metrics.json"), result)
    np.save(os.path.join(output, "points_samples.npy"), samples.astype(np.uint8))
    log(_report(result))
    return result
