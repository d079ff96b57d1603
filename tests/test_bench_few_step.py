"""bench/few_step_tables.py runs end to end on a tiny budget and writes its table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("statsmodels")  # fair ships with statsmodels (the demo extra)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import few_step_tables  # noqa: E402


def test_a_tiny_run_scores_every_sampler(tmp_path):
    assert few_step_tables.main(["--iterations", "5", "--rows", "150", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "few-step-tables.json").read_text())
    samplers = [f"{solver} {steps} {grid}" for solver, steps, grid in few_step_tables.SAMPLERS]
    expected = [("-", "real (train)")] + [(times, name) for times in ("grid", "continuous") for name in samplers]
    assert [(row["times"], row["sampler"]) for row in rows] == expected
    assert all(row["validity"] == 1.0 for row in rows[1:])  # every sampler keeps every row valid
    assert all(0.0 <= row["discrete_tv"] <= 1.0 and 0.0 <= row["association_error"] for row in rows)
    text = (tmp_path / "few-step-tables.md").read_text()
    assert f"`python bench/few_step_tables.py --iterations 5 --rows 150 --out {tmp_path}`" in text
    assert "| continuous | bridge 25 s^3 | 25 |" in text
