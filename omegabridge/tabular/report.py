"""The quality report of TabSyn and TabDiff: column shapes, column pair trends, alpha-precision,
beta-recall, a classifier two-sample test and the distance to the closest record.

Every score is in [0, 1] and higher is better, except ``dcr_closer_to_training`` (0.5 is ideal):

- ``column_shapes``: the mean over columns of SDMetrics' KSComplement (1 - Kolmogorov-Smirnov,
  numerical columns, missing values dropped) and TVComplement (1 - total variation,
  categorical columns, missing values one more category);
- ``column_pair_trends``: the mean over column pairs of CorrelationSimilarity
  (1 - |Pearson_real - Pearson_synthetic| / 2, two numerical columns) and ContingencySimilarity
  (1 - total variation of the pair's joint shares, any other pair; a numerical column is cut
  into 10 equal-width bins over the real values' range, missing values one more bin; sdmetrics'
  QualityReport bins each table over its own range, which differs where a column has a long tail);
- ``alpha_precision`` and ``beta_recall``: the "naive" Delta-precision-alpha and
  Delta-coverage-beta of Alaa et al. (2022) as synthcity computes them, in the encoded space
  below, on as many synthetic rows as real rows: alpha-precision compares, for 30 levels alpha,
  the share of synthetic rows within the real rows' alpha-quantile radius around the real mean
  with alpha itself; beta-recall does the same for real rows whose nearest synthetic row is
  closer than their nearest real neighbour and lies within the beta-quantile radius around the
  synthetic mean;
- ``detection``: SDMetrics' LogisticDetection, 1 - (2 max(AUC, 0.5) - 1) for a logistic regression
  telling real from synthetic rows (3-fold stratified cross-validation, standardised encoded
  features): 1 when it cannot tell them apart. A linear classifier sees differences of means only:
  columns shuffled independently of each other keep every mean and score near 1 (the pair trends
  see what they lost);
- ``dcr_closer_to_training`` (with ``holdout`` rows): the share of synthetic rows whose closest
  training row is closer than their closest holdout row (Euclidean, encoded space; as many training
  rows as holdout rows, drawn at random; ties count one half). Rows drawn from the real law are
  closer to either set equally often (0.5); a generator that copies its training rows scores 1.

The encoded space: numerical columns min-max scaled by the real column's range (missing values at
the column's real mean, plus an "is missing" column where any value is missing), categorical
columns one-hot (missing one more category). Datetimes and timedeltas are numerical, in seconds.
``bench/report_crosscheck.py`` checks the SDMetrics scores against the ``sdmetrics`` package.

Example:
    >>> import pandas as pd
    >>> real = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 10, "c": ["a", "b"] * 20})
    >>> scores = quality_report(real, real.copy(), categorical={"c"})
    >>> scores["column_shapes"], scores["column_pair_trends"]
    (1.0, 1.0)
"""

from __future__ import annotations

import itertools

import numpy as np

from omegabridge.tabular import metrics

__all__ = ["ALPHAS", "quality_report", "encoded_features", "format_report"]

#: Levels alpha (and beta) of the precision and coverage curves, as synthcity takes them.
ALPHAS = np.linspace(0.0, 1.0, 30)
#: Bins a numerical column is cut into for ContingencySimilarity, as SDMetrics' quality report does.
PAIR_BINS = 10


def quality_report(real, synthetic, *, categorical: set, holdout=None, seed: int = 0) -> dict:
    """The report's scores (module docstring) of ``synthetic`` against ``real`` (DataFrames with the same
    columns); ``categorical`` names the categorical columns, every other column is numerical; ``holdout``
    (real rows the generator did not see) adds ``dcr_closer_to_training``. Per-column and per-pair scores
    are under ``"columns"`` and ``"pairs"``."""
    import pandas as pd

    metrics._check_columns(real, synthetic)
    if len(real) < 2 or len(synthetic) < 2:
        raise ValueError(f"the report needs at least 2 real and 2 synthetic rows, got {len(real)} and {len(synthetic)}")
    unknown = sorted(set(categorical) - set(real.columns))
    if unknown:
        raise ValueError(f"categorical names columns the table does not have: {unknown}")
    synthetic = synthetic[list(real.columns)]
    columns = {name: _column_shape(real[name], synthetic[name], name in categorical) for name in real.columns}
    pairs = {}
    for a, b in itertools.combinations(real.columns, 2):
        pairs[f"{a} / {b}"] = _pair_trend(real[[a, b]], synthetic[[a, b]], a in categorical, b in categorical)
    rng = np.random.default_rng(seed)
    real_features, synthetic_features = encoded_features(real, [synthetic], categorical)
    count = min(len(real), len(synthetic))
    precision, recall = _alpha_precision_beta_recall(_rows(real_features, count, rng), _rows(synthetic_features, count, rng))
    result = {
        "column_shapes": float(np.mean([entry["score"] for entry in columns.values()])),
        "column_pair_trends": float(np.mean([entry["score"] for entry in pairs.values()])) if pairs else float("nan"),
        "alpha_precision": precision,
        "beta_recall": recall,
        "detection": _logistic_detection(real_features, synthetic_features, seed),
    }
    if holdout is not None:
        if not isinstance(holdout, pd.DataFrame):
            raise TypeError(f"holdout must be a DataFrame, got {type(holdout).__name__}")
        metrics._check_columns(real, holdout, "holdout")
        train_features, holdout_features, synthetic_only = encoded_features(real, [holdout[list(real.columns)], synthetic],
                                                                           categorical)
        result["dcr_closer_to_training"] = _closer_to_training(
            _rows(train_features, min(len(real), len(holdout)), rng), holdout_features, synthetic_only)
    result["columns"], result["pairs"] = columns, pairs
    return result


#: The report's scores in print order, with what each reads as.
SCORES = (
    ("column_shapes", "column shapes (KS / TV complement)", "1 is ideal"),
    ("column_pair_trends", "column pair trends (correlation / contingency)", "1 is ideal"),
    ("alpha_precision", "alpha-precision", "1 is ideal"),
    ("beta_recall", "beta-recall", "1 is ideal"),
    ("detection", "detection (logistic regression, 1 - 2 (AUC - 0.5))", "1: indistinguishable"),
    ("dcr_closer_to_training", "distance to closest record: share closer to training", "0.5 is ideal"),
)


def format_report(report: dict) -> str:
    """``quality_report``'s scores as plain-text lines.

    >>> print(format_report({"column_shapes": 0.98, "detection": 0.9}))
    quality report (TabSyn / TabDiff protocol)
      column shapes (KS / TV complement)                       0.9800  (1 is ideal)
      detection (logistic regression, 1 - 2 (AUC - 0.5))       0.9000  (1: indistinguishable)
    """
    lines = ["quality report (TabSyn / TabDiff protocol)"]
    for key, label, reading in SCORES:
        if key in report:
            lines.append(f"  {label:<56} {report[key]:.4f}  ({reading})")
    return "\n".join(lines)


def _column_shape(real, synthetic, is_categorical: bool) -> dict:
    if is_categorical:
        return {"metric": "TVComplement", "score": 1.0 - metrics.total_variation(real, synthetic)}
    return {"metric": "KSComplement", "score": 1.0 - metrics.ks_statistic(real, synthetic)}


def _pair_trend(real, synthetic, a_categorical: bool, b_categorical: bool) -> dict:
    a, b = real.columns
    if not a_categorical and not b_categorical:
        correlations = []
        for frame in (real, synthetic):
            x, y = metrics._numeric(frame[a]), metrics._numeric(frame[b])
            both = np.isfinite(x) & np.isfinite(y)
            correlations.append(metrics._pearson(x[both], y[both]))
        return {"metric": "CorrelationSimilarity", "score": 1.0 - abs(correlations[0] - correlations[1]) / 2.0}
    real_codes = [_pair_codes(real[a], real[a], a_categorical), _pair_codes(real[b], real[b], b_categorical)]
    synthetic_codes = [_pair_codes(synthetic[a], real[a], a_categorical), _pair_codes(synthetic[b], real[b], b_categorical)]
    joint_real = [f"{x}\x1f{y}" for x, y in zip(*real_codes)]
    joint_synthetic = [f"{x}\x1f{y}" for x, y in zip(*synthetic_codes)]
    return {"metric": "ContingencySimilarity", "score": 1.0 - metrics.total_variation(joint_real, joint_synthetic)}


def _pair_codes(values, real_values, is_categorical: bool) -> list:
    """Per value, a hashable cell label: the value itself (categorical; missing as one label) or its bin
    among ``PAIR_BINS`` equal-width bins over ``real_values``' range (numerical; missing as one bin)."""
    if is_categorical:
        return ["\x00missing" if value is None or value != value else repr(value)
                for value in values.astype(object).tolist()]
    x, reference = metrics._numeric(values), metrics._numeric(real_values)
    reference = reference[np.isfinite(reference)]
    edges = np.histogram_bin_edges(reference, bins=PAIR_BINS) if len(reference) else np.array([0.0, 1.0])
    bins = np.clip(np.digitize(x, edges[1:-1]), 0, PAIR_BINS - 1)
    return ["missing" if not np.isfinite(value) else str(int(cell)) for value, cell in zip(x, bins)]


def encoded_features(real, others: list, categorical: set) -> list[np.ndarray]:
    """``real`` and each frame of ``others`` in the report's encoded space (module docstring), float64."""
    import pandas as pd

    frames = [real, *others]
    blocks: list[list[np.ndarray]] = [[] for _ in frames]
    for name in real.columns:
        if name in categorical:
            labels = [frame[name].astype(object).where(frame[name].notna(), "\x00missing").map(repr) for frame in frames]
            levels = pd.Index(pd.concat(labels).unique())
            for block, label in zip(blocks, labels):
                codes = levels.get_indexer(label)
                block.append(np.eye(len(levels))[codes])
            continue
        values = [metrics._numeric(frame[name]) for frame in frames]
        reference = values[0][np.isfinite(values[0])]
        low, high = (float(reference.min()), float(reference.max())) if len(reference) else (0.0, 1.0)
        fill = float(reference.mean()) if len(reference) else 0.0
        span = high - low if high > low else 1.0
        any_missing = any((~np.isfinite(v)).any() for v in values)
        for block, x in zip(blocks, values):
            missing = ~np.isfinite(x)
            block.append(((np.where(missing, fill, x) - low) / span)[:, None])
            if any_missing:
                block.append(missing.astype(np.float64)[:, None])
    return [np.concatenate(block, axis=1) for block in blocks]


def _rows(features: np.ndarray, count: int, rng) -> np.ndarray:
    """``count`` rows of ``features`` drawn without replacement (all of them, in order, when count is all)."""
    if count >= len(features):
        return features
    return features[np.sort(rng.choice(len(features), size=count, replace=False))]


def _alpha_precision_beta_recall(real: np.ndarray, synthetic: np.ndarray) -> tuple[float, float]:
    from sklearn.neighbors import NearestNeighbors

    center = real.mean(axis=0)
    radii = np.quantile(np.linalg.norm(real - center, axis=1), ALPHAS)
    synthetic_to_center = np.linalg.norm(synthetic - center, axis=1)
    real_to_real = NearestNeighbors(n_neighbors=2).fit(real).kneighbors(real)[0][:, 1]
    real_to_synthetic, closest = NearestNeighbors(n_neighbors=1).fit(synthetic).kneighbors(real)
    real_to_synthetic, closest = real_to_synthetic[:, 0], closest[:, 0]
    closest_to_center = np.linalg.norm(synthetic[closest] - synthetic.mean(axis=0), axis=1)
    closest_radii = np.quantile(closest_to_center, ALPHAS)
    precision_curve = np.array([np.mean(synthetic_to_center <= radius) for radius in radii])
    coverage_curve = np.array([np.mean((real_to_synthetic <= real_to_real) & (closest_to_center <= radius))
                               for radius in closest_radii])
    width = ALPHAS[1] - ALPHAS[0]
    precision = 1.0 - 2.0 * np.sum(np.abs(ALPHAS - precision_curve)) * width
    recall = 1.0 - 2.0 * np.sum(np.abs(ALPHAS - coverage_curve)) * width
    return float(precision), float(recall)


def _logistic_detection(real: np.ndarray, synthetic: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    features = np.concatenate([real, synthetic])
    labels = np.concatenate([np.ones(len(real)), np.zeros(len(synthetic))])
    scores = []
    with metrics._one_openmp_thread():
        for train, test in StratifiedKFold(n_splits=3, shuffle=True, random_state=seed).split(features, labels):
            scaler = StandardScaler().fit(features[train])
            model = LogisticRegression(max_iter=1000).fit(scaler.transform(features[train]), labels[train])
            auc = roc_auc_score(labels[test], model.predict_proba(scaler.transform(features[test]))[:, 1])
            scores.append(2.0 * max(auc, 0.5) - 1.0)
    return float(1.0 - np.mean(scores))


def _closer_to_training(train: np.ndarray, holdout: np.ndarray, synthetic: np.ndarray) -> float:
    from sklearn.neighbors import NearestNeighbors

    to_train = NearestNeighbors(n_neighbors=1).fit(train).kneighbors(synthetic)[0][:, 0]
    to_holdout = NearestNeighbors(n_neighbors=1).fit(holdout).kneighbors(synthetic)[0][:, 0]
    return float(np.mean((to_train < to_holdout) + 0.5 * (to_train == to_holdout)))
