"""Checkpoints load back whatever ``fit`` accepted, and a changed byte never loads silently.

The category values below are the ones that used to save but never load (pickled
pandas/stdlib objects that ``torch.load(weights_only=True)`` refuses). Each column is
fitted, saved, loaded and sampled; the loaded schema must hold the same values with
the same types, and samples must be drawn from those values. Corruption: bytes are
flipped at many offsets; every offset must either raise ``CheckpointError`` naming the
file or load a model that samples exactly as the original (a flip in zip padding
changes nothing the model holds), and flips inside the weights and the metadata must
raise.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
import zoneinfo

import numpy as np
import pytest
import torch

pd = pytest.importorskip("pandas")

import omegabridge as ob  # noqa: E402
from omegabridge.tabular import typed_json  # noqa: E402
from omegabridge.models import DriftMLP  # noqa: E402
from omegabridge.training import Trainer  # noqa: E402

TINY = dict(steps=8, hidden=16, depth=1, verbose=False, progress=False)
ZONE = "Europe/Amsterdam"

#: (name, category values): every type a category column can hold that is not plain JSON.
VALUE_KINDS = [
    ("date", [datetime.date(2024, 1, 1), datetime.date(2024, 2, 29), datetime.date(1969, 12, 31)]),
    ("datetime", [datetime.datetime(2024, 1, 1, 12, 30), datetime.datetime(1999, 12, 31, 23, 59, 59, 999999)]),
    ("datetime-zoned", [datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
                        datetime.datetime(2024, 10, 27, 0, 30, tzinfo=datetime.timezone.utc).astimezone(zoneinfo.ZoneInfo(ZONE)),
                      datetime.datetime(2024, 6, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30)))]),
    ("timestamp", [pd.Timestamp("2024-03-31 01:59:59.123456789"), pd.Timestamp("1900-01-01")]),
    ("timestamp-zone", [pd.Timestamp("2024-03-31 01:00", tz=ZONE), pd.Timestamp("2024-10-27 00:30", tz="UTC").tz_convert(ZONE)]),
    ("decimal", [decimal.Decimal("1.10"), decimal.Decimal("-0.000001"), decimal.Decimal("12345678901234567890.5")]),
    ("uuid", [uuid.UUID(int=7), uuid.UUID("12345678-1234-5678-1234-567812345678")]),
    ("period", [pd.Period("2024-01", freq="M"), pd.Period("2024Q3", freq="Q")]),
    ("interval", [pd.Interval(0, 1, closed="left"), pd.Interval(1.5, 2.5, closed="both")]),
    ("timedelta", [datetime.timedelta(days=1, seconds=3), datetime.timedelta(microseconds=-5)]),
    ("pd-timedelta", [pd.Timedelta("1 days 00:00:00.000000001"), pd.Timedelta(minutes=90),
                      pd.Timedelta(days=146000).as_unit("s")]),  # 400 years: beyond int64 nanoseconds
    ("big-int", [2**62 + 1, -(2**63), 2**80]),
    ("bytes", [b"\x00\xff", b"abc"]),
    ("mixed", ["a", 1, 2.5, True, datetime.date(2020, 1, 1)]),
]


@pytest.mark.parametrize("kind, values", VALUE_KINDS, ids=[k for k, _ in VALUE_KINDS])
def test_typed_json_gives_back_equal_values_of_the_same_type(kind, values):
    text = typed_json.encode_checked({"categories": values})
    json.loads(text)  # plain JSON: no NaN, no objects
    restored = typed_json.decode(text)["categories"]
    assert restored == values
    assert [type(v) for v in restored] == [type(v) for v in values]
    for original, back in zip(values, restored):
        if isinstance(original, datetime.datetime):
            assert str(back.tzinfo) == str(original.tzinfo) and back.utcoffset() == original.utcoffset()


def test_typed_json_keeps_non_finite_floats_tuples_and_tag_like_dicts():
    value = {"x": [float("nan"), float("inf"), -float("inf")], "t": (1, "a"), "d": {"$type": "date"}, 3: "int key"}
    restored = typed_json.decode(typed_json.encode_checked(value))
    assert np.isnan(restored["x"][0]) and restored["x"][1:] == [float("inf"), -float("inf")]
    assert restored["t"] == (1, "a") and restored["d"] == {"$type": "date"} and restored[3] == "int key"


@pytest.mark.parametrize("value, named", [(object(), "builtins.object"), ({1, 2}, "builtins.set"),
                                          (datetime.time(1, tzinfo=datetime.timezone.utc), "time zone"),
                                          (decimal.Decimal("sNaN"), "would load back"), ("huge-int", "too long to store")],
                         ids=["object", "set", "zoned-time", "signalling-nan", "int-of-5000-digits"])
def test_typed_json_refuses_what_it_cannot_store_by_name_and_place(value, named):
    value = 10**5000 if value == "huge-int" else value  # built here: pytest cannot print it as an id
    with pytest.raises(typed_json.UnsupportedValue, match=named) as info:
        typed_json.encode_checked({"schema": {"when": {"categories": ["a", value]}}}, where="checkpoint")
    assert "checkpoint['schema']['when']['categories'][1]" in str(info.value)


@pytest.mark.parametrize("kind, values", VALUE_KINDS, ids=[k for k, _ in VALUE_KINDS])
def test_every_category_value_kind_fits_saves_loads_and_samples(kind, values, tmp_path):
    rows = 60
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "value": pd.Series([values[i] for i in rng.integers(0, len(values), rows)], dtype=object),
        "number": rng.normal(size=rows),
    })
    model = ob.TabularBridge(**TINY).fit(frame, iterations=3, batch_size=32)
    path = str(tmp_path / "model.ckpt")
    model.save(path)
    loaded = ob.TabularBridge.load(path, progress=False)
    original, back = model.schema["value"].categories, loaded.schema["value"].categories
    assert back == original and [type(v) for v in back] == [type(v) for v in original]
    sample = loaded.sample(30, seed=2)
    assert all(any(v == w and type(v) is type(w) for w in values) for v in sample["value"])
    pd.testing.assert_frame_equal(sample, model.sample(30, seed=2))


def test_a_value_that_cannot_be_stored_is_refused_before_writing(tmp_path):
    class Opaque:
        def __eq__(self, other):
            return isinstance(other, Opaque)

        def __hash__(self):
            return 1

        def __lt__(self, other):
            return False

    frame = pd.DataFrame({"value": pd.Series([Opaque(), "b"] * 20, dtype=object), "number": np.arange(40.0)})
    model = ob.TabularBridge(**TINY).fit(frame, iterations=2, batch_size=16)
    path = tmp_path / "model.ckpt"
    with pytest.raises(ob.CheckpointError, match=r"cannot save: .*\['value'\].*Opaque") as info:
        model.save(str(path))
    assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------
# corruption
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    frame = pd.DataFrame({"colour": ["red", "blue", "green"] * 30, "size": np.arange(90.0) % 7})
    model = ob.TabularBridge(**TINY).fit(frame, iterations=5, batch_size=32)
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    model.save(str(path))
    return path.read_bytes(), model.sample(40, seed=9), model


def _flip(data: bytes, offset: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 0x10
    return bytes(changed)


def _offsets_of(data: bytes, needle: bytes) -> int:
    offset = data.find(needle)
    assert offset >= 0, "the probe bytes are not in the file"
    return offset


def test_a_flipped_byte_inside_the_weights_or_the_metadata_is_a_checkpoint_error(saved, tmp_path):
    data, _, model = saved
    weight = next(iter(model.model.state_dict().values())).detach().cpu().contiguous()
    inside_weights = _offsets_of(data, weight.reshape(-1).view(torch.uint8).numpy().tobytes()[:16]) + 5
    inside_metadata = _offsets_of(data, b'"colour"') + 2
    for offset in (inside_weights, inside_metadata, _offsets_of(data, b'"red"') + 1):
        path = tmp_path / f"flip{offset}.ckpt"
        path.write_bytes(_flip(data, offset))
        with pytest.raises(ob.CheckpointError, match="corrupt") as info:
            ob.TabularBridge.load(str(path))
        assert str(path) in str(info.value)


def test_no_flipped_byte_anywhere_loads_a_changed_model(saved, tmp_path):
    data, expected, _ = saved
    raised = 0
    offsets = np.linspace(0, len(data) - 1, 48).astype(int)
    for offset in offsets:
        path = tmp_path / "flipped.ckpt"
        path.write_bytes(_flip(data, int(offset)))
        try:
            loaded = ob.TabularBridge.load(str(path), progress=False)
        except ob.CheckpointError as error:
            assert str(path) in str(error)
            raised += 1
            continue
        pd.testing.assert_frame_equal(loaded.sample(40, seed=9), expected, obj=f"flip at byte {offset}")
    assert raised >= len(offsets) // 2, f"only {raised} of {len(offsets)} flips were detected"


def test_a_training_checkpoint_with_a_flipped_weight_byte_is_refused(tmp_path):
    bridge = ob.Bridge(ob.Lattice(0, 4), steps=8)
    data = torch.randint(0, 5, (64, 1)).float()
    path = str(tmp_path / "train.ckpt")
    Trainer(bridge, DriftMLP(bridge, hidden=8, depth=1), batch_size=16, checkpoint=path, progress=False).fit(data, 4)
    raw = open(path, "rb").read()
    state = torch.load(path, weights_only=True)
    weight = next(iter(state["model"].values())).contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()[:16]
    open(path, "wb").write(_flip(raw, _offsets_of(raw, weight) + 3))
    resumed = Trainer(bridge, DriftMLP(bridge, hidden=8, depth=1), batch_size=16, checkpoint=path, progress=False)
    with pytest.raises(ob.TrainingCheckpointError, match="corrupt training checkpoint"):
        resumed.fit(data, 6)
