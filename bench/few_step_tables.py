"""Few-step sampling with a trained network: one ``TabularBridge`` on fair, sampled by each solver and grid.

bench/solvers.py measures the samplers with exact drifts; this measures what a user sees: the
demo's model of statsmodels' ``fair`` (the demo's settings, ``omegabridge.demos.tables``)
trained once on the 80% split per model (``--models``, ``MODELS``: trained at the grid times of its
200 steps or at continuous t in [0, 1), predicting each discrete column's mean or its log-odds), then sampled with each (solver, steps, grid) for as many rows
as the training split, with the same seed, and scored by ``metrics.evaluate`` against the
held-out 20%: mean total variation of the discrete columns, Kolmogorov-Smirnov of the
continuous one (``affairs``), pairwise association error, validity, and the sampling time.
The training split itself, scored the same way, is the floor (``real (train)``).

    python bench/few_step_tables.py                  # 6000 iterations per model: about 6 minutes on 2 cores
    python bench/few_step_tables.py --iterations 300 --out /tmp/few   # a quick look

Results: ``<out>/few-step-tables.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

from omegabridge.demos.common import load_fair, split_frame
from omegabridge.demos.tables import FAIR_SCHEMA, DemoConfig
from omegabridge.files import atomic_write
from omegabridge.tabular import TabularBridge, metrics

#: The model's own steps: a "grid" model trains at their grid times.
MODEL_STEPS = 200
#: (solver, steps, grid) sampled; the first is the default sampler the model was trained for.
SAMPLERS = (
    ("euler", 200, "t"), ("euler", 50, "t"), ("euler", 25, "t"), ("euler", 50, "s^3"), ("euler", 25, "s^3"),
    ("bridge", 200, "t"), ("bridge", 50, "t"), ("bridge", 25, "t"), ("bridge", 50, "s"), ("bridge", 25, "s"),
    ("bridge", 50, "s^3"), ("bridge", 25, "s^3"), ("bridge", 10, "s^3"),
    ("bridge", 50, "domain"), ("bridge", 25, "domain"), ("bridge", 10, "domain"),
)


#: The models compared, by name: their ``TabularBridge`` settings beside the demo's.
MODELS = {
    "grid": dict(times="grid", posterior_logits=False),
    "continuous": dict(times="continuous", posterior_logits=False),
    "posterior logits": dict(times="continuous", posterior_logits=True),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=DemoConfig.iterations)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                        help="the models compared (MODELS: one model each)")
    parser.add_argument("--rows", type=int, default=None, help="rows sampled per sampler (default: the training split's)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = DemoConfig(iterations=args.iterations, seed=args.seed)
    train, test, _, _ = split_frame(load_fair(), args.seed)
    rows_sampled = len(train) if args.rows is None else args.rows
    rows, train_seconds = [], {}
    for model_name in args.models:
        model = TabularBridge(steps=MODEL_STEPS, hidden=config.hidden, depth=config.depth, **MODELS[model_name],
                              learning_rate=config.learning_rate, verbose=False, progress=False)
        started = time.perf_counter()
        model.fit(train, FAIR_SCHEMA, iterations=config.iterations, batch_size=config.batch_size, seed=config.seed)
        train_seconds[model_name] = time.perf_counter() - started
        frames, seconds = {"real (train)": train}, {"real (train)": 0.0}
        for solver, steps, grid in SAMPLERS:
            name = f"{solver} {steps} {grid}"
            started = time.perf_counter()
            frames[name] = model.sample(rows_sampled, seed=args.seed, solver=solver, steps=steps,
                                        grid=grid).reset_index(drop=True)
            seconds[name] = time.perf_counter() - started
            print(f"{model_name}, {name}: {seconds[name]:.1f} s", flush=True)
        result = metrics.evaluate(test, frames, discrete=model.schema.discrete_names(), seed=args.seed)
        result = metrics.add_validity(result, model.schema, {k: v for k, v in frames.items() if k != "real (train)"})
        summary = result["summary"]
        for name in frames:
            if name == "real (train)" and rows:
                continue  # the floor once
            rows.append({"model": "-" if name == "real (train)" else model_name, "sampler": name,
                         "evaluations": 0 if name == "real (train)" else int(name.split()[1]),
                         "discrete_tv": summary[f"{name}_mean_fidelity_discrete"],
                         "continuous_ks": summary[f"{name}_mean_fidelity_continuous"],
                         "association_error": summary[f"{name}_association_error"],
                         "validity": summary.get(f"{name}_rows_valid", float("nan")), "seconds": seconds[name]})
    argv = sys.argv[1:] if argv is None else list(argv)
    _write(out, rows, args, argv, train_seconds, len(train), len(test), rows_sampled)
    return 0


def _write(out: Path, rows: list[dict], args, argv: list[str], train_seconds: dict, train_rows: int, test_rows: int,
           rows_sampled: int) -> None:
    command = " ".join(["python bench/few_step_tables.py", *argv])
    lines = [
        "# Few-step sampling with a trained network (fair)",
        "",
        f"Measured {datetime.date.today().isoformat()} on {platform.processor() or platform.machine()} "
        f"({torch.get_num_threads()} threads): `{command}`. One `TabularBridge` per model (the "
        f"demo's settings, {args.iterations} iterations; "
        + ", ".join(f"{name}: {seconds:.0f} s" for name, seconds in train_seconds.items())
        + f") trained on {train_rows} rows of fair, sampled "
        f"{rows_sampled} rows per sampler with seed {args.seed}; every statistic against the {test_rows} held-out "
        "rows (lower is better). `real (train)` is the training split itself: the floor. Evaluations = network "
        "evaluations per row. Models: `grid`, trained at the 200 grid times of its steps; `continuous`, at "
        "t uniform on [0, 1), predicting each discrete column's mean; `posterior logits`, the same times, "
        "predicting each discrete column's log-odds (`TabularBridge(posterior_logits=True)`).",
        "",
        "| model | sampler (solver, steps, grid) | evaluations | mean TV, discrete | KS, affairs | association error | valid rows | sampling s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        validity = "-" if row["validity"] != row["validity"] else f"{row['validity']:.0%}"
        lines.append(f"| {row['model']} | {row['sampler']} | {row['evaluations']} | {row['discrete_tv']:.4f} | {row['continuous_ks']:.4f} | "
                     f"{row['association_error']:.4f} | {validity} | {row['seconds']:.1f} |")
    atomic_write(str(out / "few-step-tables.md"), lambda temporary: open(temporary, "w").write("\n".join(lines) + "\n"))
    atomic_write(str(out / "few-step-tables.json"), lambda temporary: open(temporary, "w").write(json.dumps(rows, indent=1)))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
