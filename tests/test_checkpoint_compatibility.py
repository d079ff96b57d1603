"""A checkpoint written by omegabridge 0.1.0 before the package moved into subpackages still loads and samples.

tests/data/tabular-0.1.0.ckpt and its sample (seed 3, 20 rows) were written by that version (commit 9d39bb5).
Tolerance: categories and integers exactly; floats to 1e-4 relative (the same CPU kernels, float32 rounding).
It samples with the sampler of that version, Euler on grid "t" (the default solver is now the bridge solver, on
grid "domain"), and it predicts means as it did (its settings carry no ``posterior_logits``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import omegabridge as ob

pd = pytest.importorskip("pandas")
DATA = Path(__file__).parent / "data"


def test_a_checkpoint_from_before_the_move_loads_and_samples_as_it_did():
    model = ob.TabularBridge.load(str(DATA / "tabular-0.1.0.ckpt"), progress=False)
    expected = pd.read_csv(DATA / "tabular-0.1.0-sample.csv")
    assert model.times == "grid"  # it was trained at the grid times of its steps
    assert not model.posterior_logits
    sample = model.sample(20, seed=3, solver="euler", grid="t")
    assert list(sample.columns) == list(expected.columns)
    assert sample["colour"].tolist() == expected["colour"].tolist()
    assert sample["count"].tolist() == expected["count"].tolist()
    for column in ("share", "weight"):
        assert np.allclose(sample[column].to_numpy(float), expected[column].to_numpy(float), rtol=1e-4, atol=1e-6), column
