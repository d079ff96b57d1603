"""bench/training_budget.py runs end to end on tiny budgets and writes a row per (table, budget) with scores in range."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas")
pytest.importorskip("statsmodels")
pytest.importorskip("sklearn")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import training_budget  # noqa: E402


def test_the_budget_table_has_a_row_per_table_and_budget(tmp_path):
    assert training_budget.main(["--small", "3,4", "--fair", "3", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "training-budget.json").read_text())
    assert [(row["table"].split()[0], row["iterations"]) for row in rows] == [("small", 3), ("small", 4), ("fair", 3)]
    for row in rows:
        for name in ("column_shapes", "column_pair_trends", "detection", "dcr_closer_to_training"):
            assert 0.0 <= row[name] <= 1.0, (name, row)
    train, test = training_budget.small_table()
    assert (len(train), len(test)) == (275, 69) and set(train.columns) == set(test.columns)
    assert "| small (anes96, 275 rows) | 3 |" in (tmp_path / "training-budget.md").read_text()
