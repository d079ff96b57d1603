"""Few-step sampling on a field with a trained network: the digits demo's U-Net at fewer evaluations.

The digits demo (``omegabridge demo digits``, ``omegabridge.demos.digits``) trains a U-Net on
scikit-learn's 8x8 digits as a (1, 8, 8) lattice field and samples it with 100 Euler steps (its
README figures). Here the same U-Net, with the demo's settings, is trained once per training-times
setting (the grid times of 100 steps, as the demo; and continuous t in [0, 1)), then sampled, as
many images as the training split with the same seed, by Euler at 100 steps (the demo's sampler)
and by the bridge solver at 100, 25 and 12 steps (today's evaluations, 1/4 and 1/8 of them) on grid
``"t"``, and at 25 and 12 on the ``"domain"`` grid (``omegabridge.solvers.domain_grid``). The
25-step "t" grid's times are among the 100-step grid's (100 is a multiple of 25), the others'
mostly are not: there a grid-time model is evaluated between its training times.
Each sample is scored as the demo scores it (``digits.score_sets``): the classifier-logit
Frechet distance to the held-out digits, the class histogram's TV from uniform and the mean
top-class probability; the held-out digits are the floor.

    python bench/few_step_fields.py                    # the demo's 2000 iterations per model: about 5 minutes on 2 cores
    python bench/few_step_fields.py --iterations 50 --out /tmp/few-fields   # a quick look

Results: ``<out>/few-step-fields.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import torch

import omegabridge as ob
from fair_runs import write_results
from omegabridge.demos import digits

SAMPLERS = (("euler", 100, "t"), ("bridge", 100, "t"), ("bridge", 25, "t"), ("bridge", 12, "t"),
            ("bridge", 25, "domain"), ("bridge", 12, "domain"))
TIMES = ("grid", "continuous")


def run(iterations: int, seed: int = 0, samplers=SAMPLERS, times_settings=TIMES, log=print) -> dict:
    """Train per training-times setting, sample with every sampler, score; the results as a dict."""
    config = digits.DigitsConfig(iterations=iterations, seed=seed, progress=False)
    train, test, train_labels, test_labels = digits.load_split(seed)
    domain = ob.Lattice(0, digits.PIXEL_HIGH, shape=digits.IMAGE_SHAPE)
    schedule = ob.schedules.Exp(3.0, config.schedule_b)
    data = domain.flatten(torch.from_numpy(train).float())
    sets, cells = {}, []
    for times in times_settings:
        bridge = ob.Bridge(domain, schedule, steps=config.steps)
        torch.manual_seed(seed)
        model = ob.models.for_domain(bridge, data=data, channels=tuple(config.channels))
        start = time.perf_counter()
        ob.Trainer(bridge, model, batch_size=config.batch_size, learning_rate=config.learning_rate, seed=seed,
                   times=times, progress=False).fit(data, iterations)
        train_seconds = time.perf_counter() - start
        log(f"U-Net trained with {times} times: {train_seconds:.0f} s")
        for solver, steps, grid in samplers:
            if grid == "domain":
                grid = ob.solvers.domain_grid(domain.segment_table(), schedule, steps)
            sampling = ob.Bridge(domain, schedule, steps=steps, grid=grid)
            start = time.perf_counter()
            with torch.no_grad():
                rows = sampling.sample(model, n=len(train), seed=seed, batch_size=512, progress=False, solver=solver)
            seconds = time.perf_counter() - start
            name = f"{times} times, {solver} {steps} {grid}"
            sets[name] = domain.unflatten(rows).round().to(torch.int64).numpy()
            cells.append({"times": times, "solver": solver, "steps": steps, "grid": grid, "evaluations": steps,
                          "valid": float(domain.contains(rows).float().mean()), "sample_seconds": seconds,
                          "train_seconds": train_seconds, "name": name})
            log(f"  {solver} {steps} {grid}: {seconds:.1f} s")
    scores, accuracy = digits.score_sets(sets, train, test, train_labels, test_labels)
    for cell in cells:
        cell.update(scores[cell.pop("name")])
    return {"iterations": iterations, "seed": seed, "cells": cells, "floor": scores["held-out real"],
            "classifier_accuracy": accuracy}


def markdown(result: dict, command: str) -> str:
    floor = result["floor"]
    lines = [
        "# Few-step sampling on the digits field (bench/few_step_fields.py)", "",
        f"The digits demo's U-Net ({result['iterations']} iterations, seed {result['seed']}) trained once per training-times "
        "setting and sampled by each solver on grid \"t\", as many images as the training split; scored as the demo "
        "scores (Frechet distance of classifier logits to the held-out digits, class histogram TV from uniform, mean "
        f"top-class probability). Measured {datetime.date.today().isoformat()} on {platform.machine()} "
        f"({torch.get_num_threads()} torch threads). Command: `{command}`.", "",
        "| training times | solver | steps (evaluations) | grid | Frechet distance | class TV | top-class probability | valid | sample s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cell in result["cells"]:
        lines.append(f"| {cell['times']} | {cell['solver']} | {cell['steps']} | {cell['grid']} | {cell['frechet_distance']:.2f} | "
                     f"{cell['histogram_tv_from_uniform']:.3f} | {cell['mean_top_probability']:.3f} | "
                     f"{cell['valid']:.0%} | {cell['sample_seconds']:.1f} |")
    lines.append(f"| held-out digits (the floor) | | | | {floor['frechet_distance']:.2f} | {floor['histogram_tv_from_uniform']:.3f} | "
                 f"{floor['mean_top_probability']:.3f} | | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=digits.DigitsConfig.iterations, help="training iterations per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    arguments.out.mkdir(parents=True, exist_ok=True)
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python bench/few_step_fields.py", *given])
    result = run(arguments.iterations, arguments.seed)
    write_results(arguments.out, "few-step-fields", [markdown(result, command).rstrip("\n")], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
