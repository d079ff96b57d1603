"""bench/solvers.py: its total variation against hand-computed values, and a tiny run that writes its three files."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import solvers  # noqa: E402


def test_total_variation_counts_off_support_mass_in_full():
    support = torch.tensor([[0.0], [1.0]])
    target = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert solvers.total_variation(torch.tensor([[0.0], [1.0]]), support, target) == pytest.approx(0.0)
    # empirical (0.75, 0.25): TV 0.25
    assert solvers.total_variation(torch.tensor([[0.0], [0.0], [0.0], [1.0]]), support, target) == pytest.approx(0.25)
    # one of four rows off the support: |0.5 - 0.5| + |0.25 - 0.5| + 0.25, halved
    assert solvers.total_variation(torch.tensor([[0.0], [0.0], [1.0], [7.0]]), support, target) == pytest.approx(0.25)


def test_a_tiny_run_writes_the_table_the_csv_and_the_plot(tmp_path):
    assert solvers.main(["--rows", "400", "--steps", "5", "10", "--grids", "t", "s", "--targets", "mixed",
                         "--solvers", "euler", "bridge+variance", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["solvers.csv", "solvers.md", "solvers.png"]
    rows = list(csv.DictReader(open(tmp_path / "solvers.csv")))
    cells = [("t", "5"), ("t", "10"), ("s", "5"), ("s", "10")]
    assert [(r["solver"], r["grid"], r["steps"]) for r in rows] == (
        [("exact draws", "-", "0")] + [("euler", *c) for c in cells] + [("bridge+variance", *c) for c in cells])
    assert all(r["metric"] == "TV" and 0.0 <= float(r["error"]) <= 1.0 for r in rows)
    text = (tmp_path / "solvers.md").read_text()
    assert "| euler | s |" in text and "| bridge+variance | t |" in text
    assert (f"`python bench/solvers.py --rows 400 --steps 5 10 --grids t s --targets mixed --solvers euler bridge+variance "
            f"--out {tmp_path}`") in text


def test_wasserstein_1_against_a_discrete_law():
    support = torch.tensor([[0.0], [1.0]])
    target = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert solvers.wasserstein_1(torch.tensor([[0.0], [1.0]]), support, target) == pytest.approx(0.0)
    # every sample moved by 0.1 costs 0.1
    assert solvers.wasserstein_1(torch.tensor([[0.1], [0.9], [0.1], [0.9]]), support, target) == pytest.approx(0.1)
    # three of four samples at 0: one quarter of the mass has to travel 1
    assert solvers.wasserstein_1(torch.tensor([[0.0], [0.0], [0.0], [1.0]]), support, target) == pytest.approx(0.25)


def test_a_tiny_run_on_a_continuous_target_reports_w1(tmp_path):
    assert solvers.main(["--rows", "300", "--steps", "5", "--grids", "s", "--targets", "interval", "--solvers", "bridge",
                         "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "solvers.csv")))
    assert [r["metric"] for r in rows] == ["W1", "W1"] and all(0.0 <= float(r["error"]) <= 1.0 for r in rows)
    assert "## interval: W1" in (tmp_path / "solvers.md").read_text()
