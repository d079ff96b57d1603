"""omegabridge beside SDV's GaussianCopula, CTGAN and TVAE synthesizers, scored by the quality report.

Two tables that ship with statsmodels: ``fair`` (6366 rows, 9 columns: coded survey answers and
a half-line ``affairs``) and ``randhie`` (the RAND health insurance experiment: 20190 rows, 10
columns of visit counts, binaries, ordinal and continuous measures; ``--randhie-rows`` of them
drawn at random, 6000 by default, to keep the run short). Each is split 80/20 with the demo's
seeded split; every generator trains on the 80% with its package's default settings (omegabridge:
the demo's, ``DemoConfig``) and samples as many rows. Scores: validity (share of rows whose every
value the omegabridge schema allows: the same allowed values for every generator), the quality
report of ``omegabridge.tabular.report`` (column shapes, pair trends, alpha-precision,
beta-recall, logistic detection, DCR against the held-out rows), machine-learning efficacy on
fair (``affairs > 0``, as the demo), and wall time (training + sampling, one torch thread).

SDV pins pandas < 3: run this in an environment of its own (bench/report_crosscheck.py's):

    python3 -m venv /tmp/sdm && . /tmp/sdm/bin/activate
    pip install torch==2.13.0 && pip install sdv sdmetrics statsmodels scikit-learn tqdm
    OMEGABRIDGE_BUILD_NATIVE=0 OMEGABRIDGE_BUILD_CUDA=0 pip install -e . --no-deps
    python bench/sdv_comparison.py               # about 15 minutes on 2 cores

Results: ``<out>/sdv-comparison.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from fair_runs import add_common_arguments, measured, results_folder, write_results
from omegabridge.demos import tables as demo
from omegabridge.demos.common import load_fair, split_frame
from omegabridge.tabular import metrics
from omegabridge.tabular.report import quality_report

GENERATORS = ("omegabridge", "GaussianCopula", "CTGAN", "TVAE")
REPORT = ("column_shapes", "column_pair_trends", "alpha_precision", "beta_recall", "detection", "dcr_closer_to_training")


def load_randhie(rows: int, seed: int):
    from statsmodels.api import datasets

    frame = datasets.randhie.load_pandas().data
    return frame.sample(n=min(rows, len(frame)), random_state=seed).reset_index(drop=True)


def sdv_sample(kind: str, train, categorical: set, rows: int, seed: int):
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    columns = {name: {"sdtype": "categorical" if name in categorical else "numerical"} for name in train.columns}
    metadata = Metadata.load_from_dict({"tables": {"table": {"columns": columns}}})
    synthesizer = {"GaussianCopula": GaussianCopulaSynthesizer, "CTGAN": CTGANSynthesizer, "TVAE": TVAESynthesizer}[kind]
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = synthesizer(metadata)
    model.fit({"table": train})
    sampled = model.sample(num_rows=rows)  # sdv 2 returns {table name: DataFrame}
    return (sampled["table"] if isinstance(sampled, dict) else sampled).reset_index(drop=True)


def run_table(name: str, frame, overrides, target, args, log) -> list[dict]:
    train, test, _, _ = split_frame(frame, args.seed)
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    config = demo.DemoConfig(iterations=args.iterations, seed=args.seed, progress=False)
    started = time.perf_counter()
    model, omegabridge_rows, _ = demo.fit_and_sample(train, overrides, config, len(train), log=lambda _: None)
    frames, seconds = {"omegabridge": omegabridge_rows.reset_index(drop=True)}, {"omegabridge": time.perf_counter() - started}
    log(f"{name}: omegabridge {seconds['omegabridge']:.0f} s")
    categorical = model.schema.categorical_names()
    for kind in GENERATORS[1:]:
        started = time.perf_counter()
        frames[kind] = sdv_sample(kind, train, categorical, len(train), args.seed)
        seconds[kind] = time.perf_counter() - started
        log(f"{name}: {kind} {seconds[kind]:.0f} s")
    frames["held-out rows"], seconds["held-out rows"] = test, 0.0
    scored = metrics.add_validity({}, model.schema, frames)["summary"]
    efficacy = {}
    if target is not None:
        efficacy = metrics.evaluate(train, {k: v for k, v in frames.items() if k != "held-out rows"},
                                    discrete=model.schema.discrete_names(), target=target[0], threshold=target[1],
                                    test_real=test, seed=args.seed)["efficacy"]
    rows = []
    for generator, table in frames.items():
        report = quality_report(train, table, categorical=categorical, holdout=None if generator == "held-out rows" else test,
                                seed=args.seed)
        rows.append({"data": name, "generator": generator, "rows_valid": scored[f"{generator}_rows_valid"],
                     **{key: report.get(key, float("nan")) for key in REPORT},
                     "efficacy_f1": efficacy.get(generator, {}).get("synthetic", float("nan")),
                     "efficacy_accuracy": efficacy.get(generator, {}).get("accuracy_synthetic", float("nan")),
                     "seconds": seconds[generator]})
        log(str(rows[-1]))
    return rows


def main(argv=None) -> int:
    import pandas as pd
    import sdv

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser, demo.DemoConfig.iterations)
    parser.add_argument("--randhie-rows", type=int, default=6000)
    parser.add_argument("--tables", nargs="+", default=["fair", "randhie"], choices=["fair", "randhie"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = results_folder(args.out)
    rows = []
    if "fair" in args.tables:
        rows += run_table("fair", load_fair(), demo.FAIR_SCHEMA, demo.FAIR_TARGET, args, print)
    if "randhie" in args.tables:
        rows += run_table("randhie", load_randhie(args.randhie_rows, args.seed), None, None, args, print)
    lines = [
        "# omegabridge beside SDV (fair, randhie)",
        "",
        measured("sdv_comparison.py", argv, ", one torch thread") + " "
        f"(sdv {sdv.__version__}, pandas {pd.__version__}, torch {torch.__version__}, in its own "
        f"environment). Each generator trains on the 80% split with its package's defaults (omegabridge: the demo's "
        f"settings, {args.iterations} iterations) and samples as many rows; `held-out rows` are the real 20%, scored "
        "the same way (without the DCR, which they define). Validity: rows whose every value the omegabridge schema "
        "allows. Report scores (omegabridge.tabular.report; higher is better, DCR 0.5 is ideal): column shapes, "
        "column pair trends, alpha-precision, beta-recall, logistic detection, and the share of synthetic rows "
        "closer to training than to held-out rows. Efficacy (fair): F1 and accuracy of a gradient-boosting "
        "classifier for affairs > 0 trained on the rows, tested on the held-out rows. Seconds: training + sampling.",
        "",
        "| data | generator | rows valid | column shapes | pair trends | alpha-precision | beta-recall | detection | DCR closer to training | efficacy F1 | efficacy accuracy | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def cell(value, digits=3):
        return "-" if value != value else f"{value:.{digits}f}"

    for row in rows:
        lines.append(f"| {row['data']} | {row['generator']} | {row['rows_valid']:.2%} | " + " | ".join(
            cell(row[key]) for key in REPORT) + f" | {cell(row['efficacy_f1'])} | {cell(row['efficacy_accuracy'])} | "
            f"{row['seconds']:.0f} |")
    write_results(out, "sdv-comparison", lines, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
