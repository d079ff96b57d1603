"""TabularBridge, schema inference, column encodings and checkpoints.

Validity is checked here against allowed values written out in the tests, not through
the schema code under test.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

pd = pytest.importorskip("pandas")

import omegabridge as ob  # noqa: E402
from omegabridge.tabular import TableEncoder  # noqa: E402
from omegabridge.tabular.checkpoint import FORMAT, FORMAT_VERSION, checksum  # noqa: E402

TINY = dict(steps=12, hidden=24, depth=1, verbose=False, progress=False)


def mixed_frame(rows: int = 240, seed: int = 0, missing: bool = True):
    """One column of every kind, and missing values in every kind that can have them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "colour": pd.Series(rng.choice(["red", "green", "blue"], rows), dtype="str"),
            "flag": rng.random(rows) < 0.3,
            "grade": pd.Categorical(rng.choice(["low", "mid", "high"], rows), categories=["low", "mid", "high"]),
            "count": rng.integers(0, 9, rows).astype("int64"),
            "score": rng.choice([1.5, 2.5, 4.0], rows),
            "amount": np.where(rng.random(rows) < 0.4, 0.0, rng.exponential(50.0, rows)),
            "share": rng.uniform(0.1, 0.9, rows),
            "delta": rng.normal(-3.0, 2.0, rows),
            "country": "NL",
        }
    )
    if missing:
        for column, share in (("colour", 0.1), ("count", 0.15), ("score", 0.1), ("amount", 0.1), ("delta", 0.2)):
            frame.loc[rng.random(rows) < share, column] = None
        frame["count"] = frame["count"].astype("Int64")
    return frame


OVERRIDES = {"share": {"kind": "interval", "low": 0.0, "high": 1.0}}


# ----------------------------------------------------------------------------------------
# schema inference
# ----------------------------------------------------------------------------------------
def test_inferred_kinds_follow_the_rules():
    schema = ob.infer_schema(mixed_frame(), OVERRIDES)
    kinds = {c.name: c.kind for c in schema}
    assert kinds == {
        "colour": "categorical", "flag": "categorical", "grade": "categorical", "count": "lattice",
        "score": "ordinal", "amount": "halfline", "share": "interval", "delta": "real", "country": "constant",
    }
    assert schema["colour"].categories == ["blue", "green", "red"] and schema["colour"].missing
    assert schema["grade"].categories == ["low", "mid", "high"]  # a categorical dtype keeps its order
    assert (schema["count"].low, schema["count"].high, schema["count"].step) == (0.0, 8.0, 1.0)
    assert schema["score"].levels == [1.5, 2.5, 4.0]
    assert schema["share"].source == "declared" and schema["delta"].source == "inferred"
    assert not schema["flag"].missing and schema["delta"].missing


def test_integer_valued_floats_with_a_small_range_are_lattices_and_wide_ones_are_not():
    frame = pd.DataFrame({"small": [1.0, 3.0, 5.0, 2.0], "wide": [0.0, 10.0, 1000.0, 7.0], "neg": [-5.0, 0.5, 3.25, -1.0]})
    frame = pd.concat([frame] * 5, ignore_index=True)
    frame.loc[:, "neg"] = np.linspace(-5, 5, len(frame))
    kinds = {c.name: c.kind for c in ob.infer_schema(frame)}
    assert kinds == {"small": "lattice", "wide": "ordinal", "neg": "real"}
    kinds = {c.name: c.kind for c in ob.infer_schema(frame, max_ordinal_levels=3)}
    assert kinds["wide"] == "halfline"


def test_the_schema_prints_every_column_and_who_chose_it():
    text = ob.infer_schema(mixed_frame(), OVERRIDES).describe()
    for name in ("colour", "count", "amount", "share", "country"):
        assert name in text
    assert "interval [0, 1]" in text and "declared" in text and "+ missing" in text


def test_pandas_string_dtype_is_categorical_and_comes_back_as_string():
    frame = pd.DataFrame({"name": pd.Series(["a", "b", "a", "c"] * 10, dtype="string"), "x": np.arange(40.0) / 3})
    schema = ob.infer_schema(frame)
    assert schema["name"].kind == "categorical" and schema["name"].dtype == "string"
    encoder = TableEncoder.fit(schema, frame)
    back = encoder.decode(encoder.encode(frame))
    assert back["name"].dtype == frame["name"].dtype and back["name"].tolist() == frame["name"].tolist()


@pytest.mark.parametrize(
    "frame, overrides, message",
    [
        (pd.DataFrame({"a": [1, 2]}), {"b": "real"}, "columns the table lacks: ['b']"),
        (pd.DataFrame({"a": [1, 2]}), {"a": "blob"}, "unknown kind 'blob'"),
        (pd.DataFrame({"a": [1, 2]}), {"a": {"kind": "real", "lo": 1}}, "unknown schema keys ['lo']"),
        (pd.DataFrame({"a": [1, 2]}), {"a": {"kind": "lattice", "low": 0, "high": 1, "step": 0.3}}, "does not divide"),
        (pd.DataFrame({"a": [1.0, 2.0]}), {"a": {"kind": "interval", "low": 3, "high": 1}}, "low < high"),
        (pd.DataFrame({"a": pd.Series([], dtype=float)}), None, "no rows"),
        (pd.DataFrame({"a": [np.nan, np.nan]}), None, "column 'a' has no non-missing value"),
        (pd.DataFrame({"a": ["x", "y"]}), {"a": "lattice"}, "row 0: 'x' is not a number"),
    ],
)
def test_bad_schemas_are_clear_errors(frame, overrides, message):
    with pytest.raises(ob.SchemaError, match=None) as info:
        ob.infer_schema(frame, overrides)
    assert message in str(info.value)


def test_schema_json_round_trip():
    schema = ob.infer_schema(mixed_frame(), OVERRIDES)
    again = ob.Schema.from_dict(schema.to_dict())
    assert [c.to_dict() for c in again] == [c.to_dict() for c in schema]


# ----------------------------------------------------------------------------------------
# encodings
# ----------------------------------------------------------------------------------------
def test_encode_then_decode_gives_the_table_back_with_its_dtypes():
    frame = mixed_frame()
    encoder = TableEncoder.fit(ob.infer_schema(frame, OVERRIDES), frame)
    x = encoder.encode(frame)
    assert x.dtype == torch.float32 and bool(encoder.domain.contains(x).all())
    back = encoder.decode(x)
    assert list(back.dtypes) == list(frame.dtypes)
    for column in frame.columns:
        expected, got = frame[column], back[column]
        assert (expected.isna().to_numpy() == got.isna().to_numpy()).all(), column
        if column in ("amount", "share", "delta"):  # float32 in between
            np.testing.assert_allclose(got.dropna().to_numpy(float), expected.dropna().to_numpy(float), rtol=2e-6, atol=2e-6)
        else:
            assert got.dropna().tolist() == expected.dropna().tolist(), column


def test_amount_zeros_get_an_indicator_and_stay_exactly_zero():
    frame = mixed_frame()
    encoder = TableEncoder.fit(ob.infer_schema(frame, OVERRIDES), frame)
    factors = [repr(f) for f in encoder.domain.factors]
    # amount: missing indicator, "at 0" indicator, then the half-line
    amount = encoder.encodings[list(frame.columns).index("amount")]
    assert amount.missing_indicator and amount.atom_indicator and amount.width == 3
    assert factors.count("HalfLine(low=0.0)") == 1
    back = encoder.decode(encoder.encode(frame))
    assert ((back["amount"] == 0) == (frame["amount"] == 0)).all()


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("colour", "purple", "'purple' is not allowed"),
        ("count", 9, "value 9 is not allowed"),
        ("count", 2.5, "value 2.5 is not allowed"),
        ("score", 3.0, "value 3.0 is not allowed"),
        ("amount", -1.0, "value -1.0 is not allowed"),
        ("share", 1.5, "value 1.5 is not allowed"),
        ("flag", None, "value None is not allowed"),
        ("delta", np.inf, "value inf is not allowed"),
    ],
)
def test_unseen_or_out_of_bound_values_name_column_and_row(column, value, message):
    frame = mixed_frame(missing=True)
    model_frame = frame.copy()
    encoder = TableEncoder.fit(ob.infer_schema(model_frame, OVERRIDES), model_frame)
    bad = frame.head(10).copy()
    bad.index = range(100, 110)
    if column == "count":
        bad["count"] = bad["count"].astype(object)
    if column == "flag":
        bad["flag"] = bad["flag"].astype(object)
    bad.loc[107, column] = value
    with pytest.raises(ob.SchemaError) as info:
        encoder.encode(bad)
    assert f"column {column!r}, row 107" in str(info.value) and message in str(info.value)


def test_missing_or_extra_columns_are_named():
    frame = mixed_frame()
    encoder = TableEncoder.fit(ob.infer_schema(frame), frame)
    with pytest.raises(ob.SchemaError, match=r"missing \['delta'\], unexpected \['other'\]"):
        encoder.encode(frame.drop(columns="delta").assign(other=1))


# ----------------------------------------------------------------------------------------
# TabularBridge
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    frame = mixed_frame()
    model = ob.TabularBridge(**TINY).fit(frame, OVERRIDES, iterations=30, batch_size=64)
    return frame, model


def test_every_sampled_value_obeys_its_column(fitted):
    frame, model = fitted
    rows = model.sample(600, seed=3)
    assert list(rows.columns) == list(frame.columns) and len(rows) == 600
    assert list(rows.dtypes) == list(frame.dtypes)
    present = lambda column: rows[column].dropna()  # noqa: E731
    assert set(present("colour")) <= {"red", "green", "blue"}
    assert rows["flag"].notna().all() and set(rows["flag"]) <= {True, False}
    assert set(present("grade")) <= {"low", "mid", "high"} and rows["grade"].notna().all()
    assert set(present("count")) <= set(range(0, 9))
    assert set(present("score")) <= {1.5, 2.5, 4.0}
    assert (present("amount") >= 0).all() and np.isfinite(present("amount")).all()
    assert present("share").between(0.0, 1.0).all() and rows["share"].notna().all()
    assert np.isfinite(present("delta")).all()
    assert (rows["country"] == "NL").all()
    # columns without missing values in training never get one
    for column in ("flag", "grade", "share", "country"):
        assert rows[column].notna().all(), column


def test_chunks_with_row_offsets_equal_one_sample(fitted):
    _, model = fitted
    whole = model.sample(250, seed=7, batch_size=50)
    parts = pd.concat(list(model.sample_chunks(250, seed=7, chunk_rows=100, batch_size=50)))
    assert list(parts.index) == list(range(250))
    pd.testing.assert_frame_equal(parts, whole)


def test_the_sampler_can_be_chosen_and_every_row_stays_valid(fitted):
    frame, model = fitted
    default = model.sample(200, seed=2)
    euler = model.sample(200, seed=2, solver="euler")
    few = model.sample(200, seed=2, solver="bridge", steps=12, grid="s")
    assert list(few.dtypes) == list(frame.dtypes)
    assert set(few["colour"].dropna()) <= {"red", "green", "blue"} and set(few["count"].dropna()) <= set(range(0, 9))
    assert (few["amount"].dropna() >= 0).all() and few["share"].between(0.0, 1.0).all()
    assert not few.equals(euler) and not euler.equals(default)
    # the default sampler by name is the default, and chunks of a chosen sampler equal one sample
    pd.testing.assert_frame_equal(model.sample(200, seed=2, solver="bridge", steps=model.steps, grid="domain"), default)
    assert not model.sample(200, seed=2, grid="t").equals(default)  # the default grid is "domain", not "t"
    parts = pd.concat(list(model.sample_chunks(200, seed=2, chunk_rows=64, solver="bridge", steps=12, grid="s")))
    pd.testing.assert_frame_equal(parts, few)


@pytest.mark.parametrize("kwargs, match", [(dict(solver="heun"), "solver must be one of"),
                                           (dict(steps=1), "steps must be an integer >= 2"),
                                           (dict(grid="log"), "grid"), (dict(grid=["s"]), "grid")])
def test_bad_sampler_settings_are_named_before_any_sampling(fitted, tmp_path, kwargs, match):
    _, model = fitted
    with pytest.raises(ValueError, match=match):
        model.sample(10, **kwargs)
    with pytest.raises(ValueError, match=match):
        next(model.sample_chunks(10, **kwargs))
    with pytest.raises(ValueError, match=match):
        model.sample_to(str(tmp_path / "out"), 10, **kwargs)
    assert not os.listdir(tmp_path)


def test_a_parts_job_records_its_sampler_and_a_resume_with_another_is_refused(fitted, tmp_path):
    from omegabridge.tabular.sample_parts import JOB_FILE, PARTIAL_SUFFIX

    _, model = fitted
    out = tmp_path / "parts"
    staging = str(out) + PARTIAL_SUFFIX
    os.makedirs(staging)
    few = {"solver": "bridge", "steps": 9, "grid": "s^3"}
    from omegabridge.tabular.sample_parts import model_fingerprint
    job = {"format": "omegabridge.sample-job", "rows": 30, "seed": 0, "chunk_rows": 10, "batch_size": 8192,
           "model": model_fingerprint(model), "sampler": few}
    with open(os.path.join(staging, JOB_FILE), "w") as handle:
        json.dump(job, handle)
    with pytest.raises(ob.TableFileError, match="sampler"):
        model.sample_to(str(out), 30, chunk_rows=10)  # the default sampler: another job
    # the same job in another spelling ("s^3.0" is "s^3"; steps=None would be the model's own): resumed
    summary = model.sample_to(str(out), 30, chunk_rows=10, solver="bridge", steps=9, grid="s^3.0")
    assert summary["rows"] == 30
    from omegabridge.tabular.table_files import read_table
    pd.testing.assert_frame_equal(read_table(str(out)),
                                  model.sample(30, solver="bridge", steps=9, grid="s^3").reset_index(drop=True))
    # the model's own step count by number is the default sampler: one job with the default
    assert model._sampler("euler", model.steps, "t") == {"solver": "euler", "steps": None, "grid": "t"}


@pytest.mark.parametrize("name", ["model.ckpt", "rows.csv", "rows.parquet", "parts"])
def test_outputs_refuse_an_existing_target_unless_asked(fitted, tmp_path, name):
    from omegabridge.tabular.table_files import read_table, write_table

    _, model = fitted
    frame = model.sample(20, seed=1)
    path = tmp_path / name
    old = path / "keep.txt" if name == "parts" else path  # a folder output's old folder, or the old file
    old.parent.mkdir(exist_ok=True)
    old.write_bytes(b"old")
    write = {
        "model.ckpt": lambda overwrite: model.save(str(path), overwrite=overwrite),
        "rows.csv": lambda overwrite: write_table(frame, str(path), overwrite=overwrite),
        "rows.parquet": lambda overwrite: write_table(frame, str(path), overwrite=overwrite),
        "parts": lambda overwrite: model.sample_to(str(path), 20, seed=1, overwrite=overwrite),
    }[name]
    with pytest.raises(FileExistsError, match=rf"{path} already exists \(pass overwrite=True, or --overwrite, to replace it\)"):
        write(False)
    assert old.read_bytes() == b"old"
    write(True)
    if name == "model.ckpt":
        loaded = ob.TabularBridge.load(str(path), progress=False)
        assert loaded.sample(20, seed=1).equals(frame)
    else:
        assert read_table(str(path)).shape[0] == 20
        assert not old.exists() if name == "parts" else old.read_bytes() != b"old"


def test_save_and_load_give_the_same_samples(fitted, tmp_path):
    _, model = fitted
    path = str(tmp_path / "model.ckpt")
    assert model.save(path) == path
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]
    loaded = ob.TabularBridge.load(path, progress=False)
    pd.testing.assert_frame_equal(loaded.sample(120, seed=5), model.sample(120, seed=5))
    content = torch.load(path, weights_only=True)
    assert content["format"] == FORMAT and content["format_version"] == FORMAT_VERSION
    metadata = json.loads(content["metadata"])  # plain JSON text, not pickled objects
    assert metadata["versions"]["omegabridge"] == ob.__version__ and metadata["versions"]["torch"] == str(torch.__version__)
    assert metadata["schema"]["share"] == {"kind": "interval", "low": 0.0, "high": 1.0, "missing": False, "dtype": "float64"}
    assert content["sha256"] == checksum(content["metadata"], content["weights"])


def _rewrite(path, change, keep_checksum=False):
    """Change the checkpoint's content (metadata entries and weights as one dict) and write it back
    with a checksum that matches (a consistent file with the wrong content), or the old checksum."""
    payload = torch.load(path, weights_only=True)
    content = {**json.loads(payload["metadata"]), "weights": payload["weights"], "format_version": payload["format_version"]}
    change(content)
    payload["weights"], payload["format_version"] = content.pop("weights"), content.pop("format_version")
    payload["metadata"] = json.dumps(content)
    if not keep_checksum:
        payload["sha256"] = checksum(payload["metadata"], payload["weights"])
    torch.save(payload, path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: open(p, "wb").write(os.urandom(300)), "not an omegabridge checkpoint, or a corrupt one"),
        (lambda p: open(p, "r+b").truncate(200), "not an omegabridge checkpoint, or a corrupt one"),
        (lambda p: torch.save({"weights": {}}, p), "not an omegabridge tabular checkpoint"),
        (lambda p: _rewrite(p, lambda c: c.update(format_version=FORMAT_VERSION + 1)), f"format version {FORMAT_VERSION + 1}"),
        (lambda p: _rewrite(p, lambda c: c["weights"]["head.bias"].add_(1e-3), keep_checksum=True), "corrupt checkpoint"),
        (lambda p: _rewrite(p, lambda c: c["schema"]["share"].update(high=2.0), keep_checksum=True), "corrupt checkpoint"),
        (lambda p: _rewrite(p, lambda c: c.pop("encoder")), "missing ['encoder']"),
        (lambda p: _rewrite(p, lambda c: c["weights"].update({"head.bias": torch.zeros(3)})), "incompatible or damaged"),
        (lambda p: _rewrite(p, lambda c: c["bridge"]["schedule"].update(name="Bogus")), "unknown schedule 'Bogus'"),
    ],
)
def test_bad_checkpoints_are_clear_errors(fitted, tmp_path, damage, message):
    _, model = fitted
    path = str(tmp_path / "model.ckpt")
    model.save(path)
    damage(path)
    with pytest.raises(ob.CheckpointError) as info:
        ob.TabularBridge.load(path)
    assert path in str(info.value) and message in str(info.value)


def test_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(ob.CheckpointError, match="no such checkpoint file"):
        ob.TabularBridge.load(str(tmp_path / "absent.ckpt"))


def test_a_failed_save_leaves_neither_a_file_nor_a_temporary(fitted, tmp_path, monkeypatch):
    _, model = fitted
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"previous")

    def broken_save(obj, target):
        open(target, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        model.save(str(path), overwrite=True)
    assert path.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]


def test_use_before_fit_is_a_clear_error():
    model = ob.TabularBridge(**TINY)
    for call in (lambda: model.sample(3), lambda: model.save("x.ckpt"), lambda: model.transform(mixed_frame())):
        with pytest.raises(ob.NotFittedError, match="not fitted"):
            call()


def test_fit_rejects_a_non_dataframe_and_bad_steps():
    with pytest.raises(TypeError, match="DataFrame"):
        ob.TabularBridge(**TINY).fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        ob.TabularBridge(steps=1)


def test_the_default_training_budget_follows_the_table_size(monkeypatch):
    """fit without iterations trains for default_iterations(rows, batch_size): about 1000 passes, 2000 to 20000."""
    from omegabridge.tabular import tabular_bridge

    assert [tabular_bridge.default_iterations(rows) for rows in (1, 275, 1024, 5093, 10**7)] == [2000, 2000, 2000, 9948, 20000]
    assert tabular_bridge.default_iterations(5093, batch_size=256) == 19895
    asked = []

    def tiny_budget(rows, batch_size):
        asked.append((rows, batch_size))
        return 3

    monkeypatch.setattr(tabular_bridge, "default_iterations", tiny_budget)
    model = ob.TabularBridge(**TINY).fit(mixed_frame(rows=40), batch_size=16)
    assert asked == [(40, 16)] and model.training["iterations"] == 3 and len(model.losses) == 3


def test_missing_rates_and_category_shares_are_learned():
    """After a short training the sample reproduces each column's missing rate and a skewed categorical."""
    rng = np.random.default_rng(1)
    rows = 3000
    frame = pd.DataFrame(
        {
            "size": pd.Series(rng.choice(["S", "M", "L"], rows, p=[0.6, 0.3, 0.1]), dtype="str"),
            "value": rng.gamma(2.0, 3.0, rows),
            "level": rng.integers(1, 6, rows).astype(float),
        }
    )
    frame.loc[rng.random(rows) < 0.3, "value"] = np.nan
    frame.loc[rng.random(rows) < 0.15, "size"] = None
    torch.set_num_threads(1)
    model = ob.TabularBridge(steps=50, hidden=64, depth=2, verbose=False, progress=False)
    model.fit(frame, iterations=3000, batch_size=256)
    rows_out = model.sample(3000, seed=11)
    # measured: 0.336 vs 0.318 and 0.163 vs 0.151 (a short training leaves the indicators a little
    # closer to 1/2 than the data); sampling noise alone is about 0.009 (one sd)
    assert abs(rows_out["value"].isna().mean() - frame["value"].isna().mean()) < 0.04
    assert abs(rows_out["size"].isna().mean() - frame["size"].isna().mean()) < 0.04
    shares = rows_out["size"].value_counts(normalize=True, dropna=True)
    assert shares.get("S", 0) > shares.get("M", 0) > shares.get("L", 0)
