"""TabularBridge.sample(conditions=...), impute and the conditional network: conditioned cells come back
exactly (every column kind, dict and per-row conditions, chunks, parts, the CLI); the other columns
follow the learned conditional on a table with strong dependence; bad conditions are named errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
import torch  # noqa: E402

import omegabridge as ob  # noqa: E402
from omegabridge import cli  # noqa: E402
from omegabridge.errors import SchemaError  # noqa: E402
from omegabridge.models import DriftMLP  # noqa: E402
from tests.test_tabular import OVERRIDES, TINY, mixed_frame  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    frame = mixed_frame()
    model = ob.TabularBridge(**TINY).fit(frame, OVERRIDES, iterations=30, batch_size=64)
    return frame, model


def _a_value(frame, column):
    present = frame[column].dropna()
    value = present.iloc[len(present) // 2]
    return value.item() if isinstance(value, np.generic) else value


@pytest.mark.parametrize("column", ["colour", "flag", "grade", "count", "score", "amount", "share", "delta", "country"])
def test_a_dict_condition_comes_back_exactly_in_every_row_of_every_kind(fitted, column):
    frame, model = fitted
    value = _a_value(frame, column)
    free = model.sample(40, seed=2)
    rows = model.sample(40, seed=2, conditions={column: value})
    assert (rows[column] == value).all(), rows[column].tolist()[:5]
    assert rows[column].dtype == free[column].dtype
    model.schema.check_values(rows)  # every row still valid


def test_an_amount_condition_at_its_lower_end_is_exactly_the_end():
    """The half-line column's "at the lower end" indicator and its value are both known."""
    frame = mixed_frame(missing=False)
    model = ob.TabularBridge(**TINY).fit(frame, OVERRIDES, iterations=5, batch_size=64)
    rows = model.sample(30, seed=1, conditions={"amount": 0.0, "count": 8})
    assert (rows["amount"] == 0.0).all() and (rows["count"] == 8).all()


def test_a_frame_of_conditions_fixes_its_present_cells_and_leaves_the_missing_ones_free(fitted):
    frame, model = fitted
    conditions = pd.DataFrame({"colour": ["red", None, "blue", None], "delta": [None, 1.25, -2.5, None]})
    rows = model.sample(4, seed=5, conditions=conditions)
    assert rows["colour"].tolist()[0::2] == ["red", "blue"]
    assert rows.loc[1, "delta"] == 1.25 and rows.loc[2, "delta"] == -2.5
    free = model.sample(4, seed=5)
    # row 3 has no condition: its cells are the unconditioned draw of that row
    pd.testing.assert_series_equal(rows.iloc[3], free.iloc[3], check_names=False)


def test_conditioned_chunks_equal_one_conditioned_sample(fitted):
    frame, model = fitted
    conditions = pd.DataFrame({"grade": ["low", "high"] * 60, "count": [3, None, 5] * 40})
    whole = model.sample(120, seed=7, conditions=conditions, batch_size=40)
    parts = pd.concat(list(model.sample_chunks(120, seed=7, conditions=conditions, chunk_rows=40, batch_size=40)))
    pd.testing.assert_frame_equal(parts, whole)
    assert whole["grade"].astype(str).tolist() == ["low", "high"] * 60


@pytest.mark.parametrize("conditions, error, match", [
    ({"colour": "purple"}, SchemaError, r"'colour': value 'purple' is outside the column's domain"),
    ({"count": 9.5}, SchemaError, r"'count': value 9.5 is outside"),
    ({"share": 1.5}, SchemaError, r"'share': value 1.5 is outside .*interval"),
    ({"amount": -1.0}, SchemaError, r"'amount': value -1.0 is outside"),
    ({"country": "BE"}, SchemaError, r"'country': value 'BE'"),
    ({"nope": 1}, SchemaError, r"unknown column\(s\) \['nope'\]"),
    ({"delta": None}, SchemaError, r"'delta' is conditioned on a missing value"),
    ({"delta": float("nan")}, SchemaError, r"'delta' is conditioned on a missing value"),
    ({"delta": [1.0, 2.0]}, SchemaError, r"'delta' is conditioned on a list"),
    (pd.DataFrame({"count": [1, 2]}), ValueError, r"one row per sampled row \(5\), got 2"),
    (pd.DataFrame({"count": [1, 2, 3, 40, None]}), SchemaError, r"'count', row 3: value 40.0 is outside"),
    ([("count", 1)], TypeError, r"dict \{column: value\} or a pandas DataFrame"),
])
def test_bad_conditions_are_named_errors(fitted, conditions, error, match):
    _, model = fitted
    with pytest.raises(error, match=match):
        model.sample(5, conditions=conditions)


def test_a_parts_job_records_its_conditions_and_takes_only_a_dict(fitted, tmp_path):
    _, model = fitted
    model.sample_to(str(tmp_path / "out"), 30, seed=1, chunk_rows=10, conditions={"grade": "mid"},
                    manifest_extra={"note": "x"})
    parts = pd.concat(pd.read_parquet(tmp_path / "out" / f"part-{k:05d}.parquet") for k in range(3))
    assert (parts["grade"].astype(str) == "mid").all()
    with pytest.raises(TypeError, match="sample_to takes conditions as a dict"):
        model.sample_to(str(tmp_path / "other"), 4, conditions=pd.DataFrame({"grade": ["mid"] * 4}))
    with pytest.raises(SchemaError, match="'grade': value 'top'"):
        model.sample_to(str(tmp_path / "other"), 4, conditions={"grade": "top"})
    assert not (tmp_path / "other").exists() and not (tmp_path / "other.partial").exists()


def test_the_cli_conditions_every_sampled_row_and_names_bad_conditions(fitted, tmp_path, capsys):
    _, model = fitted
    model.save(str(tmp_path / "model.ckpt"))
    out = tmp_path / "rows.csv"
    code = cli.main(["sample", str(tmp_path / "model.ckpt"), "-n", "20", "-o", str(out), "--no-progress",
                     "--condition", "colour=green", "--condition", "count=4"])
    assert code == 0
    rows = pd.read_csv(out)
    assert (rows["colour"] == "green").all() and (rows["count"] == 4).all()
    for arguments, code, message in [
        (["--condition", "colour=purple"], 1, "column 'colour' has no category 'purple'; its categories are"),
        (["--condition", "count=many"], 1, "'many' is not a number"),
        (["--condition", "size=2"], 1, "expected COLUMN=VALUE with COLUMN one of the model's columns"),
        (["--condition", "count=4", "--condition", "count=5"], 2, "'count' is conditioned twice"),
        (["--condition", "count=40"], 1, "'count': value 40 is outside"),
    ]:
        capsys.readouterr()
        result = cli.main(["sample", str(tmp_path / "model.ckpt"), "-n", "5", "-o", str(tmp_path / "bad.csv"),
                           "--no-progress", *arguments])
        assert result == code, arguments
        assert message in capsys.readouterr().err
        assert not (tmp_path / "bad.csv").exists()


# ----------------------------------------------------------------------------------------
# imputation
# ----------------------------------------------------------------------------------------
def test_impute_fills_every_missing_cell_and_returns_the_observed_ones_unchanged(fitted):
    frame, model = fitted
    holes = frame.copy()
    holes.index = [f"r{k}" for k in range(len(holes))]
    rng = np.random.default_rng(4)
    for column in ("grade", "share", "flag"):  # columns without missing values in training get holes too
        holes[column] = holes[column].astype(object)
        holes.loc[rng.random(len(holes)) < 0.2, column] = None
    filled = model.impute(holes, seed=3)
    assert list(filled.index) == list(holes.index) and list(filled.columns) == list(holes.columns)
    assert not filled.isna().any().any(), filled.isna().sum().to_dict()
    observed = holes.notna()
    for column in holes.columns:
        assert (filled[column][observed[column]] == holes[column][observed[column]]).all(), column
    model.schema.check_values(filled.reset_index(drop=True))
    assert filled["count"].dtype == model.sample(3)["count"].dtype  # the schema's dtype back, no missing left
    again = model.impute(holes, seed=3)
    pd.testing.assert_frame_equal(filled, again)


def test_impute_with_several_draws_takes_one_of_the_drawn_values(fitted):
    frame, model = fitted
    holes = frame.head(60).copy()
    holes.loc[holes.index[::3], "score"] = None
    filled = model.impute(holes, seed=1, draws=3)
    assert filled["score"].isin([1.5, 2.5, 4.0]).all()
    with pytest.raises(ValueError, match="draws must be an odd positive integer"):
        model.impute(holes, draws=2)
    with pytest.raises(TypeError, match="impute takes a pandas DataFrame"):
        model.impute(holes.to_numpy())
    with pytest.raises(SchemaError, match=r"missing \['delta'\]"):
        model.impute(holes.drop(columns="delta"))
    bad = holes.copy()
    bad.loc[bad.index[4], "count"] = 99
    with pytest.raises(SchemaError, match=r"observed cells: column 'count', row 4: value 99"):
        model.impute(bad)


def test_a_row_without_missing_cells_is_not_sampled(fitted):
    frame, model = fitted
    complete = frame.dropna().head(10)
    pd.testing.assert_frame_equal(model.impute(complete), complete)


# ----------------------------------------------------------------------------------------
# quality on a table with strong dependence
# ----------------------------------------------------------------------------------------
def _dependent_frame(rows: int, seed: int):
    """kind a: n in {0, 1, 2} and x near -2; kind b: n in {6, 7, 8} and x near +2."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(["a", "b"], rows)
    n = np.where(kind == "a", rng.integers(0, 3, rows), rng.integers(6, 9, rows))
    x = np.where(kind == "a", -2.0, 2.0) + 0.5 * rng.standard_normal(rows)
    return pd.DataFrame({"kind": kind, "n": n.astype("int64"), "x": x})


@pytest.fixture(scope="module")
def dependent():
    torch.manual_seed(0)
    frame = _dependent_frame(2000, 0)
    model = ob.TabularBridge(steps=30, hidden=64, depth=2, verbose=False, progress=False)
    model.fit(frame, iterations=800, batch_size=256)
    return frame, model


def test_the_other_columns_follow_the_condition(dependent):
    _, model = dependent
    given_b = model.sample(400, seed=1, conditions={"kind": "b"})
    given_low = model.sample(400, seed=2, conditions={"n": 1})
    given_x = model.sample(400, seed=3, conditions={"x": -2.1})
    # measured: 0.92, 0.97, 1.00, 0.97 (conditional=False, the network not trained on known cells:
    # 0.61, 0.67, 0.99, 0.74); the unconditioned share of either half is 0.5
    assert given_b["n"].between(6, 8).mean() > 0.85
    assert (given_b["x"] > 0).mean() > 0.9
    assert (given_low["kind"] == "a").mean() > 0.9
    assert (given_x["kind"] == "a").mean() > 0.9


def test_imputed_cells_follow_the_observed_ones(dependent):
    frame, model = dependent
    held_out = _dependent_frame(400, 1)
    holes = held_out.astype(object)
    holes.loc[::2, "n"] = None
    holes.loc[1::2, "kind"] = None
    filled = model.impute(holes, seed=0)
    n_right = filled["n"][::2].between(0, 2) == (held_out["kind"][::2] == "a")
    kind_right = filled["kind"][1::2] == held_out["kind"][1::2]
    # measured: 0.95 and 1.00 (conditional=False: 0.85 and 1.00); a draw from the marginal gets half right
    assert n_right.mean() > 0.9 and kind_right.mean() > 0.9


def test_conditioned_cells_of_a_model_trained_without_known_cells_are_still_exact(dependent):
    frame, _ = dependent
    plain = ob.TabularBridge(steps=20, hidden=16, depth=1, conditional=False, verbose=False, progress=False)
    plain.fit(frame, iterations=20, batch_size=64)
    assert not plain.model.takes_known_cells
    rows = plain.sample(50, seed=0, conditions={"n": 7})
    assert (rows["n"] == 7).all()


# ----------------------------------------------------------------------------------------
# the conditional network and its training
# ----------------------------------------------------------------------------------------
DOMAIN = ob.Product([ob.Lattice(0, 4), ob.Categorical(3), ob.HalfLine(low=0)])


def test_the_loss_of_a_conditional_model_counts_the_free_cells_only():
    bridge = ob.Bridge(DOMAIN, steps=20)
    model = DriftMLP(bridge, hidden=16, depth=1, conditional=True)
    torch.nn.init.normal_(model.head.weight)

    class LoudAtKnownCells(torch.nn.Module):
        takes_known_cells = True

        def forward(self, z, t, known=None):
            return model(z, t, known=known) + torch.where(torch.isnan(known), 0.0, 1e6)

    x = torch.tensor([[2.0, 0.0, 1.0, 0.0, 0.7]] * 64)
    times = torch.randint(0, 20, (64,))
    mask = bridge.draw_known_mask(64, torch.Generator().manual_seed(1))
    assert mask.any() and not mask.all()
    expected = bridge.loss_at(model, x, times, 5, known_mask=mask)
    assert math.isfinite(expected.item())
    torch.testing.assert_close(bridge.loss_at(LoudAtKnownCells(), x, times, 5, known_mask=mask), expected)
    none_known = torch.zeros_like(mask)
    unconditioned = bridge.loss_at(model, x, times, 5)
    torch.testing.assert_close(bridge.loss_at(model, x, times, 5, known_mask=none_known), unconditioned)


def test_known_masks_keep_groups_whole_and_three_rows_in_four_know_nothing():
    bridge = ob.Bridge(DOMAIN, steps=20)
    mask = bridge.draw_known_mask(4000, torch.Generator().manual_seed(0))
    group = mask[:, 1:4]
    assert bool((group.all(1) | ~group.any(1)).all())
    nothing = (~mask.any(1)).double().mean().item()
    # three rows in four know nothing by design; a known-share u ~ U(0, 1) row with 3 factors knows none
    # with probability E[(1 - u)^3] = 1/4, so 0.75 + 0.25 / 4 = 0.8125 in all (sd of the estimate 0.006)
    assert abs(nothing - 0.8125) < 0.025
    again = bridge.draw_known_mask(4000, torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)


def test_known_cells_go_only_to_a_conditional_model():
    bridge = ob.Bridge(DOMAIN, steps=20)
    plain = DriftMLP(bridge, hidden=8, depth=1)
    with pytest.raises(TypeError, match="conditional=True"):
        plain(torch.zeros(2, 5), torch.zeros(2), known=torch.zeros(2, 5))
    conditional = DriftMLP(bridge, hidden=8, depth=1, conditional=True)
    with pytest.raises(ValueError, match=r"known must have the states' shape \(2, 5\)"):
        conditional(torch.zeros(2, 5), torch.zeros(2), known=torch.zeros(2, 4))
    with pytest.raises(TypeError, match="conditional must be True or False"):
        DriftMLP(bridge, conditional="yes")


def test_a_checkpoint_keeps_the_conditional_setting_and_an_older_one_loads_unconditioned(fitted, tmp_path):
    frame, model = fitted
    assert model.conditional and model.model.takes_known_cells
    path = str(tmp_path / "model.ckpt")
    model.save(path)
    loaded = ob.TabularBridge.load(path, progress=False)
    assert loaded.model.takes_known_cells
    pd.testing.assert_frame_equal(loaded.sample(20, seed=4, conditions={"grade": "low"}),
                                  model.sample(20, seed=4, conditions={"grade": "low"}))
    plain = ob.TabularBridge(**TINY, conditional=False).fit(frame, OVERRIDES, iterations=3, batch_size=64)
    plain_path = str(tmp_path / "plain.ckpt")
    plain.save(plain_path)
    from tests.test_tabular import _rewrite

    _rewrite(plain_path, lambda content: content["model"].pop("conditional"))
    assert not ob.TabularBridge.load(plain_path, progress=False).conditional
    json.dumps(model.training)  # the training summary stays JSON-able


def test_the_cli_imputes_a_file_and_refuses_what_it_cannot_do(fitted, tmp_path, capsys):
    frame, model = fitted
    model.save(str(tmp_path / "model.ckpt"))
    holes = frame.head(50).copy()
    holes.loc[holes.index[::4], "delta"] = None
    holes.to_csv(tmp_path / "holes.csv", index=False)
    missing = int(pd.read_csv(tmp_path / "holes.csv").isna().sum().sum())
    out = tmp_path / "filled.csv"
    arguments = ["impute", str(tmp_path / "model.ckpt"), str(tmp_path / "holes.csv"), "--no-progress"]
    assert cli.main([*arguments, "-o", str(out)]) == 0
    assert f"filled {missing} missing cell(s)" in capsys.readouterr().out
    filled = pd.read_csv(out)
    assert filled["delta"].notna().all() and len(filled) == 50
    assert cli.main([*arguments, "-o", str(out)]) == 2  # an existing output needs --overwrite
    assert "already exists" in capsys.readouterr().err
    assert cli.main([*arguments, "-o", str(tmp_path / "folder")]) == 2
    assert "impute writes one table" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([*arguments, "-o", str(tmp_path / "x.csv"), "--draws", "2"])
    assert "draws must be odd" in capsys.readouterr().err
    holes.drop(columns="delta").to_csv(tmp_path / "narrow.csv", index=False)
    assert cli.main(["impute", str(tmp_path / "model.ckpt"), str(tmp_path / "narrow.csv"), "-o",
                     str(tmp_path / "x.csv"), "--no-progress"]) == 1
    assert "missing ['delta']" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
