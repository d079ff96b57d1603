"""Imputation on fair: ``TabularBridge.impute`` against the column median / mode and scikit-learn's IterativeImputer.

One ``TabularBridge`` (the demo's settings) trained on the 80% split of statsmodels' ``fair``;
in the held-out 20%, ``--share`` of the cells of every column are hidden at random (seeded),
and each method fills them. Per method, over the hidden cells:

- numeric error: mean absolute error divided by the column's sd (in the training rows), averaged
  over the numeric columns (every column but the two occupations), and the same for the
  root-mean-square error;
- categorical accuracy: share of hidden occupation / husband's-occupation cells filled with
  the true category;
- distribution: total variation between the filled values and the hidden true values of each
  discrete column, averaged (a point estimate piles every cell on the likeliest value; a draw
  from the conditional keeps the spread).

Methods: ``omegabridge draw`` (``impute(draws=1)``: one draw from the model's conditional),
``omegabridge median of 25`` (``draws=25``: the per-cell median / most frequent of 25 draws),
``median / mode`` (of the training column), ``IterativeImputer`` (scikit-learn's default
BayesianRidge chain, fitted on the training rows, its outputs
rounded to the column's nearest allowed value so they are valid).

    python bench/imputation.py                     # about a minute on 2 cores
    python bench/imputation.py --iterations 300 --out /tmp/imputation

Results: ``<out>/imputation-fair.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fair_runs import add_common_arguments, demo_model, measured, results_folder, write_results
from omegabridge.demos.common import load_fair, split_frame
from omegabridge.demos.tables import DemoConfig
from omegabridge.tabular import metrics

CATEGORICAL = ("occupation", "occupation_husb")


def hide(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """A bool frame: True at the cells to hide, ``share`` of each column, at random."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({name: rng.random(len(frame)) < share for name in frame.columns}, index=frame.index)


def nearest_allowed(values: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Each value moved to the nearest of the sorted ``allowed`` values."""
    index = np.clip(np.searchsorted(allowed, values), 1, len(allowed) - 1)
    below, above = allowed[index - 1], allowed[index]
    return np.where(values - below <= above - values, below, above)


def iterative_imputer(train: pd.DataFrame, holes: pd.DataFrame, seed: int) -> pd.DataFrame:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (the estimator is experimental)
    from sklearn.impute import IterativeImputer

    imputer = IterativeImputer(random_state=seed, max_iter=10)
    imputer.fit(train.to_numpy(dtype=float))
    filled = pd.DataFrame(imputer.transform(holes.to_numpy(dtype=float)), columns=holes.columns, index=holes.index)
    for name in filled.columns:
        allowed = np.sort(train[name].unique())
        if name != "affairs":  # every other fair column is discrete: round onto its values
            filled[name] = nearest_allowed(filled[name].to_numpy(), allowed)
        else:
            filled[name] = filled[name].clip(lower=0.0)
    return filled


def median_mode(train: pd.DataFrame, holes: pd.DataFrame) -> pd.DataFrame:
    filled = holes.copy()
    for name in holes.columns:
        value = train[name].mode().iloc[0] if name in CATEGORICAL else train[name].median()
        if name != "affairs":
            value = nearest_allowed(np.asarray([value]), np.sort(train[name].unique()))[0]
        filled[name] = filled[name].fillna(value)
    return filled


def score(truth: pd.DataFrame, filled: pd.DataFrame, hidden: pd.DataFrame, train: pd.DataFrame) -> dict:
    mae, rmse, accuracy, tv = [], [], [], []
    for name in truth.columns:
        cells = hidden[name].to_numpy()
        true, got = truth[name][cells], filled[name][cells].astype(float)
        if name in CATEGORICAL:
            accuracy.append(float((true.to_numpy() == got.to_numpy()).mean()))
        else:
            sd = float(train[name].std())
            mae.append(float(np.abs(true - got).mean()) / sd)
            rmse.append(float(np.sqrt(((true - got) ** 2).mean())) / sd)
        if name != "affairs":
            tv.append(metrics.total_variation(true, got))
    return {"numeric_mae": float(np.mean(mae)), "numeric_rmse": float(np.mean(rmse)),
            "categorical_accuracy": float(np.mean(accuracy)), "distribution_tv": float(np.mean(tv))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser, DemoConfig.iterations)
    parser.add_argument("--share", type=float, default=0.2, help="share of each held-out column's cells hidden")
    parser.add_argument("--draws", type=int, default=25, help="draws of the point estimate (odd)")
    parser.add_argument("--model", help="a TabularBridge checkpoint of fair's training split to use instead of training")
    args = parser.parse_args(argv)
    out = results_folder(args.out)
    train, test, _, _ = split_frame(load_fair(), args.seed)
    test = test.reset_index(drop=True)
    hidden = hide(test, args.share, args.seed + 1)
    holes = test.mask(hidden)
    model, train_seconds = demo_model(train, iterations=args.iterations, seed=args.seed, path=args.model)
    methods = {
        "omegabridge draw": lambda: model.impute(holes, seed=args.seed),
        f"omegabridge median of {args.draws}": lambda: model.impute(holes, seed=args.seed, draws=args.draws),
        "median / mode": lambda: median_mode(train, holes),
        "IterativeImputer": lambda: iterative_imputer(train, holes, args.seed),
    }
    rows = []
    for name, method in methods.items():
        started = time.perf_counter()
        filled = method()
        seconds = time.perf_counter() - started
        assert not filled.isna().any().any(), name
        rows.append({"method": name, **score(test, filled, hidden, train), "seconds": seconds})
        print(rows[-1], flush=True)
    _write(out, rows, args, argv, train_seconds, len(train), len(test), int(hidden.to_numpy().sum()))
    return 0


def _write(out: Path, rows: list[dict], args, argv: list[str], train_seconds: float, train_rows: int,
           test_rows: int, cells: int) -> None:
    import sklearn

    lines = [
        "# Imputation (fair)",
        "",
        measured("imputation.py", argv, f" ({torch.get_num_threads()} threads; scikit-learn {sklearn.__version__})")
        + ". One `TabularBridge` "
        f"(the demo's settings, {args.iterations} iterations, {train_seconds:.0f} s) trained on {train_rows} rows of "
        f"fair; in the {test_rows} held-out rows {args.share:.0%} of each column's cells hidden at random ({cells} "
        "cells), then filled by each method. Numeric error: mean absolute (and root-mean-square) error over the "
        "hidden cells divided by the column's sd, averaged over the 7 numeric columns (lower is better). "
        "Categorical accuracy: share of the hidden occupation cells filled with the true category (higher is "
        "better). Distribution: mean total variation between the filled and the true values of each discrete "
        "column (lower is better: a point estimate piles the cells on one value). IterativeImputer's outputs are "
        "rounded to each column's nearest allowed value.",
        "",
        "| method | numeric error (MAE / sd) | numeric error (RMSE / sd) | categorical accuracy | distribution TV | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(f"| {row['method']} | {row['numeric_mae']:.3f} | {row['numeric_rmse']:.3f} | "
                     f"{row['categorical_accuracy']:.3f} | {row['distribution_tv']:.3f} | {row['seconds']:.1f} |")
    write_results(out, "imputation-fair", lines, rows)


if __name__ == "__main__":
    sys.exit(main())
