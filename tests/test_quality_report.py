"""The TabSyn / TabDiff quality report (omegabridge.tabular.report): each score against values worked out by
hand or by construction (copies, independent shuffles, shifted and copied rows), and through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from omegabridge import cli  # noqa: E402
from omegabridge.tabular.report import quality_report  # noqa: E402


def dependent_table(rows: int, seed: int):
    rng = np.random.default_rng(seed)
    kind = rng.choice(["a", "b", "c"], rows)
    x = np.where(kind == "a", 0.0, np.where(kind == "b", 3.0, 6.0)) + rng.standard_normal(rows)
    y = 2.0 * x + 0.5 * rng.standard_normal(rows)
    return pd.DataFrame({"kind": kind, "x": x, "y": y})


def test_a_copy_scores_one_everywhere_and_copied_rows_are_caught_by_the_dcr():
    real, holdout = dependent_table(600, 0), dependent_table(600, 1)
    report = quality_report(real, real.copy(), categorical={"kind"}, holdout=holdout)
    assert report["column_shapes"] == 1.0 and report["column_pair_trends"] == 1.0
    assert report["alpha_precision"] > 0.99 and report["beta_recall"] > 0.99
    assert report["detection"] > 0.9  # identical rows: the classifier's AUC is about 0.5
    assert report["dcr_closer_to_training"] == 1.0  # every copy sits on a training row


def test_rows_from_the_same_law_are_as_close_to_training_as_to_holdout_rows():
    real, holdout, fresh = dependent_table(800, 0), dependent_table(800, 1), dependent_table(800, 2)
    report = quality_report(real, fresh, categorical={"kind"}, holdout=holdout)
    assert abs(report["dcr_closer_to_training"] - 0.5) < 0.06  # sd of the share about 0.018
    assert report["column_shapes"] > 0.95 and report["column_pair_trends"] > 0.95
    assert report["detection"] > 0.85 and report["alpha_precision"] > 0.85 and report["beta_recall"] > 0.3


def test_independent_columns_keep_the_shapes_and_lose_the_pair_trends():
    real = dependent_table(1000, 0)
    rng = np.random.default_rng(5)
    shuffled = pd.DataFrame({name: real[name].to_numpy()[rng.permutation(len(real))] for name in real.columns})
    report = quality_report(real, shuffled, categorical={"kind"})
    assert report["column_shapes"] == 1.0  # the same values in each column
    assert report["pairs"]["x / y"]["metric"] == "CorrelationSimilarity"
    assert report["pairs"]["x / y"]["score"] < 0.55  # correlation about 0.99 against about 0
    assert report["pairs"]["kind / x"]["metric"] == "ContingencySimilarity"
    assert report["pairs"]["kind / x"]["score"] < 0.7
    # a linear classifier separates by differences of means, and shuffling keeps every mean: the
    # logistic detection does not see lost dependence (SDMetrics' LogisticDetection has that limit too)
    assert report["detection"] > 0.8


def test_column_scores_match_hand_computation():
    real = pd.DataFrame({"c": ["a", "a", "b", "b"], "x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 2.0, 3.0, 4.0]})
    synthetic = pd.DataFrame({"c": ["a", "b", "b", "b"], "x": [1.0, 2.0, 3.0, 5.0], "y": [4.0, 3.0, 2.0, 1.0]})
    report = quality_report(real, synthetic, categorical={"c"})
    assert report["columns"]["c"] == {"metric": "TVComplement", "score": 0.75}
    assert report["columns"]["x"] == {"metric": "KSComplement", "score": 0.75}  # F and G differ by 1/4 at [4, 5)
    assert report["columns"]["y"]["score"] == 1.0
    # x and y: correlation 1 in the real rows; 4 points, synthetic correlation of (1, 2, 3, 5) with (4, 3, 2, 1)
    synthetic_correlation = np.corrcoef([1.0, 2.0, 3.0, 5.0], [4.0, 3.0, 2.0, 1.0])[0, 1]
    assert report["pairs"]["x / y"]["score"] == pytest.approx(1.0 - abs(1.0 - synthetic_correlation) / 2.0)
    # c and y: bins of y over [1, 4] in 10 equal widths put 1, 2, 3, 4 in bins 0, 3, 6, 9; the real joint
    # cells (a,0) (a,3) (b,6) (b,9), the synthetic (a,9) (b,6) (b,3) (b,0): one cell in common, TV 3/4
    assert report["pairs"]["c / y"]["score"] == pytest.approx(0.25)


def test_samples_far_from_the_real_rows_have_a_low_alpha_precision():
    real = dependent_table(500, 0)
    far = real.assign(x=real["x"] + 50.0, y=real["y"] + 100.0)
    report = quality_report(real, far, categorical={"kind"})
    assert report["alpha_precision"] < 0.1 and report["beta_recall"] < 0.1
    assert report["detection"] < 0.05  # a shifted mean is what a logistic regression sees at once


def test_bad_input_is_named():
    real = dependent_table(20, 0)
    with pytest.raises(ValueError, match=r"missing \['y'\]"):
        quality_report(real, real.drop(columns="y"), categorical={"kind"})
    with pytest.raises(ValueError, match=r"categorical names columns the table does not have: \['nope'\]"):
        quality_report(real, real, categorical={"nope"})
    with pytest.raises(ValueError, match="at least 2 real and 2 synthetic rows"):
        quality_report(real, real.head(1), categorical={"kind"})
    with pytest.raises(TypeError, match="holdout must be a DataFrame"):
        quality_report(real, real, categorical={"kind"}, holdout=real.to_numpy())


def test_the_cli_prints_and_writes_the_report(tmp_path, capsys):
    real, holdout, synthetic = dependent_table(300, 0), dependent_table(100, 1), dependent_table(300, 2)
    for name, frame in (("real", real), ("test", holdout), ("synthetic", synthetic)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    code = cli.main(["evaluate", str(tmp_path / "real.csv"), str(tmp_path / "synthetic.csv"), "--test",
                     str(tmp_path / "test.csv"), "--target", "kind", "-o", str(tmp_path / "metrics.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "quality report (TabSyn / TabDiff protocol)" in out and "distance to closest record" in out
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.0 <= written["report"]["dcr_closer_to_training"] <= 1.0
    assert set(written["report"]["columns"]) == {"kind", "x", "y"}
