"""Cross-check of ``omegabridge.tabular.report`` against the ``sdmetrics`` package on fair.

sdmetrics pins pandas < 3, so this runs in an environment of its own (as bench/quality.py does
for CTGAN), with omegabridge on the path:

    python3 -m venv /tmp/sdm && . /tmp/sdm/bin/activate
    pip install torch==2.13.0 && pip install sdmetrics statsmodels scikit-learn tqdm
    OMEGABRIDGE_BUILD_NATIVE=0 OMEGABRIDGE_BUILD_CUDA=0 pip install -e . --no-deps
    python bench/report_crosscheck.py              # trains the demo's model (about a minute)
    python bench/report_crosscheck.py --model fair.ckpt

On fair's 80% training split as the real rows, it scores two tables with both: the samples of
a ``TabularBridge`` (the demo's settings) and the held-out 20% (real rows), and compares
SDMetrics' QualityReport ("Column Shapes": KSComplement / TVComplement; "Column Pair Trends":
CorrelationSimilarity / ContingencySimilarity) and LogisticDetection with the report's
``column_shapes``, ``column_pair_trends``, per-column and per-pair scores and ``detection``.
The occupations are categorical, every other column numerical, in both.

Results: ``<out>/report-crosscheck.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import sys
import time


from fair_runs import add_common_arguments, demo_model, measured, results_folder, write_results
from omegabridge.demos.common import load_fair, split_frame
from omegabridge.demos.tables import DemoConfig
from omegabridge.tabular.report import quality_report


def sdmetrics_scores(real, synthetic, categorical: set) -> dict:
    from sdmetrics.reports.single_table import QualityReport
    from sdmetrics.single_table import LogisticDetection

    metadata = {"columns": {name: {"sdtype": "categorical" if name in categorical else "numerical"}
                            for name in real.columns}}
    report = QualityReport()
    # sdmetrics 0.32 scores only pairs whose real correlation exceeds 0.5 (association 0.3); the
    # report, like the TabSyn and TabDiff papers' numbers, scores every pair
    report.real_correlation_threshold = report.real_association_threshold = 0.0
    report.generate(real, synthetic, metadata, verbose=False)
    shapes = report.get_details("Column Shapes")
    trends = report.get_details("Column Pair Trends")
    return {
        "column_shapes": float(shapes["Score"].mean()),
        "column_pair_trends": float(trends["Score"].mean()),
        "columns": {row["Column"]: float(row["Score"]) for _, row in shapes.iterrows()},
        "pairs": {f"{row['Column 1']} / {row['Column 2']}": float(row["Score"]) for _, row in trends.iterrows()},
        "detection": float(LogisticDetection.compute(real, synthetic, metadata)),
    }


def main(argv=None) -> int:
    import sdmetrics

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser, DemoConfig.iterations)
    parser.add_argument("--model", help="a TabularBridge checkpoint of fair's training split")
    args = parser.parse_args(argv)
    out = results_folder(args.out)
    train, test, _, _ = split_frame(load_fair(), args.seed)
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    model, _ = demo_model(train, iterations=args.iterations, seed=args.seed, path=args.model)
    categorical = model.schema.categorical_names()
    tables = {"omegabridge": model.sample(len(train), seed=args.seed).reset_index(drop=True), "held-out rows": test}
    rows = []
    for name, table in tables.items():
        started = time.perf_counter()
        ours = quality_report(train, table, categorical=categorical, seed=args.seed)
        ours_seconds = time.perf_counter() - started
        started = time.perf_counter()
        theirs = sdmetrics_scores(train, table, categorical)
        theirs_seconds = time.perf_counter() - started
        column_gap = max(abs(ours["columns"][c]["score"] - theirs["columns"][c]) for c in theirs["columns"])
        pair_gap = max(abs(ours["pairs"][p]["score"] - theirs["pairs"][p]) for p in theirs["pairs"])
        rows.append({"table": name, "ours": {k: ours[k] for k in ("column_shapes", "column_pair_trends", "detection")},
                     "sdmetrics": {k: theirs[k] for k in ("column_shapes", "column_pair_trends", "detection")},
                     "largest_column_difference": column_gap, "largest_pair_difference": pair_gap,
                     "seconds": {"ours": ours_seconds, "sdmetrics": theirs_seconds}})
        print(rows[-1], flush=True)
    import pandas as pd

    lines = [
        "# Quality report cross-check against sdmetrics (fair)",
        "",
        measured("report_crosscheck.py", argv) + " "
        f"(sdmetrics {sdmetrics.__version__}, pandas {pd.__version__}, in its own environment). Real rows: fair's "
        f"{len(train)}-row training split; scored: {len(train)} samples of a `TabularBridge` (the demo's settings, "
        f"{args.iterations} iterations) and the {len(test)} held-out rows. Occupations categorical, the other "
        "columns numerical, in both; every column pair scored (sdmetrics' thresholds on the real association set to 0). "
        "Largest differences: over the 9 columns and the 36 column pairs.",
        "",
        "| table | column shapes: ours | sdmetrics | largest column difference | pair trends: ours | sdmetrics | "
        "largest pair difference | detection: ours | sdmetrics |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ours, theirs = row["ours"], row["sdmetrics"]
        lines.append(f"| {row['table']} | {ours['column_shapes']:.4f} | {theirs['column_shapes']:.4f} | "
                     f"{row['largest_column_difference']:.1e} | {ours['column_pair_trends']:.4f} | "
                     f"{theirs['column_pair_trends']:.4f} | {row['largest_pair_difference']:.1e} | "
                     f"{ours['detection']:.4f} | {theirs['detection']:.4f} |")
    lines += ["", "Column shapes agree to rounding. Column pairs agree exactly except those of a numerical column "
              "with a categorical one where the numerical column has a long tail (affairs): sdmetrics' QualityReport "
              "cuts each table's numerical column into 10 bins over that table's own range, the report over the real "
              "range for both tables (as sdmetrics' ContingencySimilarity metric itself does when called alone), so "
              "the same synthetic value lands in the same bin as a real one.",
              "", "The detection scores differ in their folds and feature transforms (SDMetrics' HyperTransformer "
              "against the report's min-max and one-hot encoding, then standardised): both are 1 - (2 AUC - 1) of a "
              "logistic regression in 3-fold cross-validation (sdmetrics draws its folds unseeded, so its score moves "
              "between runs on the same tables, by about 0.01 on these)."]
    write_results(out, "report-crosscheck", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
