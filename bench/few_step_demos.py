"""Few-step sampling on the segments and points demos: each demo's model trained once, sampled at
its evaluations and at a quarter and an eighth of them.

Each demo samples 50 steps from a model trained at the grid-"t" times of 50 steps, by the bridge
solver on grid "domain" (``SegmentsConfig``, ``PointsConfig``; the points demo sampled 50 Euler
steps on grid "t" when bench/results/few-step-demos.md was measured). Here each demo's model is trained once with the demo's full
settings (``train_segments``, ``train_points``), then sampled, as many rows as the demo samples
with the same seed, by the demo's own sampler, by Euler at 50, 12 and 6 steps on grid "t" and by the
bridge solver at 12 and 6 steps on grids "t" and "domain" (``omegabridge.solvers.domain_grid``),
and every sample is scored
with the demo's own judge: segments by regions per map (real held-out maps: about 4.7) and
co-occurrence and class-frequency TV; points by 1-NN accuracy (0.5 is ideal) and Chamfer coverage
and fidelity. The tables and digits demos have their own few-step benches (few_step_tables.py,
few_step_fields.py); docs/benchmarks.md puts the four side by side.

    python bench/few_step_demos.py                                  # full settings: about 20 minutes on one core
    python bench/few_step_demos.py --quick --out /tmp/few-demos      # the demos' smoke sizes: seconds

Results: ``<out>/few-step-demos.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import torch

from fair_runs import write_results
from omegabridge.demos import common, points, segments
from omegabridge.fields import datasets

#: (solver, fraction of the demo's steps, grid) after the demo's own sampler: all of them, a quarter and an eighth.
SAMPLERS = (("euler", 1, "t"), ("euler", 4, "t"), ("euler", 8, "t"), ("bridge", 4, "t"), ("bridge", 8, "t"),
            ("bridge", 4, "domain"), ("bridge", 8, "domain"))


def samplers(config) -> tuple:
    """The demo's own sampler (``config``'s solver and grid at its steps) first, then the other ``SAMPLERS``."""
    own = (config.solver, 1, config.sampling_grid)
    return (own,) + tuple(sampler for sampler in SAMPLERS if sampler != own)


def _cells(trained: common.TrainedField, config, count: int, shape_of, log) -> tuple[list, dict]:
    """Sample ``trained`` with every sampler; the cells (without scores) and the named sample sets."""
    cells, sets = [], {}
    for solver, fraction, grid in samplers(config):
        steps = max(2, config.steps // fraction)  # a grid has at least 2 steps (the smoke sizes reach it)
        rows, seconds = common.sample_field(trained, count, solver=solver, steps=steps, grid=grid, seed=config.seed)
        name = f"{solver} {steps} {grid}"
        sets[name] = shape_of(trained, rows)
        cells.append({"solver": solver, "steps": steps, "evaluations": steps, "grid": grid, "name": name,
                      "valid": float(trained.domain.contains(rows).float().mean()), "sample_seconds": seconds})
        log(f"  {name}: {seconds:.1f} s")
    return cells, sets


def run_segments(config: segments.SegmentsConfig, log=print) -> dict:
    """The segments demo's model trained once and sampled by every sampler, scored as the demo scores."""
    trained = segments.train_segments(config, log)
    log(f"segments trained: {trained.seconds:.0f} s")
    classes = len(datasets.SCENE_CLASSES)
    cells, sets = _cells(trained, config, config.test_maps, segments.maps_of, log)
    for cell in cells:
        cell.update(segments.score_maps(sets[cell.pop("name")], trained.test, classes))
    floor = segments.score_maps(trained.train[:config.test_maps], trained.test, classes)
    return {"train_seconds": trained.seconds, "cells": cells, "floor": floor}


def run_points(config: points.PointsConfig, log=print) -> dict:
    """The points demo's model trained once and sampled by every sampler, scored as the demo scores."""
    trained = points.train_points(config, log)
    log(f"points trained: {trained.seconds:.0f} s")
    cells, sets = _cells(trained, config, config.test_clouds, points.clouds_of, log)
    sets[points.REAL] = trained.train[:config.test_clouds]
    scores = points.score_rows(sets, trained.test)
    for cell in cells:
        cell.update(scores[cell.pop("name")])
    return {"train_seconds": trained.seconds, "cells": cells, "floor": scores[points.REAL]}


def markdown(result: dict, command: str) -> str:
    segments_result, points_result = result["segments"], result["points"]
    lines = [
        "# Few-step sampling on the segments and points demos (bench/few_step_demos.py)", "",
        f"Each demo's model trained once with the demo's settings ({result['times']} times, seed 0) and sampled, as "
        "many rows as the demo samples with the same seed, by each sampler; scored with the demo's judge. Measured "
        f"{datetime.date.today().isoformat()} on {platform.machine()} ({torch.get_num_threads()} torch thread). "
        f"Command: `{command}`.", "",
        f"## Segments (trained in {segments_result['train_seconds']:.0f} s)", "",
        "| solver | steps (evaluations) | grid | regions per map | co-occurrence TV | class TV | valid | sample s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cell in segments_result["cells"]:
        lines.append(f"| {cell['solver']} | {cell['steps']} | {cell['grid']} | {cell['components_mean']:.1f} | "
                     f"{cell['cooccurrence_tv']:.3f} | {cell['class_frequency_tv']:.3f} | {cell['valid']:.0%} | "
                     f"{cell['sample_seconds']:.1f} |")
    floor = segments_result["floor"]
    lines += [f"| real training maps against held-out | | | {floor['components_mean']:.1f} | "
              f"{floor['cooccurrence_tv']:.3f} | {floor['class_frequency_tv']:.3f} | | |", "",
              f"## Points (trained in {points_result['train_seconds']:.0f} s)", "",
              "| solver | steps (evaluations) | grid | 1-NN accuracy | Chamfer coverage | Chamfer fidelity | valid | sample s |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for cell in points_result["cells"]:
        lines.append(f"| {cell['solver']} | {cell['steps']} | {cell['grid']} | {cell['one_nn_accuracy']:.3f} | "
                     f"{cell['chamfer_coverage']:.1f} | {cell['chamfer_fidelity']:.1f} | {cell['valid']:.0%} | "
                     f"{cell['sample_seconds']:.1f} |")
    floor = points_result["floor"]
    lines.append(f"| real training clouds against held-out | | | {floor['one_nn_accuracy']:.3f} | "
                 f"{floor['chamfer_coverage']:.1f} | {floor['chamfer_fidelity']:.1f} | | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the demos' smoke sizes (seconds; quality is not the point)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as the demos)")
    parser.add_argument("--times", choices=("grid", "continuous"), help="the models' training times (default: each "
                        "demo's own, the grid times of its 50 steps)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    arguments = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python bench/few_step_demos.py", *given])
    settings = dict(progress=False, threads=arguments.threads)
    if arguments.times is not None:
        settings["times"] = arguments.times
    segments_config = segments.SegmentsConfig(**(segments.SEGMENTS_QUICK if arguments.quick else {}), **settings)
    points_config = points.PointsConfig(**(points.POINTS_QUICK if arguments.quick else {}), **settings)
    arguments.out.mkdir(parents=True, exist_ok=True)
    times = "the grid times of its 50 steps" if points_config.times == "grid" else f"{points_config.times} training"
    result = {"times": times, "segments": run_segments(segments_config), "points": run_points(points_config)}
    write_results(arguments.out, "few-step-demos", [markdown(result, command).rstrip("\n")], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
