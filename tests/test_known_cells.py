"""Bridge.sample(..., known=): known cells follow the exact bridge to their values and come back as
given; free cells follow the model. Checked with the exact drift of known targets
(omegabridge.reference.oracle): on a target whose factors are independent the free factor keeps
its law exactly; on a dependent one the known cell moves the free factor's law toward the true
conditional (replacement inpainting is only an approximation of it: docs/math.md, "Known cells");
and bad input is a named error."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import omegabridge as ob
from omegabridge.reference.oracle import oracle_drift

NAN = float("nan")
DOMAIN = ob.Product([ob.Lattice(0, 4), ob.Categorical(3)])
PAIRS = list(itertools.product(range(5), range(3)))
SUPPORT = torch.tensor([[a] + [1.0 if k == c else 0.0 for k in range(3)] for a, c in PAIRS])


def _known_category(n: int, category: int) -> torch.Tensor:
    known = torch.full((n, 4), NAN)
    known[:, 1:] = torch.nn.functional.one_hot(torch.tensor(category), 3).float()
    return known


def _lattice_law(x: torch.Tensor) -> torch.Tensor:
    return torch.bincount(x[:, 0].long(), minlength=5).double() / x.shape[0]


@pytest.mark.parametrize("solver", ["euler", "bridge"])
def test_known_cells_come_back_as_given_and_every_row_is_in_the_domain(solver):
    bridge = ob.Bridge(DOMAIN, steps=30)
    known = torch.full((200, 4), NAN)
    known[:100, 0] = 3.0  # rows 0..99: the lattice cell; rows 100..199: the category
    known[100:, 1:] = torch.tensor([0.0, 0.0, 1.0])
    x = bridge.sample(None, 200, seed=3, progress=False, known=known, solver=solver, batch_size=64)
    assert bool(DOMAIN.contains(x).all())
    assert torch.equal(x[:100, 0], torch.full((100,), 3.0))
    assert torch.equal(x[100:, 1:], torch.tensor([[0.0, 0.0, 1.0]]).expand(100, 3))


def test_a_free_factor_independent_of_the_known_one_keeps_its_law():
    """Independent factors: the exact conditional is the marginal, and replacement is exact."""
    lattice = torch.tensor([0.1, 0.4, 0.2, 0.25, 0.05], dtype=torch.float64)
    category = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    p = torch.tensor([lattice[a] * category[c] for a, c in PAIRS])
    bridge = ob.Bridge(DOMAIN, steps=200)
    n = 8000
    drift = oracle_drift(bridge, SUPPORT, p)
    x = bridge.sample(drift, n, seed=5, progress=False, known=_known_category(n, 2), solver="euler")
    # The oracle's lattice drift depends on the lattice state alone here, and the lattice's noise is
    # its own: fixing the category leaves the lattice's path, and its sample, exactly as without it.
    free = bridge.sample(drift, n, seed=5, progress=False, solver="euler")
    assert torch.equal(x[:, 0], free[:, 0])
    distance = 0.5 * (_lattice_law(x) - lattice).abs().sum().item()
    # Euler at 200 steps on this kind of target is within ~0.02 TV (bench/results/solvers.md); the
    # sampling error of 8000 rows over 5 points is ~0.01.
    assert distance < 0.04, f"free factor's TV to its law {distance:.4f}"


def test_a_known_cell_moves_a_dependent_factor_toward_its_conditional():
    """Category c favours lattice value 2c. Given c = 1 the lattice should sit near 2; the marginal
    puts most of its mass on 0, 2 and 4 alike. Replacement inpainting lands in between (measured:
    TV 0.32 to the conditional at 100 steps, against 0.58 for the marginal); the check is that the
    known cell moves the free factor most of the way and in the right direction."""
    weight = torch.tensor([[1.0, 0.05, 0.02][min(abs(a - 2 * c), 2)] for a, c in PAIRS], dtype=torch.float64)
    p = weight / weight.sum()
    conditional = torch.tensor([p[3 * a + 1] for a in range(5)]); conditional /= conditional.sum()
    marginal = torch.tensor([p[3 * a:3 * a + 3].sum() for a in range(5)])
    bridge = ob.Bridge(DOMAIN, steps=100)
    n = 6000
    x = bridge.sample(oracle_drift(bridge, SUPPORT, p), n, seed=1, progress=False, known=_known_category(n, 1), solver="euler")
    law = _lattice_law(x)
    to_conditional = 0.5 * (law - conditional).abs().sum().item()
    marginal_to_conditional = 0.5 * (marginal - conditional).abs().sum().item()
    assert to_conditional < 0.7 * marginal_to_conditional, (to_conditional, marginal_to_conditional)
    assert law[2] > 1.5 * marginal[2], f"P(lattice = 2 | c = 1) {law[2]:.3f}, marginal {marginal[2]:.3f}"


def test_bad_known_cells_are_named_errors():
    bridge = ob.Bridge(DOMAIN, steps=10)
    with pytest.raises(ValueError, match=r"shape \(5, 4\)"):
        bridge.sample(None, 5, progress=False, known=torch.full((5, 3), NAN))
    with pytest.raises(TypeError, match="float tensor"):
        bridge.sample(None, 5, progress=False, known=torch.zeros(5, 4, dtype=torch.int64))
    partial = torch.full((5, 4), NAN)
    partial[2, 1] = 1.0  # one entry of the categorical group
    with pytest.raises(ValueError, match="row 2 fixes part of column 1"):
        bridge.sample(None, 5, progress=False, known=partial)
    outside = torch.full((5, 4), NAN)
    outside[4, 0] = 2.5  # between lattice points
    with pytest.raises(ValueError, match="row 4 has a value outside the domain in column 0"):
        bridge.sample(None, 5, progress=False, known=outside)
    assert math.isnan(float(outside[0, 0]))  # the caller's tensor is not written
