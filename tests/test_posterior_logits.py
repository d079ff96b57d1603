"""DriftMLP(posterior_logits=True): a discrete factor's prediction is its posterior mean under learned log-odds.

The claim the parametrisation rests on (omegabridge.models.marginal_prior): p(X_j = a | z) is proportional to
p(z_j | X_j = a) p(X_j = a | z_-j), so with the right log-odds, log p(X_j = a | z_-j) - log p_j(a), the formula
gives the exact posterior mean of a target whose factors depend on each other. Checked against the oracle's
E[X | z] (the full joint posterior) on fresh random states; untrained, the model is the marginal prior's; a
TabularBridge with it round-trips through a checkpoint.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import omegabridge as ob
from omegabridge.models import DriftMLP
from omegabridge.models.marginal_prior import MarginalPrior
from omegabridge.reference.oracle import oracle_drift
from omegabridge.reference.posterior import posterior_mean

F64 = torch.float64


def _dependent_target():
    """A lattice 0..2 and a 3-category group that depend on each other strongly: (support, probabilities)."""
    support, weights = [], []
    for level, category in itertools.product(range(3), range(3)):
        support.append([float(level)] + [float(category == k) for k in range(3)])
        weights.append(6.0 if level == category else 0.5 + 0.25 * level)
    probabilities = torch.tensor(weights, dtype=F64)
    return torch.tensor(support, dtype=F64), probabilities / probabilities.sum()


def _log_odds(support, probabilities, z, c, v):
    """Per row: log p(X_j = a | z_-j) - log p_j(a) for the lattice (values 0, 1, 2) and the group (categories)."""
    likelihood_lattice = -(z[:, None, 0] - c[:, None] * support[None, :, 0]) ** 2 / (2 * v[:, None])
    likelihood_group = -((z[:, None, 1:] - c[:, None, None] * support[None, :, 1:]) ** 2).sum(-1) / (2 * v[:, None])
    level, category = support[:, 0].long(), support[:, 1:].argmax(dim=1)
    marginal_level = torch.zeros(3, dtype=F64).index_add_(0, level, probabilities)
    marginal_category = torch.zeros(3, dtype=F64).index_add_(0, category, probabilities)
    # p(level = a | z_group): sum over the support points with that level of p(x) p(z_group | category)
    joint = probabilities.log()[None] + likelihood_group  # (n, points)
    level_given = torch.stack([torch.logsumexp(joint[:, level == a], dim=1) for a in range(3)], dim=1)
    level_given = level_given - torch.logsumexp(level_given, dim=1, keepdim=True)
    joint = probabilities.log()[None] + likelihood_lattice
    category_given = torch.stack([torch.logsumexp(joint[:, category == k], dim=1) for k in range(3)], dim=1)
    category_given = category_given - torch.logsumexp(category_given, dim=1, keepdim=True)
    return level_given - marginal_level.log(), category_given - marginal_category.log()


@pytest.mark.parametrize("t", [0.2, 0.6, 0.9, 0.99])
def test_the_right_log_odds_give_the_exact_posterior_mean_of_a_dependent_target(t):
    support, probabilities = _dependent_target()
    bridge = ob.Bridge(ob.Product([ob.Lattice(0, 2.0, step=1.0), ob.Categorical(3)]), steps=20)
    counts = (probabilities * 4000).round().long()
    probabilities = counts.double() / counts.sum()  # the law of the rows below, whose marginals the prior takes
    prior = MarginalPrior(bridge.table, torch.repeat_interleave(support, counts, dim=0).float())
    generator = torch.Generator().manual_seed(int(t * 1000))
    n = 256
    times = torch.full((n,), t, dtype=F64)
    beta = bridge.schedule.beta(times)
    total = bridge.time_grid.beta_end
    remaining, c, v = total - beta, beta / total, beta * (total - beta) / total
    x = support[torch.multinomial(probabilities, n, replacement=True, generator=generator)]
    z = c[:, None] * x + v.sqrt()[:, None] * torch.randn(n, 4, generator=generator, dtype=F64)  # states the target reaches
    level_odds, category_odds = _log_odds(support, probabilities, z, c, v)
    offsets = torch.cat([level_odds, category_odds], dim=1).float()  # lattice: 3 values; group: 3 categories
    assert prior.offset_count == offsets.shape[1]
    flat = torch.full((n, 4), float("nan"))  # poisoned: the formula must write every covered column
    ours = prior(z.float(), c.float(), v.float(), flat, offsets=offsets)
    exact = remaining[:, None] * oracle_drift(bridge, support, probabilities)(z, times.float()).double() + \
        posterior_mean(z, bridge.table, remaining)
    # tolerance: float32 logits of size c a z / v (up to about 1e3 late in time) round at 1e-4 of their size
    torch.testing.assert_close(ours.double(), exact, rtol=0, atol=2e-3)
    without = (prior(z.float(), c.float(), v.float(), flat).double() - exact).abs().max()
    # the marginal prior alone misses the dependence while values are still undecided; at t = 0.99 every state
    # has settled on its value (measured: 2e-23 there) and nothing is left to miss
    assert without > 0.05 if t <= 0.9 else without < 1e-6


@pytest.mark.parametrize("t", [0.2, 0.6, 0.9])
def test_the_cross_entropy_of_the_right_log_odds_is_the_exact_posterior_surprise(t):
    """-log p(X_j = x_j | z) per factor, summed, from the full joint (every column's Gaussian term and the
    dependent target's probabilities): what cross_entropy gives with the log-odds the formula needs."""
    support, probabilities = _dependent_target()
    bridge = ob.Bridge(ob.Product([ob.Lattice(0, 2.0, step=1.0), ob.Categorical(3)]), steps=20)
    counts = (probabilities * 4000).round().long()
    probabilities = counts.double() / counts.sum()
    prior = MarginalPrior(bridge.table, torch.repeat_interleave(support, counts, dim=0).float())
    generator = torch.Generator().manual_seed(int(t * 1000) + 1)
    n = 256
    beta = bridge.schedule.beta(torch.full((n,), t, dtype=F64))
    total = bridge.time_grid.beta_end
    c, v = beta / total, beta * (total - beta) / total
    x = support[torch.multinomial(probabilities, n, replacement=True, generator=generator)]
    z = c[:, None] * x + v.sqrt()[:, None] * torch.randn(n, 4, generator=generator, dtype=F64)
    level_odds, category_odds = _log_odds(support, probabilities, z, c, v)
    offsets = torch.cat([level_odds, category_odds], dim=1).float()
    joint = probabilities.log()[None] - ((z[:, None, :] - c[:, None, None] * support[None]) ** 2).sum(-1) / (2 * v[:, None])
    joint = joint - torch.logsumexp(joint, dim=1, keepdim=True)  # log p(X = point | z)
    level, category = support[:, 0].long(), support[:, 1:].argmax(dim=1)
    surprise = torch.zeros(n, dtype=F64)
    for values, observed in ((level, x[:, 0].long()), (category, x[:, 1:].argmax(dim=1))):
        factor = torch.stack([torch.logsumexp(joint[:, values == a], dim=1) for a in range(3)], dim=1)
        surprise -= factor.gather(1, observed[:, None])[:, 0]
    ours = prior.cross_entropy(z.float(), c.float(), v.float(), x.float(), offsets=offsets)
    # tolerance: float32 log-odds of size up to c a z / v ~ 1e2 here round at 1e-5 of it
    torch.testing.assert_close(ours.double(), surprise, rtol=0, atol=2e-3)
    assert surprise.mean() > 0.05  # values still undecided at these times: a loss that can be wrong


@pytest.mark.parametrize("field", [ob.Lattice(0, 8.0, step=2.0, shape=(1, 4, 4)), ob.Categorical(3, shape=(4, 4))],
                         ids=["lattice field", "categorical map"])
def test_a_unet_trained_on_cross_entropy_scores_its_values_so_and_the_other_columns_by_squared_error(field):
    """Untrained, the log-odds are the marginal prior's: loss_at (weight "none") is the mean over rows of each
    pixel's -log p(x | z_pixel) under that pixel's shares in the data (a value it never takes: half a row) and
    its own Gaussian term, plus the squared drift target of the column outside the field (the untrained drift
    there is 0)."""
    domain = ob.Product([field, ob.Interval(0.0, 1.0)])
    bridge = ob.Bridge(domain, steps=20)
    generator = torch.Generator().manual_seed(11)
    rows = 48
    if isinstance(field, ob.Categorical):
        labels = torch.randint(0, 3, (rows, 16), generator=generator)
        pixels = torch.nn.functional.one_hot(labels, 3).float().reshape(rows, -1)
        values, observed = torch.eye(3, dtype=F64), labels
    else:
        observed = torch.randint(0, 5, (rows, 16), generator=generator)
        pixels = 2.0 * observed.float()
        values = 2.0 * torch.arange(5, dtype=F64)[:, None]
    x = torch.cat([pixels, torch.rand(rows, 1, generator=generator)], dim=1)
    model = ob.models.DriftUNet(bridge, channels=(4,), data=x, value_loss="cross_entropy")
    times = torch.arange(rows) % 20
    loss = bridge.loss_at(model, x, times, seed=3, weight="none")
    _, remaining, c, variance = bridge._training_times(times)
    z_t, target = ob.ops.bridge_target(x, bridge.table, mean_scale=c.float(), noise_scale=variance.sqrt().float(),
                                       remaining=remaining.float(), seed=3)
    counts = torch.nn.functional.one_hot(observed, len(values)).sum(dim=0).double()  # (pixels, values)
    counts = counts + 0.5 * (counts == 0)
    states = z_t[:, :pixels.shape[1]].double().reshape(rows, 16, -1)  # (rows, pixels, columns of a pixel)
    likelihood = -((states[:, :, None, :] - c[:, None, None, None] * values[None, None]) ** 2).sum(-1) / (
        2 * variance.clamp_min(1e-30)[:, None, None])
    log_posterior = torch.log_softmax(counts.log()[None] + likelihood, dim=2)
    surprise = -log_posterior.gather(2, observed[:, :, None])[:, :, 0].sum(dim=1)
    expected = (surprise + target[:, -1].double() ** 2).mean()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-4, atol=0)


def test_a_conditional_mlp_on_cross_entropy_scores_only_the_free_factors():
    """Untrained, a DriftMLP's log-odds are the marginal prior's: loss_at with known cells is, per row, the
    surprise -log p(x_j | z_j) of each free discrete factor under its shares and own Gaussian term, plus the
    squared drift target of the free interval column; a known factor adds nothing."""
    support, probabilities = _dependent_target()
    domain = ob.Product([ob.Lattice(0, 2.0, step=1.0), ob.Categorical(3), ob.Interval(0.0, 1.0)])
    bridge = ob.Bridge(domain, steps=20)
    generator = torch.Generator().manual_seed(21)
    rows = 60
    discrete = support[torch.multinomial(probabilities, rows, replacement=True, generator=generator)].float()
    x = torch.cat([discrete, torch.rand(rows, 1, generator=generator)], dim=1)
    model = DriftMLP(bridge, hidden=8, depth=1, data=x, conditional=True, posterior_logits=True, value_loss="cross_entropy")
    known = torch.zeros(rows, 5, dtype=torch.bool)
    known[0::3, 0] = True  # the lattice known
    known[1::3, 1:4] = True  # the group known (whole)
    known[2::3, 4] = True  # the interval known
    times = torch.arange(rows) % 20
    loss = bridge.loss_at(model, x, times, seed=5, weight="none", known_mask=known)
    _, remaining, c, variance = bridge._training_times(times)
    z_t, target = ob.ops.bridge_target(x, bridge.table, mean_scale=c.float(), noise_scale=variance.sqrt().float(),
                                       remaining=remaining.float(), seed=5)
    z, v = z_t.double(), variance.clamp_min(1e-30)
    level, category = x[:, 0].long(), x[:, 1:4].argmax(dim=1)
    values = torch.arange(3, dtype=F64)
    level_log_posterior = torch.log_softmax(torch.bincount(level, minlength=3).double().log()[None]
                                            - (z[:, :1] - c[:, None] * values[None]) ** 2 / (2 * v[:, None]), dim=1)
    category_log_posterior = torch.log_softmax(torch.bincount(category, minlength=3).double().log()[None]
                                               - ((z[:, None, 1:4] - c[:, None, None] * torch.eye(3, dtype=F64)[None]) ** 2).sum(-1)
                                               / (2 * v[:, None]), dim=1)
    per_row = (-level_log_posterior.gather(1, level[:, None])[:, 0] * ~known[:, 0]
               - category_log_posterior.gather(1, category[:, None])[:, 0] * ~known[:, 1]
               + target[:, 4].double() ** 2 * ~known[:, 4])
    torch.testing.assert_close(loss.double(), per_row.mean(), rtol=1e-4, atol=0)
    with pytest.raises(ValueError, match="predicts means"):
        DriftMLP(bridge, hidden=8, depth=1, value_loss="cross_entropy")


def test_the_value_loss_is_checked_and_its_defaults_follow_the_measurements():
    bridge = ob.Bridge(ob.Lattice(0, 4.0, shape=(1, 4, 4)), steps=10)
    model = ob.models.DriftUNet(bridge, channels=(4,), value_loss="cross_entropy")
    assert model.value_loss == "cross_entropy" and ob.Trainer(bridge, model, progress=False).weight == "none"
    # the defaults: cross-entropy for a lattice field's log-odds, squared error for a map's and for means
    assert ob.models.DriftUNet(bridge, channels=(4,)).value_loss == "cross_entropy"
    assert ob.models.DriftUNet(ob.Bridge(ob.Categorical(3, shape=(4, 4)), steps=10), channels=(4,)).value_loss == "squared"
    assert ob.models.DriftUNet(bridge, channels=(4,), posterior_logits=False).value_loss == "squared"
    # dropout in every residual block: none unless given
    rates = lambda model: {module.p for module in model.modules() if isinstance(module, torch.nn.Dropout)}
    assert rates(model) == set() and rates(ob.models.DriftUNet(bridge, channels=(4,), dropout=0.3)) == {0.3}
    for bad in (1.0, -0.1, True, "0.1"):
        with pytest.raises(ValueError, match="dropout must be a number"):
            ob.models.DriftUNet(bridge, channels=(4,), dropout=bad)
    with pytest.raises(ValueError, match="value_loss must be one of"):
        ob.models.DriftUNet(bridge, channels=(4,), value_loss="entropy")
    with pytest.raises(ValueError, match="predicts means"):
        ob.models.DriftUNet(bridge, channels=(4,), posterior_logits=False, value_loss="cross_entropy")
    with pytest.raises(TypeError, match="known cells go to a DriftMLP"):
        bridge.loss_at(model, torch.zeros(2, 16), torch.zeros(2, dtype=torch.int64), 0,
                       known_mask=torch.zeros(2, 16, dtype=torch.bool))


def test_untrained_it_is_the_marginal_prior_model_and_it_refuses_a_non_boolean():
    domain = ob.Product([ob.Lattice(0, 5.0), ob.Binary(), ob.Categorical(3), ob.HalfLine(low=0.0)])
    bridge = ob.Bridge(domain, steps=20)
    data = torch.tensor([[1, 0, 1, 0, 0, 2.0], [3, 1, 0, 0, 1, 0.5], [5, 1, 0, 1, 0, 0.1]] * 10)
    torch.manual_seed(0)
    logits = DriftMLP(bridge, hidden=8, depth=1, data=data, posterior_logits=True)
    torch.manual_seed(0)
    means = DriftMLP(bridge, hidden=8, depth=1, data=data, marginal_prior=True)
    z, t = torch.randn(16, 6, generator=torch.Generator().manual_seed(1)), torch.rand(16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(logits(z, t), means(z, t))
    assert logits.offset_count == 2 * 6 + 3  # two scalar factors padded to the lattice's 6 values, one group of 3
    with pytest.raises(TypeError, match="posterior_logits must be True or False"):
        DriftMLP(bridge, posterior_logits="yes")
    with pytest.raises(TypeError, match="posterior_logits must be True or False"):
        ob.TabularBridge(posterior_logits=1)


def test_a_tabular_bridge_with_posterior_logits_loads_back(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"kind": ["a", "b", "c", "a"] * 25, "level": [1, 2, 3, 2] * 25, "amount": [0.5, 1.0, 2.0, 3.5] * 25})
    model = ob.TabularBridge(steps=10, hidden=16, depth=1, posterior_logits=True, verbose=False, progress=False)
    model.fit(frame, iterations=20, batch_size=32)
    path = str(tmp_path / "model.pt")
    model.save(path)
    loaded = ob.TabularBridge.load(path, progress=False)
    assert loaded.posterior_logits and loaded.model.offset_count == model.model.offset_count > 0
    pd.testing.assert_frame_equal(loaded.sample(50, seed=3), model.sample(50, seed=3))


def _prediction(model, bridge, z, t):
    """x_hat = m + s f: what the model predicts, from its drift."""
    remaining = bridge.remaining_at(t.to(F64))[:, None]
    with torch.no_grad():
        return posterior_mean(z.to(F64), bridge.table, remaining) + remaining * model(z, t).to(F64)


@pytest.mark.parametrize("domain", [ob.Categorical(3, shape=(4, 6)), ob.Lattice(0, 8.0, step=2.0, shape=(2, 4, 4))],
                         ids=["categorical map", "lattice field"])
def test_an_untrained_unet_with_posterior_logits_predicts_the_marginal_prior(domain):
    bridge = ob.Bridge(domain, steps=20)
    generator = torch.Generator().manual_seed(5)
    if isinstance(domain, ob.Categorical):
        data = domain.flatten(torch.nn.functional.one_hot(torch.randint(0, 3, (64, 4, 6), generator=generator), 3).float())
    else:
        data = 2.0 * torch.randint(0, 5, (64, 32), generator=generator).float()
    unet = ob.models.DriftUNet(bridge, channels=(8,), data=data, posterior_logits=True)
    mlp = DriftMLP(bridge, hidden=4, depth=1, data=data, marginal_prior=True)  # its untrained x_hat is the prior's
    z, t = 3.0 * torch.randn(8, domain.width, generator=generator), torch.rand(8, generator=generator)
    torch.testing.assert_close(_prediction(unet, bridge, z, t), _prediction(mlp, bridge, z, t), rtol=0, atol=1e-4)


def test_each_lattice_pixel_reads_its_own_log_odds():
    """A large bias on the output of (channel 1, value 3) makes every pixel of channel 1 predict value 3 at t = 0 (no
    likelihood term yet), and leaves channel 0 at its marginal mean: the outputs are laid out per pixel and value."""
    domain = ob.Lattice(0, 8.0, step=2.0, shape=(2, 4, 4))
    bridge = ob.Bridge(domain, steps=20)
    data = 2.0 * torch.randint(0, 5, (64, 32), generator=torch.Generator().manual_seed(6)).float()
    unet = ob.models.DriftUNet(bridge, channels=(8,), data=data, posterior_logits=True)
    assert unet.out.out_channels == 2 * 5
    with torch.no_grad():
        unet.out.bias[1 * 5 + 3] = 50.0
    x_hat = _prediction(unet, bridge, torch.zeros(4, 32), torch.zeros(4)).reshape(4, 2, 16)
    torch.testing.assert_close(x_hat[:, 1], torch.full((4, 16), 6.0, dtype=F64), rtol=0, atol=1e-5)
    torch.testing.assert_close(x_hat[:, 0], data[:, :16].mean(dim=0).to(F64).expand(4, 16), rtol=0, atol=0.1)  # shares
    # of 64 rows, half a row for unseen values: the prior's mean is the data's within 0.1


def test_a_unet_refuses_posterior_logits_where_it_has_no_values_to_weigh():
    with pytest.raises(ValueError, match="posterior_logits needs a categorical map or a lattice field"):
        ob.models.DriftUNet(ob.Bridge(ob.Interval(0.0, 1.0, shape=(1, 4, 4)), steps=10), channels=(4,), posterior_logits=True)
    with pytest.raises(TypeError, match="posterior_logits must be True, False or None"):
        ob.models.DriftUNet(ob.Bridge(ob.Categorical(3, shape=(4, 4)), steps=10), channels=(4,), posterior_logits=1)


@pytest.mark.parametrize("domain, expected", [(ob.Categorical(3, shape=(4, 4)), True), (ob.Lattice(0, 16, shape=(1, 4, 4)), True),
                                              (ob.Lattice(0, 255, shape=(1, 4, 4)), False), (ob.Interval(0.0, 1.0, shape=(1, 4, 4)), False)])
def test_the_unet_default_takes_log_odds_for_maps_and_small_lattices(domain, expected):
    model = ob.models.DriftUNet(ob.Bridge(domain, steps=10), channels=(4,))
    assert (model.marginal_prior is not None) is expected


def test_the_moving_average_keeps_the_shares_of_factors_of_different_widths():
    """A lattice of 6 values beside a binary pads the binary's shares; the EMA averages buffers too, and a padding of
    -inf would turn NaN there (measured with -inf: the averaged padding was NaN)."""
    bridge = ob.Bridge(ob.Product([ob.Lattice(0, 5.0), ob.Binary()]), steps=10)
    data = torch.tensor([[0.0, 1.0], [3.0, 0.0], [5.0, 1.0], [2.0, 0.0]] * 8)
    model = DriftMLP(bridge, hidden=8, depth=1, data=data, posterior_logits=True)
    trainer = ob.Trainer(bridge, model, batch_size=8, ema_decay=0.9, progress=False)
    trainer.fit(data, 3)
    averaged = trainer.averaged_model
    assert torch.equal(averaged.marginal_prior.scalar_log_share, model.marginal_prior.scalar_log_share)
    with torch.no_grad():
        assert torch.isfinite(averaged(torch.randn(16, 2), torch.rand(16))).all()
    assert bridge.domain.contains(bridge.sample(averaged, 32, seed=0, progress=False)).all()


def test_an_untrained_set_network_with_posterior_logits_predicts_each_coordinates_pooled_marginal():
    """Every point of a cloud shares one law per coordinate: clouds whose points all sit at one place give every
    column the same shares, so the pooled prior is the MLP's per-column prior (at any state and time)."""
    domain = ob.Lattice(0, 15, shape=(6, 2))
    bridge = ob.Bridge(domain, steps=20)
    generator = torch.Generator().manual_seed(7)
    place = torch.randint(0, 16, (64, 1, 2), generator=generator).float()
    data = place.expand(64, 6, 2).reshape(64, 12)
    model = ob.models.DriftSetNetwork(bridge, hidden=8, depth=1, neighbours=3, data=data, posterior_logits=True)
    assert model.logit_values == 16 and model.out.out_features == 2 * 16
    mlp = DriftMLP(bridge, hidden=4, depth=1, data=data, marginal_prior=True)
    z, t = 8.0 + 5.0 * torch.randn(8, 12, generator=generator), torch.rand(8, generator=generator)
    torch.testing.assert_close(_prediction(model, bridge, z, t), _prediction(mlp, bridge, z, t), rtol=0, atol=1e-4)


def test_the_set_network_pools_the_shares_over_points_and_reads_each_coordinates_log_odds():
    """At t = 0 (no likelihood term) the untrained prediction is each coordinate's pooled share-weighted mean, the
    same for every point, computed here from the counts; a large bias on (coordinate 1, value 3) moves coordinate 1
    of every point to 3 and leaves coordinate 0 where it was."""
    domain = ob.Lattice(0, 7, shape=(5, 2))
    bridge = ob.Bridge(domain, steps=20)
    data = torch.randint(0, 8, (40, 5, 2), generator=torch.Generator().manual_seed(8)).float()
    model = ob.models.DriftSetNetwork(bridge, hidden=8, depth=1, neighbours=2, data=data.reshape(40, 10),
                                      posterior_logits=True)
    expected = torch.empty(2, dtype=F64)
    for coordinate in range(2):
        shares = []
        for point in range(5):
            counts = torch.bincount(data[:, point, coordinate].long(), minlength=8).to(F64)
            counts = counts + 0.5 * (counts == 0)
            shares.append(counts / counts.sum())
        expected[coordinate] = (torch.stack(shares).mean(dim=0) * torch.arange(8, dtype=F64)).sum()
    x_hat = _prediction(model, bridge, torch.zeros(3, 10), torch.zeros(3)).reshape(3, 5, 2)
    torch.testing.assert_close(x_hat, expected.expand(3, 5, 2), rtol=0, atol=1e-5)
    with torch.no_grad():
        model.out.bias[1 * 8 + 3] = 50.0
    moved = _prediction(model, bridge, torch.zeros(3, 10), torch.zeros(3)).reshape(3, 5, 2)
    torch.testing.assert_close(moved[..., 1], torch.full((3, 5), 3.0, dtype=F64), rtol=0, atol=1e-5)
    torch.testing.assert_close(moved[..., 0], x_hat[..., 0], rtol=0, atol=1e-6)


def test_the_set_network_refuses_posterior_logits_without_a_lattice_and_takes_them_only_when_asked():
    with pytest.raises(ValueError, match="posterior_logits needs a lattice point field"):
        ob.models.DriftSetNetwork(ob.Bridge(ob.Interval(0.0, 1.0, shape=(8, 3)), steps=10), hidden=4,
                                  posterior_logits=True)
    with pytest.raises(TypeError, match="posterior_logits must be True, False or None"):
        ob.models.DriftSetNetwork(ob.Bridge(ob.Lattice(0, 63, shape=(8, 3)), steps=10), hidden=4, posterior_logits="on")
    small, wide = ob.Bridge(ob.Lattice(0, 63, shape=(8, 3)), steps=10), ob.Bridge(ob.Lattice(0, 255, shape=(8, 3)), steps=10)
    assert ob.models.DriftSetNetwork(small, hidden=4).marginal_prior is None  # the default: means (measured better)
    model = ob.models.DriftSetNetwork(small, hidden=4, posterior_logits=None)  # None: on up to LOGIT_POINTS values
    assert model.marginal_prior is not None
    with pytest.raises(TypeError, match="gives log-odds per value"):
        model.predict(torch.zeros(1, 24), torch.zeros(1, 24), torch.zeros(1, 3))
    assert ob.models.DriftSetNetwork(wide, hidden=4, posterior_logits=None).marginal_prior is None
