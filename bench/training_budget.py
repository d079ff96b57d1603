"""How the quality of ``TabularBridge`` moves with its training budget, on a small and a larger table.

What ``TabularBridge.fit``'s default budget (``tabular_bridge.default_iterations``: about 1000 passes
over the rows, 2000 to 20000 iterations) rests on. Two tables:

- ``small``: 344 rows of statsmodels' ``anes96`` (a table the project's models were not built on),
  shuffled with seed 0, columns of at most 10 values as categories; 275 training rows, 69 held out.
  ``TabularBridge()`` with its defaults.
- ``fair``: the 80% split of fair (5093 rows), the tables demo's model (bench/fair_runs.py).

For each budget: one fit (seed ``--seed``, one torch thread), as many rows sampled as trained on,
and the quality report (``omegabridge.tabular.report``) against the held-out rows: column shapes,
pair trends and detection (1 = a classifier cannot tell the rows apart); against the training rows
with the held-out rows for the DCR (0.5: no closer to the training rows than to fresh ones).

    python bench/training_budget.py                                   # about 10 minutes
    python bench/training_budget.py --small 1000,2000 --fair 6000 --out /tmp/budget

Results: ``<out>/training-budget.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import time

import torch

from fair_runs import demo_model, measured, results_folder, write_results, RESULTS
from omegabridge.demos.common import load_fair, split_frame
from omegabridge.tabular import TabularBridge
from omegabridge.tabular.report import quality_report
from omegabridge.tabular.tabular_bridge import default_iterations

SCORES = ("column_shapes", "column_pair_trends", "detection")


def small_table():
    """(train, held-out) rows of anes96 as described in the module docstring."""
    import statsmodels.api as sm

    frame = sm.datasets.anes96.load_pandas().data.drop(columns=["logpopul"])
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True).iloc[:344]
    for name in frame.columns:
        if frame[name].nunique() <= 10:
            frame[name] = frame[name].astype(int).astype(str)
    return frame.iloc[:275].reset_index(drop=True), frame.iloc[275:].reset_index(drop=True)


def scored(model, train, test, seed: int) -> dict:
    """The report's scores of ``len(train)`` sampled rows against ``test``, and the DCR against ``train``."""
    rows = model.sample(len(train), seed=seed)
    categorical = {name for name in train.columns if train[name].dtype == object or str(train[name].dtype) == "category"}
    against_test = quality_report(test, rows, categorical=categorical, seed=seed)
    against_train = quality_report(train, rows, categorical=categorical, holdout=test, seed=seed)
    return {**{name: round(against_test[name], 3) for name in SCORES},
            "dcr_closer_to_training": round(against_train["dcr_closer_to_training"], 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", default="1000,2000,3000,6000", help="budgets (iterations) on the small table")
    parser.add_argument("--fair", default="6000,10000", help="budgets (iterations) on fair")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    arguments = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    small_train, small_test = small_table()
    for iterations in [int(value) for value in arguments.small.split(",") if value]:
        started = time.perf_counter()
        model = TabularBridge(verbose=False, progress=False).fit(small_train, iterations=iterations, seed=arguments.seed)
        rows.append({"table": "small (anes96, 275 rows)", "iterations": iterations, "fit_s": round(time.perf_counter() - started),
                     **scored(model, small_train, small_test, arguments.seed)})
        print(rows[-1], flush=True)
    fair_train, fair_test, _, _ = split_frame(load_fair(), 0)
    for iterations in [int(value) for value in arguments.fair.split(",") if value]:
        model, seconds = demo_model(fair_train, iterations=iterations, seed=arguments.seed)
        rows.append({"table": f"fair ({len(fair_train)} rows)", "iterations": iterations, "fit_s": round(seconds),
                     **scored(model, fair_train, fair_test, arguments.seed)})
        print(rows[-1], flush=True)
    lines = ["# Training budget of TabularBridge (small table, fair)", "",
             measured("training_budget.py", argv, " (one torch thread)") + ". One fit per row (seed "
             f"{arguments.seed}); scores against the held-out rows, DCR against the training rows. The default budget "
             f"(`default_iterations`): {default_iterations(len(small_train))} iterations on the small table, "
             f"{default_iterations(len(fair_train))} on fair.", "",
             "| table | iterations | fit s | column shapes | pair trends | detection | DCR closer to training |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row['table']} | {row['iterations']} | {row['fit_s']} | {row['column_shapes']:.3f} | "
                     f"{row['column_pair_trends']:.3f} | {row['detection']:.3f} | {row['dcr_closer_to_training']:.3f} |")
    write_results(results_folder(arguments.out), "training-budget", lines, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
