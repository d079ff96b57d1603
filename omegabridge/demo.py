"""The omegabridge demo: synthetic rows of a real mixed-type table, valid by construction.

The data is statsmodels' ``fair`` table (6366 survey answers about marriage and
extramarital affairs; ``statsmodels.api.datasets.fair``), which ships with the
statsmodels package, so the demo needs no download. Its columns are coded
ordinal answers, integer scales, two six-way occupations and one non-negative
amount (``affairs``) that is exactly zero in about two thirds of the rows.

The job, step by step (each step is one function below):

1. ``load_fair`` reads the table; ``build_domain`` declares, by hand, the
   ``ob.Product`` domain that makes every column valid by construction:

   ==================================  =====================================================
   column                              factor
   ==================================  =====================================================
   rate_marriage (1..5)                ``Lattice(1, 5)``
   religious (1..4)                    ``Lattice(1, 4)``
   age, yrs_married, children, educ    ``Lattice(0, K - 1)`` over the index of the K coded
                                       levels, mapped back to the level values
   occupation, occupation_husb (1..6)  ``Categorical(6)`` (one-hot)
   affairs (>= 0)                      ``Binary()`` (any affair) and ``HalfLine(low=0)`` on
                                       log1p(affairs) (0 when there is none);
                                       affairs = expm1(amount) if the binary is 1, else 0
   ==================================  =====================================================

2. ``encode`` turns the table into rows of that domain; ``train`` fits an
   ``ob.models.DriftMLP`` with ``ob.fit``; ``synthesize`` samples rows with the
   bridge and ``decode`` maps them back to a DataFrame in the original units and
   dtypes.
3. ``independent_baseline`` draws every column independently from its empirical
   marginal: it matches each marginal (up to sampling noise) but none of the joint
   structure, so it is the fair yardstick for the joint metric.
4. ``evaluate`` scores both: per column the validity (share of values in the
   column's allowed set or range) and the fidelity (total variation distance for
   discrete columns, Kolmogorov-Smirnov statistic for ``affairs``), plus the
   pairwise association error (mean absolute difference of the Pearson correlation
   matrices of real and synthetic rows over the column pairs, in the original units).
5. ``plot_marginals``, ``write_metrics`` and ``write_csv`` write
   ``marginals.png``, ``metrics.json``, ``metrics.csv`` and ``synthetic.csv``
   (each written to a temporary file in the output folder, then ``os.replace``-d).

``run_demo`` runs it all; ``python -m omegabridge demo`` (``omegabridge.cli``) is its
command line. statsmodels and pandas come with the ``demo`` extra:
``pip install 'omegabridge[demo]'``.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

import omegabridge as ob

__all__ = [
    "DemoConfig",
    "QUICK",
    "COLUMNS",
    "MissingDependencyError",
    "require_demo_dependencies",
    "load_fair",
    "build_domain",
    "encode",
    "decode",
    "make_bridge",
    "train",
    "synthesize",
    "independent_baseline",
    "validity",
    "total_variation",
    "ks_statistic",
    "correlation_error",
    "evaluate",
    "format_table",
    "plot_marginals",
    "write_metrics",
    "write_csv",
    "run_demo",
]

INSTALL_HINT = "pip install 'omegabridge[demo]'   (or: pip install statsmodels pandas)"

# ----------------------------------------------------------------------------------------
# The table's columns and their allowed values
# ----------------------------------------------------------------------------------------
#: Coded ordinal columns: the allowed levels, in order (the lattice runs over their index).
ORDINAL_LEVELS: dict[str, tuple[float, ...]] = {
    "age": (17.5, 22.0, 27.0, 32.0, 37.0, 42.0),
    "yrs_married": (0.5, 2.5, 6.0, 9.0, 13.0, 16.5, 23.0),
    "children": (0.0, 1.0, 2.0, 3.0, 4.0, 5.5),
    "educ": (9.0, 12.0, 14.0, 16.0, 17.0, 20.0),
}
#: Integer scales: the lattice runs over the values themselves.
INTEGER_RANGES: dict[str, tuple[int, int]] = {"rate_marriage": (1, 5), "religious": (1, 4)}
#: Nominal columns coded 1..K: one-hot categoricals.
CATEGORIES: dict[str, int] = {"occupation": 6, "occupation_husb": 6}
#: The non-negative amount with exact zeros.
AMOUNT = "affairs"
#: The table's columns in its own order.
COLUMNS: tuple[str, ...] = (
    "rate_marriage",
    "age",
    "yrs_married",
    "children",
    "religious",
    "educ",
    "occupation",
    "occupation_husb",
    "affairs",
)
DISCRETE: tuple[str, ...] = tuple(c for c in COLUMNS if c != AMOUNT)


def allowed_values(column: str) -> tuple[float, ...] | None:
    """The allowed values of a discrete column, or None for ``affairs`` (any finite value >= 0).

    >>> allowed_values("religious")
    (1.0, 2.0, 3.0, 4.0)
    >>> allowed_values("affairs") is None
    True
    """
    if column in ORDINAL_LEVELS:
        return ORDINAL_LEVELS[column]
    if column in INTEGER_RANGES:
        low, high = INTEGER_RANGES[column]
        return tuple(float(v) for v in range(low, high + 1))
    if column in CATEGORIES:
        return tuple(float(v) for v in range(1, CATEGORIES[column] + 1))
    if column == AMOUNT:
        return None
    raise KeyError(f"unknown column {column!r}")


# ----------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoConfig:
    """Everything a demo run depends on. The defaults are the measured full-size run.

    ``rows=None`` samples as many rows as the data has. ``threads`` sets
    ``torch.set_num_threads`` (0 keeps torch's own choice).
    """

    output: str = "omegabridge-demo"
    iterations: int = 6000
    rows: int | None = None
    seed: int = 0
    steps: int = 200
    schedule_a: float = 3.0
    schedule_b: float = 16.0
    hidden: int = 256
    depth: int = 3
    batch_size: int = 512
    learning_rate: float = 3e-3
    weight: str = "remaining"
    sample_batch_size: int = 8192
    threads: int = 1
    progress: bool = True
    quick: bool = False


#: Tiny sizes for tests and smoke runs (seconds, not minutes); quality is not the point.
QUICK = dict(iterations=40, rows=300, steps=20, hidden=32, depth=1, batch_size=64)


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------
class MissingDependencyError(RuntimeError):
    """The demo's optional dependencies (statsmodels, pandas) are not installed."""


def require_demo_dependencies() -> None:
    """Raise ``MissingDependencyError`` with the install command when statsmodels or pandas is missing."""
    missing = []
    for module in ("pandas", "statsmodels"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise MissingDependencyError(
            f"the omegabridge demo needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed. Install the demo extra:\n    {INSTALL_HINT}"
        )


def load_fair():
    """statsmodels' ``fair`` table as a DataFrame (6366 rows, the 9 columns of ``COLUMNS``), checked."""
    require_demo_dependencies()
    from statsmodels.api import datasets

    data = datasets.fair.load_pandas().data
    missing = [c for c in COLUMNS if c not in data.columns]
    if missing:
        raise ValueError(f"statsmodels' fair table lacks the columns {missing}; got {list(data.columns)}")
    data = data[list(COLUMNS)].copy()
    shares = validity(data)
    bad = {c: s for c, s in shares.items() if s != 1.0}
    if bad:
        raise ValueError(f"statsmodels' fair table has values outside the expected sets: {bad}")
    return data


def build_domain() -> ob.Product:
    """The hand-declared domain: one factor per column, two for ``affairs`` (see the module docstring).

    >>> build_domain().width
    20
    """
    factors: list[ob.Domain] = []
    for column in COLUMNS:
        if column in INTEGER_RANGES:
            factors.append(ob.Lattice(*INTEGER_RANGES[column]))
        elif column in ORDINAL_LEVELS:
            factors.append(ob.Lattice(0, len(ORDINAL_LEVELS[column]) - 1))
        elif column in CATEGORIES:
            factors.append(ob.Categorical(CATEGORIES[column]))
        else:
            factors += [ob.Binary(), ob.HalfLine(low=0.0)]
    return ob.Product(factors)


def _layout() -> dict[str, slice]:
    """Columns of the flat layout each table column occupies (``affairs`` gets the binary and the amount)."""
    result: dict[str, slice] = {}
    offset = 0
    for column in COLUMNS:
        width = CATEGORIES.get(column, 2 if column == AMOUNT else 1)
        result[column] = slice(offset, offset + width)
        offset += width
    return result


def encode(data) -> torch.Tensor:
    """Rows of the domain (float32, width 20) for a DataFrame with the ``COLUMNS``; raises on unknown values."""
    layout = _layout()
    rows = len(data)
    out = np.zeros((rows, build_domain().width), dtype=np.float64)
    for column in COLUMNS:
        values = data[column].to_numpy(dtype=np.float64)
        where = layout[column]
        if column == AMOUNT:
            if not (np.isfinite(values).all() and (values >= 0).all()):
                raise ValueError(f"{column}: values must be finite and >= 0")
            out[:, where.start] = values > 0
            out[:, where.start + 1] = np.log1p(values)
            continue
        levels = np.asarray(allowed_values(column))
        index = np.searchsorted(levels, values)
        index = np.clip(index, 0, len(levels) - 1)
        if not (levels[index] == values).all():
            raise ValueError(f"{column}: values outside {levels.tolist()}: {sorted(set(values[levels[index] != values]))[:5]}")
        if column in ORDINAL_LEVELS:
            out[:, where.start] = index
        elif column in INTEGER_RANGES:
            out[:, where.start] = values
        else:
            out[np.arange(rows), where.start + index] = 1.0
    return torch.from_numpy(out).to(torch.float32)


def decode(x: torch.Tensor, dtypes=None):
    """A DataFrame in the original units from rows of the domain (``x`` must lie in it).

    ``dtypes`` (a column -> dtype mapping, e.g. the real table's ``.dtypes``) sets the
    output dtypes; the default is float64, the fair table's own.
    """
    import pandas as pd

    x = x.detach().to(torch.float64).cpu().numpy()
    layout = _layout()
    columns = {}
    for column in COLUMNS:
        where = layout[column]
        if column == AMOUNT:
            any_affair = x[:, where.start] == 1.0
            amount = x[:, where.start + 1]
            columns[column] = np.where(any_affair, np.expm1(amount), 0.0)
        elif column in ORDINAL_LEVELS:
            levels = np.asarray(ORDINAL_LEVELS[column])
            columns[column] = levels[np.rint(x[:, where.start]).astype(np.int64)]
        elif column in INTEGER_RANGES:
            columns[column] = x[:, where.start]
        else:
            columns[column] = np.argmax(x[:, where], axis=1).astype(np.float64) + 1.0
    frame = pd.DataFrame(columns, columns=list(COLUMNS))
    if dtypes is not None:
        frame = frame.astype({c: dtypes[c] for c in COLUMNS})
    return frame


# ----------------------------------------------------------------------------------------
# Model, training, sampling
# ----------------------------------------------------------------------------------------
def make_bridge(config: DemoConfig) -> ob.Bridge:
    """The bridge on ``build_domain()`` with schedule Exp(a, b) and ``config.steps`` steps.

    beta(T) = b (1 - e^{-a}) is the variance the process spreads over by the end. With the
    default a = 3, b = 16 it is 15.2 (sd 3.9), wider than the lattices' 4 to 7 points and the
    amount's 0..4.1 range, so the bridge's own prior (a Gaussian around the start 0) is
    nearly flat over them and the learned drift has little to undo. Measured mean / max TV
    over the discrete columns (seed 0, 512-row batches): at 3000 iterations 0.053 / 0.079
    for b = 2, 0.045 / 0.078 for b = 4, 0.041 / 0.065 for b = 8, 0.038 / 0.056 for b = 16;
    at 4000 iterations 0.034 / 0.050 for b = 16 and 0.038 / 0.053 for b = 32. The step
    count barely matters (100, 200 and 800 steps gave the same TV within noise): 200.
    """
    schedule = ob.schedules.Exp(a=config.schedule_a, b=config.schedule_b)
    return ob.Bridge(build_domain(), schedule, steps=config.steps)


def train(bridge: ob.Bridge, data: torch.Tensor, config: DemoConfig) -> tuple[torch.nn.Module, list[float]]:
    """Fit a ``DriftMLP`` to the encoded rows; returns the model (in eval mode) and the loss curve."""
    torch.manual_seed(config.seed)
    options = dict(hidden=config.hidden, depth=config.depth)
    if "data" in inspect.signature(ob.models.DriftMLP).parameters:
        options["data"] = data  # per-column moments for the model's input standardisation
    model = ob.models.DriftMLP(bridge, **options)
    losses = ob.fit(
        bridge,
        model,
        data,
        iterations=config.iterations,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight=config.weight,
        seed=config.seed,
        progress=config.progress,
    )
    model.eval()
    return model, losses


def synthesize(bridge: ob.Bridge, model, rows: int, config: DemoConfig) -> torch.Tensor:
    """``rows`` samples of the bridge driven by ``model`` (flat layout, every row in the domain)."""
    return bridge.sample(
        model,
        n=rows,
        seed=config.seed,
        batch_size=config.sample_batch_size,
        progress=config.progress,
    )


def independent_baseline(data, rows: int, seed: int):
    """Each column drawn independently (with replacement) from its own empirical marginal."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {c: rng.choice(data[c].to_numpy(), size=rows, replace=True) for c in COLUMNS}, columns=list(COLUMNS)
    ).astype(data.dtypes.to_dict())


# ----------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------
def validity(frame) -> dict[str, float]:
    """Per column, the share of rows whose value is allowed (discrete: in the level set; affairs: finite, >= 0)."""
    shares = {}
    for column in COLUMNS:
        values = frame[column].to_numpy(dtype=np.float64)
        levels = allowed_values(column)
        if levels is None:
            ok = np.isfinite(values) & (values >= 0)
        else:
            ok = np.isin(values, np.asarray(levels))
        shares[column] = float(ok.mean()) if len(values) else float("nan")
    return shares


def total_variation(real, synthetic) -> float:
    """Total variation distance 0.5 sum_v |P(v) - Q(v)| of two discrete samples.

    >>> total_variation(np.array([1, 1, 2, 2]), np.array([1, 2, 2, 2]))
    0.25
    """
    real = np.asarray(real)
    synthetic = np.asarray(synthetic)
    values = np.union1d(real, synthetic)
    p = np.array([(real == v).mean() for v in values])
    q = np.array([(synthetic == v).mean() for v in values])
    return float(0.5 * np.abs(p - q).sum())


def ks_statistic(real, synthetic) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup_x |F(x) - G(x)| (ties and atoms handled exactly).

    >>> ks_statistic(np.array([0.0, 0.0, 1.0, 2.0]), np.array([0.0, 1.0, 1.0, 2.0]))
    0.25
    """
    real = np.sort(np.asarray(real, dtype=np.float64))
    synthetic = np.sort(np.asarray(synthetic, dtype=np.float64))
    points = np.union1d(real, synthetic)
    f = np.searchsorted(real, points, side="right") / len(real)
    g = np.searchsorted(synthetic, points, side="right") / len(synthetic)
    return float(np.abs(f - g).max())


def correlation_error(real, synthetic) -> float:
    """Mean |corr_real - corr_synthetic| over the column pairs (Pearson, original units).

    A constant synthetic column has no correlation; it counts as 0 there.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.nan_to_num(np.corrcoef(real[list(COLUMNS)].to_numpy(dtype=np.float64), rowvar=False))
        b = np.nan_to_num(np.corrcoef(synthetic[list(COLUMNS)].to_numpy(dtype=np.float64), rowvar=False))
    upper = np.triu_indices(len(COLUMNS), k=1)
    return float(np.abs(a - b)[upper].mean())


def fidelity(real, synthetic) -> dict[str, float]:
    """Per column: total variation (discrete columns) or KS statistic (``affairs``)."""
    return {
        c: ks_statistic(real[c], synthetic[c]) if c == AMOUNT else total_variation(real[c], synthetic[c])
        for c in COLUMNS
    }


def evaluate(real, synthetic: dict) -> dict:
    """Scores of each synthetic table (name -> DataFrame) against ``real``.

    Returns ``{"columns": {column: {"metric", "<name>_validity", "<name>_fidelity", ...}},
    "joint": {"<name>_correlation_error"}, "summary": {...}}``.
    """
    columns = {c: {"metric": "KS" if c == AMOUNT else "TV"} for c in COLUMNS}
    joint: dict[str, float] = {}
    summary: dict[str, float] = {}
    for name, frame in synthetic.items():
        valid = validity(frame)
        fid = fidelity(real, frame)
        for c in COLUMNS:
            columns[c][f"{name}_validity"] = valid[c]
            columns[c][f"{name}_fidelity"] = fid[c]
        joint[f"{name}_correlation_error"] = correlation_error(real, frame)
        discrete = [fid[c] for c in DISCRETE]
        summary[f"{name}_min_validity"] = min(valid.values())
        summary[f"{name}_all_rows_valid"] = float(
            np.mean(np.all([_valid_mask(frame, c) for c in COLUMNS], axis=0))
        )
        summary[f"{name}_mean_tv"] = float(np.mean(discrete))
        summary[f"{name}_max_tv"] = float(np.max(discrete))
        summary[f"{name}_affairs_ks"] = fid[AMOUNT]
        summary[f"{name}_correlation_error"] = joint[f"{name}_correlation_error"]
    return {"columns": columns, "joint": joint, "summary": summary}


def _valid_mask(frame, column: str) -> np.ndarray:
    values = frame[column].to_numpy(dtype=np.float64)
    levels = allowed_values(column)
    return (np.isfinite(values) & (values >= 0)) if levels is None else np.isin(values, np.asarray(levels))


def format_table(metrics: dict, names: tuple[str, ...] = ("omegabridge", "independent")) -> str:
    """The metrics as a plain-text table: one line per column, then the joint metric and the summary."""
    labels = {"omegabridge": "omegabridge", "independent": "indep."}
    head = f"{'column':<16} {'metric':>6}"
    for name in names:
        head += f" {labels.get(name, name) + ' valid':>18} {labels.get(name, name) + ' fid.':>17}"
    lines = [head, "-" * len(head)]
    for column, row in metrics["columns"].items():
        line = f"{column:<16} {row['metric']:>6}"
        for name in names:
            line += f" {row[f'{name}_validity']:>17.2%} {row[f'{name}_fidelity']:>17.4f}"
        lines.append(line)
    lines.append("-" * len(head))
    summary = metrics["summary"]
    rows = [
        ("mean TV (discrete)", "mean_tv", "{:.4f}"),
        ("max TV (discrete)", "max_tv", "{:.4f}"),
        ("KS (affairs)", "affairs_ks", "{:.4f}"),
        ("corr. error (joint)", "correlation_error", "{:.4f}"),
        ("rows fully valid", "all_rows_valid", "{:.2%}"),
    ]
    for label, key, fmt in rows:
        line = f"{label:<23}"
        for name in names:
            line += f" {labels.get(name, name)} {fmt.format(summary[f'{name}_{key}']):>9}"
        lines.append(line)
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# Files (each written to a temporary file in the same folder, then os.replace-d)
# ----------------------------------------------------------------------------------------
def _atomic_write(path: str, write: Callable[[str], None]) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return path


def write_csv(frame, path: str) -> str:
    """Write ``frame`` to ``path`` as CSV (no index), atomically."""
    return _atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_metrics(metrics: dict, json_path: str, csv_path: str) -> tuple[str, str]:
    """Write the metrics as JSON (everything) and CSV (one row per column), atomically."""
    import pandas as pd

    def dump(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(metrics, handle, indent=2, sort_keys=False)
            handle.write("\n")

    table = pd.DataFrame.from_dict(metrics["columns"], orient="index")
    table.index.name = "column"
    _atomic_write(json_path, dump)
    _atomic_write(csv_path, lambda tmp: table.to_csv(tmp))
    return json_path, csv_path


def plot_marginals(real, synthetic, path: str, baseline=None) -> str:
    """One small panel per column: real vs synthetic frequencies (bars; ``affairs`` as log1p histogram)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(3, 3, figsize=(12, 9))
    series = [("real", real, "tab:gray"), ("omegabridge", synthetic, "tab:blue")]
    if baseline is not None:
        series.append(("independent", baseline, "tab:orange"))
    for axis, column in zip(axes.flat, COLUMNS):
        if column == AMOUNT:
            share = ", ".join(f"{name} {(frame[column] == 0).mean():.1%}" for name, frame, _ in series)
            bins = np.linspace(0.0, float(np.log1p(real[column].max())) * 1.05, 25)
            for name, frame, colour in series:
                positive = np.log1p(frame[column].to_numpy()[frame[column].to_numpy() > 0])
                weights = np.full(len(positive), 1.0 / len(frame))
                axis.hist(positive, bins=bins, weights=weights, histtype="step", color=colour, label=name,
                          lw=2.5 if name == "real" else 1.3)
            axis.set_title(f"log1p({column}) where > 0 (share of all rows)\nzeros: {share}", fontsize=8)
        else:
            levels = np.asarray(allowed_values(column))
            width = 0.8 / len(series)
            for position, (name, frame, colour) in enumerate(series):
                shares = [(frame[column].to_numpy() == v).mean() for v in levels]
                axis.bar(np.arange(len(levels)) + (position - (len(series) - 1) / 2) * width, shares, width,
                         color=colour, label=name)
            axis.set_xticks(np.arange(len(levels)))
            axis.set_xticklabels([f"{v:g}" for v in levels], fontsize=8)
            axis.set_title(column, fontsize=10)
        axis.tick_params(labelsize=8)
    axes.flat[0].legend(fontsize=8)
    figure.suptitle("fair: real vs synthetic marginals (share of rows)")
    figure.tight_layout()

    def save(tmp: str) -> None:
        figure.savefig(tmp, format="png", dpi=90)

    try:
        _atomic_write(path, save)
    finally:
        plt.close(figure)
    return path


# ----------------------------------------------------------------------------------------
# The whole job
# ----------------------------------------------------------------------------------------
def run_demo(config: DemoConfig, log: Callable[[str], None] = print) -> dict:
    """Run the demo end to end, print the metrics table and the file paths; return the metrics dict."""
    require_demo_dependencies()
    if config.threads:
        torch.set_num_threads(config.threads)
    times: dict[str, float] = {}
    start = time.perf_counter()
    output = os.path.abspath(config.output)
    os.makedirs(output, exist_ok=True)  # fail early (before training) if the folder cannot be made

    real = load_fair()
    x = encode(real)
    bridge = make_bridge(config)
    rows = len(real) if config.rows is None else int(config.rows)
    if rows < 2:
        raise ValueError(f"rows must be >= 2, got {rows}")
    log(
        f"omegabridge demo: fair table, {len(real)} rows x {len(COLUMNS)} columns -> domain of width {bridge.width}\n"
        f"  {bridge.domain!r}\n"
        f"  schedule {bridge.schedule!r} (beta(T) = {bridge.time_grid.beta_end:.3g}), {bridge.steps} steps; "
        f"DriftMLP(hidden={config.hidden}, depth={config.depth}); {config.iterations} iterations of batch "
        f"{config.batch_size}; {rows} synthetic rows; seed {config.seed}"
    )
    times["load"] = time.perf_counter() - start

    mark = time.perf_counter()
    model, losses = train(bridge, x, config)
    times["train"] = time.perf_counter() - mark

    mark = time.perf_counter()
    sample = synthesize(bridge, model, rows, config)
    times["sample"] = time.perf_counter() - mark
    inside = float(bridge.domain.contains(sample).to(torch.float64).mean())

    mark = time.perf_counter()
    synthetic = decode(sample, real.dtypes)
    baseline = independent_baseline(real, rows, config.seed)
    metrics = evaluate(real, {"omegabridge": synthetic, "independent": baseline})
    times["metrics"] = time.perf_counter() - mark

    mark = time.perf_counter()
    paths = {
        "marginals": plot_marginals(real, synthetic, os.path.join(output, "marginals.png"), baseline),
        "synthetic": write_csv(synthetic, os.path.join(output, "synthetic.csv")),
    }
    times["write"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - start
    tail = losses[-max(1, len(losses) // 10):]
    metrics["run"] = {
        "config": {k: v for k, v in asdict(config).items() if k not in ("output", "progress")},
        "rows_real": len(real),
        "rows_synthetic": rows,
        "domain": repr(bridge.domain),
        "schedule": repr(bridge.schedule),
        "beta_end": bridge.time_grid.beta_end,
        "rows_in_domain": inside,
        "final_loss": float(np.mean(tail)),
        "seconds": times,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    paths["metrics_json"], paths["metrics_csv"] = write_metrics(
        metrics, os.path.join(output, "metrics.json"), os.path.join(output, "metrics.csv")
    )
    metrics["files"] = paths

    log("")
    log(format_table(metrics))
    log("")
    log(
        "validity: share of values in the column's allowed set (affairs: finite and >= 0); fidelity: total "
        "variation distance (TV) or Kolmogorov-Smirnov statistic (KS), 0 is perfect; corr. error: mean "
        "|Pearson corr(real) - corr(synthetic)| over the 36 column pairs. 'indep.' samples every column "
        "independently from its empirical marginal."
    )
    log(
        f"time: {times['total']:.1f} s (train {times['train']:.1f} s, sample {times['sample']:.1f} s, "
        f"{torch.get_num_threads()} torch thread(s))"
    )
    log(f"wrote {output}{os.sep}: marginals.png, metrics.json, metrics.csv, synthetic.csv")
    return metrics
