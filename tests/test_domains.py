"""Domains: construction, validation messages, the segment table, membership and projection."""

from __future__ import annotations

import math

import pytest
import torch

import omegabridge as ob
from omegabridge.core.segments import Kind


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: ob.Interval(1.0, 0.0), "low"),
        (lambda: ob.Interval(1.0, 1.0), "low"),
        (lambda: ob.Interval(0.0, math.inf), "high"),
        (lambda: ob.Interval(math.nan, 1.0), "low"),
        (lambda: ob.Interval("a", 1.0), "low"),
        (lambda: ob.HalfLine(), "exactly one"),
        (lambda: ob.HalfLine(low=0.0, high=1.0), "exactly one"),
        (lambda: ob.HalfLine(low=-math.inf), "low"),
        (lambda: ob.Lattice(0, 16, step=0), "step"),
        (lambda: ob.Lattice(0, 16, step=-1), "step"),
        (lambda: ob.Lattice(0, 16, step=3), "divide"),
        (lambda: ob.Lattice(5, 5, step=1), "low"),
        (lambda: ob.Lattice(0, math.nan, step=1), "high"),
        (lambda: ob.Lattice(0, 2**21, step=1), "points"),
        (lambda: ob.Categorical(1), "categories"),
        (lambda: ob.Categorical(0), "categories"),
        (lambda: ob.Categorical(2.5), "categories"),
        (lambda: ob.Sphere(1), "dimension"),
        (lambda: ob.Product([]), "empty"),
        (lambda: ob.Product([ob.Real(), 3]), "factor 1"),
        (lambda: ob.Product(ob.Real()), "list"),
    ],
)
def test_bad_specifications_name_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()


def test_large_categorical_and_lattice_are_accepted():
    assert ob.Categorical(4096).width == 4096
    assert ob.Lattice(0, 4095, step=1).points == 4096
    assert ob.Lattice(-1.0, 1.0, step=0.1).points == 21  # a step with float rounding still divides


def test_segment_table_layout():
    domain = ob.Product(
        [ob.Interval(-1.0, 1.0), ob.HalfLine(low=0.0), ob.Categorical(4), ob.Lattice(0, 16, step=1), ob.Binary(),
         ob.Sphere(3), ob.Real(), ob.Product([ob.HalfLine(high=2.0), ob.Categorical(2)])]
    )
    table = domain.segment_table()
    assert domain.width == table.width == 1 + 1 + 4 + 1 + 1 + 3 + 1 + 1 + 2
    kinds = [s.kind for s in table.segments]
    assert kinds == [Kind.INTERVAL, Kind.HALFLINE_LOWER, Kind.CATEGORICAL, Kind.LATTICE, Kind.BINARY, Kind.SPHERE,
                     Kind.REAL, Kind.HALFLINE_UPPER, Kind.CATEGORICAL]
    assert [s.offset for s in table.segments] == [0, 1, 2, 6, 7, 8, 11, 12, 13]
    packed = table.as_tensors()
    assert packed["kinds"].dtype == torch.int32 and packed["parameters"].shape == (9, 3)
    assert packed["points"].tolist() == [0, 0, 4, 17, 2, 3, 0, 0, 2]
    assert packed["parameters"][3].tolist() == [0.0, 16.0, 1.0]
    assert table.column_kinds.tolist()[2:6] == [int(Kind.CATEGORICAL)] * 4
    assert "Categorical(4)" in table.describe_column(4)


def _mixed():
    return ob.Product([ob.Interval(-1.0, 1.0), ob.HalfLine(low=0.5), ob.HalfLine(high=-0.5), ob.Lattice(0, 2, step=0.5),
                       ob.Binary(), ob.Categorical(3), ob.Sphere(2), ob.Real()])


def test_contains_accepts_members_and_rejects_each_violation():
    domain = _mixed()
    good = torch.tensor([[1.0, 0.5, -0.5, 1.5, 1.0, 0.0, 1.0, 0.0, 0.6, 0.8, -3.0]])
    assert domain.contains(good).tolist() == [True]
    violations = {
        0: 1.0001, 1: 0.4999, 2: -0.4999, 3: 1.25, 4: 0.5, 5: 1.0, 8: 0.7, 10: math.nan,
    }
    for column, value in violations.items():
        bad = good.clone()
        bad[0, column] = value
        assert domain.contains(bad).tolist() == [False], f"column {column} = {value} accepted"
    good64 = torch.tensor([[1.0, 0.5, -0.5, 1.5, 1.0, 0.0, 1.0, 0.0, 0.6, 0.8, -3.0]], dtype=torch.float64)
    assert domain.contains(good64).tolist() == [True]


def test_contains_rounds_bounds_to_the_data_precision():
    # float32(0.1) > 0.1, yet it is the float32 member nearest the end point
    assert ob.Interval(-0.1, 0.1).contains(torch.tensor([[0.1]], dtype=torch.float32)).item()
    lattice = ob.Lattice(0.0, 1.0, step=0.1)
    assert lattice.contains(torch.tensor([[0.3]], dtype=torch.float32)).item()
    assert not lattice.contains(torch.tensor([[0.35]], dtype=torch.float32)).item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_project_lands_in_domain_and_is_nearest(dtype):
    domain = _mixed()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(500, domain.width, generator=generator, dtype=dtype) * 3
    projected = domain.project(x)
    assert domain.contains(projected).all()
    again = domain.project(projected)  # members are fixed points (the sphere up to rounding)
    assert torch.equal(again[:, :8], projected[:, :8]) and torch.equal(again[:, 10], projected[:, 10])
    assert torch.allclose(again[:, 8:10], projected[:, 8:10], rtol=0, atol=4 * torch.finfo(dtype).eps)
    assert torch.equal(projected[:, 0], x[:, 0].clamp(-1, 1))
    assert torch.equal(projected[:, 3], (x[:, 3].clamp(0, 2) * 2).round() / 2)
    assert torch.equal(projected[:, 5:8].argmax(1), x[:, 5:8].argmax(1))
    circle = x[:, 8:10]
    assert torch.allclose(projected[:, 8:10], circle / circle.norm(dim=1, keepdim=True))
    assert torch.equal(projected[:, 10], x[:, 10])


def test_project_of_zero_on_sphere_is_a_member():
    sphere = ob.Sphere(3)
    assert sphere.contains(sphere.project(torch.zeros(1, 3))).item()
