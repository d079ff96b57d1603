"""DriftMLP(marginal_prior=True): the untrained model samples each discrete factor's marginal law exactly
(so rare values keep their shares while the network learns), its base is the exact posterior mean of an
independent target, and TabularBridge's default keeps rare categories and missing rates at their shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import omegabridge as ob
from omegabridge.models import DriftMLP
from omegabridge.models.marginal_prior import MarginalPrior
from omegabridge.reference.oracle import oracle_drift

DOMAIN = ob.Product([ob.Lattice(0, 5.0, step=1.0), ob.Binary(), ob.Categorical(3), ob.HalfLine(low=0.0)])
SHARES = torch.tensor([0.025, 0.28, 0.30, 0.17, 0.09, 0.135])


def _data(rows: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    level = torch.multinomial(SHARES, rows, replacement=True, generator=g).float()
    flag = (torch.rand(rows, generator=g) < 0.1).float()
    category = torch.nn.functional.one_hot(torch.multinomial(torch.tensor([0.03, 0.27, 0.7]), rows, replacement=True,
                                                             generator=g), 3).float()
    amount = torch.rand(rows, generator=g) * 3.0
    return torch.cat([level[:, None], flag[:, None], category, amount[:, None]], dim=1)


def test_the_untrained_model_samples_every_discrete_marginal():
    data = _data(20_000, 0)
    bridge = ob.Bridge(DOMAIN, steps=50)
    model = DriftMLP(bridge, hidden=16, depth=1, data=data, marginal_prior=True)
    x = bridge.sample(model, 20_000, seed=1, progress=False)
    levels = torch.bincount(x[:, 0].long(), minlength=6).double() / len(x)
    data_levels = torch.bincount(data[:, 0].long(), minlength=6).double() / len(data)
    # measured: TV 0.006, the rare lowest level 0.024 (data 0.025); the flat prior's model: 0.224 there
    assert 0.5 * (levels - data_levels).abs().sum() < 0.02
    assert abs(float(x[:, 1].mean()) - float(data[:, 1].mean())) < 0.02
    categories = x[:, 2:5].mean(dim=0)
    torch.testing.assert_close(categories, data[:, 2:5].mean(dim=0), atol=0.02, rtol=0)
    flat = DriftMLP(bridge, hidden=16, depth=1, data=data)
    assert float(torch.bincount(bridge.sample(flat, 5000, seed=1, progress=False)[:, 0].long(), minlength=6)[0]) / 5000 > 0.1


def test_the_base_is_the_exact_posterior_mean_of_an_independent_target():
    """For a target whose factors are independent with the data's marginals, base = E[X | z] exactly: the untrained
    model's drift equals the oracle's."""
    bridge = ob.Bridge(ob.Product([ob.Lattice(0, 2.0, step=1.0), ob.Binary()]), steps=20)
    support = torch.tensor([[a, b] for a in (0.0, 1.0, 2.0) for b in (0.0, 1.0)])
    level, flag = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64), torch.tensor([0.9, 0.1], dtype=torch.float64)
    p = torch.tensor([level[a] * flag[b] for a in range(3) for b in range(2)])
    rows = torch.repeat_interleave(support, (p * 1000).round().long(), dim=0)  # exactly these shares
    model = DriftMLP(bridge, hidden=8, depth=1, data=rows, marginal_prior=True)
    oracle = oracle_drift(bridge, support, p)
    z = torch.randn(64, 2) * 1.5 + 0.5
    for t in (0.0, 0.3, 0.8, 0.97):
        times = torch.full((64,), t)
        with torch.no_grad():
            ours = model(z, times)
        torch.testing.assert_close(ours, oracle(z, times).float(), rtol=1e-3, atol=1e-3 / max(1e-3, float(bridge.remaining_at(torch.tensor([t]))[0])))


def test_unseen_values_stay_reachable_and_a_model_without_data_has_the_same_buffers():
    bridge = ob.Bridge(DOMAIN, steps=10)
    data = _data(500, 3)
    data[:, 0] = torch.where(data[:, 0] == 0, torch.ones_like(data[:, 0]), data[:, 0])  # level 0 never seen
    prior = MarginalPrior(bridge.table, data)
    assert torch.isfinite(prior.scalar_log_share[0, :6]).all()
    placeholder = MarginalPrior(bridge.table)
    assert {k: v.shape for k, v in placeholder.state_dict().items()} == {k: v.shape for k, v in prior.state_dict().items()}
    with pytest.raises(TypeError, match="marginal_prior must be True or False"):
        DriftMLP(bridge, marginal_prior=1)


def test_tabular_rare_categories_and_missing_rates_keep_their_shares():
    """Item 6 of the tables issue: within max(0.01, 25% relative) of the data's share, with the marginal prior
    (the flat prior's model, the default, after the same 300 iterations: measured in the comment below)."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(2)
    rows = 4000
    frame = pd.DataFrame({
        "kind": pd.Series(rng.choice(["common", "usual", "rare", "scarce"], rows, p=[0.62, 0.33, 0.03, 0.02]), dtype="str"),
        "level": rng.choice([1, 2, 3, 4, 5], rows, p=[0.02, 0.3, 0.4, 0.2, 0.08]),
        "amount": rng.gamma(2.0, 3.0, rows),
    })
    frame.loc[rng.random(rows) < 0.05, "amount"] = np.nan
    frame.loc[rng.random(rows) < 0.04, "kind"] = None
    torch.manual_seed(0)
    model = ob.TabularBridge(steps=50, hidden=64, depth=2, marginal_prior=True, verbose=False, progress=False)
    model.fit(frame, iterations=300, batch_size=256)
    out = model.sample(8000, seed=4)
    checks = {
        "kind=rare": ((frame["kind"] == "rare").mean(), (out["kind"] == "rare").mean()),
        "kind=scarce": ((frame["kind"] == "scarce").mean(), (out["kind"] == "scarce").mean()),
        "kind missing": (frame["kind"].isna().mean(), out["kind"].isna().mean()),
        "level=1": ((frame["level"] == 1).mean(), (out["level"] == 1).mean()),
        "amount missing": (frame["amount"].isna().mean(), out["amount"].isna().mean()),
    }
    # measured (data, sample): rare 0.028 / 0.024, scarce 0.019 / 0.019, kind missing 0.038 / 0.036, level 1
    # 0.021 / 0.020, amount missing 0.049 / 0.041; the flat prior's model after the same training: 0.088, 0.062,
    # 0.102, 0.050, 0.090 (every rare share pulled toward uniform)
    for name, (real, sampled) in checks.items():
        assert abs(sampled - real) <= max(0.01, 0.25 * real), (name, real, sampled)
