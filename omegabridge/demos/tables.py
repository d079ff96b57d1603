"""The omegabridge demo: synthetic tables that are valid by construction, on two real data sets.

Both data sets ship inside installed packages, so the demo needs no download:

- **fair** (statsmodels' ``datasets.fair``): 6366 survey answers, 9 columns: coded
  ordinal answers, integer scales, two six-way occupations and a non-negative amount
  (``affairs``) that is exactly zero in about two thirds of the rows.
  ``TabularBridge`` infers the schema (printed), with three overrides (``FAIR_SCHEMA``):
  the occupations are nominal codes, so categorical, and ``educ``'s six codes are
  ordinal levels rather than every integer from 9 to 20.
- **digits** (scikit-learn's ``load_digits``): 1797 8x8 images, 64 pixel columns with
  integer values 0..16, declared ``lattice 0..16`` (``digits_schema``).

Each run splits the rows 80/20 (seeded), trains on the 80%, samples as many rows as
the training split, and scores the samples against the held-out 20% and against an
independent-marginals baseline (each column resampled on its own):

- fair: validity per column, fidelity (total variation for discrete columns,
  Kolmogorov-Smirnov for ``affairs``), pairwise association error, and machine-learning
  efficacy: a gradient-boosting classifier predicting ``affairs > 0``, trained on
  synthetic rows, tested on the held-out real rows, against the same trained on real rows.
- digits: a logistic-regression classifier trained on real digits labels the samples:
  the class histogram's total variation from uniform and the mean top-class probability.

Output folder: ``fair_marginals.png``, ``digits.png``, ``metrics.json``,
``fair_synthetic.csv``, ``digits_synthetic.csv`` (each written atomically).
``python -m omegabridge demo`` (``omegabridge.cli``) is the command line; its
dependencies come with the ``demo`` extra: ``pip install 'omegabridge[demo]'``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from omegabridge.demos.common import (
    digit_classifier, digit_scores, independent_baseline, load_digits, load_fair, plot_digits, require_demo_dependencies,
    split_frame,
)

__all__ = [
    "DemoConfig",
    "QUICK",
    "FAIR_SCHEMA",
    "FAIR_TARGET",
    "digits_schema",
    "fit_and_sample",
    "score_fair",
    "run_fair",
    "run_flat_digits",
    "run_demo",
]

FAIR_SCHEMA = {"occupation": "categorical", "occupation_husb": "categorical", "educ": "ordinal"}
#: fair's efficacy task: predict whether affairs > 0.
FAIR_TARGET = ("affairs", 0.0)


@dataclass(frozen=True)
class DemoConfig:
    """Everything a demo run depends on. The defaults are the measured full-size run.

    ``rows=None`` samples as many rows as the training split. ``threads`` sets
    ``torch.set_num_threads`` (0 keeps torch's own choice). ``only`` runs one data set.
    """

    output: str = "omegabridge-demo"
    iterations: int = 6000
    rows: int | None = None
    seed: int = 0
    steps: int = 50  # with the bridge solver as close to held-out data as 200 Euler steps (bench/results/few-step-tables.md)
    solver: str = "bridge"
    times: str = "continuous"
    hidden: int = 256
    depth: int = 3
    batch_size: int = 512
    learning_rate: float = 3e-3
    ema_decay: float | None = None
    sample_batch_size: int = 8192
    threads: int = 1
    progress: bool = True
    quick: bool = False
    only: str | None = None


#: Tiny sizes for tests and smoke runs (seconds, not minutes); quality is not the point.
QUICK = dict(iterations=40, rows=300, steps=20, hidden=32, depth=1, batch_size=64)


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------
def digits_schema(columns) -> dict:
    """Every pixel column declared ``lattice 0..16`` (the digits' value range)."""
    return {column: {"kind": "lattice", "low": 0, "high": 16} for column in columns}


def fit_and_sample(train, schema, config: DemoConfig, rows: int, log: Callable[[str], None] = print):
    """Fit a ``TabularBridge`` with the config's settings and sample ``rows``; returns (model, rows, seconds)."""
    from omegabridge.tabular import TabularBridge

    model = TabularBridge(
        steps=config.steps, hidden=config.hidden, depth=config.depth, learning_rate=config.learning_rate,
        times=config.times, ema_decay=config.ema_decay, progress=config.progress, log=log,
    )
    mark = time.perf_counter()
    model.fit(train, schema, iterations=config.iterations, batch_size=config.batch_size, seed=config.seed)
    seconds = {"train": time.perf_counter() - mark}
    mark = time.perf_counter()
    synthetic = model.sample(rows, seed=config.seed, batch_size=config.sample_batch_size,
                             solver=config.solver).reset_index(drop=True)
    seconds["sample"] = time.perf_counter() - mark
    return model, synthetic, seconds


# ----------------------------------------------------------------------------------------
# fair
# ----------------------------------------------------------------------------------------
def run_fair(config: DemoConfig, log: Callable[[str], None] = print) -> dict:
    """Train on fair's training split, sample, score; writes fair_marginals.png and fair_synthetic.csv."""
    from omegabridge.tabular import metrics
    from omegabridge.tabular.table_files import write_table

    real = load_fair()
    train, test, _, _ = split_frame(real, config.seed)
    rows = len(train) if config.rows is None else int(config.rows)
    log(f"== fair: {len(real)} rows x {len(real.columns)} columns; training on {len(train)}, {len(test)} held out ==")
    model, synthetic, seconds = fit_and_sample(train, FAIR_SCHEMA, config, rows, log)
    baseline = independent_baseline(train, rows, config.seed)
    frames = {"omegabridge": synthetic, "independent": baseline}
    result = score_fair(train, test, frames, model.schema, config.seed)
    output = os.path.abspath(config.output)
    plot_marginals(train, frames, model.schema, os.path.join(output, "fair_marginals.png"))
    write_table(synthetic, os.path.join(output, "fair_synthetic.csv"), overwrite=True)  # the demo's own output folder
    result["run"] = {"rows_train": len(train), "rows_test": len(test), "rows_synthetic": rows,
                     "schema": model.schema.to_dict(), "domain": repr(model.encoder.domain),
                     "final_loss": model.training["final_loss"], "seconds": seconds}
    log(metrics.format_table(result, list(frames)))
    return result


def score_fair(train, test, frames: dict, schema, seed: int) -> dict:
    """``metrics.evaluate`` of each synthetic frame (efficacy: affairs > 0 on ``test``) plus validity under ``schema``."""
    from omegabridge.tabular import metrics

    target, threshold = FAIR_TARGET
    result = metrics.evaluate(train, frames, discrete=schema.discrete_names(), target=target, threshold=threshold,
                              test_real=test, seed=seed)
    return metrics.add_validity(result, schema, frames)


def plot_marginals(real, frames: dict, schema, path: str) -> str:
    """One panel per column: shares of each value (discrete) or a histogram (continuous), real vs others."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    from omegabridge.files import save_figure

    columns = list(schema)
    across = 3
    down = -(-len(columns) // across)
    figure, axes = plt.subplots(down, across, figsize=(4 * across, 3 * down), squeeze=False)
    series = [("real (train)", real, "tab:gray")] + [
        (name, frame, colour) for (name, frame), colour in zip(frames.items(), ("tab:blue", "tab:orange", "tab:green"))
    ]
    for axis, spec in zip(axes.flat, columns):
        if spec.kind in ("halfline", "interval", "real"):
            values = real[spec.name].dropna().to_numpy(dtype=float)
            low = spec.low if spec.kind == "halfline" else None
            title = spec.name
            if low is not None:  # an atom at the bound (affairs = 0) is shown as a share, the rest on log1p
                share = ", ".join(f"{name} {(frame[spec.name] == low).mean():.0%}" for name, frame, _ in series)
                title = f"log1p({spec.name} - {low:g}) above {low:g}\nat {low:g}: {share}"
            transform = (lambda v: np.log1p(v - low)) if low is not None else (lambda v: v)
            edges = np.histogram_bin_edges(transform(values[values > low] if low is not None else values), bins=25)
            for name, frame, colour in series:
                v = frame[spec.name].dropna().to_numpy(dtype=float)
                v = transform(v[v > low]) if low is not None else v
                axis.hist(v, bins=edges, weights=np.full(len(v), 1.0 / len(frame)), histtype="step", color=colour,
                          label=name, lw=2.5 if name.startswith("real") else 1.3)
            axis.set_title(title, fontsize=8)
        else:
            levels = sorted(real[spec.name].dropna().unique().tolist())
            width = 0.8 / len(series)
            for position, (name, frame, colour) in enumerate(series):
                shares = frame[spec.name].value_counts(normalize=True)
                axis.bar(np.arange(len(levels)) + (position - (len(series) - 1) / 2) * width,
                         [shares.get(v, 0.0) for v in levels], width, color=colour, label=name)
            axis.set_xticks(np.arange(len(levels)))
            axis.set_xticklabels([f"{v:g}" if isinstance(v, float) else str(v) for v in levels], fontsize=7)
            axis.set_title(f"{spec.name} ({spec.kind})", fontsize=9)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(columns):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle("fair: marginals of real and synthetic rows (share of rows)")
    figure.tight_layout()
    return save_figure(figure, path)


# ----------------------------------------------------------------------------------------
# digits
# ----------------------------------------------------------------------------------------
def run_flat_digits(config: DemoConfig, log: Callable[[str], None] = print) -> dict:
    """Train on the digits' training split, sample images, label them with a real-data classifier; writes digits.png."""
    from omegabridge.tabular import metrics
    from omegabridge.tabular.table_files import write_table

    pixels, labels = load_digits()
    train, test, train_rows, test_rows = split_frame(pixels, config.seed)
    rows = len(train) if config.rows is None else int(config.rows)
    log(f"== digits: {len(pixels)} images of 8x8 pixels in 0..16; training on {len(train)}, {len(test)} held out ==")
    model, synthetic, seconds = fit_and_sample(train, digits_schema(pixels.columns), config, rows, log)
    baseline = independent_baseline(train, rows, config.seed)
    classifier = digit_classifier(train, labels[train_rows])
    frames = {"omegabridge": synthetic, "independent": baseline}
    result = {"columns": {}, "summary": {}}
    metrics.add_validity(result, model.schema, frames)
    result["classifier_test_accuracy"] = float(classifier.score(test.to_numpy(dtype=float), labels[test_rows]))
    result["scores"] = {"real_test": digit_scores(classifier, test)}
    result["scores"].update({name: digit_scores(classifier, frame) for name, frame in frames.items()})
    output = os.path.abspath(config.output)
    plot_digits(test, frames, os.path.join(output, "digits.png"))
    write_table(synthetic, os.path.join(output, "digits_synthetic.csv"), overwrite=True)
    result["run"] = {"rows_train": len(train), "rows_test": len(test), "rows_synthetic": rows,
                     "final_loss": model.training["final_loss"], "seconds": seconds}
    log(format_digits(result))
    return result


def format_digits(result: dict) -> str:
    """The digits scores as a small text table."""
    lines = [f"{'images':<14} {'valid rows':>10} {'class hist. TV from uniform':>28} {'mean top prob.':>15}"]
    for name, scores in result["scores"].items():
        valid = result["summary"].get(f"{name}_rows_valid")
        lines.append(f"{name:<14} {'-' if valid is None else f'{valid:.2%}':>10} "
                     f"{scores['histogram_tv_from_uniform']:>28.3f} {scores['mean_top_probability']:>15.3f}")
    lines.append(f"(classifier: logistic regression on real training digits, {result['classifier_test_accuracy']:.1%} "
                 "accuracy on held-out real digits)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# The whole job
# ----------------------------------------------------------------------------------------
def run_demo(config: DemoConfig, log: Callable[[str], None] = print) -> dict:
    """Run the demo end to end, print the metrics and the file paths; returns the metrics (also metrics.json)."""
    from omegabridge.files import write_json

    require_demo_dependencies()
    if config.threads:
        torch.set_num_threads(config.threads)
    start = time.perf_counter()
    output = os.path.abspath(config.output)
    os.makedirs(output, exist_ok=True)  # fail early (before training) if the folder cannot be made
    result: dict = {"config": {k: v for k, v in asdict(config).items() if k not in ("output", "progress")}}
    if config.only in (None, "fair"):
        result["fair"] = run_fair(config, log)
        log("")
    if config.only in (None, "digits"):
        result["digits"] = run_flat_digits(config, log)
        log("")
    result["seconds"] = time.perf_counter() - start
    result["versions"] = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    write_json(os.path.join(output, "metrics.json"), result)
    names = sorted(os.listdir(output))
    log(f"time: {result['seconds']:.1f} s ({torch.get_num_threads()} torch thread(s)); "
        f"wrote {output}{os.sep}: {', '.join(n for n in names if not n.startswith('.'))}")
    return result
