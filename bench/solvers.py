"""Sampler error against network evaluations, with the exact drift of known targets (no training).

Each target is a discrete law on points of its domain; ``reference.oracle_drift`` gives the
drift a perfectly trained network would output, so what is left is the sampler's own error.
For each sampler and time grid (``"t"``, ``"beta"``, ``"s"``, ``"s^3"``; ``Schedule.grid``) and
step count, ``rows`` rows are drawn and the total variation between their empirical law and the
target is reported (mass off the target's support counts in full). The samplers
(``omegabridge.solvers``): ``euler``; ``bridge`` (the Brownian bridge to the data prediction with
the multistep correction); ``bridge+variance``, the same with the posterior variance that
``Bridge.posterior_variance`` estimates from ``VARIANCE_ROWS`` draws of the target (made once per
bridge, not counted in the evaluations). Every step of each evaluates the network once, and so
does the last step: N steps are N evaluations.

Targets:
* ``mixed``: Lattice(0, 4) x Categorical(3) with strong dependence (the category is the
  lattice value mod 3 with probability 0.9), the default schedule;
* ``multimodal``: Lattice(0, 9) with modes at 0, 5 and 9, schedule Exp(3, 1);
* ``interval``: four points of Interval(0, 1), two of them 0.1 apart, the default schedule;
* ``halfline``: four points of HalfLine(low=0), one on the boundary, schedule Exp(3, 4).

The statistic (``METRICS``) is the total variation on the lattice targets and the Wasserstein-1
distance (in the domain's units) on the continuous ones, where the samples approach the target's
points without landing on them (the last step's spread, about sqrt(last s), counts there). Its
noise level is the statistic of ``rows`` exact draws, reported as ``exact draws`` (differences
below it are noise; a sampler's error can fall under it by chance). Results:
``<out>/solvers.md``, ``.csv`` and ``.png`` (error against evaluations, log-log, one panel per target).

    python bench/solvers.py --rows 20000             # steps 10..200: about 30 minutes on 2 free cores (the committed results)
    python bench/solvers.py --rows 5000 --steps 10 25 --out /tmp/solvers   # a quick look
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import sys
import time
from pathlib import Path

import torch

import omegabridge as ob
from omegabridge.files import atomic_write, save_figure
from omegabridge.reference import oracle_drift

GRIDS = ("t", "beta", "s", "s^3", "domain")
SOLVERS = ("euler", "bridge", "bridge+variance")
VARIANCE_ROWS = 4000


def mixed_target():
    points = [(x, c) for x in range(5) for c in range(3)]
    weights = torch.tensor([0.9 if c == x % 3 else 0.05 for x, c in points], dtype=torch.float64)
    support = torch.tensor([[float(x)] + [1.0 if c == k else 0.0 for k in range(3)] for x, c in points])
    return ob.Product([ob.Lattice(0, 4), ob.Categorical(3)]), None, support, weights / weights.sum()


def multimodal_target():
    weights = torch.tensor([0.3, 0.05, 0.02, 0.02, 0.05, 0.25, 0.05, 0.02, 0.04, 0.2], dtype=torch.float64)
    support = torch.arange(10.0)[:, None]
    return ob.Lattice(0, 9), ob.schedules.Exp(3.0, 1.0), support, weights / weights.sum()


def interval_target():
    weights = torch.tensor([0.35, 0.15, 0.2, 0.3], dtype=torch.float64)
    support = torch.tensor([[0.05], [0.3], [0.4], [0.9]])
    return ob.Interval(0.0, 1.0), None, support, weights / weights.sum()


def halfline_target():
    weights = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    support = torch.tensor([[0.0], [0.5], [2.0], [5.0]])
    return ob.HalfLine(low=0.0), ob.schedules.Exp(3.0, 4.0), support, weights / weights.sum()


TARGETS = {"mixed": mixed_target, "multimodal": multimodal_target, "interval": interval_target,
           "halfline": halfline_target}
#: The statistic of each target: total variation where samples land on the support's points (lattices,
#: categories), the Wasserstein-1 distance where they are continuous (a discrete law in an interval or on
#: a half-line, approached by continuous samples).
METRICS = {"mixed": "TV", "multimodal": "TV", "interval": "W1", "halfline": "W1"}


def wasserstein_1(x: torch.Tensor, support: torch.Tensor, probabilities: torch.Tensor) -> float:
    """W1 between one-column samples x and the discrete target: the mean of |Q_n(u) - Q(u)| over the
    samples' quantile levels u = (i + 1/2)/n (the monotone coupling)."""
    values = torch.sort(x.double()[:, 0]).values
    order = torch.argsort(support.double()[:, 0])
    points, cumulative = support.double()[order, 0], torch.cumsum(probabilities.double()[order], 0)
    levels = (torch.arange(values.numel(), dtype=torch.float64) + 0.5) / values.numel()
    quantiles = points[torch.searchsorted(cumulative, levels).clamp(max=points.numel() - 1)]
    return float((values - quantiles).abs().mean())


def error(target: str, x: torch.Tensor, support: torch.Tensor, probabilities: torch.Tensor) -> float:
    """The target's statistic (``METRICS``) of the samples x."""
    if METRICS[target] == "W1":
        return wasserstein_1(x, support, probabilities)
    return total_variation(x, support, probabilities)


def total_variation(x: torch.Tensor, support: torch.Tensor, probabilities: torch.Tensor) -> float:
    """TV between the rows of x and the target; rows off the support count in full."""
    match = (x.double()[:, None, :] == support.double()[None]).all(-1)
    counts = match.sum(0).double()
    outside = float((~match.any(1)).sum())
    empirical = counts / x.shape[0]
    return 0.5 * (float((empirical - probabilities).abs().sum()) + outside / x.shape[0])


def exact_floor(target: str, support, probabilities, rows: int, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    index = torch.multinomial(probabilities.float(), rows, replacement=True, generator=generator)
    return error(target, support[index], support, probabilities)


def _measure(target: str, domain, schedule, support, probabilities, solver: str, grid: str, steps: int, args) -> dict:
    bridge = ob.Bridge(domain, schedule, steps=steps, grid=grid)
    drift = oracle_drift(bridge, support, probabilities)
    variance = None
    if solver == "bridge+variance":
        generator = torch.Generator().manual_seed(args.seed + 1)
        index = torch.multinomial(probabilities.float(), VARIANCE_ROWS, replacement=True, generator=generator)
        variance = bridge.posterior_variance(drift, support[index], progress=False)
    started = time.perf_counter()
    x = bridge.sample(drift, args.rows, seed=args.seed, batch_size=args.rows, progress=False,
                      solver=solver.split("+")[0], posterior_variance=variance)
    return {"solver": solver, "grid": grid, "steps": steps, "evaluations": steps,
            "metric": METRICS[target], "error": error(target, x, support, probabilities),
            "last_s": float(bridge.time_grid.remaining[-1]),
            "seconds": time.perf_counter() - started}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    parser.add_argument("--grids", nargs="+", default=list(GRIDS))
    parser.add_argument("--solvers", nargs="+", default=list(SOLVERS), choices=list(SOLVERS))
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for target in args.targets:
        domain, schedule, support, probabilities = TARGETS[target]()
        floor = exact_floor(target, support, probabilities, args.rows, args.seed)
        results.append({"target": target, "solver": "exact draws", "grid": "-", "steps": 0, "evaluations": 0,
                        "metric": METRICS[target], "error": floor, "last_s": 0.0, "seconds": 0.0})
        for solver in args.solvers:
            for grid in args.grids:
                for steps in args.steps:
                    row = _measure(target, domain, schedule, support, probabilities, solver, grid, steps, args)
                    results.append({"target": target, **row})
                    print(f"{target:10s} {solver:15s} grid {grid:5s} {steps:4d} steps: {row['metric']} {row['error']:.4f} "
                          f"(last s {row['last_s']:.3g}, {row['seconds']:.1f} s)", flush=True)
    _write(out, results, args, sys.argv[1:] if argv is None else list(argv))
    return 0


def _write(out: Path, results: list[dict], args, argv: list[str]) -> None:
    fields = ["target", "solver", "grid", "steps", "evaluations", "metric", "error", "last_s", "seconds"]

    def write_csv(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(results)

    atomic_write(str(out / "solvers.csv"), write_csv)
    command = " ".join(["python bench/solvers.py", *argv])  # the arguments this run was given, to reproduce it
    lines = [
        "# Sampler error against network evaluations (oracle drift)",
        "",
        f"Measured {datetime.date.today().isoformat()} on {platform.processor() or platform.machine()} "
        f"({torch.get_num_threads()} threads), {args.rows} rows per cell, seed {args.seed}: `{command}`.",
        "Each target's statistic between the samples and the target: TV, total variation (mass off the support "
        "counts in full), or W1, the Wasserstein-1 distance in the domain's units; `exact draws` is the statistic of "
        "the same number of draws from the target itself (its noise level: differences below it are noise). Evaluations = network evaluations per sample. "
        "`last s` is the remaining variance at the last step.",
        "",
    ]
    for target in args.targets:
        rows = [r for r in results if r["target"] == target]
        floor = next(r["error"] for r in rows if r["solver"] == "exact draws")
        lines += [f"## {target}: {METRICS[target]} (exact draws {floor:.4f})", "", "| solver | grid | " + " | ".join(f"{s} evals" for s in args.steps) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in args.steps) + " |"]
        for solver in args.solvers:
            for grid in args.grids:
                cells = {r["steps"]: r for r in rows if r["grid"] == grid and r["solver"] == solver}
                lines.append(f"| {solver} | {grid} | " + " | ".join(f"{cells[s]['error']:.4f} (s {cells[s]['last_s']:.2g})"
                                                                 for s in args.steps) + " |")
        lines.append("")
    atomic_write(str(out / "solvers.md"), lambda temporary: open(temporary, "w").write("\n".join(lines)))
    _plot(out, results, args)
    print(f"wrote {out / 'solvers.md'}, .csv, .png")


def _plot(out: Path, results: list[dict], args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    across = min(2, len(args.targets))
    down = -(-len(args.targets) // across)
    figure, axes = plt.subplots(down, across, figsize=(6.5 * across, 4.8 * down), squeeze=False)
    for axis in axes.flat[len(args.targets):]:
        axis.set_visible(False)
    for axis, target in zip(axes.flat, args.targets):
        rows = [r for r in results if r["target"] == target]
        styles = {"euler": "-", "bridge": "--", "bridge+variance": ":"}
        for solver in args.solvers:
            for color, grid in zip(("C0", "C1", "C2", "C3", "C4", "C5"), args.grids):
                cells = sorted((r for r in rows if r["grid"] == grid and r["solver"] == solver), key=lambda r: r["evaluations"])
                axis.loglog([r["evaluations"] for r in cells], [r["error"] for r in cells], marker="o", markersize=3,
                            linestyle=styles.get(solver, "-"), color=color, label=f"{solver}, grid {grid}")
        floor = next(r["error"] for r in rows if r["solver"] == "exact draws")
        axis.axhline(floor, color="grey", linestyle=":", label="exact draws (noise level)")
        axis.set_title(target)
        axis.set_xlabel("network evaluations per sample")
        axis.set_ylabel({"TV": "total variation", "W1": "Wasserstein-1 distance"}[METRICS[target]] + " to the target")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    save_figure(figure, str(out / "solvers.png"))


if __name__ == "__main__":
    sys.exit(main())
