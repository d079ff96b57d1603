"""Quality metrics for synthetic tables: a real DataFrame against synthetic DataFrames.

Every synthetic frame has the real frame's column names. The metrics, one function each:

* **Marginal fidelity** (``column_fidelity``): per column, the total variation distance
  (``total_variation``, for discrete columns) or the two-sample Kolmogorov-Smirnov statistic
  (``ks_statistic``, for continuous ones), plus the total variation of the is-missing
  indicator (``missing_tv``). ``is_discrete`` decides which column is which when the caller
  does not say.
* **Joint structure** (``association_matrix``, ``association_error``): one association per
  column pair -- Pearson correlation (numeric-numeric, signed), Cramér's V
  (discrete-discrete) or the correlation ratio eta (discrete-numeric) -- and the mean
  absolute difference of the real and synthetic matrices over the pairs.
* **Machine-learning efficacy** (``efficacy``): a gradient-boosting model trained on the
  real training rows and one trained on the synthetic rows, both scored on held-out real
  rows (F1 or R^2); the ratio synthetic / real says how much of the real data's usefulness
  the synthetic data keeps.

``evaluate`` runs them all for several synthetic frames and ``format_table`` prints the
result. Validity (the share of values a schema allows) is not computed here: it needs the
schema, so the caller adds ``"<name>_validity"`` entries, which ``format_table`` prints.

The module stands alone: numpy and pandas, and scikit-learn (imported only by
``efficacy``; ``pip install scikit-learn``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from omegabridge.tabular import times

__all__ = [
    "total_variation",
    "ks_statistic",
    "is_discrete",
    "column_fidelity",
    "association_matrix",
    "association_error",
    "efficacy",
    "evaluate",
    "format_table",
]

#: ``efficacy`` one-hot encodes at most this many levels of a discrete feature (the most
#: frequent ones over the three frames); the rest share one "other" column. A free-text or
#: identifier column would otherwise turn into thousands of dense feature columns.
MAX_ONE_HOT_LEVELS = 100


# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------
def _series(values) -> pd.Series:
    """``values`` as a 1-D Series (its index is irrelevant to every metric here)."""
    if isinstance(values, pd.Series):
        return values
    if isinstance(values, pd.DataFrame) or np.ndim(values) > 1:
        raise ValueError(f"expected a 1-D sample, got shape {np.shape(values)}")
    return pd.Series(values)


def _numeric(values) -> np.ndarray:
    """A numeric sample as float64, missing values (NaN, None, pd.NA) as NaN; strings raise. Datetimes and
    timedeltas count as seconds (a datetime since 1970-01-01 UTC)."""
    series = _series(values)
    if _is_time(series):
        return _seconds(series)
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _coerce_numeric(series: pd.Series) -> np.ndarray:
    """Like ``_numeric`` but values that are not numbers become NaN (``efficacy``'s features)."""
    if _is_time(series):
        return _seconds(series)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _is_time(series: pd.Series) -> bool:
    return times.is_time_dtype(series.dtype)


def _seconds(series: pd.Series) -> np.ndarray:
    """Datetimes (as UTC instants since 1970) or timedeltas in seconds, NaT as NaN, at any resolution."""
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    unit = series.dt.unit
    ticks = series.to_numpy(dtype=f"{'m' if pd.api.types.is_timedelta64_dtype(series.dtype) else 'M'}8[{unit}]")
    result = ticks.view(np.int64).astype(np.float64) / {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[unit]
    result[np.isnat(ticks)] = np.nan
    return result


def _is_numeric(series: pd.Series) -> bool:
    """Numbers (not booleans), datetimes and timedeltas: the columns KS and correlations can score."""
    if _is_time(series):
        return True
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _check_columns(real: pd.DataFrame, synthetic: pd.DataFrame, name: str = "synthetic") -> None:
    missing = [c for c in real.columns if c not in synthetic.columns]
    extra = [c for c in synthetic.columns if c not in real.columns]
    if missing or extra:
        raise ValueError(
            f"the columns of the synthetic frame {name!r} differ from the real frame's: "
            f"missing {missing}, unexpected {extra}"
        )


def _resolve_discrete(real: pd.DataFrame, discrete) -> set:
    """The discrete columns: the caller's set (checked) or ``is_discrete`` on each real column."""
    if discrete is None:
        return {c for c in real.columns if is_discrete(real[c])}
    unknown = [c for c in discrete if c not in real.columns]
    if unknown:
        raise ValueError(f"discrete names columns the frame does not have: {unknown}")
    return set(discrete)


# ----------------------------------------------------------------------------------------
# Marginals
# ----------------------------------------------------------------------------------------
def _shares(values) -> tuple[pd.Series, float]:
    """Share of each non-missing value and the share of missing values, both over all rows."""
    series = _series(values)
    missing = series.isna()
    if isinstance(series.dtype, pd.CategoricalDtype):
        # Categoricals align by their categories; plain values align across any two samples.
        series = series.astype(object)
    # value_counts(dropna=False) would count None, NaN and pd.NA as three different values,
    # so the missing ones are counted apart, as one value.
    counts = series[~missing].value_counts()
    n = len(series)
    return counts / n, float(missing.sum()) / n


def total_variation(real, synthetic) -> float:
    """Total variation distance 0.5 sum_v |P(v) - Q(v)| of two 1-D samples.

    Any hashable values (numbers, strings, booleans); the missing values (NaN, None,
    pd.NA) together count as one value, "missing". An empty sample is at distance 1 from
    a non-empty one and 0 from another empty one.

    >>> total_variation([1, 1, 2, 2], [1, 2, 2, 2])
    0.25
    >>> total_variation(["a", "b", None, None], ["a", "a", float("nan"), "c"])
    0.5
    """
    real, synthetic = _series(real), _series(synthetic)
    if len(real) == 0 or len(synthetic) == 0:
        return float(len(real) != len(synthetic))
    p, p_missing = _shares(real)
    q, q_missing = _shares(synthetic)
    difference = p.sub(q, fill_value=0.0)  # aligned on the union of the values
    return float(0.5 * (np.abs(difference.to_numpy(dtype=np.float64)).sum() + abs(p_missing - q_missing)))


def ks_statistic(real, synthetic) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup_x |F(x) - G(x)| (ties and atoms handled exactly).

    Missing values (NaN, None, pd.NA) are dropped first: the statistic compares the
    distributions of the values that are there, and the missing rates are measured apart
    (``column_fidelity``'s ``missing_tv``, the total variation of the is-missing
    indicator). +-inf are kept as values. If one side has no value left the statistic is 1
    (0 if neither has one).

    >>> ks_statistic([0.0, 0.0, 1.0, 2.0], [0.0, 1.0, 1.0, 2.0])
    0.25
    >>> ks_statistic([1.0, None, 3.0], [1.0, 3.0])
    0.0
    """
    real = _numeric(real)
    synthetic = _numeric(synthetic)
    real = np.sort(real[~np.isnan(real)])
    synthetic = np.sort(synthetic[~np.isnan(synthetic)])
    if len(real) == 0 or len(synthetic) == 0:
        return float(len(real) != len(synthetic))
    # Both empirical CDFs evaluated just right of every observed point: the supremum of the
    # difference of two step functions is attained at one of their jumps.
    points = np.union1d(real, synthetic)
    f = np.searchsorted(real, points, side="right") / len(real)
    g = np.searchsorted(synthetic, points, side="right") / len(synthetic)
    return float(np.abs(f - g).max())


def is_discrete(series, max_levels: int = 20) -> bool:
    """Whether a column is scored as discrete (total variation) rather than continuous (KS).

    True for non-numeric dtypes (object, string, category, ...) and booleans, and for
    numeric, datetime and timedelta columns with at most ``max_levels`` distinct non-missing values.

    >>> is_discrete(pd.Series([1.0, 2.0, 2.0, None]))
    True
    >>> is_discrete(pd.Series(np.arange(100.0)))
    False
    >>> is_discrete(pd.Series(["a", "b"])), is_discrete(pd.Series([True, False]))
    (True, True)
    """
    series = _series(series)
    if not _is_numeric(series):
        return True
    return int(series.nunique(dropna=True)) <= max_levels


def column_fidelity(
    real: pd.DataFrame, synthetic: pd.DataFrame, discrete: set[str] | None = None
) -> dict[str, dict]:
    """Per column of ``real``: ``{"metric": "TV" | "KS", "value": float, "missing_tv": float}``.

    ``discrete=None`` decides each column with ``is_discrete`` on the real column. A
    column that is not numeric in the real frame is scored with TV even when ``discrete``
    leaves it out (KS needs numbers). For TV columns "missing" is one of the values, so
    ``value`` includes the difference in missing rates; KS drops missing values and
    ``missing_tv`` (the TV of the is-missing indicator, 0 when neither frame has a
    missing value) reports it.

    >>> real = pd.DataFrame({"x": [1.0, 2.0, 3.0, None], "c": ["a", "a", "b", "b"]})
    >>> synthetic = pd.DataFrame({"x": [2.0, 3.0, 4.0, 5.0], "c": ["a", "b", "b", "b"]})
    >>> column_fidelity(real, synthetic, discrete={"c"})["x"]
    {'metric': 'KS', 'value': 0.5, 'missing_tv': 0.25}
    >>> column_fidelity(real, synthetic, discrete={"c"})["c"]
    {'metric': 'TV', 'value': 0.25, 'missing_tv': 0.0}
    """
    _check_columns(real, synthetic)
    discrete = _resolve_discrete(real, discrete)
    result: dict[str, dict] = {}
    for column in real.columns:
        a, b = real[column], synthetic[column]
        use_tv = column in discrete or not _is_numeric(a)
        result[column] = {
            "metric": "TV" if use_tv else "KS",
            "value": total_variation(a, b) if use_tv else ks_statistic(a, b),
            "missing_tv": total_variation(a.isna(), b.isna()),
        }
    return result


# ----------------------------------------------------------------------------------------
# Associations
# ----------------------------------------------------------------------------------------
def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    # A constant column has no correlation: 0, decided exactly (min == max) because
    # x - x.mean() of a constant float column is rounding noise, not zero.
    if len(x) < 2 or x.min() == x.max() or y.min() == y.max():
        return 0.0
    xc, yc = x - x.mean(), y - y.mean()
    return float(np.clip((xc @ yc) / np.sqrt((xc @ xc) * (yc @ yc)), -1.0, 1.0))


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    # a and b are integer codes; the crosstab holds only observed levels, so no margin is 0.
    table = pd.crosstab(a, b).to_numpy(dtype=np.float64)
    levels = min(table.shape)
    if levels < 2:
        return 0.0
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = ((table - expected) ** 2 / expected).sum()
    return float(np.clip(np.sqrt(chi2 / (n * (levels - 1))), 0.0, 1.0))


def _eta(codes: np.ndarray, y: np.ndarray) -> float:
    if len(y) == 0 or y.min() == y.max():
        return 0.0
    counts = np.bincount(codes).astype(np.float64)
    seen = counts > 0
    if seen.sum() < 2:  # one group explains nothing (exactly 0, not rounding noise)
        return 0.0
    sums = np.bincount(codes, weights=y)
    mean = y.mean()
    between = (counts[seen] * (sums[seen] / counts[seen] - mean) ** 2).sum()
    total = ((y - mean) ** 2).sum()
    return float(np.clip(np.sqrt(between / total), 0.0, 1.0))


def association_matrix(frame: pd.DataFrame, discrete: set[str]) -> pd.DataFrame:
    """Column x column association, symmetric, 1 on the diagonal.

    * numeric-numeric: Pearson correlation, in [-1, 1] (signed);
    * discrete-discrete: Cramér's V (no bias correction), in [0, 1], from the contingency
      table (``pd.crosstab``);
    * discrete-numeric: the correlation ratio eta = sqrt(between-group variance / total
      variance), in [0, 1].

    Columns in ``discrete`` and non-numeric columns are discrete; the rest are numeric.
    Each pair uses the rows where both values are present (non-finite numbers count as
    missing). A constant column (or a pair with fewer than two rows left) has association 0
    with every other column.

    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [4.0, 3.0, 2.0, 1.0],
    ...                       "c": ["a", "a", "b", "b"]})
    >>> association_matrix(frame, {"c"}).round(3).to_numpy().tolist()
    [[1.0, -1.0, 0.894], [-1.0, 1.0, 0.894], [0.894, 0.894, 1.0]]
    """
    unknown = [c for c in discrete if c not in frame.columns]
    if unknown:
        raise ValueError(f"discrete names columns the frame does not have: {unknown}")
    columns = list(frame.columns)
    kinds, values, present = [], [], []
    for column in columns:
        series = frame[column]
        if column in discrete or not _is_numeric(series):
            if isinstance(series.dtype, pd.CategoricalDtype):
                series = series.astype(object)
            codes = pd.factorize(series, use_na_sentinel=True)[0]  # missing -> -1
            kinds.append("discrete")
            values.append(codes)
            present.append(codes >= 0)
        else:
            x = _numeric(series)
            kinds.append("numeric")
            values.append(x)
            present.append(np.isfinite(x))
    k = len(columns)
    result = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            rows = present[i] & present[j]
            a, b = values[i][rows], values[j][rows]
            if kinds[i] == kinds[j] == "numeric":
                value = _pearson(a, b)
            elif kinds[i] == kinds[j] == "discrete":
                value = _cramers_v(a, b)
            elif kinds[i] == "discrete":
                value = _eta(a, b)
            else:
                value = _eta(b, a)
            result[i, j] = result[j, i] = value
    return pd.DataFrame(result, index=columns, columns=columns)


def _mean_pair_difference(a: pd.DataFrame, b: pd.DataFrame) -> float:
    upper = np.triu_indices(len(a), k=1)
    if len(upper[0]) == 0:
        return float("nan")
    return float(np.abs(a.to_numpy() - b.to_numpy())[upper].mean())


def association_error(real: pd.DataFrame, synthetic: pd.DataFrame, discrete: set[str] | None = None) -> float:
    """Mean |A_real - A_synthetic| over the column pairs (upper triangle of ``association_matrix``).

    ``discrete=None`` decides each column with ``is_discrete`` on the real frame; the
    synthetic frame is read with the same kinds. NaN when there is no pair (one column).

    >>> real = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 2.0, 3.0, 4.0]})
    >>> association_error(real, real)
    0.0
    >>> association_error(real, pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [4.0, 3.0, 2.0, 1.0]}), set())
    2.0
    """
    _check_columns(real, synthetic)
    discrete = _resolve_discrete(real, discrete)
    a = association_matrix(real, discrete)
    b = association_matrix(synthetic[list(real.columns)], discrete)
    return _mean_pair_difference(a, b)


# ----------------------------------------------------------------------------------------
# Machine-learning efficacy
# ----------------------------------------------------------------------------------------
def _one_hot(columns: list[pd.Series]) -> list[np.ndarray]:
    """One-hot blocks for one discrete feature in several frames, over the union of their levels."""
    joined = pd.concat(
        [s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s for s in columns], ignore_index=True
    )
    codes, levels = pd.factorize(joined, use_na_sentinel=True)
    missing = codes < 0
    if len(levels) > MAX_ONE_HOT_LEVELS:
        # Keep the most frequent levels (stable: ties by first appearance); the rest -> "other".
        counts = np.bincount(codes[~missing], minlength=len(levels))
        keep = np.sort(np.argsort(-counts, kind="stable")[:MAX_ONE_HOT_LEVELS])
        remap = np.full(len(levels), len(keep))
        remap[keep] = np.arange(len(keep))
        codes = np.where(missing, -1, remap[np.maximum(codes, 0)])
        width = len(keep) + 1
    else:
        width = len(levels)
    if missing.any():
        codes = np.where(missing, width, codes)  # one more column: "missing"
        width += 1
    encoded = np.zeros((len(codes), width))
    encoded[np.arange(len(codes)), codes] = 1.0
    bounds = np.cumsum([0] + [len(s) for s in columns])
    return [encoded[bounds[i] : bounds[i + 1]] for i in range(len(columns))]


def _design(frames: list[pd.DataFrame], features: list[str]) -> list[np.ndarray]:
    """Feature matrices for ``frames`` (the first is the real training frame), encoded alike."""
    blocks: list[list[np.ndarray]] = [[] for _ in frames]
    train = frames[0]
    for column in features:
        if is_discrete(train[column]):
            parts = _one_hot([f[column] for f in frames])
        else:
            numbers = [_coerce_numeric(f[column]) for f in frames]
            numbers = [np.where(np.isfinite(x), x, np.nan) for x in numbers]
            finite = numbers[0][~np.isnan(numbers[0])]
            fill = float(np.median(finite)) if len(finite) else 0.0
            any_missing = any(np.isnan(x).any() for x in numbers)
            parts = []
            for x in numbers:
                filled = np.where(np.isnan(x), fill, x)[:, None]
                parts.append(np.hstack([filled, np.isnan(x)[:, None].astype(np.float64)]) if any_missing else filled)
        for block, part in zip(blocks, parts):
            block.append(part)
    return [np.hstack(b) if b else np.zeros((len(f), 0)) for b, f in zip(blocks, frames)]


def _one_openmp_thread():
    """Gradient boosting on one OpenMP thread: the models are small, and on a small or busy
    machine its thread team beside torch's made one evaluation take 28 s instead of 0.3 s."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _efficacy_many(
    train_real: pd.DataFrame,
    test_real: pd.DataFrame,
    synthetic: dict[str, pd.DataFrame],
    target: str,
    threshold: float | None,
    seed: int,
) -> dict[str, dict]:
    """``efficacy`` for several synthetic frames, fitting the real-data model once."""
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
        from sklearn.metrics import f1_score, r2_score
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "omegabridge.tabular.metrics.efficacy needs scikit-learn, which is not installed: pip install scikit-learn"
        ) from error

    named = {"train_real": train_real, "test_real": test_real, **{f"synthetic {k!r}": v for k, v in synthetic.items()}}
    lacking = [where for where, frame in named.items() if target not in frame.columns]
    if lacking:
        raise ValueError(f"the target column {target!r} is missing from {', '.join(lacking)}")
    features = [c for c in train_real.columns if c != target]
    for where, frame in named.items():
        absent = [c for c in features if c not in frame.columns]
        if absent:
            raise ValueError(f"{where} lacks the feature columns {absent} of train_real")

    # Rows without a target value cannot be scored or learned from.
    frames = [f[f[target].notna()] for f in named.values()]
    for where, frame in zip(named, frames):
        if len(frame) == 0:
            raise ValueError(f"{where} has no row with a value of the target column {target!r}")

    if threshold is not None:
        task = "classification"
        labels = [_numeric(f[target]) > threshold for f in frames]
    elif is_discrete(train_real[target]):
        task = "classification"
        # Class codes over the union of the three frames, so 1 and 1.0 or "a" agree everywhere.
        codes, levels = pd.factorize(pd.concat([f[target].astype(object) for f in frames], ignore_index=True))
        bounds = np.cumsum([0] + [len(f) for f in frames])
        labels = [codes[bounds[i] : bounds[i + 1]] for i in range(len(frames))]
    else:
        task = "regression"
        labels = [_numeric(f[target]) for f in frames]
    matrices = _design(frames, features)

    if task == "classification":
        real_classes = np.unique(np.concatenate(labels[:2]))
        if threshold is not None:
            positive = True
        elif pd.api.types.is_bool_dtype(train_real[target].dtype) and True in set(levels):
            positive = int(list(levels).index(True))
        else:
            # Binary: the minority class of the real training rows (ties: the later code).
            counts = np.array([(labels[0] == c).sum() for c in real_classes])
            positive = real_classes[np.flatnonzero(counts == counts.min())[-1]]
        binary = threshold is not None or len(real_classes) <= 2

        def score(truth: np.ndarray, predicted: np.ndarray) -> float:
            if binary:
                return float(f1_score(truth == positive, predicted == positive, zero_division=0.0))
            return float(f1_score(truth, predicted, labels=real_classes, average="macro", zero_division=0.0))

        def fit_predict(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            # sklearn refuses to fit a classifier on one class; the model that learned only
            # one class predicts it everywhere.
            if len(np.unique(y)) < 2:
                return np.full(len(matrices[1]), y[0], dtype=y.dtype)
            with _one_openmp_thread():
                return HistGradientBoostingClassifier(random_state=seed).fit(x, y).predict(matrices[1])

    else:

        def score(truth: np.ndarray, predicted: np.ndarray) -> float:
            return float(r2_score(truth, predicted))

        def fit_predict(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            with _one_openmp_thread():
                return HistGradientBoostingRegressor(random_state=seed).fit(x, y).predict(matrices[1])

    truth = labels[1]
    real_prediction = fit_predict(matrices[0], labels[0])
    real_score = score(truth, real_prediction)
    results: dict[str, dict] = {}
    for i, name in enumerate(synthetic):
        prediction = fit_predict(matrices[2 + i], labels[2 + i])
        synthetic_score = score(truth, prediction)
        result = {
            "task": task,
            "metric": "f1" if task == "classification" else "r2",
            "real": real_score,
            "synthetic": synthetic_score,
            # A real score <= 0 (useless real model) makes the ratio meaningless.
            "ratio": synthetic_score / real_score if real_score > 0 else float("nan"),
        }
        if task == "classification":
            result["accuracy_real"] = float(np.mean(real_prediction == truth))
            result["accuracy_synthetic"] = float(np.mean(prediction == truth))
        results[name] = result
    return results


def efficacy(
    train_real: pd.DataFrame,
    test_real: pd.DataFrame,
    synthetic: pd.DataFrame,
    target: str,
    *,
    threshold: float | None = None,
    seed: int = 0,
) -> dict:
    """Machine-learning efficacy: train on real or on synthetic rows, score both on ``test_real``.

    The task: with ``threshold``, binary classification of ``frame[target] > threshold``
    (F1 of the True class); otherwise classification if ``is_discrete(train_real[target])``
    (binary: F1 of the class that is the minority in ``train_real``, or of True for a
    boolean target; more classes: macro F1 over the real classes), else regression (R^2).
    Rows with a missing target are dropped.

    Features are all the other columns, encoded alike for the three frames: one-hot for
    discrete or non-numeric columns (levels from the union of the frames, the
    ``MAX_ONE_HOT_LEVELS`` most frequent ones, missing as one more level); numeric columns
    as float with missing (and non-finite) values filled by the ``train_real`` median, plus
    an is-missing column when any frame has one. The models are scikit-learn's
    ``HistGradientBoostingClassifier`` / ``Regressor`` (``random_state=seed``, default
    parameters), one fitted on ``train_real``, one on ``synthetic``. When a training label
    has a single class (sklearn cannot fit that) the model predicts that class everywhere.

    Returns ``{"task", "metric": "f1" | "r2", "real", "synthetic", "ratio"}`` (ratio =
    synthetic / real, NaN when real <= 0) and, for classification, ``"accuracy_real"``,
    ``"accuracy_synthetic"``. Raises ValueError naming the target column when a frame
    lacks it.

    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"x": rng.normal(size=400), "noise": rng.normal(size=400)})
    >>> frame["y"] = frame["x"] > 0
    >>> result = efficacy(frame[:200], frame[200:], frame[:200], "y")
    >>> result["task"], result["metric"], result["real"] > 0.9, result["ratio"]
    ('classification', 'f1', True, 1.0)
    """
    return _efficacy_many(train_real, test_real, {"synthetic": synthetic}, target, threshold, seed)["synthetic"]


# ----------------------------------------------------------------------------------------
# Everything at once, and its table
# ----------------------------------------------------------------------------------------
def evaluate(
    real: pd.DataFrame,
    synthetic: dict[str, pd.DataFrame],
    *,
    discrete: set[str] | None = None,
    target: str | None = None,
    threshold: float | None = None,
    test_real: pd.DataFrame | None = None,
    seed: int = 0,
) -> dict:
    """Every metric of this module for each synthetic frame (name -> DataFrame) against ``real``.

    Returns ``{"columns": {column: {"metric", "<name>_fidelity", "<name>_missing_tv"}},
    "summary": {"<name>_mean_fidelity_discrete", "<name>_mean_fidelity_continuous",
    "<name>_association_error", ...}, "efficacy": {name: efficacy dict}}``. The means are
    over the TV and the KS columns (NaN when there are none). With ``target`` and
    ``test_real`` the summary also has ``"<name>_efficacy"`` (the synthetic score),
    ``"<name>_efficacy_ratio"`` and ``"real_efficacy"`` (``real`` is the training frame);
    otherwise ``"efficacy"`` is empty. ``discrete=None`` decides with ``is_discrete`` on
    ``real``. Validity is not computed here (it needs a schema). Raises ValueError naming
    the columns when a synthetic frame's columns differ from ``real``'s, and naming the
    table when one has no rows.

    >>> real = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "a", "b", "b"]})
    >>> result = evaluate(real, {"copy": real.copy()})
    >>> result["columns"]["c"]
    {'metric': 'TV', 'copy_fidelity': 0.0, 'copy_missing_tv': 0.0}
    >>> result["summary"]["copy_association_error"]
    0.0
    """
    if len(real) == 0:
        raise ValueError("the real table has no rows: there is nothing to compare against")
    for name, frame in synthetic.items():
        _check_columns(real, frame, name)
        if len(frame) == 0:  # every metric (validity included) would be vacuous: 100% valid, TV of nothing
            raise ValueError(f"the {name} table has no rows: there is nothing to evaluate")
    discrete = _resolve_discrete(real, discrete)
    columns: dict[str, dict] = {}
    summary: dict[str, float] = {}
    real_association = association_matrix(real, discrete)
    for name, frame in synthetic.items():
        frame = frame[list(real.columns)]
        fidelity = column_fidelity(real, frame, discrete)
        for column, row in fidelity.items():
            entry = columns.setdefault(column, {"metric": row["metric"]})
            entry[f"{name}_fidelity"] = row["value"]
            entry[f"{name}_missing_tv"] = row["missing_tv"]
        tv = [row["value"] for row in fidelity.values() if row["metric"] == "TV"]
        ks = [row["value"] for row in fidelity.values() if row["metric"] == "KS"]
        summary[f"{name}_mean_fidelity_discrete"] = float(np.mean(tv)) if tv else float("nan")
        summary[f"{name}_mean_fidelity_continuous"] = float(np.mean(ks)) if ks else float("nan")
        summary[f"{name}_association_error"] = _mean_pair_difference(
            real_association, association_matrix(frame, discrete)
        )
    scores: dict[str, dict] = {}
    if target is not None and test_real is not None and synthetic:
        scores = _efficacy_many(real, test_real, synthetic, target, threshold, seed)
        for name, result in scores.items():
            summary[f"{name}_efficacy"] = result["synthetic"]
            summary[f"{name}_efficacy_ratio"] = result["ratio"]
        summary["real_efficacy"] = next(iter(scores.values()))["real"]
    return {"columns": columns, "summary": summary, "efficacy": scores}


def _cell(value, percent: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"{float(value):.2%}" if percent and np.isfinite(value) else f"{float(value):.4f}"
    return str(value)


#: Summary entries in the order ``format_table`` prints them (others follow as found).
_SUMMARY_ORDER = (
    "mean_fidelity_discrete",
    "mean_fidelity_continuous",
    "association_error",
    "efficacy",
    "efficacy_ratio",
)


def format_table(metrics: dict, names: Sequence[str]) -> str:
    """``evaluate``'s result as a plain-text table: one line per column, then the summary.

    Per column: the metric and each name's fidelity, and each name's validity where the
    caller added ``"<name>_validity"`` entries. Then one line per summary entry with each
    name's value, and the entries that belong to no name (``real_efficacy``). A missing
    entry prints as "-".

    >>> metrics = {"columns": {"x": {"metric": "KS", "a_fidelity": 0.125}},
    ...            "summary": {"a_association_error": 0.5, "real_efficacy": 0.9}}
    >>> print(format_table(metrics, ["a", "b"]))
    column            metric     a fid.     b fid.
    ----------------------------------------------
    x                     KS     0.1250          -
    ----------------------------------------------
    association_error            0.5000          -
    real_efficacy                0.9000
    """
    names = list(names)
    rows = metrics.get("columns", {}) or {}
    summary = metrics.get("summary", {}) or {}
    with_validity = [n for n in names if any(f"{n}_validity" in row for row in rows.values())]
    # Each name's cells are as wide as its headings (at least 10), so long names stay aligned.
    fid = {n: max(10, len(n) + 5) for n in names}
    valid = {n: max(10, len(n) + 6) if n in with_validity else 0 for n in names}
    head = f"{'column':<17} {'metric':>6}"
    for name in names:
        head += f" {name + ' fid.':>{fid[name]}}"
        if name in with_validity:
            head += f" {name + ' valid':>{valid[name]}}"
    lines = [head, "-" * len(head)]
    for column, row in rows.items():
        line = f"{str(column):<17} {str(row.get('metric', '-')):>6}"
        for name in names:
            line += f" {_cell(row.get(f'{name}_fidelity')):>{fid[name]}}"
            if name in with_validity:
                line += f" {_cell(row.get(f'{name}_validity'), percent=True):>{valid[name]}}"
        lines.append(line)
    lines.append("-" * len(head))

    # Split the summary keys into "<name>_<entry>" and keys of no name; longest names
    # first so that a name that is a prefix of another does not claim its keys.
    entries: list[str] = []
    unnamed: list[str] = []
    for key in summary:
        for name in sorted(names, key=len, reverse=True):
            if key.startswith(name + "_"):
                entry = key[len(name) + 1 :]
                if entry not in entries:
                    entries.append(entry)
                break
        else:
            unnamed.append(key)
    entries.sort(key=lambda e: _SUMMARY_ORDER.index(e) if e in _SUMMARY_ORDER else len(_SUMMARY_ORDER))
    width = max([17 + 7] + [len(e) for e in entries + unnamed])
    for entry in entries:
        line = f"{entry:<{width}}"
        for name in names:
            value = summary.get(f"{name}_{entry}")
            line += f" {_cell(value, percent='valid' in entry):>{fid[name]}}"
            if name in with_validity:
                line += " " * (valid[name] + 1)
        lines.append(line.rstrip())
    for key in unnamed:
        lines.append(f"{key:<{width}} {_cell(summary[key]):>10}")
    return "\n".join(lines)


def add_validity(metrics: dict, schema, frames: Mapping[str, pd.DataFrame]) -> dict:
    """Add validity to ``evaluate``'s result: the share of allowed values per column and of fully valid rows.

    ``schema`` is an ``omegabridge.Schema`` (anything iterable over specs with ``name`` and
    ``valid_mask(values)``). Adds ``metrics["columns"][column]["<name>_validity"]`` and
    ``metrics["summary"]["<name>_min_validity"]`` / ``["<name>_rows_valid"]``; returns ``metrics``.

    >>> import omegabridge as ob
    >>> schema = ob.Schema([ob.ColumnSpec("n", "lattice", low=0, high=2)])
    >>> add_validity({"columns": {}, "summary": {}}, schema, {"s": pd.DataFrame({"n": [0, 1, 5, 2]})})["summary"]
    {'s_min_validity': 0.75, 's_rows_valid': 0.75}
    """
    metrics.setdefault("columns", {})
    metrics.setdefault("summary", {})
    for name, frame in frames.items():
        masks = {spec.name: np.asarray(spec.valid_mask(frame[spec.name]), dtype=bool) for spec in schema}
        for column, mask in masks.items():
            metrics["columns"].setdefault(column, {})[f"{name}_validity"] = float(mask.mean()) if len(mask) else 1.0
        every = np.all(np.stack(list(masks.values())), axis=0) if len(frame) else np.ones(0, dtype=bool)
        metrics["summary"][f"{name}_min_validity"] = min(
            (float(m.mean()) for m in masks.values() if len(m)), default=1.0
        )
        metrics["summary"][f"{name}_rows_valid"] = float(every.mean()) if len(every) else 1.0
    return metrics
