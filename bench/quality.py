"""Sample quality: omegabridge vs CTGAN vs independent marginals, on fair and digits.

Each data set is split 80/20 with the demo's seeded split; every generator trains on
the 80% and samples as many rows; the scores are those of the demo (omegabridge.tabular.metrics):
validity against the schema the omegabridge model uses (the same allowed values for
every generator), per-column fidelity, pairwise association error, machine-learning
efficacy on fair (gradient boosting predicting affairs > 0, tested on the held-out
20%), and on digits the class histogram a real-data classifier gives the samples.

CTGAN is the `ctgan` package (SDV's CTGAN, default architecture). It pins pandas < 3,
so run this script in its own environment:

    python -m venv --system-site-packages /tmp/ctv && /tmp/ctv/bin/pip install ctgan
    /tmp/ctv/bin/python bench/quality.py            # writes bench/results/quality.{md,csv,png}

Options: --datasets fair digits, --seed, --iterations (omegabridge), --ctgan-epochs
FAIR DIGITS, --threads, --skip-ctgan. Wall times are per generator (training +
sampling) on one torch thread unless --threads says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from omegabridge.demos import common, tables as demo  # noqa: E402
from omegabridge.tabular import metrics


def ctgan_generator(train, discrete, rows, epochs, args):
    from ctgan import CTGAN

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model = CTGAN(epochs=epochs, verbose=False)
    model.fit(train, discrete_columns=list(discrete))
    synthetic = model.sample(rows).reset_index(drop=True)
    return synthetic.astype(train.dtypes.to_dict(), errors="ignore")


def run_dataset(name, args, log):
    if name == "fair":
        real = common.load_fair()
        labels = None
        schema_overrides = demo.FAIR_SCHEMA
    else:
        real, labels = common.load_digits()
        schema_overrides = demo.digits_schema(real.columns)
    train, test, train_rows, _ = common.split_frame(real, args.seed)
    rows = len(train)
    frames, seconds = {}, {}

    mark = time.perf_counter()
    # The sampler and training times bench/results/quality.md was measured with (200 Euler steps, grid times).
    config = demo.DemoConfig(iterations=args.iterations, seed=args.seed, progress=False, steps=200, solver="euler",
                             times="grid")
    model, frames["omegabridge"], _ = demo.fit_and_sample(train, schema_overrides, config, rows, log=lambda _: None)
    seconds["omegabridge"] = time.perf_counter() - mark
    log(f"{name}: omegabridge {seconds['omegabridge']:.0f} s")
    if not args.skip_ctgan:
        epochs = args.ctgan_epochs[0 if name == "fair" else 1]
        mark = time.perf_counter()
        frames["ctgan"] = ctgan_generator(train, model.schema.discrete_names(), rows, epochs, args)
        seconds["ctgan"] = time.perf_counter() - mark
        log(f"{name}: ctgan ({epochs} epochs) {seconds['ctgan']:.0f} s")
    mark = time.perf_counter()
    frames["independent"] = common.independent_baseline(train, rows, args.seed)
    seconds["independent"] = time.perf_counter() - mark

    if name == "fair":
        result = demo.score_fair(train, test, frames, model.schema, args.seed)
    else:
        result = metrics.evaluate(train, frames, discrete=model.schema.discrete_names())
        metrics.add_validity(result, model.schema, frames)
        classifier = common.digit_classifier(train, labels[train_rows])
        result["digits"] = {n: common.digit_scores(classifier, f) for n, f in frames.items()}
        result["digits"]["real_test"] = common.digit_scores(classifier, test)
    result["seconds"] = seconds
    result["rows"] = {"train": len(train), "test": len(test), "synthetic": rows}
    return result


def table_rows(name, result):
    """One row per generator with the headline numbers."""
    out = []
    summary = result["summary"]
    for generator in result["seconds"]:
        row = {
            "data": name,
            "generator": generator,
            "rows_valid": summary.get(f"{generator}_rows_valid"),
            "min_column_validity": summary.get(f"{generator}_min_validity"),
            "mean_tv_discrete": summary.get(f"{generator}_mean_fidelity_discrete"),
            "mean_ks_continuous": summary.get(f"{generator}_mean_fidelity_continuous"),
            "association_error": summary.get(f"{generator}_association_error"),
            "efficacy_f1": summary.get(f"{generator}_efficacy"),
            "efficacy_ratio": summary.get(f"{generator}_efficacy_ratio"),
            "efficacy_accuracy": result.get("efficacy", {}).get(generator, {}).get("accuracy_synthetic"),
            "seconds": result["seconds"][generator],
        }
        if "digits" in result:
            row["class_hist_tv"] = result["digits"][generator]["histogram_tv_from_uniform"]
            row["mean_top_probability"] = result["digits"][generator]["mean_top_probability"]
        out.append(row)
    return out


def write_outputs(rows, results, args, device, meta):
    import pandas as pd

    from omegabridge.files import atomic_write, write_json

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    frame = pd.DataFrame(rows)
    atomic_write(args.out + ".csv", lambda tmp: frame.to_csv(tmp, index=False, float_format="%.5g"))
    write_json(args.out + ".json", {"meta": meta, "results": results})

    def fmt(value, percent=False):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "-"
        return f"{value:.2%}" if percent else f"{value:.3f}"

    lines = [
        "# Sample quality: omegabridge vs CTGAN vs independent marginals",
        "",
        f"Device: {device}. torch {meta['torch']}, {meta['threads']} thread(s). Seed {meta['seed']}.",
        f"Command: `{meta['command']}`",
        "",
        "Each generator trains on the same 80% of the rows and samples as many; efficacy and the digit classifier "
        "are tested on the held-out 20%. Validity: share of rows whose every value the schema allows (the schema "
        "omegabridge fitted, the same for all). TV / KS: mean per-column total variation (discrete columns) / "
        "Kolmogorov-Smirnov (continuous). Association error: mean |difference| of the pairwise association matrices "
        "(Pearson, Cramér's V, correlation ratio). Efficacy: F1 of a gradient-boosting classifier for affairs > 0 "
        "trained on the synthetic rows, and its ratio to the same trained on the real rows. Digits: the class "
        "histogram a logistic-regression classifier trained on real digits gives the samples, TV from uniform, "
        "and its mean top-class probability.",
        "",
        "| data | generator | rows valid | mean TV | mean KS | assoc. error | efficacy F1 | efficacy ratio | "
        "efficacy accuracy | digit class TV | digit top prob. | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['data']} | {row['generator']} | {fmt(row['rows_valid'], True)} | {fmt(row['mean_tv_discrete'])} | "
            f"{fmt(row['mean_ks_continuous'])} | {fmt(row['association_error'])} | {fmt(row['efficacy_f1'])} | "
            f"{fmt(row['efficacy_ratio'])} | {fmt(row.get('efficacy_accuracy'))} | {fmt(row.get('class_hist_tv'))} | {fmt(row.get('mean_top_probability'))} | "
            f"{row['seconds']:.0f} |"
        )
    if "fair" in results:
        real = next(iter(results["fair"].get("efficacy", {}).values()), {})
        lines += [
            "",
            f"Real-data efficacy (trained on real rows): F1 {real.get('real', float('nan')):.3f}, accuracy "
            f"{real.get('accuracy_real', float('nan')):.3f}; 32% of the held-out rows are positive (0.318), so predicting "
            "every row positive scores F1 0.483 and accuracy 0.318. A generator whose samples make the classifier "
            "call almost everything positive can therefore beat the real data on F1 while its accuracy collapses: "
            "read the two columns together.",
        ]
    atomic_write(args.out + ".md", lambda tmp: open(tmp, "w").write("\n".join(lines) + "\n"))
    plot(frame, args.out + ".png", device)


def plot(frame, path, device):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    from omegabridge.files import atomic_write

    panels = [("rows_valid", "rows fully valid (higher is better)"), ("mean_tv_discrete", "mean TV, discrete columns"),
              ("association_error", "association error"), ("efficacy_ratio", "fair: efficacy ratio (F1 / real F1)"),
              ("class_hist_tv", "digits: class histogram TV from uniform")]
    panels = [p for p in panels if p[0] in frame.columns]
    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4))
    colours = {"omegabridge": "tab:blue", "ctgan": "tab:red", "independent": "tab:orange"}
    for axis, (column, title) in zip(axes, panels):
        data = frame.dropna(subset=[column])
        labels = [f"{d}\n{g}" for d, g in zip(data["data"], data["generator"])]
        axis.bar(range(len(data)), data[column], color=[colours.get(g, "gray") for g in data["generator"]])
        axis.set_xticks(range(len(data)))
        axis.set_xticklabels(labels, fontsize=7)
        axis.set_title(title, fontsize=9)
    figure.suptitle(f"sample quality ({device})", fontsize=10)
    figure.tight_layout()
    try:
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=90))
    finally:
        plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["fair", "digits"], choices=["fair", "digits"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=6000, help="omegabridge training iterations (the demo's)")
    parser.add_argument("--ctgan-epochs", type=int, nargs=2, default=[100, 300], metavar=("FAIR", "DIGITS"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-ctgan", action="store_true")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "quality"))
    parser.add_argument("--render", metavar="JSON", help="only rewrite the table and plot from a saved quality.json")
    args = parser.parse_args()
    if args.render:
        with open(args.render, encoding="utf-8") as handle:
            saved = json.load(handle)
        results, meta = saved["results"], saved["meta"]
        rows = [row for name, result in results.items() for row in table_rows(name, result)]
        write_outputs(rows, results, args, meta["device"], meta)
        print(open(args.out + ".md").read())
        return
    torch.set_num_threads(args.threads)
    device = f"{platform.machine()} CPU ({os.cpu_count()} cores: {_cpu_name()})"
    results, rows = {}, []
    for name in args.datasets:
        results[name] = run_dataset(name, args, lambda text: print(text, flush=True))
        rows += table_rows(name, results[name])
    meta = {"device": device, "command": " ".join(["python"] + sys.argv), "threads": torch.get_num_threads(),
            "torch": str(torch.__version__), "seed": args.seed}
    write_outputs(rows, results, args, device, meta)
    print(open(args.out + ".md").read())


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
