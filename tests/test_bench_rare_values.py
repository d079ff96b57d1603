"""bench/rare_values.py: its exact drift samples the rare value at its share, and a swap at tau = 0 or past 1 is one drift alone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import rare_values  # noqa: E402


@pytest.mark.parametrize("kind", ["lattice", "categorical"])
def test_the_exact_drift_keeps_the_share_and_swaps_at_the_ends_are_one_drift(kind):
    result = rare_values.run(kind, iterations=5, taus=(0.0, 1.5), variant="continuous")
    spread = (rare_values.SHARES[0] * (1 - rare_values.SHARES[0]) / rare_values.SAMPLES) ** 0.5
    assert abs(result["exact"] - rare_values.SHARES[0]) < 4 * spread + 0.002  # 0.002: the data's own share of 5000 rows
    at_zero, past_one = result["swaps"]
    assert at_zero["trained_then_exact"] == result["exact"] and at_zero["exact_then_trained"] == result["trained"]
    assert past_one["trained_then_exact"] == result["trained"] and past_one["exact_then_trained"] == result["exact"]
