"""Fields: every factor with ``shape=`` (images, segmentation maps, point clouds), ``unflatten`` / ``flatten``,
the same samples as the equivalent list of scalar factors on every backend, and errors naming the factor.

Expected layouts are written out here by index arithmetic (C order, a categorical's or
sphere's K or d columns last), not taken from the code under test.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import omegabridge as ob
from omegabridge import ops as dispatch
from omegabridge.errors import DomainError

FACTORS = {
    "real": lambda shape: ob.Real(shape=shape),
    "interval": lambda shape: ob.Interval(-1.0, 2.0, shape=shape),
    "halfline": lambda shape: ob.HalfLine(low=0.5, shape=shape),
    "halfline-upper": lambda shape: ob.HalfLine(high=1.0, shape=shape),
    "lattice": lambda shape: ob.Lattice(0, 255, step=1, shape=shape),
    "binary": lambda shape: ob.Binary(shape=shape),
    "categorical": lambda shape: ob.Categorical(5, shape=shape),
    "sphere": lambda shape: ob.Sphere(3, shape=shape),
}
ELEMENT_WIDTH = {"categorical": 5, "sphere": 3}
SHAPES = [(), (4,), (2, 3), (3, 2, 2)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", FACTORS)
def test_a_field_is_its_elements_side_by_side(name, shape):
    field, element = FACTORS[name](shape), FACTORS[name](())
    count, width = math.prod(shape), ELEMENT_WIDTH.get(name, 1)
    assert field.width == count * width and field.shape == shape and field.elements == count
    table = field.segment_table()
    (segment,) = table.segments  # a field is one segment with a repeat count
    assert (segment.offset, segment.repeat, segment.columns) == (0, count, count * width)
    assert int(table.as_tensors()["repeats"][0]) == count
    assert len(table.elements) == count
    for number, segment in enumerate(table.elements):
        (alone,) = element.segments()
        assert segment.offset == number * width
        assert (segment.kind, segment.width, segment.low, segment.high, segment.step, segment.points) == (
            alone.kind, alone.width, alone.low, alone.high, alone.step, alone.points)
    assert repr(field) == (repr(element) if not shape else repr(element)[:-1] + f", shape={shape})")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", FACTORS)
def test_unflatten_is_c_order_with_the_element_axis_last_and_flatten_inverts_it(name, shape):
    field = FACTORS[name](shape)
    width = ELEMENT_WIDTH.get(name, 1)
    x = torch.randn(3, field.width)
    view = field.unflatten(x)
    expected_shape = (3, *shape) + ((width,) if name in ELEMENT_WIDTH else ())
    assert tuple(view.shape) == expected_shape
    for element, position in enumerate(itertools.product(*[range(size) for size in shape])):
        for entry in range(width):
            column = element * width + entry
            index = (slice(None), *position) + ((entry,) if name in ELEMENT_WIDTH else ())
            assert torch.equal(view[index], x[:, column])
    assert torch.equal(field.flatten(view), x)
    assert view.data_ptr() == x.data_ptr()  # a view, not a copy


def test_a_product_mixes_fields_and_scalars():
    domain = ob.Product([ob.Lattice(0, 255, shape=(3, 4, 4)), ob.Categorical(10), ob.Sphere(3, shape=(5,)), ob.Real()])
    assert domain.width == 48 + 10 + 15 + 1
    x = torch.randn(2, domain.width)
    image, label, directions, value = domain.unflatten(x)
    assert image.shape == (2, 3, 4, 4) and label.shape == (2, 10) and directions.shape == (2, 5, 3) and value.shape == (2,)
    assert torch.equal(image[:, 2, 1, 3], x[:, 2 * 16 + 1 * 4 + 3])
    assert torch.equal(label, x[:, 48:58]) and torch.equal(directions[:, 4], x[:, 70:73]) and torch.equal(value, x[:, 73])
    assert torch.equal(domain.flatten([image, label, directions, value]), x)


def backends():
    from triton_helpers import require_triton

    yield "reference", torch.device("cpu")
    yield "cpu", torch.device("cpu")
    yield "triton", require_triton()


@pytest.mark.parametrize("backend, device", list(backends()), ids=lambda v: str(v))
def test_a_field_samples_like_the_equivalent_separate_factors_on_every_backend(backend, device):
    field = ob.Product([ob.Lattice(0, 255, step=1, shape=(3, 8, 8)), ob.Categorical(10)])
    separate = ob.Product([ob.Lattice(0, 255, step=1)] * 192 + [ob.Categorical(10)])
    samples = []
    rows, steps = (2, 2) if backend == "triton" and device.type == "cpu" else (5, 8)  # Triton's interpreter is slow
    for domain in (field, separate):
        bridge = ob.Bridge(domain, ob.schedules.Exp(a=3.0, b=2000.0), steps=steps)
        samples.append(bridge.sample(None, n=rows, seed=11, device=device, backend=backend, progress=False))
    assert torch.equal(samples[0], samples[1])
    assert bool(field.contains(samples[0].cpu()).all())
    image, label = field.unflatten(samples[0].cpu())
    assert torch.equal(image, image.round()) and image.min() >= 0 and image.max() <= 255
    assert torch.equal(label.sum(dim=1), torch.ones(rows))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: ob.Lattice(0, 255, shape=(3, 0, 32)), "shape (3, 0, 32) has 0 at position 1"),
        (lambda: ob.Categorical(19, shape=(64, -64)), "shape (64, -64) has -64 at position 1"),
        (lambda: ob.Interval(0, 1, shape=(2.5,)), "has 2.5 at position 0"),
        (lambda: ob.Sphere(3, shape="big"), "shape must be a tuple of positive integers"),
        (lambda: ob.Binary(shape=(True,)), "has True at position 0"),
    ],
)
def test_a_bad_field_shape_names_the_factor_and_the_position(make, words):
    with pytest.raises(ValueError) as caught:
        make()
    assert words in str(caught.value)
    assert str(caught.value).split(":")[0] in ("Lattice(0.0, 255.0, step=1.0)", "Categorical(19)", "Interval(0.0, 1.0)",
                                               "Sphere(3)", "Binary()")


def test_flatten_and_unflatten_name_the_factor_and_the_expected_shape():
    domain = ob.Product([ob.Lattice(0, 255, shape=(3, 4, 4)), ob.Categorical(10, shape=(2,))])
    with pytest.raises(ValueError, match=r"unflatten: Product\(.*expected rows of shape \(n, 68\), got \(2, 67\)"):
        domain.unflatten(torch.zeros(2, 67))
    with pytest.raises(ValueError, match=r"flatten: factor 1 \(Categorical\(10, shape=\(2,\)\)\): expected a tensor of "
                                         r"shape \(n, 2, 10\), got \(2, 10, 2\)"):
        domain.flatten([torch.zeros(2, 3, 4, 4), torch.zeros(2, 10, 2)])
    with pytest.raises(ValueError, match="has 2 factors, got 1 tensors"):
        domain.flatten([torch.zeros(2, 3, 4, 4)])
    with pytest.raises(ValueError, match="different row counts"):
        domain.flatten([torch.zeros(2, 3, 4, 4), torch.zeros(3, 2, 10)])
    with pytest.raises(TypeError, match="takes a list of 2 tensors"):
        domain.flatten(torch.zeros(2, 68))
    with pytest.raises(ValueError, match=r"flatten: Lattice\(0.0, 255.0, step=1.0, shape=\(3, 4, 4\)\): expected a "
                                         r"tensor of shape \(n, 3, 4, 4\), got \(2, 48\)"):
        ob.Lattice(0, 255, shape=(3, 4, 4)).flatten(torch.zeros(2, 48))


def test_training_data_off_the_lattice_or_not_one_hot_names_the_factor_and_the_element():
    domain = ob.Product([ob.Lattice(0, 255, shape=(3, 4, 4)), ob.Categorical(6, shape=(2, 2))])
    bridge = ob.Bridge(domain, steps=4)
    image = torch.randint(0, 256, (5, 3, 4, 4)).float()
    labels = torch.nn.functional.one_hot(torch.randint(0, 6, (5, 2, 2)), 6).float()
    good = domain.flatten([image, labels])
    assert torch.equal(bridge.check_data(good), good)
    bad_image = image.clone()
    bad_image[3, 2, 1, 0] = 17.5
    with pytest.raises(DomainError) as caught:
        bridge.check_data(domain.flatten([bad_image, labels]))
    assert "factor 0: Lattice(0.0, 255.0, step=1.0, shape=(3, 4, 4)), element (2, 1, 0)" in str(caught.value)
    assert "first at row 3 with value 17.5" in str(caught.value)
    bad_labels = labels.clone()
    bad_labels[1, 1, 0] = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    with pytest.raises(DomainError) as caught:
        bridge.check_data(domain.flatten([image, bad_labels]))
    assert "factor 1: Categorical(6, shape=(2, 2)), element (1, 0)" in str(caught.value)
    assert "first at row 1" in str(caught.value)
