"""Every sample in its domain, or a named error: the float32 limits of ``ops.check_float32_range``.

Inside the limits (ends up to ``MAX_COORDINATE``, s from ``MIN_REMAINING``-scale to
``MAX_REMAINING``, narrow intervals far from 0), every sample of the pure bridge is finite
and in its domain on each backend that runs here; membership is checked with the
domain's own ``contains`` and, independently, against the bounds written out here (rounded
to float32, the precision of the state).
Outside them, construction raises a ``ValueError`` naming the limit. A drift too large
for float32 is a ``ModelOutputError`` naming the step; ``step``/``final_step`` given a
non-finite or huge state raise on CPU tensors.
"""

from __future__ import annotations

import math

import pytest
import torch

import omegabridge as ob
from omegabridge import ops

BACKENDS = ["cpu", "reference"]
FAR = ops.MAX_COORDINATE

#: (name, domain, (low, high) written out for the independent bound check, or None)
EXTREME_DOMAINS = [
    ("interval-widest", ob.Interval(-FAR, FAR), (-FAR, FAR)),
    ("interval-far-narrow", ob.Interval(FAR - 1e11, FAR), (FAR - 1e11, FAR)),
    ("interval-unit", ob.Interval(0.0, 1.0), (0.0, 1.0)),
    ("halfline-far-low", ob.HalfLine(low=FAR), (FAR, math.inf)),
    ("halfline-far-high", ob.HalfLine(high=-FAR), (-math.inf, -FAR)),
    ("lattice-far", ob.Lattice(0.0, 8 * 1e15, step=1e15), (0.0, 8e15)),
    ("lattice", ob.Lattice(-4, 4), (-4, 4)),
    ("sphere", ob.Sphere(3), None),
    ("categorical", ob.Categorical(4), None),
    ("real", ob.Real(), None),
]
REFUSED_WITH_SMALLEST_S = {"interval-widest", "interval-far-narrow", "halfline-far-low", "halfline-far-high", "lattice-far"}
#: Schedules at the edges of the s range: the default (scale from the domain), s up to 1e34, s down to 1e-16.
SCHEDULES = {"default": None, "largest-s": ob.schedules.Constant(0.99e17), "smallest-s": ob.schedules.Constant(1e-8)}


def _bridge_or_refusal(domain, schedule):
    try:
        return ob.Bridge(domain, schedule, steps=6)
    except ValueError as error:
        return error


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("schedule_name", list(SCHEDULES))
@pytest.mark.parametrize("name, domain, bounds", EXTREME_DOMAINS, ids=[d[0] for d in EXTREME_DOMAINS])
def test_extreme_valid_parameters_sample_in_the_domain_or_are_refused_by_name(name, domain, bounds, schedule_name, backend):
    bridge = _bridge_or_refusal(domain, SCHEDULES[schedule_name])
    if isinstance(bridge, ValueError):  # only ends near 1e16 with the tiny s: the start drift |end| / s overflows
        assert schedule_name == "smallest-s" and name in REFUSED_WITH_SMALLEST_S, bridge
        assert "too far from the start" in str(bridge)
        return
    assert ops.MIN_REMAINING <= min(bridge._remaining) and max(bridge._remaining) <= ops.MAX_REMAINING
    x = bridge.sample(None, 512, seed=3, backend=backend, progress=False)
    assert bool(torch.isfinite(x).all())
    assert bool(domain.contains(x).all())
    if bounds is not None:  # the state is float32: the bounds it can hold are the float32-rounded ones
        low, high = (float(torch.tensor(b, dtype=torch.float32)) for b in bounds)
        assert bool((x >= low).all()) and bool((x <= high).all())


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ob.Bridge(ob.Interval(0, 1), ob.schedules.Constant(1e20), steps=5), r"s in \[1e-30, 1e\+34\]"),
        (lambda: ob.Bridge(ob.Interval(-1e38, 1e38), steps=5), r"factor 0 \(interval .*\|end\| 1e\+38 is over 1e\+16"),
        (lambda: ob.Bridge(ob.HalfLine(low=1e30), steps=5), r"factor 0 \(halfline-lower.*is over 1e\+16"),
        (lambda: ob.Bridge(ob.Interval(1e15, 1e15 + 1), steps=5), r"width 1 is below 1e-06 of \|end\|"),
        (lambda: ob.Bridge(ob.Product([ob.Real(), ob.Lattice(1e15, 1e15 + 8)]), steps=5), r"factor 1 \(lattice.*step 1 is below"),
        (lambda: ob.Bridge(ob.HalfLine(low=1e15), ob.schedules.Constant(1e-10), steps=5), "too far from the start"),
    ],
)
def test_parameters_float32_cannot_carry_are_refused_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("domain", [ob.HalfLine(low=0.0), ob.Interval(0.0, 1.0), ob.Sphere(3), ob.Lattice(0, 8)],
                         ids=["halfline", "interval", "sphere", "lattice"])
def test_a_drift_that_overflows_the_step_is_a_model_output_error_naming_the_step(domain, backend):
    bridge = ob.Bridge(domain, steps=5)
    with pytest.raises(ob.ModelOutputError, match=r"overflowed float32 range at step 0 \(row 0\)"):
        bridge.sample(lambda z, t: torch.full_like(z, 3e38), 3, backend=backend, progress=False)


def test_a_drift_that_overflows_only_at_a_later_step_names_that_step():
    bridge = ob.Bridge(ob.HalfLine(low=0.0), steps=5)

    def model(z, t):
        return torch.full_like(z, 3e38 if float(t[0]) >= bridge.time_grid.t[3] else 0.0)

    with pytest.raises(ob.ModelOutputError, match="at step 3"):
        bridge.sample(model, 4, progress=False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -1e20])
@pytest.mark.parametrize("op", ["step", "final_step"])
def test_a_non_finite_or_huge_state_is_refused_by_row_on_cpu(op, value, backend):
    table = ob.Product([ob.Sphere(3), ob.Interval(0, 1)]).segment_table()
    z = torch.zeros(5, table.width)
    z[3, 1] = value
    arguments = dict(remaining=1.0, seed=0, step_index=0, backend=backend)
    if op == "step":
        arguments["increment"] = 0.1
    with pytest.raises(ValueError, match=r"at row 3, column 1; a state must be finite and at most 1e\+19"):
        getattr(ob.ops, op)(z, None, table, **arguments)


@pytest.mark.parametrize("remaining", [1e-38, 1e-31, 1e35])
def test_a_subnormal_or_huge_s_is_refused(remaining):
    table = ob.Sphere(3).segment_table()
    with pytest.raises(ValueError, match=r"remaining .* must lie in \[1e-30, 1e\+34\]"):
        ob.ops.final_step(torch.ones(2, 3), None, table, remaining=remaining, seed=0, step_index=0)
