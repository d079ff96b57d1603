"""The default models for fields: which one ``for_domain`` picks, the pure bridge at initialisation, the set
network's permutation equivariance, the U-Net's time and label conditioning, and their errors."""

from __future__ import annotations

import pytest
import torch

import omegabridge as ob
from omegabridge.models import DriftSetNetwork, DriftUNet


pytestmark = pytest.mark.usefixtures("one_torch_thread")


CASES = {
    "image + label": (ob.Product([ob.Lattice(0, 255, shape=(3, 8, 8)), ob.Categorical(10)]), "DriftUNet"),
    "segmentation map": (ob.Categorical(6, shape=(16, 16)), "DriftUNet"),
    "grey image, odd size": (ob.Lattice(0, 16, shape=(7, 9)), "DriftUNet"),
    "point cloud": (ob.Lattice(0, 63, shape=(64, 3)), "DriftSetNetwork"),
    "points + class": (ob.Product([ob.Interval(-1, 1, shape=(32, 2)), ob.Categorical(4)]), "DriftSetNetwork"),
    "table": (ob.Product([ob.Real(), ob.Categorical(3), ob.Lattice(0, 9)]), "DriftMLP"),
}


def randomise_outputs(model: torch.nn.Module) -> None:
    """Give the zero-initialised output layers random weights, so the outputs depend on the inputs."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(("out.", "other_head.", "head.")):
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("name", CASES)
def test_for_domain_picks_the_model_and_it_starts_as_the_pure_bridge(name):
    domain, expected = CASES[name]
    bridge = ob.Bridge(domain, steps=10)
    torch.manual_seed(0)
    model = ob.models.for_domain(bridge)
    assert type(model).__name__ == expected
    z, t = 3.0 * torch.randn(4, domain.width), torch.rand(4)
    assert torch.equal(model(z, t), torch.zeros(4, domain.width))
    randomise_outputs(model)
    drift = model(z, t)
    assert drift.shape == (4, domain.width) and torch.isfinite(drift).all() and drift.abs().max() > 0


@pytest.mark.parametrize("with_data", [False, True])
def test_the_set_network_is_permutation_equivariant(with_data):
    domain = ob.Product([ob.Lattice(0, 63, shape=(16, 3)), ob.Categorical(4)])
    bridge = ob.Bridge(domain, steps=10)
    data = bridge.sample(None, n=64, seed=2, progress=False) if with_data else None
    torch.manual_seed(0)
    model = DriftSetNetwork(bridge, hidden=32, depth=2, data=data)
    randomise_outputs(model)
    z, t = 20.0 * torch.rand(5, domain.width), torch.rand(5)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    points, label = domain.unflatten(z)
    permuted = domain.flatten([points[:, order], label])
    out_points, out_label = domain.unflatten(model(z, t))
    permuted_points, permuted_label = domain.unflatten(model(permuted, t))
    torch.testing.assert_close(permuted_points, out_points[:, order], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(permuted_label, out_label, rtol=1e-4, atol=1e-4)


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
