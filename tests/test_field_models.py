"""The default models for fields: which one ``for_domain`` picks, the pure bridge at initialisation, the set
network's permutation equivariance and local neighbourhoods, the U-Net's time and label conditioning, and their errors."""

from __future__ import annotations

import pytest
import torch

import omegabridge as ob
from omegabridge.models import DriftSetNetwork, DriftUNet, set_network


pytestmark = pytest.mark.usefixtures("one_torch_thread")


CASES = {
    "image + label": (ob.Product([ob.Lattice(0, 255, shape=(3, 8, 8)), ob.Categorical(10)]), "DriftUNet"),
    "segmentation map": (ob.Categorical(6, shape=(16, 16)), "DriftUNet"),
    "grey image, odd size": (ob.Lattice(0, 16, shape=(7, 9)), "DriftUNet"),
    "point cloud": (ob.Lattice(0, 63, shape=(64, 3)), "DriftSetNetwork"),
    "points + class": (ob.Product([ob.Interval(-1, 1, shape=(32, 2)), ob.Categorical(4)]), "DriftSetNetwork"),
    "table": (ob.Product([ob.Real(), ob.Categorical(3), ob.Lattice(0, 9)]), "DriftMLP"),
}


def randomise_all(model: torch.nn.Module) -> None:
    """Give every parameter random weights (not only the outputs), so no path of the model is silent."""
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))


def randomise_outputs(model: torch.nn.Module) -> None:
    """Give the zero-initialised output layers random weights, so the outputs depend on the inputs."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(("out.", "other_head.", "head.")):
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("name", CASES)
def test_for_domain_picks_the_model_and_it_starts_as_the_pure_bridge(name):
    """A mean-predicting model starts as the pure bridge (f = 0); one with log-odds (the U-Net on a map or a small
    lattice) as the marginal prior's posterior mean, here the domain's uniform shares (no data)."""
    domain, expected = CASES[name]
    bridge = ob.Bridge(domain, steps=10)
    torch.manual_seed(0)
    model = ob.models.for_domain(bridge)
    assert type(model).__name__ == expected
    z, t = 3.0 * torch.randn(4, domain.width), torch.rand(4)
    if getattr(model, "marginal_prior", None) is None:
        assert torch.equal(model(z, t), torch.zeros(4, domain.width))
    else:
        prior = ob.models.DriftMLP(bridge, hidden=4, depth=1, marginal_prior=True)  # a field alone: the same factors
        torch.testing.assert_close(model(z, t), prior(z, t), rtol=1e-5, atol=1e-5)
    randomise_outputs(model)
    drift = model(z, t)
    assert drift.shape == (4, domain.width) and torch.isfinite(drift).all() and drift.abs().max() > 0


@pytest.mark.parametrize("logits", [False, True], ids=["means", "posterior logits"])
@pytest.mark.parametrize("with_data", [False, True])
def test_the_set_network_is_permutation_equivariant(with_data, logits):
    domain = ob.Product([ob.Lattice(0, 63, shape=(16, 3)), ob.Categorical(4)])
    bridge = ob.Bridge(domain, steps=10)
    data = bridge.sample(None, n=64, seed=2, progress=False) if with_data else None
    torch.manual_seed(0)
    model = DriftSetNetwork(bridge, hidden=32, depth=2, data=data, posterior_logits=logits)
    randomise_outputs(model)
    z, t = 20.0 * torch.rand(5, domain.width), torch.rand(5)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    points, label = domain.unflatten(z)
    permuted = domain.flatten([points[:, order], label])
    out_points, out_label = domain.unflatten(model(z, t))
    permuted_points, permuted_label = domain.unflatten(model(permuted, t))
    torch.testing.assert_close(permuted_points, out_points[:, order], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(permuted_label, out_label, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("options", [dict(), dict(positions="state"), dict(pool="mean"), dict(neighbours=3)])
def test_the_local_set_network_is_permutation_equivariant_with_random_weights(options):
    domain = ob.Product([ob.Lattice(0, 63, shape=(24, 3)), ob.Categorical(3)])
    bridge = ob.Bridge(domain, steps=10)
    torch.manual_seed(0)
    model = DriftSetNetwork(bridge, hidden=16, depth=2, **options)
    randomise_all(model)
    z, t = 63.0 * torch.rand(3, domain.width), torch.rand(3)
    order = torch.randperm(24, generator=torch.Generator().manual_seed(5))
    points, label = domain.unflatten(z)
    out_points, out_label = domain.unflatten(model(z, t))
    permuted_points, permuted_label = domain.unflatten(model(domain.flatten([points[:, order], label]), t))
    assert out_points.abs().max() > 0 and out_label.abs().max() > 0
    scale, label_scale = out_points.abs().max(), out_label.abs().max()  # the drift scales as 1/s: compare relative to its size
    torch.testing.assert_close(permuted_points / scale, out_points[:, order] / scale, rtol=0, atol=1e-5)
    torch.testing.assert_close(permuted_label / label_scale, out_label / label_scale, rtol=0, atol=1e-5)


@pytest.mark.parametrize("pool", ["max", "mean"])
def test_the_edge_convolution_is_its_definition_over_the_nearest_points(pool):
    generator = torch.Generator().manual_seed(6)
    h, p = torch.randn(2, 9, 5, generator=generator), torch.randn(2, 9, 3, generator=generator)
    index = set_network.nearest_neighbours(p, 4)
    distances = torch.cdist(p, p) + torch.diag(torch.full((9,), float("inf")))
    assert torch.equal(index.sort(dim=2).values, distances.topk(4, dim=2, largest=False).indices.sort(dim=2).values)
    layer = set_network.EdgeConvolution(features=5, dimension=3, out=7, pool=pool)
    expected = torch.empty(2, 9, 7)
    for row in range(2):
        for i in range(9):
            j = index[row, i]
            edges = torch.cat([h[row, i].expand(4, -1), h[row, j] - h[row, i], p[row, j] - p[row, i]], dim=1)
            values = torch.nn.functional.leaky_relu(layer.linear(edges), 0.2)
            expected[row, i] = values.amax(dim=0) if pool == "max" else values.mean(dim=0)
    torch.testing.assert_close(layer(h, p, index), expected, rtol=1e-5, atol=1e-5)


def test_the_set_network_starts_at_zero_and_works_on_few_points():
    bridge = ob.Bridge(ob.Product([ob.Lattice(0, 63, shape=(4, 3)), ob.Real()]), steps=10)
    torch.manual_seed(0)
    model = DriftSetNetwork(bridge, hidden=8, depth=2, neighbours=16)  # clamped to the 3 other points
    z, t = 63.0 * torch.rand(5, bridge.width), torch.rand(5)
    assert torch.equal(model(z, t), torch.zeros(5, bridge.width))
    randomise_all(model)
    drift = model(z, t)
    assert drift.shape == (5, 13) and torch.isfinite(drift).all() and drift.abs().max() > 0
    single = ob.Bridge(ob.Lattice(0, 63, shape=(1, 3)), steps=10)  # no neighbours at all: the local path gives zeros
    model = DriftSetNetwork(single, hidden=8, neighbours=4)
    randomise_all(model)
    assert torch.isfinite(model(63.0 * torch.rand(2, 3), torch.rand(2))).all()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "16"])
def test_the_set_network_rejects_bad_neighbours(bad):
    bridge = ob.Bridge(ob.Lattice(0, 63, shape=(8, 3)), steps=10)
    with pytest.raises(ValueError, match="neighbours must be a positive integer"):
        DriftSetNetwork(bridge, neighbours=bad)
    with pytest.raises(ValueError, match="positions must be one of"):
        DriftSetNetwork(bridge, positions="posterior")


def test_the_unet_sees_time_and_the_label():
    domain = ob.Product([ob.Lattice(0, 255, shape=(1, 8, 8)), ob.Categorical(10)])
    bridge = ob.Bridge(domain, steps=10)
    torch.manual_seed(0)
    model = DriftUNet(bridge, channels=(8, 16))
    randomise_outputs(model)
    z = 100.0 * torch.rand(2, domain.width)
    image = lambda out: domain.unflatten(out)[0]  # noqa: E731
    base = image(model(z, torch.full((2,), 0.3)))
    assert not torch.allclose(image(model(z, torch.full((2,), 0.6))), base)
    relabelled = z.clone()
    relabelled[:, 64:] = torch.roll(relabelled[:, 64:], 1, dims=1)
    assert not torch.allclose(image(model(relabelled, torch.full((2,), 0.3))), base)


def test_field_models_train_with_fit():
    domain = ob.Categorical(4, shape=(8, 8))
    bridge = ob.Bridge(domain, steps=10)
    data = bridge.sample(None, n=32, seed=0, progress=False)
    model = ob.models.for_domain(bridge, data=data, channels=(8, 16))
    losses = ob.fit(bridge, model, data, iterations=4, batch_size=8, progress=False)
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert model(data[:2], torch.full((2,), 0.5)).abs().max() > 0


def test_field_models_name_what_is_wrong():
    table = ob.Bridge(ob.Product([ob.Real(), ob.Categorical(3)]), steps=10)
    with pytest.raises(ValueError, match=r"DriftUNet: the domain has no image field"):
        DriftUNet(table)
    with pytest.raises(ValueError, match=r"DriftSetNetwork: the domain has no points field"):
        DriftSetNetwork(table)
    image = ob.Bridge(ob.Lattice(0, 255, shape=(1, 8, 8)), steps=10)
    with pytest.raises(ValueError, match="channels must be positive integers"):
        DriftUNet(image, channels=(8, 0))
