"""Hostile input a new user could give: each gets a named error or correct behaviour, and stays fixed.

The cases come from trying about 300 hostile inputs and faults (issue "Nothing lost, nothing
silently wrong"). Siblings hold the rest: tests/test_output_locks.py (two jobs into one
output), tests/test_checkpoint_integrity.py (checkpoints that load back, corruption),
tests/test_float32_limits.py (extreme parameters, overflowing drifts, non-finite states).
Expected values are written out here, not produced by the code under test.
"""

from __future__ import annotations

import datetime
import json
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

pd = pytest.importorskip("pandas")

import omegabridge as ob  # noqa: E402
from omegabridge import cli  # noqa: E402
from omegabridge.tabular import metrics, typed_json  # noqa: E402
from omegabridge.tabular.table_files import read_table, write_chunks, write_table  # noqa: E402

TINY = dict(steps=8, hidden=16, depth=1, verbose=False, progress=False)


# ----------------------------------------------------------------------------------------
# tables the schema cannot describe: refused by name
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"b": pd.Series([2**60, 2**60 + 5] * 10, dtype="int64")}), r"column 'b': integers up to 1152921504606846981 are beyond 2\^53"),
        (pd.DataFrame({"c": [1 + 2j, 3j] * 10}), "column 'c': complex numbers fit no column kind"),
        (pd.DataFrame({"l": [[1, 2], [3]] * 10}), r"column 'l', row 0: a list value fits no column kind"),
        (pd.DataFrame({"d": ["x", {"k": 1}] * 10}), r"column 'd', row 1: a dict value fits no column kind"),
        (pd.DataFrame([[1, 2], [3, 4]], columns=["a", "a"]), r"repeats column names \['a'\]"),
    ],
    ids=["huge-ints", "complex", "lists", "dicts", "duplicate-names"],
)
def test_columns_no_kind_models_are_refused_by_name(frame, message):
    with pytest.raises(ob.SchemaError, match=message):
        ob.infer_schema(frame)
    with pytest.raises(ob.SchemaError, match=message):
        ob.TabularBridge(**TINY).fit(frame, iterations=1)


def test_huge_integers_declared_categorical_come_back_exactly(tmp_path):
    values = [2**60, 2**60 + 5, -(2**62)]
    frame = pd.DataFrame({"b": pd.Series(values * 10, dtype="int64"), "x": np.arange(30.0)})
    model = ob.TabularBridge(**TINY).fit(frame, {"b": "categorical"}, iterations=3, batch_size=16)
    model.save(str(tmp_path / "m.ckpt"))
    sample = ob.TabularBridge.load(str(tmp_path / "m.ckpt"), progress=False).sample(50, seed=1)
    assert set(sample["b"].tolist()) <= set(values) and sample["b"].dtype == np.int64


@pytest.mark.parametrize("overrides, message", [
    ({"a": 5}, "column 'a': a schema entry must be a kind name or a dict with 'kind', got 5"),
    ({"a": ["lattice"]}, "column 'a': a schema entry must be a kind name or a dict"),
    ({"a": {"low": 0}}, "column 'a': a schema entry must be a kind name or a dict with 'kind'"),
    (["a"], "the schema overrides must be a mapping"),
])
def test_malformed_schema_overrides_are_schema_errors(overrides, message):
    with pytest.raises(ob.SchemaError, match=message):
        ob.infer_schema(pd.DataFrame({"a": [1.0, 2.0] * 10}), overrides)


def test_unused_levels_of_a_categorical_dtype_are_never_sampled():
    grade = pd.Categorical(["low", "high"] * 30, categories=["low", "mid", "high", "never"])
    frame = pd.DataFrame({"grade": grade, "x": np.arange(60.0)})
    model = ob.TabularBridge(**TINY).fit(frame, iterations=2, batch_size=16)
    assert model.schema["grade"].categories == ["low", "high"]
    assert set(model.sample(400, seed=0)["grade"].astype(str)) <= {"low", "high"}


# ----------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, line", [("a,b\n1,2\n3\n4,5\n", 3), ("a,b\n1,2\n3,4\n5,6,7\n", 4), ("a,b,c\n1,2,3\n\n4,5\n", 4)])
def test_a_csv_row_with_the_wrong_number_of_fields_is_refused_with_its_line(tmp_path, text, line):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ob.TableFileError, match=rf"t.csv, line {line}: \d field\(s\), but the header has \d"):
        read_table(str(path))


def test_a_well_formed_csv_with_quoted_commas_and_blank_lines_reads(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('a,b\n"x, y",2\n\n"z",3\n')
    assert read_table(str(path)).to_dict("list") == {"a": ["x, y", "z"], "b": [2, 3]}


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path, name):
    stale = tmp_path / f".{name}.abcd1234.tmp"  # the name atomic_write gives its temporary
    stale.write_bytes(b"half a file")
    other = tmp_path / ".other.csv.x.tmp"  # another output's temporary: not ours to remove
    other.write_bytes(b"")
    write_table(pd.DataFrame({"x": [1, 2]}), str(tmp_path / name))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, other.name])


def test_only_this_outputs_temporaries_are_removed_not_a_longer_names(tmp_path):
    stale = tmp_path / ".out.abcd1234.tmp"  # a killed writer of the parts folder "out"
    live = tmp_path / ".out.csv.k3j2h1g0.tmp"  # another job's temporary of "out.csv": not ours
    stale.write_bytes(b"")
    live.write_bytes(b"")
    write_chunks([pd.DataFrame({"x": [1, 2]})], str(tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", live.name])


def test_evaluate_on_an_empty_synthetic_table_is_refused(tmp_path, capsys):
    real = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    with pytest.raises(ValueError, match="the synthetic table has no rows"):
        metrics.evaluate(real, {"synthetic": real.iloc[:0]})
    real.to_csv(tmp_path / "real.csv", index=False)
    real.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    code = cli.main(["evaluate", str(tmp_path / "real.csv"), str(tmp_path / "empty.csv")])
    assert code == 1 and "the synthetic table has no rows" in capsys.readouterr().err


def test_a_checkpoint_with_a_malformed_schema_entry_is_a_checkpoint_error(tmp_path):
    from omegabridge.tabular.checkpoint import checksum

    frame = pd.DataFrame({"c": ["a", "b"] * 10, "x": np.arange(20.0)})
    path = str(tmp_path / "m.ckpt")
    ob.TabularBridge(**TINY).fit(frame, iterations=2, batch_size=8).save(path)
    payload = torch.load(path, weights_only=True)
    metadata = json.loads(payload["metadata"])
    metadata["schema"]["c"] = ["categorical", ["a", "b"]]  # a list where a dict belongs, consistent checksum
    payload["metadata"] = json.dumps(metadata)
    payload["sha256"] = checksum(payload["metadata"], payload["weights"])
    torch.save(payload, path)
    with pytest.raises(ob.CheckpointError, match=rf"{path}: incompatible or damaged checkpoint"):
        ob.TabularBridge.load(path)


# ----------------------------------------------------------------------------------------
# sizes and scalars: named errors, not minutes of allocation or raw float() errors
# ----------------------------------------------------------------------------------------
def test_impossible_sizes_are_refused_at_once():
    with pytest.raises(ValueError, match=r"steps must be an integer in \[2, 1000000\], got 1000000000"):
        ob.Bridge(ob.Interval(0, 1), steps=10**9)
    with pytest.raises(ValueError, match="1000000000 columns per row is over the limit of 134217728"):
        ob.Real(shape=(10**9,))
    with pytest.raises(MemoryError, match=r"10000 rows x 100000000 columns of float32 is 3725.3 GiB"):
        ob.Bridge(ob.Real(shape=(10**8,)), steps=3).sample(None, 10**4, progress=False)


@pytest.mark.parametrize("remaining", [None, [1, 2, 3, 4, 5], "1.0", torch.ones(5)])
def test_a_remaining_that_is_not_one_number_is_a_type_error_naming_it(remaining):
    table = ob.Interval(0, 1).segment_table()
    with pytest.raises(TypeError, match="remaining must be one number"):
        ob.ops.step(torch.zeros(2, 1), None, table, remaining=remaining, increment=0.1, seed=0, step_index=0)
    with pytest.raises(TypeError, match="remaining must be one number"):
        ob.ops.final_step(torch.zeros(2, 1), None, table, remaining=remaining, seed=0, step_index=0)


# ----------------------------------------------------------------------------------------
# property: whatever plain or typed values a schema holds, the checkpoint form reads back equal
# ----------------------------------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**100), max_value=2**100), st.floats(allow_nan=True),
    st.text(max_size=8), st.binary(max_size=8), st.dates(), st.datetimes(timezones=st.none() | st.timezones()),
    st.decimals(allow_nan=False, allow_infinity=False), st.uuids(), st.timedeltas(),
    st.integers(min_value=0, max_value=2**62).map(lambda n: pd.Timestamp(n, unit="ns")),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
                      max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(values)
def test_typed_json_round_trips_any_nesting_of_the_values_it_accepts(value):
    restored = typed_json.decode(typed_json.encode_checked({"value": value}))["value"]

    def same(a, b):
        if isinstance(a, float) and math.isnan(a):
            return isinstance(b, float) and math.isnan(b)
        if isinstance(a, list):
            return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
        if isinstance(a, datetime.datetime) and a.tzinfo is not None:
            return type(a) is type(b) and a == b and a.utcoffset() == b.utcoffset()
        return type(a) is type(b) and a == b

    assert same(value, restored)
    assert os.linesep not in typed_json.encode_checked(value)  # one line of plain JSON
