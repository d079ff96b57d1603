"""Tests of omegabridge.tabular.metrics: expected values are worked out by hand or by an independent formula."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from omegabridge.tabular.metrics import (
    association_error,
    association_matrix,
    column_fidelity,
    efficacy,
    evaluate,
    format_table,
    is_discrete,
    ks_statistic,
    total_variation,
)

MISSING = object()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Fit the gradient-boosting models on one OpenMP thread: on a busy machine its spinning
    threads can slow a 2000-row fit by a factor of ten or more."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # no scikit-learn either: the efficacy tests skip
        yield
        return
    with threadpool_limits(limits=1):
        yield


def brute_tv(a, b) -> float:
    """TV by counting with a Counter, every missing value mapped to one sentinel."""

    def shares(sample):
        keys = [MISSING if (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))) else v for v in sample]
        return {k: c / len(keys) for k, c in Counter(keys).items()}

    p, q = shares(a), shares(b)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def brute_ks(a, b) -> float:
    """KS by evaluating both empirical CDFs at every observed point (broadcast, no sorting)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    t = np.concatenate([a, b])
    return float(np.abs((a[None, :] <= t[:, None]).mean(1) - (b[None, :] <= t[:, None]).mean(1)).max())


# ----------------------------------------------------------------------------------------
# Total variation
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "real, synthetic, expected",
    [
        ([1, 1, 2, 2], [1, 2, 2, 2], 0.25),
        # a: 1/3 vs 2/3, b: 1/3 vs 0, c: 1/3 vs 0, d: 0 vs 1/3
        (["a", "b", "c"], ["a", "a", "d"], 2 / 3),
        (["a", "a"], ["b", "b"], 1.0),
        # different sizes: 1/2 vs 3/4 and 1/2 vs 1/4
        ([1, 2], [1, 1, 1, 2], 0.25),
        # 1 and 1.0 are the same value
        ([1, 2], [1.0, 2.0], 0.0),
        # None, NaN and pd.NA are one value "missing": 3/4 vs 1/2 and x: 1/4 vs 1/2
        ([None, np.nan, pd.NA, "x"], ["x", "x", np.nan, np.nan], 0.25),
        # missing in a numeric sample: NaN 1/4 vs 0, 1.0: 3/4 vs 1
        ([1.0, 1.0, 1.0, np.nan], [1.0, 1.0], 0.25),
        ([True, True, False, False], [True, False, False, False], 0.25),
        ([], [], 0.0),
        ([], [1], 1.0),
    ],
)
def test_total_variation_hand_cases(real, synthetic, expected):
    assert total_variation(real, synthetic) == pytest.approx(expected, abs=1e-12)


def test_total_variation_pandas_inputs():
    # A categorical with an unused level, against plain strings: a 1/2 vs 1, b 1/2 vs 0.
    real = pd.Series(pd.Categorical(["a", "b"], categories=["a", "b", "z"]))
    assert total_variation(real, pd.Series(["a", "a"])) == pytest.approx(0.5)
    # Nullable integers: <NA> 1/4 vs 0, 1: 1/2 vs 1/2, 2: 1/4 vs 1/2.
    real = pd.Series([1, 2, 1, None], dtype="Int64")
    assert total_variation(real, pd.Series([1, 1, 2, 2])) == pytest.approx(0.25)


@pytest.mark.parametrize("seed", [0, 1])
def test_total_variation_matches_counting(seed):
    rng = np.random.default_rng(seed)
    levels = np.array(["a", "b", "c", "d", None], dtype=object)
    a = list(rng.choice(levels, size=300, p=[0.4, 0.3, 0.1, 0.1, 0.1]))
    b = list(rng.choice(levels, size=170))
    assert total_variation(a, b) == pytest.approx(brute_tv(a, b), abs=1e-12)
    assert total_variation(a, a) == 0.0


# ----------------------------------------------------------------------------------------
# Kolmogorov-Smirnov
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "real, synthetic, expected",
    [
        ([0.0, 0.0, 1.0, 2.0], [0.0, 1.0, 1.0, 2.0], 0.25),
        # ties: F(1) = 3/4 vs 1/4
        ([1, 1, 1, 2], [1, 2, 2, 2], 0.5),
        ([1.0, 2.0], [3.0, 4.0], 1.0),
        ([5.0, 5.0], [5.0], 0.0),
        # at 2: F = 1 vs 1/2 (the NaN is dropped, not counted)
        ([1.0, np.nan, 2.0], [1.0, 3.0], 0.5),
        ([1.0, np.nan, 2.0], [1.0, 2.0], 0.0),
        ([np.nan, np.nan], [1.0], 1.0),
        ([1.0], [np.nan], 1.0),
        ([np.nan], [np.nan], 0.0),
        ([], [], 0.0),
    ],
)
def test_ks_hand_cases(real, synthetic, expected):
    assert ks_statistic(real, synthetic) == pytest.approx(expected, abs=1e-12)


def test_ks_nullable_and_series():
    real = pd.Series([1.0, None, 2.0, 3.0], dtype="Float64")
    # at 1: 1/3 vs 2/3
    assert ks_statistic(real, pd.Series([1, 1, 3])) == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, size=200).astype(float)
    b = rng.integers(1, 8, size=130).astype(float)
    a[rng.random(200) < 0.1] = np.nan
    assert ks_statistic(a, b) == pytest.approx(brute_ks(a, b), abs=1e-12)


def test_ks_rejects_strings():
    with pytest.raises(ValueError):
        ks_statistic(["a", "b"], ["a"])


# ----------------------------------------------------------------------------------------
# is_discrete and column_fidelity
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "series, max_levels, expected",
    [
        (pd.Series(["a", "b", "c"]), 20, True),
        (pd.Series(["a", "b"], dtype=object), 20, True),
        (pd.Series(pd.Categorical(np.arange(100))), 20, True),
        (pd.Series([True, False, True]), 20, True),
        (pd.Series(pd.date_range("2020-01-01", periods=50)), 20, False),  # times count as numbers (seconds)
        (pd.Series(pd.date_range("2020-01-01", periods=5)), 20, True),
        (pd.Series(pd.to_timedelta(np.arange(30), unit="h")), 20, False),
        (pd.Series(np.arange(20.0)), 20, True),
        (pd.Series(np.arange(21.0)), 20, False),
        (pd.Series(np.r_[np.arange(20.0), np.nan, np.nan]), 20, True),  # NaN is no level
        (pd.Series(np.arange(5)), 4, False),
        (pd.Series([1, 2, None], dtype="Int64"), 2, True),
        (pd.Series(np.linspace(0, 1, 1000)), 20, False),
    ],
)
def test_is_discrete(series, max_levels, expected):
    assert is_discrete(series, max_levels=max_levels) is expected


def test_column_fidelity_identical_frames_are_zero():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=100), "c": rng.choice(["a", "b"], 100), "k": rng.integers(0, 3, 100)})
    frame.loc[::7, "x"] = np.nan
    result = column_fidelity(frame, frame.copy())
    assert {c: r["metric"] for c, r in result.items()} == {"x": "KS", "c": "TV", "k": "TV"}
    assert all(r["value"] == 0.0 and r["missing_tv"] == 0.0 for r in result.values())


def test_column_fidelity_hand_values():
    real = pd.DataFrame({"x": [1.0, 2.0, np.nan, np.nan], "c": ["a", "a", "b", "b"], "s": ["u", "v", "u", "v"]})
    synthetic = pd.DataFrame({"x": [1.0, 1.0, 2.0, np.nan], "c": ["a", "b", "b", "b"], "s": ["u", "u", "u", "u"]})
    # "s" is left out of discrete but is not numeric: still TV.
    result = column_fidelity(real, synthetic, discrete={"c"})
    # x: values [1, 2] vs [1, 1, 2]: F(1) = 1/2 vs 2/3; missing share 1/2 vs 1/4
    assert result["x"]["metric"] == "KS"
    assert result["x"]["value"] == pytest.approx(1 / 6)
    assert result["x"]["missing_tv"] == pytest.approx(0.25)
    assert result["c"] == {"metric": "TV", "value": pytest.approx(0.25), "missing_tv": 0.0}
    assert result["s"]["metric"] == "TV" and result["s"]["value"] == pytest.approx(0.5)
    # Declared discrete, x is scored by TV with "missing" as a value:
    # 1: 1/4 vs 1/2, 2: 1/4 vs 1/4, missing: 1/2 vs 1/4
    assert column_fidelity(real, synthetic, discrete={"x"})["x"]["value"] == pytest.approx(0.25)


# ----------------------------------------------------------------------------------------
# Associations
# ----------------------------------------------------------------------------------------
def correlated_frame(rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    return pd.DataFrame(
        {
            "x": x,
            "y": 2 * x + 0.2 * rng.normal(size=rows),
            "c": np.where(x > 0, "pos", "neg"),
            "d": np.where(x + 0.1 * rng.normal(size=rows) > 0, "up", "down"),
        }
    )


def test_association_error_zero_for_identical_and_large_for_shuffled_columns():
    frame = correlated_frame()
    assert association_error(frame, frame.copy()) == 0.0
    rng = np.random.default_rng(1)
    shuffled = pd.DataFrame({c: rng.permutation(frame[c].to_numpy()) for c in frame.columns})
    # Marginals are unchanged, so column fidelity is zero, but every pair loses its association
    # (all |A| are > 0.7 in the real frame and ~0 in the shuffled one).
    assert all(r["value"] == 0.0 for r in column_fidelity(frame, shuffled).values())
    assert association_error(frame, shuffled) > 0.6


def test_pearson_pairwise_missing_and_sign():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = -x + rng.normal(size=200)
    z = rng.normal(size=200)
    x[::5] = np.nan
    y[::7] = np.nan
    frame = pd.DataFrame({"x": x, "y": y, "z": z})
    matrix = association_matrix(frame, set())
    both = ~np.isnan(x) & ~np.isnan(y)
    expected = np.corrcoef(x[both], y[both])[0, 1]
    assert expected < -0.5
    assert matrix.loc["x", "y"] == pytest.approx(expected, abs=1e-12)
    assert matrix.loc["y", "x"] == matrix.loc["x", "y"]
    assert matrix.loc["y", "z"] == pytest.approx(np.corrcoef(y[~np.isnan(y)], z[~np.isnan(y)])[0, 1], abs=1e-12)
    assert np.all(np.diag(matrix.to_numpy()) == 1.0)


def test_cramers_v_bijective_pair_is_one():
    rng = np.random.default_rng(0)
    a = rng.choice(["a", "b", "c", "d"], size=500)
    b = pd.Series(a).map({"a": 10, "b": 20, "c": 30, "d": 40})
    matrix = association_matrix(pd.DataFrame({"a": a, "b": b}), {"a", "b"})
    assert matrix.loc["a", "b"] == pytest.approx(1.0, abs=1e-12)


def test_cramers_v_independent_large_samples_near_zero():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.choice(list("abc"), size=20000), "b": rng.choice(list("wxyz"), size=20000)})
    # chi2 has ~6 degrees of freedom: V ~ sqrt(6 / (20000 * 2)) ~ 0.012
    assert association_matrix(frame, {"a", "b"}).loc["a", "b"] < 0.03


def test_cramers_v_matches_hand_formula():
    # Table [[3, 1], [1, 3]]: expected 2 everywhere, chi2 = 4 * 1/2 = 2, V = sqrt(2 / 8) = 0.5
    a = ["p"] * 4 + ["q"] * 4
    b = ["u", "u", "u", "v", "u", "v", "v", "v"]
    frame = pd.DataFrame({"a": a, "b": b})
    assert association_matrix(frame, {"a", "b"}).loc["a", "b"] == pytest.approx(0.5)


def test_cramers_v_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a = rng.integers(0, 3, size=400)
    b = (a + rng.integers(0, 3, size=400)) % 4
    table = pd.crosstab(a, b).to_numpy()
    chi2 = stats.chi2_contingency(table, correction=False)[0]
    expected = math.sqrt(chi2 / (400 * (min(table.shape) - 1)))
    got = association_matrix(pd.DataFrame({"a": a, "b": b}), {"a", "b"}).loc["a", "b"]
    assert got == pytest.approx(expected, rel=1e-10)


def test_eta_function_of_category_is_one_and_hand_value():
    rng = np.random.default_rng(0)
    c = rng.choice(["a", "b", "c"], size=300)
    y = pd.Series(c).map({"a": 1.0, "b": 5.0, "c": -2.0}).to_numpy()
    matrix = association_matrix(pd.DataFrame({"y": y, "c": c}), {"c"})
    assert matrix.loc["c", "y"] == pytest.approx(1.0, abs=1e-12)
    # Groups a: [1, 2], b: [3, 4] (the row with a missing group is dropped): between 4, total 5
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 100.0], "g": ["a", "a", "b", "b", None]})
    assert association_matrix(frame, {"g"}).loc["x", "g"] == pytest.approx(math.sqrt(4 / 5))


@pytest.mark.parametrize("constant", [np.full(50, 0.1), np.full(50, 7), ["k"] * 50])
def test_constant_column_has_zero_association(constant):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"const": constant, "x": rng.normal(size=50), "c": rng.choice(["a", "b"], 50), "n": rng.integers(0, 3, 50)}
    )
    for discrete in [{"c"}, {"c", "const"}, {"c", "n"}]:
        matrix = association_matrix(frame, discrete)
        assert not matrix.isna().any().any()
        assert (matrix.loc["const"].drop("const") == 0.0).all()
        assert (matrix["const"].drop("const") == 0.0).all()
        assert matrix.loc["const", "const"] == 1.0


def test_all_missing_column_has_zero_association():
    frame = pd.DataFrame({"m": [np.nan] * 4, "x": [1.0, 2.0, 3.0, 5.0], "c": ["a", "b", "a", "b"]})
    matrix = association_matrix(frame, {"c"})
    assert not matrix.isna().any().any()
    assert (matrix.loc["m"].drop("m") == 0.0).all()


def test_association_error_hand_value():
    real = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 2.0, 3.0, 4.0], "c": ["a", "a", "b", "b"]})
    synthetic = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [4.0, 3.0, 2.0, 1.0], "c": ["a", "b", "a", "b"]})
    # pairs: x-y 1 vs -1 (2); x-c sqrt(0.8) vs eta of groups {1,3},{2,4} = sqrt(0.2); y-c the same
    expected = (2 + 2 * (math.sqrt(0.8) - math.sqrt(0.2))) / 3
    assert association_error(real, synthetic, {"c"}) == pytest.approx(expected)
    # discrete=None decides from the real frame: x, y (4 levels) and c all discrete.
    assert association_error(real, real) == 0.0


def test_mismatched_columns_raise():
    real = pd.DataFrame({"x": [1.0], "y": [2.0]})
    with pytest.raises(ValueError, match="'y'.*'z'"):
        association_error(real, pd.DataFrame({"x": [1.0], "z": [2.0]}))
    with pytest.raises(ValueError, match="'y'"):
        column_fidelity(real, pd.DataFrame({"x": [1.0]}))
    with pytest.raises(ValueError, match=r"bad.*\['y'\].*\['z'\]"):
        evaluate(real, {"bad": pd.DataFrame({"x": [1.0], "z": [2.0]})})


# ----------------------------------------------------------------------------------------
# Machine-learning efficacy
# ----------------------------------------------------------------------------------------
def learnable(rows: int, seed: int, levels=("p", "q", "r")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.normal(size=(3, rows))
    x3[rng.random(rows) < 0.1] = np.nan  # exercises the median fill and the is-missing column
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "x3": x3,
            "g": rng.choice(list(levels), size=rows),
            "score": x1 + x2 + 0.3 * rng.normal(size=rows),
        }
    )


@pytest.fixture(scope="module")
def classification_run():
    import sklearn  # noqa: F401  (the demo extra installs it; CI must not skip these)
    train, test = learnable(2000, 0), learnable(2000, 1)
    for frame in (train, test):
        frame["y"] = frame.pop("score") > 0
    fresh = learnable(2000, 2, levels=("p", "q", "r", "s"))  # a level the real rows never have
    fresh["y"] = fresh.pop("score") > 0
    shuffled = train.copy()
    shuffled["y"] = np.random.default_rng(3).permutation(shuffled["y"].to_numpy())
    synthetic = {"copy": train.copy(), "fresh": fresh, "shuffled": shuffled}
    return train, test, synthetic, evaluate(train, synthetic, target="y", test_real=test)


def test_efficacy_learnable_problem(classification_run):
    _, _, _, result = classification_run
    scores = result["efficacy"]
    assert scores["copy"]["task"] == "classification" and scores["copy"]["metric"] == "f1"
    assert scores["copy"]["real"] > 0.8
    assert scores["copy"]["accuracy_real"] > 0.8
    assert scores["copy"]["ratio"] == pytest.approx(1.0, abs=0.05)
    assert scores["fresh"]["ratio"] == pytest.approx(1.0, abs=0.1)
    assert scores["shuffled"]["ratio"] < 0.8
    assert scores["shuffled"]["accuracy_synthetic"] < 0.7
    summary = result["summary"]
    assert summary["real_efficacy"] == scores["copy"]["real"]
    for name in ("copy", "fresh", "shuffled"):
        assert summary[f"{name}_efficacy"] == scores[name]["synthetic"]
        assert summary[f"{name}_efficacy_ratio"] == scores[name]["ratio"]
        assert scores[name]["ratio"] == pytest.approx(scores[name]["synthetic"] / scores[name]["real"])


def test_efficacy_single_class_synthetic(classification_run):
    train, test, _, _ = classification_run
    share_true = float(test["y"].mean())
    for constant, f1, accuracy in [
        (False, 0.0, 1 - share_true),  # never predicts the positive (True) class
        (True, 2 * share_true / (1 + share_true), share_true),  # precision p, recall 1
    ]:
        synthetic = train.copy()
        synthetic["y"] = constant
        result = efficacy(train, test, synthetic, "y")
        assert result["synthetic"] == pytest.approx(f1)
        assert result["accuracy_synthetic"] == pytest.approx(accuracy)


def test_efficacy_threshold_regression_and_multiclass():
    import sklearn  # noqa: F401  (the demo extra installs it; CI must not skip these)
    train, test = learnable(2000, 0), learnable(2000, 1)
    result = efficacy(train, test, train.copy(), "score", threshold=0.0)
    assert (result["task"], result["metric"]) == ("classification", "f1")
    assert result["real"] > 0.8 and result["ratio"] == pytest.approx(1.0, abs=0.05)

    shuffled = train.copy()
    shuffled["score"] = np.random.default_rng(0).permutation(shuffled["score"].to_numpy())
    result = efficacy(train, test, shuffled, "score")
    assert (result["task"], result["metric"]) == ("regression", "r2")
    assert "accuracy_real" not in result
    assert result["real"] > 0.8
    assert result["synthetic"] < 0.1 and result["ratio"] < 0.2

    for frame in (train, test):
        frame["band"] = pd.cut(frame.pop("score"), [-np.inf, -1, 1, np.inf], labels=["low", "mid", "high"])
    result = efficacy(train, test, train.copy(), "band")
    assert (result["task"], result["metric"]) == ("classification", "f1")
    assert result["real"] > 0.7 and result["ratio"] == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("lacking", ["train_real", "test_real", "synthetic"])
def test_efficacy_missing_target_raises(lacking):
    frames = {k: pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}) for k in ("train_real", "test_real", "synthetic")}
    frames[lacking] = frames[lacking].drop(columns="y")
    with pytest.raises(ValueError, match=f"'y'.*{lacking}"):
        efficacy(frames["train_real"], frames["test_real"], frames["synthetic"], "y")


# ----------------------------------------------------------------------------------------
# evaluate and format_table
# ----------------------------------------------------------------------------------------
def hand_frames():
    real = pd.DataFrame({"c": ["a", "a", "b", "b"], "d": ["u", "u", "u", "v"], "x": [1.0, 2.0, 3.0, 4.0]})
    synthetic = pd.DataFrame({"x": [1.0, 2.0, 3.0, 5.0], "c": ["a", "b", "b", "b"], "d": ["v", "v", "v", np.nan]})
    return real, synthetic


def test_evaluate_hand_values():
    real, synthetic = hand_frames()
    result = evaluate(real, {"s": synthetic, "same": real.copy()}, discrete={"c", "d"})
    columns, summary = result["columns"], result["summary"]
    assert list(columns) == ["c", "d", "x"]
    # c: 0.25; d: u 3/4 vs 0, v 1/4 vs 3/4, missing 0 vs 1/4 -> 0.75; x: F(4) = 1 vs 3/4
    assert columns["c"] == {"metric": "TV", "s_fidelity": 0.25, "s_missing_tv": 0.0,
                            "same_fidelity": 0.0, "same_missing_tv": 0.0}  # fmt: skip
    assert columns["d"]["s_fidelity"] == pytest.approx(0.75)
    assert columns["d"]["s_missing_tv"] == pytest.approx(0.25)
    assert columns["x"]["metric"] == "KS" and columns["x"]["s_fidelity"] == pytest.approx(0.25)
    assert summary["s_mean_fidelity_discrete"] == pytest.approx(0.5)
    assert summary["s_mean_fidelity_continuous"] == pytest.approx(0.25)
    assert summary["same_association_error"] == 0.0
    assert summary["s_association_error"] > 0.0
    assert result["efficacy"] == {} and "real_efficacy" not in summary

    everything_discrete = evaluate(real, {"s": synthetic})  # x has 4 levels: discrete
    assert math.isnan(everything_discrete["summary"]["s_mean_fidelity_continuous"])
    assert everything_discrete["columns"]["x"]["metric"] == "TV"


def test_format_table():
    real, synthetic = hand_frames()
    metrics = evaluate(real, {"s": synthetic}, discrete={"c", "d"})
    metrics["columns"]["c"]["s_validity"] = 0.5
    metrics["summary"]["s_min_validity"] = 0.5
    text = format_table(metrics, ["s", "absent"])
    lines = text.splitlines()
    assert "s fid." in lines[0] and "s valid" in lines[0] and "absent fid." in lines[0]
    assert "absent valid" not in lines[0]
    row = {line.split()[0]: line.split() for line in lines}
    assert row["c"] == ["c", "TV", "0.2500", "50.00%", "-"]
    assert row["x"] == ["x", "KS", "0.2500", "-", "-"]  # no validity for x
    assert row["mean_fidelity_discrete"][1:] == ["0.5000", "-"]
    assert row["min_validity"][1:] == ["50.00%", "-"]
    assert "association_error" in row
    # Robust to an empty result.
    assert format_table({}, ["s"]).splitlines()[0].startswith("column")
