"""``BridgeDrift.output_scale``: EDM's c_out for the U-Net (``"preconditioned"``), sigma_data otherwise.

Checked against its definition computed here from the schedule in float64 (tolerance 1e-5 relative,
float32 output), and the forward pass against ``scale * h / s`` with non-zero weights.
"""

from __future__ import annotations

import math

import pytest
import torch

import omegabridge as ob
from omegabridge.models import DriftUNet


def _unet(output_scaling="preconditioned"):
    torch.manual_seed(0)
    bridge = ob.Bridge(ob.Lattice(0, 16, shape=(1, 4, 4)), ob.schedules.Exp(3.0, 256.0), steps=20)
    data = bridge.domain.flatten(torch.randint(0, 17, (64, 1, 4, 4)).float())
    # the mean-predicting U-Net: the output scale multiplies its h (with log-odds only the other columns' h)
    return DriftUNet(bridge, channels=(4,), data=data, output_scaling=output_scaling, posterior_logits=False)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.7, 0.95, 0.999])
def test_the_preconditioned_scale_is_c_out_of_the_state_noise(t):
    model = _unet()
    beta_end = 256.0 * (1.0 - math.exp(-3.0))
    beta = 256.0 * (1.0 - math.exp(-3.0 * t))
    remaining = beta_end - beta
    c, v = beta / beta_end, beta * remaining / beta_end
    data = model.data_std.double()
    expected = data if c == 0 else data * math.sqrt(v / c**2) / torch.sqrt(data**2 + v / c**2)
    scale = model.output_scale(torch.tensor([t]))[0].double()
    torch.testing.assert_close(scale, expected, rtol=1e-5, atol=0.0)


def test_the_data_scaling_is_the_data_spread_at_every_time():
    model = _unet("data")
    scale = model.output_scale(torch.tensor([0.0, 0.5, 0.99]))
    torch.testing.assert_close(scale, model.data_std.expand(3, -1))


def test_the_forward_pass_is_scale_times_h_over_s():
    model = _unet()
    for parameter in model.parameters():  # leave the zero start: h must be non-zero for the check to mean anything
        torch.nn.init.normal_(parameter, std=0.1)
    z, t = torch.rand(3, 16) * 16, torch.tensor([0.1, 0.5, 0.9])
    zs, m, features, s = model.inputs(z, t)
    h = model.predict(zs, m, features)
    assert float(h.detach().abs().max()) > 1e-3
    torch.testing.assert_close(model(z, t), model.output_scale(t) * h / s, rtol=1e-5, atol=1e-6)


def test_a_bad_output_scaling_is_named():
    with pytest.raises(ValueError, match="output_scaling"):
        _unet("edm")
