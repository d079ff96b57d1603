"""The benchmarks' paper-style baselines compute the same singular force as the reference,
so bench/run.py and bench/fields.py time the same math (a wrong log h would still time, silently)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import omegabridge as ob
from omegabridge import reference

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from baselines import per_column_score  # noqa: E402
from fields import _per_element_force  # noqa: E402


def _score(domain, z, s):
    return (reference.posterior_mean(z, domain.segment_table(), s) - z) / s


def test_per_column_autograd_gives_the_reference_score():
    domain = ob.Product([ob.Interval(-1.0, 2.0), ob.Categorical(4), ob.HalfLine(low=0.5), ob.HalfLine(high=1.0),
                         ob.Lattice(0, 16, step=1), ob.Binary(), ob.Real()])
    z = 2.0 * torch.randn(16, domain.width, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(per_column_score(domain, z, 0.7), _score(domain, z, 0.7), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("field", [ob.Lattice(0, 255, step=1, shape=(2, 3)), ob.Categorical(5, shape=(3,)),
                                   ob.HalfLine(low=0.0, shape=(4,))], ids=repr)
def test_per_element_autograd_gives_the_reference_score(field):
    z = 50.0 * torch.randn(8, field.width, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(_per_element_force(field, z, 30.0), _score(field, z, 30.0), rtol=1e-9, atol=1e-9)
