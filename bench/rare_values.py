"""Where a trained model over-samples a rare value: its drift swapped for the exact one before or after a time.

One discrete column (a lattice of 6 integers, or 6 categories) whose first value holds 2.5% of the
rows, the others 17.5% and 20%: a ``TabularBridge`` with its defaults is trained on 5000 rows for
each ``--iterations`` and samples 20000 rows. With one column, the posterior mean under the data's
own marginal law (``omegabridge.models.marginal_prior``) is the exact E[X | Z_t], so an untrained
``DriftMLP(marginal_prior=True)`` is the exact drift. Sampling with the trained drift for t < tau and
the exact drift after (and the other way round) shows in which times the trained model's error
makes the rare value's excess: where swapping in the exact drift removes it.

``--fair`` also trains the tables demo's model on fair (the demo's settings) for each of ``--variants``
(``VARIANTS``: training times, the marginal prior, posterior logits) and seed of ``--seeds`` and scores
what the rare-values target asks: every discrete value's share within max(0.01, 25% of it) of the
training rows' (the misses counted, the worst named), beside the mean discrete TV and the association
error against the held-out rows. ``--mixed`` does the same with ``TabularBridge``'s defaults on a seeded
mixed table with categories at 1-3% of the rows and missing cells (``mixed_table``), where each
column's missing rate is scored too. ``--toy-variants`` are the toys' settings.

    python bench/rare_values.py                                   # about 5 minutes on one core
    python bench/rare_values.py --iterations 200 --out /tmp/rare  # a quick look
    python bench/rare_values.py --fair --mixed --seeds 0 1   # the tables too (+ about 20 minutes)
    python bench/rare_values.py --kinds --mixed --variants continuous "posterior logits"   # one table, two settings

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


def run(kind: str, iterations: int, seed: int = 0, taus=TAUS, variant: str = "continuous") -> dict:
    """The rare value's share for the trained drift (the ``variant``'s settings), the exact one and every swap."""
    frame = table(kind, seed)
    model = ob.TabularBridge(verbose=False, progress=False, **VARIANTS[variant]).fit(frame, iterations=iterations, seed=seed)
    bridge, trained = model.bridge, model.model.eval()
    exact = DriftMLP(bridge, hidden=1, depth=1, data=model.encoder.encode(frame), marginal_prior=True).eval()
    rare = 0 if kind == "lattice" else "a"

    def share(drift) -> float:
        with torch.no_grad():
            rows = model.encoder.decode(bridge.sample(drift, n=SAMPLES, seed=seed + 1, progress=False))
        return float((rows["v"] == rare).mean())

    return {"kind": kind, "iterations": iterations, "variant": variant, "domain": repr(bridge.domain), "trained": share(trained),
            "exact": share(exact),
            "swaps": [{"tau": tau, "trained_then_exact": share(Swapped(trained, exact, tau)),
                       "exact_then_trained": share(Swapped(exact, trained, tau))} for tau in taus]}


MISSING = "<missing>"


def share_misses(real, synthetic, schema) -> tuple[int, float, str]:
    """(how many shares miss max(0.01, 25% of the real share), the worst miss in multiples of its tolerance, it
    named): every discrete column's values, missing as a value, and every other column's missing rate."""
    misses, worst = 0, (0.0, "")
    for column in schema.columns:
        if column.name in schema.discrete_names():
            real_shares = real[column.name].astype(object).fillna(MISSING).value_counts(normalize=True)
            drawn_shares = synthetic[column.name].astype(object).fillna(MISSING).value_counts(normalize=True)
        elif column.missing:
            real_shares = {MISSING: float(real[column.name].isna().mean())}
            drawn_shares = {MISSING: float(synthetic[column.name].isna().mean())}
        else:
            continue
        for value, share in real_shares.items():
            drawn = float(drawn_shares.get(value, 0.0))
            miss = abs(drawn - share) / max(0.01, 0.25 * share)
            misses += miss > 1
            worst = max(worst, (miss, f"{column.name} = {value}: {drawn:.3f} for {share:.3f}"))
    return misses, worst[0], worst[1]


def scored(model, train, test, seed: int, **row) -> dict:
    """``model``'s sample of as many rows as ``train``: share misses against ``train``, TV and association
    error against ``test``."""
    from omegabridge.tabular import metrics

    synthetic = model.sample(len(train), seed=seed).reset_index(drop=True)
    misses, worst_over_tolerance, worst = share_misses(train, synthetic, model.schema)
    summary = metrics.evaluate(test, {"synthetic": synthetic}, discrete=model.schema.discrete_names(), seed=seed)["summary"]
    return {**row, "seed": seed, "misses": misses, "worst": worst, "worst_over_tolerance": worst_over_tolerance,
            "discrete_tv": summary["synthetic_mean_fidelity_discrete"],
            "association_error": summary["synthetic_association_error"]}


#: The settings compared on the tables (``--variants``): ``TabularBridge`` arguments by name.
VARIANTS = {
    "continuous": dict(times="continuous", posterior_logits=False),
    "decisions": dict(times="decisions", posterior_logits=False),
    "marginal prior": dict(marginal_prior=True, posterior_logits=False),
    "posterior logits": dict(posterior_logits=True),
}


def fair(variant: str, seed: int) -> dict:
    """The tables demo's model of fair with the ``variant``'s settings: share misses, mean discrete TV, association
    error."""
    from fair_runs import demo_model
    from omegabridge.demos.common import load_fair, split_frame
    from omegabridge.demos.tables import DemoConfig

    train, test, _, _ = split_frame(load_fair(), seed)
    model, _ = demo_model(train, iterations=DemoConfig.iterations, seed=seed, **VARIANTS[variant])
    return scored(model, train, test, seed, variant=variant)


#: The mixed table's plans and their shares: three at 1-3% of the rows, and 2% missing.
PLANS = {"basic": 0.40, "plus": 0.29, "family": 0.16, "pro": 0.07, "student": 0.03, "legacy": 0.02, "trial": 0.01,
         None: 0.02}


def mixed_table(rows: int = 6000, seed: int = 0):
    """A seeded table of a subscription service: ``plan`` (categories at 1-3%, missing at 2%), ``rating`` (1..5,
    its lowest two levels at about 1.5% and 3%), ``visits`` (counts, 3% missing), ``spend`` (non-negative), each
    depending on the plan."""
    import pandas as pd

    generator = np.random.default_rng(seed)
    names = list(PLANS)
    plan = generator.choice(len(names), size=rows, p=list(PLANS.values()))
    weight = np.array([1.0, 1.6, 2.2, 3.5, 0.5, 1.2, 0.3, 1.0])[plan]  # how much each plan uses the service
    visits = generator.poisson(4.0 * weight).astype(float)
    visits[generator.random(rows) < 0.03] = np.nan
    spend = np.round(generator.gamma(2.0, 12.0 * weight), 2)
    score = 0.8 * np.log(weight) + generator.normal(0.0, 0.6, rows)  # heavier users rate higher
    rating = 1 + np.searchsorted(np.quantile(score, [0.015, 0.045, 0.25, 0.65]), score)
    return pd.DataFrame({"plan": pd.Series([names[i] for i in plan], dtype=object), "rating": rating.astype(np.int64),
                         "visits": pd.Series(visits).astype("Int64"), "spend": spend})


def mixed(variant: str, seed: int, iterations: int = 6000) -> dict:
    """``TabularBridge``'s defaults (but the ``variant``'s settings) on ``mixed_table``'s 80% (seeded split), scored
    as ``fair``."""
    from omegabridge.demos.common import split_frame

    train, test, _, _ = split_frame(mixed_table(seed=0), seed)
    model = ob.TabularBridge(verbose=False, progress=False, **VARIANTS[variant])
    model.fit(train, iterations=iterations, seed=seed)
    return scored(model, train, test, seed, variant=variant, iterations=iterations)


def share_table(rows: list, first: str) -> list[str]:
    """The markdown table of ``fair`` / ``mixed`` rows."""
    lines = [f"| {first} | seed | values outside the tolerance | the worst (multiples of its tolerance) | "
             "mean discrete TV | association error |", "| --- | --- | --- | --- | --- | --- |"]
    return lines + [f"| {row['variant']} | {row['seed']} | {row['misses']} | {row['worst']} ({row['worst_over_tolerance']:.1f}x) | "
                    f"{row['discrete_tv']:.4f} | {row['association_error']:.4f} |" for row in rows] + [""]


def markdown(results: list, command: str, fair_rows: list = (), mixed_rows: list = ()) -> str:
    lines = [
        "# Where a trained model over-samples a rare value (bench/rare_values.py)", "",
        f"A value at {SHARES[0]:.1%} of {ROWS} rows (one column, 6 values: {', '.join(f'{s:g}' for s in SHARES)}); "
        f"`TabularBridge` defaults but the settings named (`VARIANTS`); {SAMPLES} rows sampled per cell, seed 1 (sampling noise: sd about "
        f"{np.sqrt(SHARES[0] * (1 - SHARES[0]) / SAMPLES):.4f}). The rare value's share when sampling with the trained "
        "drift, the exact drift, and the trained drift before t = tau and the exact one after (and the reverse). "
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()} (toys on 1 torch thread, tables on 2). "
        f"Command: `{command}`.", "",
    ]
    for result in results:
        lines += [f"## {result['kind']}, {result['iterations']} iterations, {result['variant']} ({result['domain']})", "",
                  f"Trained drift: **{result['trained']:.4f}**; exact drift: {result['exact']:.4f}.", "",
                  "| tau | trained before tau, exact after | exact before tau, trained after |", "| --- | --- | --- |"]
        lines += [f"| {swap['tau']:g} | {swap['trained_then_exact']:.4f} | {swap['exact_then_trained']:.4f} |"
                  for swap in result["swaps"]]
        lines.append("")
    if fair_rows:
        lines += ["## fair: the tables demo's model (6000 iterations) by setting", "",
                  "Each samples with `TabularBridge`'s default sampler (50 bridge-solver steps on grid \"domain\"). Shares against the training rows' (tolerance max(0.01, 25%)); TV and association error against the "
                  "held-out rows.", ""] + share_table(fair_rows, "model")
    if mixed_rows:
        shares = ", ".join(f"{name or 'missing'} {share:g}" for name, share in PLANS.items())
        lines += [f"## A mixed table with rare categories: `TabularBridge` defaults ({mixed_rows[0]['iterations']} iterations) "
                  "by setting", "",
                  f"`mixed_table()`: {len(mixed_table())} rows of plan ({shares}), rating 1..5 (lowest two levels at about "
                  "1.5% and 3%), visits (counts, 3% missing) and spend (non-negative), split 80/20 by seed. Shares and "
                  "missing rates against the training rows' (tolerance max(0.01, 25%)); TV and association error against "
                  "the held-out rows.", ""] + share_table(mixed_rows, "model")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[2000, 8000])
    parser.add_argument("--kinds", nargs="*", default=["lattice", "categorical"], choices=["lattice", "categorical"])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--fair", action="store_true", help="also the tables demo's model on fair, per --variants and --seeds")
    parser.add_argument("--mixed", action="store_true", help="also TabularBridge's defaults on mixed_table, per --variants and --seeds")
    parser.add_argument("--mixed-iterations", type=int, default=6000, help="of the mixed table's model (fit's default)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="the settings compared on fair and the mixed table")
    parser.add_argument("--toy-variants", nargs="+", default=["continuous", "decisions", "posterior logits"],
                        choices=list(VARIANTS), help="the settings compared on the one-column toys")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    arguments = parser.parse_args(argv)
    torch.set_num_threads(1)
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python bench/rare_values.py", *given])
    results = []
    for kind in arguments.kinds:
        for variant in arguments.toy_variants:
            for iterations in arguments.iterations:
                results.append(run(kind, iterations, variant=variant))
                print(f"{kind} {iterations} {variant}: trained {results[-1]['trained']:.4f}, exact {results[-1]['exact']:.4f}", flush=True)
    torch.set_num_threads(2)  # this machine's two cores for the tables (the demo itself takes one thread)
    fair_rows = [fair(variant, seed) for variant in arguments.variants for seed in arguments.seeds] if arguments.fair else []
    mixed_rows = [mixed(variant, seed, arguments.mixed_iterations) for variant in arguments.variants
                  for seed in arguments.seeds] if arguments.mixed else []
    for row in fair_rows + mixed_rows:
        print(row, flush=True)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "rare-values.json").write_text(json.dumps({"toys": results, "fair": fair_rows, "mixed": mixed_rows},
                                                               indent=1) + "\n")
    text = markdown(results, command, fair_rows, mixed_rows)
    (arguments.out / "rare-values.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
