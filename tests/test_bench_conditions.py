"""bench/conditions.py and bench/imputation.py run end to end on a tiny budget and write their tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("statsmodels")  # fair ships with statsmodels (the demo extra)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import conditions  # noqa: E402
import imputation  # noqa: E402


def test_a_tiny_conditions_run_scores_every_condition_with_enough_rows(tmp_path):
    assert conditions.main(["--iterations", "5", "--rows", "100", "--min-rows", "1800", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "conditions-fair.json").read_text())
    # fair's training split (seed 0) has 6 values of discrete columns with at least 1800 rows
    assert [row["condition"] for row in rows] == ["rate_marriage = 5", "children = 0", "religious = 3", "religious = 2",
                                                  "educ = 14", "occupation = 3"]
    assert all(row["exact"] for row in rows)  # conditioned cells exact, whatever the training
    for row in rows:
        for name in conditions.SUMMARIES:
            assert 0.0 <= row[f"{name}_mean"] <= row[f"{name}_max"] <= 1.0
            per_column = row[f"{name}_columns"]
            assert max(per_column.values()) == row[f"{name}_max"] and row["condition"].split(" = ")[0] not in per_column
            # the columns over the bar: TV above 0.05 for the discrete ones, KS above 0.1 for affairs
            assert row[f"{name}_over"] == sorted(c for c, v in per_column.items() if v > (0.10 if c == "affairs" else 0.05))
    text = (tmp_path / "conditions-fair.md").read_text()
    assert "| religious = 3 | 1953 |" in text and "Conditioned cells exact in 6 of 6 conditions" in text


def test_the_floor_is_the_sampling_noise_of_the_reference_itself():
    import numpy as np
    import pandas as pd

    generator = np.random.default_rng(0)
    frame = lambda rows: pd.DataFrame({"condition": 1, "constant": 3, "coin": generator.integers(0, 2, rows),
                                       "level": generator.integers(0, 6, rows), "amount": generator.exponential(1.0, rows)})
    small, large = (conditions.floor_distances(frame(rows), 2000, "condition", {"constant", "coin", "level"}, 0)
                    for rows in (200, 5000))
    assert set(small) == {"constant", "coin", "level", "amount"} and small["constant"] == 0.0
    # A fair coin: E|p_hat - 1/2| over 200 and 2000 draws is sqrt((1/200 + 1/2000) / 4 * 2 / pi) = 0.030 (TV of two
    # binary laws is |p - q|); at 5000 reference rows, 0.011. Within 25% (a mean of 20 draws).
    assert abs(small["coin"] - 0.030) < 0.0075 and abs(large["coin"] - 0.011) < 0.0027
    for column in ("level", "amount"):  # six levels spread more than two; every column shrinks with the reference
        assert large[column] < small[column] / 1.5
    assert small["level"] > small["coin"]


def test_a_tiny_imputation_run_scores_every_method(tmp_path):
    pytest.importorskip("sklearn")
    assert imputation.main(["--iterations", "5", "--draws", "3", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "imputation-fair.json").read_text())
    assert [row["method"] for row in rows] == ["omegabridge draw", "omegabridge median of 3", "median / mode",
                                               "IterativeImputer"]
    for row in rows:
        assert 0.0 < row["numeric_mae"] <= row["numeric_rmse"] and 0.0 <= row["categorical_accuracy"] <= 1.0
    # the mode fills every hidden cell of a column with one value: far from the true spread
    assert rows[2]["distribution_tv"] > rows[0]["distribution_tv"]


def test_nearest_allowed_moves_each_value_to_the_closest_level():
    import numpy as np

    allowed = np.array([0.0, 1.0, 2.5, 4.0])
    assert imputation.nearest_allowed(np.array([-3.0, 0.4, 0.6, 1.8, 3.3, 9.0]), allowed).tolist() == [0.0, 0.0, 1.0, 2.5, 4.0, 4.0]
