"""Datetime and timedelta columns: inferred at the data's resolution, encoded on a lattice or an interval of
ticks, sampled back in the same dtype, zone and resolution inside the observed range and on its step
(dates at midnight stay at midnight, through daylight-saving changes), conditioned on exactly, and
dates outside pandas' nanosecond range where the dtype's unit holds them."""

from __future__ import annotations

import json

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

import omegabridge as ob  # noqa: E402
from omegabridge import cli  # noqa: E402
from omegabridge.errors import SchemaError  # noqa: E402
from omegabridge.tabular import times  # noqa: E402
from omegabridge.tabular.encoding import TableEncoder  # noqa: E402

ROWS = 400


def time_frame(rows: int = ROWS, seed: int = 0):
    rng = np.random.default_rng(seed)
    days = pd.Series(pd.to_datetime("2021-01-01") + pd.to_timedelta(rng.integers(0, 200, rows), unit="D"))
    seconds = pd.to_datetime("2021-03-01 08:00") + pd.to_timedelta(rng.integers(0, 10**7, rows), unit="s")
    local_days = pd.Series(pd.to_datetime("2021-03-20") + pd.to_timedelta(rng.integers(0, 20, rows), unit="D"))
    frame = pd.DataFrame({
        "day": days,
        "stamp": pd.Series(seconds).dt.tz_localize("UTC").dt.tz_convert("Europe/Amsterdam"),
        # local midnights across the spring-forward of 2021-03-28
        "local_day": local_days.dt.tz_localize("Europe/Amsterdam"),
        "founded": pd.Series(np.array(["1500-01-01", "1600-06-01", "2500-01-01", "1650-03-04"] * (rows // 4),
                                      dtype="datetime64[s]")),
        "wait": pd.Series(pd.to_timedelta(rng.integers(1, 300, rows), unit="min")),
        "k": rng.integers(0, 3, rows),
    })
    frame.loc[::7, "day"] = pd.NaT
    return frame


@pytest.fixture(scope="module")
def fitted():
    frame = time_frame()
    model = ob.TabularBridge(steps=12, hidden=24, depth=1, verbose=False, progress=False)
    return frame, model.fit(frame, iterations=30, batch_size=64)


def test_time_columns_are_inferred_at_their_resolution():
    schema = ob.infer_schema(time_frame())
    kinds = {spec.name: (spec.kind, times.unit_name(spec.step, spec.dtype) if spec.kind != "lattice" else None)
             for spec in schema}
    assert kinds == {"day": ("datetime", "1 day"), "stamp": ("datetime", "1 second"), "local_day": ("datetime", "1 day"),
                     "founded": ("datetime", "1 day"), "wait": ("timedelta", "1 minute"), "k": ("lattice", None)}
    assert schema["day"].missing and schema["stamp"].dtype == "datetime64[us, Europe/Amsterdam]"
    assert schema["founded"].dtype == "datetime64[s]"
    assert "datetime 2021-01-01 00:00:00 .. " in schema["day"].describe()
    assert "(Europe/Amsterdam wall time)" in schema["stamp"].describe()


def test_a_narrow_range_is_a_lattice_and_a_wide_one_an_interval(fitted):
    _, model = fitted
    factors = {spec.name: model.encoder.domain.factors[encoding.offset + encoding.missing_indicator]
               for spec, encoding in zip(model.schema, model.encoder.encodings)}
    assert isinstance(factors["day"], ob.Lattice) and isinstance(factors["local_day"], ob.Lattice)
    assert isinstance(factors["stamp"], ob.Interval) and isinstance(factors["founded"], ob.Interval)


def test_encode_then_decode_gives_the_times_back_exactly():
    frame = time_frame()
    schema = ob.infer_schema(frame)
    encoder = TableEncoder.fit(schema, frame)
    back = encoder.decode(encoder.encode(frame))
    pd.testing.assert_frame_equal(back[["day", "local_day", "wait", "k"]], frame[["day", "local_day", "wait", "k"]])
    # stamp and founded are on an interval: float32 holds 2^24 positions of their 10^7 and 365,243 ticks
    error = (back["stamp"] - frame["stamp"]).abs().max()
    assert error <= pd.Timedelta(seconds=1), error
    assert (back["founded"] == frame["founded"]).all()


def test_samples_keep_dtype_zone_range_and_step(fitted):
    frame, model = fitted
    rows = model.sample(500, seed=3)
    for name in ("day", "stamp", "local_day", "founded", "wait"):
        assert rows[name].dtype == frame[name].dtype, name
        present = rows[name].dropna()
        assert present.min() >= frame[name].min() and present.max() <= frame[name].max(), name
    local = rows["local_day"].dt.tz_localize(None)
    assert (local == local.dt.normalize()).all()  # local midnight, on both sides of the clock change
    assert (rows["day"].dropna() == rows["day"].dropna().dt.normalize()).all()
    assert (rows["stamp"].dt.microsecond == 0).all()
    assert (rows["wait"] % pd.Timedelta(minutes=1) == pd.Timedelta(0)).all()
    assert rows["founded"].min() < pd.Timestamp("1677-01-01")  # outside the nanosecond range, kept
    assert 0.0 < rows["day"].isna().mean() < 1.0  # missing dates are modelled (30 iterations: not yet 1 in 7)
    model.schema.check_values(rows)


def test_a_date_can_be_conditioned_on(fitted, tmp_path):
    _, model = fitted
    rows = model.sample(20, seed=1, conditions={"day": "2021-02-03", "local_day": pd.Timestamp("2021-03-29"),
                                                "wait": "2h", "founded": "1600-06-01"})
    assert (rows["day"] == pd.Timestamp("2021-02-03")).all()
    assert (rows["local_day"] == pd.Timestamp("2021-03-29", tz="Europe/Amsterdam")).all()
    assert (rows["wait"] == pd.Timedelta(hours=2)).all()
    assert (rows["founded"] == pd.Timestamp("1600-06-01")).all() and rows["founded"].dtype == "datetime64[s]"
    model.save(str(tmp_path / "m.ckpt"))
    out = tmp_path / "rows.csv"
    assert cli.main(["sample", str(tmp_path / "m.ckpt"), "-n", "5", "-o", str(out), "--no-progress",
                     "--condition", "day=2021-04-01"]) == 0
    assert (pd.read_csv(out)["day"] == "2021-04-01").all()


@pytest.mark.parametrize("conditions, match", [
    ({"day": "2022-01-01"}, r"'day': value '2022-01-01' is outside"),
    ({"day": "2021-02-03 12:00"}, r"'day': value '2021-02-03 12:00' is outside"),  # not on the day step
    ({"day": 5}, r"'day': value 5 is outside"),
    ({"day": "soon"}, r"'day': value 'soon' is outside"),
    ({"day": pd.Timestamp("2021-02-03", tz="UTC")}, r"'day': value Timestamp\('2021-02-03 00:00:00\+0000'"),
    ({"wait": "-3 minutes"}, r"'wait': value '-3 minutes' is outside"),
])
def test_bad_time_conditions_are_named(fitted, conditions, match):
    _, model = fitted
    with pytest.raises(SchemaError, match=match):
        model.sample(3, conditions=conditions)


def test_missing_times_are_imputed(fitted):
    frame, model = fitted
    holes = frame.head(40).copy()
    holes.loc[holes.index[::3], "stamp"] = pd.NaT
    holes.loc[holes.index[1::3], "wait"] = pd.NaT
    filled = model.impute(holes, seed=2)
    assert filled["stamp"].notna().all() and filled["wait"].notna().all()
    assert filled["stamp"].dtype == frame["stamp"].dtype
    kept = holes["stamp"].notna()
    assert (filled["stamp"][kept] == holes["stamp"][kept]).all()


def test_declared_times_parse_strings_and_bad_declarations_are_named():
    frame = pd.DataFrame({"when": ["2020-01-01", "2020-01-05", "2020-02-01"] * 10, "n": [1, 2, 3] * 10})
    schema = ob.infer_schema(frame, {"when": "datetime"})
    assert schema["when"].kind == "datetime" and schema["when"].dtype == "datetime64[us]"
    assert times.unit_name(schema["when"].step, schema["when"].dtype) == "1 day"
    with pytest.raises(SchemaError, match=r"column 'n': .* is not a datetime64\[us\] value, so the column cannot be datetime"):
        ob.infer_schema(frame, {"n": "datetime"})
    with pytest.raises(SchemaError, match=r"a datetime column needs a datetime64 dtype, got 'int64'"):
        ob.ColumnSpec("when", "datetime", low=0, high=10, dtype="int64")
    with pytest.raises(SchemaError, match=r"step dividing high - low"):
        ob.ColumnSpec("when", "datetime", low=0, high=10, step=3, dtype="datetime64[s]")
    with pytest.raises(SchemaError, match=r"low 'tomorrow' is not a datetime"):
        ob.ColumnSpec("when", "datetime", low="tomorrow", high=10, dtype="datetime64[s]")
    spec = ob.ColumnSpec("when", "datetime", low="2020-01-01", high="2020-01-03", step=86_400, dtype="datetime64[s]")
    assert spec.points == 3 and spec.valid_mask(["2020-01-02", "2020-01-02 01:00", "2020-01-04", None]).tolist() == [
        True, False, False, False]
    assert ob.ColumnSpec.from_dict("when", spec.to_dict()) == spec  # the JSON form round-trips


def test_time_columns_are_scored_as_numbers_in_seconds():
    from omegabridge.tabular import metrics

    frame = time_frame()
    shifted = frame.copy()
    shifted["stamp"] = shifted["stamp"] + pd.Timedelta(days=30)  # a month later: a clear KS distance
    fidelity = metrics.column_fidelity(frame, shifted, discrete=ob.infer_schema(frame).discrete_names())
    assert fidelity["stamp"]["metric"] == "KS" and fidelity["stamp"]["value"] > 0.1
    assert fidelity["day"]["metric"] == "KS" and fidelity["day"]["value"] == 0.0
    assert fidelity["founded"]["value"] == 0.0 and fidelity["wait"]["metric"] == "KS"
    seconds = metrics._numeric(pd.Series([pd.Timestamp("1970-01-01 00:01", tz="UTC"), pd.NaT,
                                          pd.Timestamp("1500-01-01")], dtype=object).astype("datetime64[s, UTC]"))
    assert seconds[0] == 60.0 and np.isnan(seconds[1]) and seconds[2] == -14831769600.0
    metrics.association_matrix(frame, {"k"})  # correlations with times are numbers, not an error


def test_a_csv_files_text_times_are_inferred_as_the_times_they_were(tmp_path):
    frame = time_frame()[["day", "wait", "k"]]
    frame["minute"] = pd.to_datetime("2021-03-01 08:00") + pd.to_timedelta(np.arange(ROWS) % 50, unit="min")
    frame.to_csv(tmp_path / "times.csv", index=False)
    read = pd.read_csv(tmp_path / "times.csv")
    assert pd.api.types.is_string_dtype(read["day"].dtype)  # what pandas gives: text
    schema, original = ob.infer_schema(read), ob.infer_schema(frame)
    for name in ("day", "wait", "minute"):
        assert schema[name].kind == original[name].kind and schema[name].dtype == f"{schema[name].kind}64[us]"
        assert schema[name].describe() == original[name].describe()  # same range, step and missing cells
    assert schema.parse_times(read)["day"].tolist() == frame["day"].tolist()


@pytest.mark.parametrize("text", [
    ["2021-01-01", "2021-02-30"],          # not a date
    ["2021-01-01+01:00", "2021-01-02+01:00"],  # zoned text: its dtype must be declared
    ["2021-01-01", "soon"],
    ["20210101", "20210102"],              # digits, not ISO 8601
    ["3 days", "4 weeks"],
])
def test_text_that_is_not_all_times_of_one_sort_stays_categorical(text):
    assert ob.infer_schema(pd.DataFrame({"when": text * 3}))["when"].kind == "categorical"


def test_evaluate_reads_a_csv_files_times_as_the_model_does(fitted, tmp_path, capsys):
    frame, model = fitted
    model.save(str(tmp_path / "m.ckpt"))
    real = frame[["day", "wait", "k", "founded", "stamp", "local_day"]]
    real.to_csv(tmp_path / "real.csv", index=False)
    real.to_parquet(tmp_path / "real.parquet", index=False)
    scores = {}
    for kind in ("csv", "parquet"):
        synthetic = tmp_path / f"synthetic.{kind}"
        assert cli.main(["sample", str(tmp_path / "m.ckpt"), "-n", "200", "-o", str(synthetic), "--no-progress"]) == 0
        assert cli.main(["evaluate", str(tmp_path / f"real.{kind}"), str(synthetic), "--model", str(tmp_path / "m.ckpt"),
                         "-o", str(tmp_path / f"{kind}.json")]) == 0
        scores[kind] = json.loads((tmp_path / f"{kind}.json").read_text())
    capsys.readouterr()
    assert all(scores["csv"]["columns"][name]["metric"] == "KS" for name in ("day", "wait", "stamp"))
    assert scores["csv"] == scores["parquet"]
