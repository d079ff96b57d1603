"""Conditional sampling on fair: how close ``TabularBridge.sample(conditions=...)`` comes to the real conditional.

Two ``TabularBridge``s (the demo's settings, trained for the library's default budget for that many
rows, ``default_iterations``, unless ``--iterations`` says otherwise) trained on the 80% split of statsmodels' ``fair``:
the default, whose network is also trained on random known cells (``conditional=True``), and one
without (``conditional=False``), where only the conditioned columns are steered (by the exact
bridge to their values) and the network sees their states. For every condition
``column = value`` that at least ``--min-rows`` training rows satisfy, each samples ``--rows``
rows under it, and each other column is compared with the same column of the training rows
that satisfy it: total variation for the discrete columns, Kolmogorov-Smirnov for
``affairs``. Three references per condition:

- ``unconditioned``: the model's unconditioned samples against the same conditional (what
  ignoring the condition would give: the distance the conditioning has to close);
- ``held-out``: the held-out rows that satisfy the condition against the same conditional
  (real sampling noise at that many rows);
- ``resampled``: ``--rows`` rows drawn with replacement from that conditional itself, against it
  (the noise of ``--rows`` draws alone: no sampler measures below it);
- ``floor``: what a model drawing from the population's conditional would score, by a bootstrap
  that takes the training rows under the condition for the population: ``--rows`` rows drawn
  from them against another sample of as many rows as they are, mean over ``FLOOR_REPLICATES``
  draws. The training rows under a condition are a sample too, so a sampler that does not copy
  them measures about this far from them.

    python bench/conditions.py                      # about 10 minutes on 2 cores
    python bench/conditions.py --iterations 300 --out /tmp/conditions   # a quick look

Results: ``<out>/conditions-fair.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fair_runs import add_common_arguments, demo_model, measured, results_folder, write_results
from omegabridge.demos.common import load_fair, split_frame
from omegabridge.demos.tables import DemoConfig
from omegabridge.tabular import metrics
from omegabridge.tabular.tabular_bridge import default_iterations


#: The two models compared: (name, TabularBridge's conditional setting).
VARIANTS = (("trained", True), ("replacement", False))
SUMMARIES = ("trained", "replacement", "unconditioned", "held_out", "resampled", "floor")
#: Bootstrap draws behind the ``floor`` reference.
FLOOR_REPLICATES = 20


def distances(real, synthetic, condition: str, discrete: set) -> dict:
    """Per column other than ``condition``: TV (discrete) or KS (continuous) between ``real`` and ``synthetic``."""
    result = {}
    for name in real.columns:
        if name == condition:
            continue
        if name in discrete:
            result[name] = metrics.total_variation(real[name], synthetic[name])
        else:
            result[name] = metrics.ks_statistic(real[name], synthetic[name])
    return result


def floor_distances(real, rows: int, condition: str, discrete: set, seed: int) -> dict:
    """Per column, the mean distance between ``rows`` rows and ``len(real)`` rows both drawn with replacement
    from ``real``: a sampler of ``real``'s population measured against a sample of it (a parametric bootstrap)."""
    # One generator for every draw: pandas' sample(random_state=k) for k = 1, 2, ..., 40 put a fair coin's
    # floor at 5000 rows at 0.005, half its expected 0.011 (tests/test_bench_conditions.py); this gives 0.011.
    generator = np.random.default_rng(seed)
    replicates = []
    for _ in range(FLOOR_REPLICATES):
        reference = real.iloc[generator.integers(0, len(real), len(real))].reset_index(drop=True)
        model = real.iloc[generator.integers(0, len(real), rows)].reset_index(drop=True)
        replicates.append(distances(reference, model, condition, discrete))
    return {name: float(np.mean([values[name] for values in replicates])) for name in replicates[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser, None)  # None: TabularBridge's own budget for the split's rows (default_iterations)
    parser.add_argument("--rows", type=int, default=2000, help="rows sampled per condition")
    parser.add_argument("--min-rows", type=int, default=200, help="training rows a condition needs to be measured")
    parser.add_argument("--value-loss", choices=("squared", "cross_entropy"), default="squared",
                        help="TabularBridge(value_loss=...) of both models (training only)")
    parser.add_argument("--weight", default="remaining", help="TabularBridge(weight=...) of both models")
    parser.add_argument("--models", nargs=2, metavar=("CONDITIONAL.ckpt", "UNCONDITIONAL.ckpt"),
                        help="checkpoints of fair's training split (conditional=True and False) to use instead of training")
    args = parser.parse_args(argv)
    out = results_folder(args.out)
    train, test, _, _ = split_frame(load_fair(), args.seed)
    if args.iterations is None:
        args.iterations = default_iterations(len(train), DemoConfig.batch_size)
    models, train_seconds = {}, {}
    for index, (variant, conditional) in enumerate(VARIANTS):
        models[variant], train_seconds[variant] = demo_model(train, iterations=args.iterations, seed=args.seed,
                                                             path=args.models[index] if args.models else None,
                                                             conditional=conditional, value_loss=args.value_loss,
                                                             weight=args.weight)
        if models[variant].conditional != conditional:
            parser.error(f"{args.models[index]}: expected a model with conditional={conditional}")
    discrete = models[VARIANTS[0][0]].schema.discrete_names()
    unconditioned = models[VARIANTS[0][0]].sample(args.rows, seed=args.seed).reset_index(drop=True)
    rows = []
    for column in train.columns:
        if column not in discrete:
            continue
        for value, count in train[column].value_counts().items():
            if count < args.min_rows:
                continue
            real = train[train[column] == value]
            value = value.item() if isinstance(value, np.generic) else value
            row = {"condition": f"{column} = {value:g}" if isinstance(value, float) else f"{column} = {value}",
                   "training_rows": int(count), "held_out_rows": int((test[column] == value).sum()), "exact": True}
            for variant, _ in VARIANTS:
                started = time.perf_counter()
                synthetic = models[variant].sample(args.rows, seed=args.seed, conditions={column: value})
                row[f"{variant}_seconds"] = time.perf_counter() - started
                row["exact"] &= bool((synthetic[column] == value).all())
                _summarise(row, variant, distances(real, synthetic.reset_index(drop=True), column, discrete), discrete)
            _summarise(row, "unconditioned", distances(real, unconditioned, column, discrete), discrete)
            _summarise(row, "held_out", distances(real, test[test[column] == value], column, discrete), discrete)
            resampled = real.sample(args.rows, replace=True, random_state=args.seed)
            _summarise(row, "resampled", distances(real, resampled, column, discrete), discrete)
            _summarise(row, "floor", floor_distances(real, args.rows, column, discrete, args.seed), discrete)
            rows.append(row)
            print(f"{row['condition']}: " + ", ".join(f"{name} {row[name + '_mean']:.3f}" for name in SUMMARIES),
                  flush=True)
    _write(out, rows, args, argv, train_seconds, len(train), len(test))
    return 0


#: The issue's bar for a conditional: every other column within this TV (discrete) or KS (continuous) of the real one.
TV_BAR, KS_BAR = 0.05, 0.10


def _summarise(row: dict, name: str, per_column: dict, discrete: set) -> None:
    row[f"{name}_mean"] = float(np.mean(list(per_column.values())))
    row[f"{name}_max"] = max(per_column.values())
    row[f"{name}_worst"] = max(per_column, key=per_column.get)
    row[f"{name}_columns"] = {column: float(value) for column, value in per_column.items()}
    # Each column against its own bar (TV for the discrete, KS for the continuous): the columns over it.
    row[f"{name}_over"] = sorted(column for column, value in per_column.items()
                                 if value > (TV_BAR if column in discrete else KS_BAR))


def _write(out: Path, rows: list[dict], args, argv, train_seconds: dict, train_rows: int, test_rows: int) -> None:
    budget = ", the library's default budget for this many rows" if args.iterations == default_iterations(
        train_rows, DemoConfig.batch_size) else ""
    lines = [
        "# Conditional sampling (fair)",
        "",
        measured("conditions.py", argv, f" ({torch.get_num_threads()} threads)") + ". Two `TabularBridge`s with the demo's settings "
        f"({args.iterations} iterations{budget}) trained on {train_rows} rows of fair: `trained`, the default "
        f"(`conditional=True`: the network also trained on random known cells, {train_seconds['trained']:.0f} s), "
        f"and `replacement` (`conditional=False`: only the conditioned columns are steered, by the exact bridge to "
        f"their values, {train_seconds['replacement']:.0f} s). Per condition `column = value` with at least "
        f"{args.min_rows} training rows, {args.rows} rows sampled under it (seed {args.seed}, the default sampler) "
        "and each other column compared with the training rows that satisfy the condition: total variation "
        "(discrete columns), Kolmogorov-Smirnov (affairs); mean and max over the columns. References: "
        "`unconditioned`, the default model's unconditioned samples (what ignoring the condition gives); "
        f"`held-out`, the held-out rows (of {test_rows}) that satisfy the condition (real data at that many rows); "
        f"`resampled`, {args.rows} rows drawn with replacement from the conditional itself (the noise of that many "
        f"draws alone); `floor`, what a sampler of the population's conditional would measure here (bootstrap: {args.rows} "
        f"rows drawn from the training conditional against another draw of its own size, mean of {FLOOR_REPLICATES}): "
        "the training rows under a condition are themselves a sample, so a model that does not copy them stands "
        "about this far from them. Lower is better.",
        "",
        "Mean over conditions: " + ", ".join(
            f"{name.replace('_', '-')} {np.mean([row[name + '_mean'] for row in rows]):.3f} (max over columns "
            f"{np.mean([row[name + '_max'] for row in rows]):.3f})" for name in SUMMARIES) + ". "
        f"Conditioned cells exact in {sum(row['exact'] for row in rows)} of {len(rows)} conditions.",
        "",
        f"Against the issue's bar, every other column within {TV_BAR:g} TV (discrete) or {KS_BAR:g} KS (continuous) of "
        "the real conditional, conditions met: " + ", ".join(
            f"{name.replace('_', '-')} {sum(not row[name + '_over'] for row in rows)} of {len(rows)}" for name in SUMMARIES)
        + "; columns over it, of " + f"{sum(len(row['trained_columns']) for row in rows)}: " + ", ".join(
            f"{name.replace('_', '-')} {sum(len(row[name + '_over']) for row in rows)}" for name in SUMMARIES) + ".",
        "",
        "| condition | training rows | held-out rows | trained: mean | max (column) | trained: columns over the bar | replacement: mean | max (column) | unconditioned: mean | held-out: mean | held-out: columns over the bar | resampled: mean | max | floor: mean | floor: columns over the bar |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(f"| {row['condition']} | {row['training_rows']} | {row['held_out_rows']} | "
                     f"{row['trained_mean']:.3f} | {row['trained_max']:.3f} ({row['trained_worst']}) | "
                     f"{', '.join(row['trained_over']) or '-'} | "
                     f"{row['replacement_mean']:.3f} | {row['replacement_max']:.3f} ({row['replacement_worst']}) | "
                     f"{row['unconditioned_mean']:.3f} | {row['held_out_mean']:.3f} | {', '.join(row['held_out_over']) or '-'} | "
                     f"{row['resampled_mean']:.3f} | {row['resampled_max']:.3f} | "
                     f"{row['floor_mean']:.3f} | {', '.join(row['floor_over']) or '-'} |")
    write_results(out, "conditions-fair", lines, rows)


if __name__ == "__main__":
    sys.exit(main())
