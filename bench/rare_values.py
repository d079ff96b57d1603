"""Where a trained model over-samples a rare value: its drift swapped for the exact one before or after a time.

One discrete column (a lattice of 6 integers, or 6 categories) whose first value holds 2.5% of the
rows, the others 17.5% and 20%: a ``TabularBridge`` with its defaults is trained on 5000 rows for
each ``--iterations`` and samples 20000 rows. With one column, the posterior mean under the data's
own marginal law (``omegabridge.models.marginal_prior``) is the exact E[X | Z_t], so an untrained
``DriftMLP(marginal_prior=True)`` is the exact drift. Sampling with the trained drift for t < tau and
the exact drift after (and the other way round) shows in which times the trained model's error
makes the rare value's excess: where swapping in the exact drift removes it.

``--fair`` also trains the tables demo's model on fair (the demo's settings) for each training-times
setting of ``--times`` and seed of ``--seeds`` and scores what the rare-values target asks: every
discrete value's share within max(0.01, 25% of it) of the training rows' (the misses counted, the
worst named), beside the mean discrete TV and the association error against the held-out rows.

    python bench/rare_values.py                                   # about 5 minutes on one core
    python bench/rare_values.py --iterations 200 --out /tmp/rare  # a quick look
    python bench/rare_values.py --fair --times continuous decisions --seeds 0 1   # the fair part too (+ about 6 minutes)

Results: ``<out>/rare-values.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

import omegabridge as ob
from omegabridge.models.mlp import DriftMLP

SHARES = (0.025, 0.175, 0.2, 0.2, 0.2, 0.2)
TAUS = (0.5, 0.75, 0.9, 0.95, 0.97, 0.985)
ROWS, SAMPLES = 5000, 20000


def table(kind: str, seed: int = 0):
    """The one-column table: integers 0..5 (``"lattice"``) or letters a..f (``"categorical"``)."""
    import pandas as pd

    values = np.random.default_rng(seed).choice(len(SHARES), size=ROWS, p=SHARES)
    column = pd.Series(values.astype(np.int64)) if kind == "lattice" else pd.Series(np.array(list("abcdef"))[values])
    return pd.DataFrame({"v": column})


class Swapped(torch.nn.Module):
    """``first`` drift for t < tau, ``second`` from tau on."""

    def __init__(self, first, second, tau: float):
        super().__init__()
        self.first, self.second, self.tau = first, second, tau

    def forward(self, z, t):
        late = (torch.as_tensor(t) >= self.tau).reshape(-1, 1)
        return torch.where(late, self.second(z, t), self.first(z, t))


def run(kind: str, iterations: int, seed: int = 0, taus=TAUS, times: str = "continuous") -> dict:
    """The rare value's share for the trained drift (training ``times``), the exact one and every swap."""
    frame = table(kind, seed)
    model = ob.TabularBridge(times=times, verbose=False, progress=False).fit(frame, iterations=iterations, seed=seed)
    bridge, trained = model.bridge, model.model.eval()
    exact = DriftMLP(bridge, hidden=1, depth=1, data=model.encoder.encode(frame), marginal_prior=True).eval()
    rare = 0 if kind == "lattice" else "a"

    def share(drift) -> float:
        with torch.no_grad():
            rows = model.encoder.decode(bridge.sample(drift, n=SAMPLES, seed=seed + 1, progress=False))
        return float((rows["v"] == rare).mean())

    return {"kind": kind, "iterations": iterations, "times": times, "domain": repr(bridge.domain), "trained": share(trained),
            "exact": share(exact),
            "swaps": [{"tau": tau, "trained_then_exact": share(Swapped(trained, exact, tau)),
                       "exact_then_trained": share(Swapped(exact, trained, tau))} for tau in taus]}


def fair(times: str, seed: int) -> dict:
    """The tables demo's model of fair trained with ``times``: share misses, mean discrete TV, association error."""
    from omegabridge.demos.common import load_fair, split_frame
    from omegabridge.demos.tables import FAIR_SCHEMA, DemoConfig
    from omegabridge.tabular import metrics

    config = DemoConfig(seed=seed)
    train, test, _, _ = split_frame(load_fair(), seed)
    model = ob.TabularBridge(steps=config.steps, hidden=config.hidden, depth=config.depth, learning_rate=config.learning_rate,
                             times=times, verbose=False, progress=False)
    model.fit(train, FAIR_SCHEMA, iterations=config.iterations, batch_size=config.batch_size, seed=seed)
    synthetic = model.sample(len(train), seed=seed).reset_index(drop=True)
    misses, worst = 0, (0.0, "")
    for name in sorted(model.schema.discrete_names()):
        real, drawn = train[name].value_counts(normalize=True), synthetic[name].value_counts(normalize=True)
        for value, share in real.items():
            miss = abs(float(drawn.get(value, 0.0)) - share) / max(0.01, 0.25 * share)
            misses += miss > 1
            worst = max(worst, (miss, f"{name} = {value}: {float(drawn.get(value, 0.0)):.3f} for {share:.3f}"))
    summary = metrics.evaluate(test, {"synthetic": synthetic}, discrete=model.schema.discrete_names(), seed=seed)["summary"]
    return {"times": times, "seed": seed, "misses": misses, "worst": worst[1], "worst_over_tolerance": worst[0],
            "discrete_tv": summary["synthetic_mean_fidelity_discrete"],
            "association_error": summary["synthetic_association_error"]}


def markdown(results: list, command: str, fair_rows: list = ()) -> str:
    lines = [
        "# Where a trained model over-samples a rare value (bench/rare_values.py)", "",
        f"A value at {SHARES[0]:.1%} of {ROWS} rows (one column, 6 values: {', '.join(f'{s:g}' for s in SHARES)}); "
        f"`TabularBridge` defaults but the training times; {SAMPLES} rows sampled per cell, seed 1 (sampling noise: sd about "
        f"{np.sqrt(SHARES[0] * (1 - SHARES[0]) / SAMPLES):.4f}). The rare value's share when sampling with the trained "
        "drift, the exact drift, and the trained drift before t = tau and the exact one after (and the reverse). "
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()} ({torch.get_num_threads()} torch thread). "
        f"Command: `{command}`.", "",
    ]
    for result in results:
        lines += [f"## {result['kind']}, {result['iterations']} iterations, {result['times']} times ({result['domain']})", "",
                  f"Trained drift: **{result['trained']:.4f}**; exact drift: {result['exact']:.4f}.", "",
                  "| tau | trained before tau, exact after | exact before tau, trained after |", "| --- | --- | --- |"]
        lines += [f"| {swap['tau']:g} | {swap['trained_then_exact']:.4f} | {swap['exact_then_trained']:.4f} |"
                  for swap in result["swaps"]]
        lines.append("")
    if fair_rows:
        lines += ["## fair: the tables demo's model (6000 iterations) by training times", "",
                  "Shares against the training rows' (tolerance max(0.01, 25%)); TV and association error against the "
                  "held-out rows.", "",
                  "| training times | seed | values outside the tolerance | the worst (multiples of its tolerance) | "
                  "mean discrete TV | association error |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {row['times']} | {row['seed']} | {row['misses']} | {row['worst']} ({row['worst_over_tolerance']:.1f}x) | "
                  f"{row['discrete_tv']:.4f} | {row['association_error']:.4f} |" for row in fair_rows]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[2000, 8000])
    parser.add_argument("--kinds", nargs="+", default=["lattice", "categorical"], choices=["lattice", "categorical"])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--fair", action="store_true", help="also the tables demo's model on fair, per --times and --seeds")
    parser.add_argument("--times", nargs="+", default=["continuous", "decisions"], choices=list(ob.bridge.TRAINING_TIMES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    arguments = parser.parse_args(argv)
    torch.set_num_threads(1)
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python bench/rare_values.py", *given])
    results = []
    for kind in arguments.kinds:
        for times in arguments.times:
            for iterations in arguments.iterations:
                results.append(run(kind, iterations, times=times))
                print(f"{kind} {iterations} {times}: trained {results[-1]['trained']:.4f}, exact {results[-1]['exact']:.4f}", flush=True)
    fair_rows = []
    if arguments.fair:
        torch.set_num_threads(2)  # this machine's two cores (the demo itself takes one thread)
        for times in arguments.times:
            for seed in arguments.seeds:
                fair_rows.append(fair(times, seed))
                print(f"fair, {times} times, seed {seed}: {fair_rows[-1]}", flush=True)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "rare-values.json").write_text(json.dumps({"toys": results, "fair": fair_rows}, indent=1) + "\n")
    text = markdown(results, command, fair_rows)
    (arguments.out / "rare-values.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
