"""The ``omegabridge`` command line: fit, sample and evaluate on a small mixed table, their files and their errors.

Most checks call ``omegabridge.cli.main`` in-process (it returns the exit code; argparse
errors raise ``SystemExit(2)``). One tiny model is fitted once per module and reused.
Allowed values are written out here, not taken from the schema code under test.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from threadpoolctl import threadpool_limits

from omegabridge import cli
from omegabridge.tabular import TabularBridge
from omegabridge.tabular import tabular_bridge
from omegabridge.tabular.table_files import read_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ["colour", "count", "amount", "level"]
COLOURS = {"red", "green", "blue"}
FAST = ["--iterations", "5", "--steps", "5", "--no-progress"]
LEVEL_OVERRIDE = {"level": {"kind": "interval", "low": 0, "high": 100}}
PARTS = ["manifest.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]


def mixed_table(rows: int, seed: int) -> pd.DataFrame:
    """A string category, an integer 0..9 (every value in each block of 10 rows), a float >= 0 with
    zeros, and a float in (5, 95) with NaNs."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(5.0, 95.0, rows)
    level[rng.random(rows) < 0.15] = np.nan
    return pd.DataFrame(
        {
            "colour": rng.choice(sorted(COLOURS), rows),
            "count": (np.arange(rows) * 7) % 10,
            "amount": np.where(rng.random(rows) < 0.3, 0.0, rng.exponential(20.0, rows)),
            "level": level,
        }
    )


def run(capsys, *argv) -> tuple[int, str, str]:
    """``cli.main(argv)`` -> (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def leftovers(folder) -> list[str]:
    """Names in ``folder`` that start with '.' (temporary files or folders of an atomic write)."""
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


def expected_rows(model_path, rows: int, seed: int) -> pd.DataFrame:
    return TabularBridge.load(str(model_path), progress=False).sample(rows, seed=seed)


def assert_csv_rows_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    # CSV holds floats as text, and pandas' default CSV float parser does not promise to
    # return the very last bit of every double; so floats from a CSV are compared to a
    # relative 1e-12 (dtypes, strings, integers and NaN positions are still exact).
    # Parquet and parts folders are compared exactly.
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12, atol=0.0)


def assert_valid(frame: pd.DataFrame, level_high: float = 100.0) -> None:
    """Every value allowed by the data's kinds (independently of omegabridge's schema code)."""
    assert list(frame.columns) == COLUMNS
    assert set(frame["colour"]) <= COLOURS and not frame["colour"].isna().any()
    count = frame["count"].to_numpy()
    assert np.issubdtype(count.dtype, np.integer) and count.min() >= 0 and count.max() <= 9
    amount = frame["amount"].to_numpy()
    assert np.isfinite(amount).all() and (amount >= 0).all()
    level = frame["level"].dropna().to_numpy()
    assert np.isfinite(level).all() and (level >= 0).all() and (level <= level_high).all()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The input files and one ``omegabridge fit data.csv --schema schema.json`` run, shared below."""
    folder = tmp_path_factory.mktemp("cli")
    data, heldout, schema, model = (folder / n for n in ("data.csv", "heldout.csv", "schema.json", "model.ckpt"))
    mixed_table(200, seed=0).to_csv(data, index=False)
    mixed_table(80, seed=1).to_csv(heldout, index=False)
    schema.write_text(json.dumps(LEVEL_OVERRIDE))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["fit", str(data), "-o", str(model), "--schema", str(schema), *FAST])
    return SimpleNamespace(folder=folder, data=data, heldout=heldout, schema=schema, model=model,
                           fit_code=code, fit_out=out.getvalue(), fit_err=err.getvalue())


# ----------------------------------------------------------------------------------------
# fit
# ----------------------------------------------------------------------------------------
def test_fit_prints_the_schema_and_writes_a_loadable_checkpoint(work):
    assert work.fit_code == 0, work.fit_err
    lines = work.fit_out.splitlines()
    kinds = {"colour": "categorical", "count": "lattice", "amount": "halfline", "level": "interval"}
    for column, kind in kinds.items():
        rows = [line.split() for line in lines if line.split()[:1] == [column]]
        assert rows, f"{column} missing from the printed schema:\n{work.fit_out}"
        assert rows[0][1] == kind and rows[0][-1] == ("declared" if column == "level" else "inferred"), rows[0]
    assert "200 rows" in work.fit_out
    assert f"wrote {work.model}" in work.fit_out
    assert os.listdir(work.folder) and not leftovers(work.folder)

    model = TabularBridge.load(str(work.model), progress=False)
    schema = model.schema
    assert schema.names == COLUMNS
    assert {c.name: c.kind for c in schema} == kinds
    assert (schema["level"].low, schema["level"].high, schema["level"].missing) == (0.0, 100.0, True)
    assert (schema["count"].low, schema["count"].high) == (0.0, 9.0)
    assert sorted(schema["colour"].categories) == sorted(COLOURS)
    assert model.training["iterations"] == 5 and model.steps == 5
    assert model.posterior_logits and model.model.offset_count > 0  # the default: log-odds per discrete value


def test_fit_can_predict_means_instead_of_log_odds(work, tmp_path, capsys):
    out = tmp_path / "means.ckpt"
    code, _, err = run(capsys, "fit", work.data, "-o", out, "--schema", work.schema, *FAST, "--no-posterior-logits")
    assert code == 0, err
    model = TabularBridge.load(str(out), progress=False)
    assert not model.posterior_logits and model.model.offset_count == 0


def test_an_interrupted_fit_keeps_its_state_and_the_rerun_resumes_to_the_same_model(work, tmp_path, capsys,
                                                                                   monkeypatch):
    from omegabridge.training import trainer

    model, partial = tmp_path / "m.ckpt", tmp_path / "m.ckpt.partial"
    argv = ["fit", work.data, "-o", model, "--schema", work.schema, "--iterations", "9", "--steps", "5",
            "--checkpoint-every", "2", "--ema-decay", "0.9", "--no-progress"]
    code, _, err = run(capsys, *argv[:3], tmp_path / "straight.ckpt", *argv[4:])
    assert code == 0, err
    real_save, saves = trainer.Trainer.save_checkpoint, []

    def save_then_interrupt(self, path):  # Ctrl-C right after the second checkpoint (iteration 4)
        real_save(self, path)
        saves.append(self.iteration)
        if len(saves) == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(trainer.Trainer, "save_checkpoint", save_then_interrupt)
        code, _, err = run(capsys, *argv)
    assert code == 130 and f"training state is kept in {partial}" in err
    assert not model.exists() and partial.exists() and saves == [2, 4]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert f"resuming from {partial} at iteration 4 of 9" in out
    assert sorted(os.listdir(tmp_path)) == ["m.ckpt", "straight.ckpt"]
    straight = torch.load(tmp_path / "straight.ckpt", weights_only=True)["weights"]
    resumed = torch.load(model, weights_only=True)["weights"]
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight), [k for k in straight if not torch.equal(straight[k], resumed[k])]

    # A partial state of other settings is named, and --restart discards it (m.ckpt exists now: --overwrite).
    argv = [*argv, "--overwrite"]
    with monkeypatch.context() as patch:
        patch.setattr(trainer.Trainer, "save_checkpoint", save_then_interrupt)
        saves.clear()
        assert cli.main([str(a) for a in argv]) == 130
    capsys.readouterr()
    other = [a if a != "9" else "11" for a in argv]
    code, _, err = run(capsys, *other)
    assert code == 1 and "belongs to another run" in err and "iterations 9 there, 11 here" in err and "--restart" in err
    code, out, err = run(capsys, *other, "--restart")
    assert code == 0 and "resuming" not in out, err
    assert sorted(os.listdir(tmp_path)) == ["m.ckpt", "straight.ckpt"]


def test_fit_reads_parquet_and_infers_what_was_not_declared(work, tmp_path, capsys):
    data = tmp_path / "data.parquet"
    pd.read_csv(work.data).to_parquet(data, index=False)
    model = tmp_path / "m.ckpt"
    code, out, err = run(capsys, "fit", data, "-o", model, "--iterations", "2", "--steps", "3", "--batch-size", "32",
                         "--no-progress")
    assert code == 0, err
    assert f"read {data}: 200 rows, 4 columns" in out and f"wrote {model}" in out
    schema = TabularBridge.load(str(model), progress=False).schema
    assert {c.name: c.kind for c in schema} == {"colour": "categorical", "count": "lattice", "amount": "halfline",
                                                "level": "halfline"}
    assert schema["level"].missing and not schema["amount"].missing
    assert sorted(os.listdir(tmp_path)) == ["data.parquet", "m.ckpt"]


# ----------------------------------------------------------------------------------------
# sample
# ----------------------------------------------------------------------------------------
def test_sample_to_a_folder_writes_ordered_parts_and_a_manifest(work, tmp_path, capsys):
    out_dir = tmp_path / "synthetic"
    code, out, err = run(capsys, "sample", work.model, "-n", "2500", "--chunk-rows", "1000", "--seed", "11",
                         "-o", out_dir, "--no-progress")
    assert code == 0, err
    assert "wrote 2500 rows" in out and "3 part file(s)" in out
    assert sorted(os.listdir(out_dir)) == PARTS
    assert os.listdir(tmp_path) == ["synthetic"]

    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["rows"] == 2500 and manifest["columns"] == COLUMNS and manifest["seed"] == 11
    assert [p["file"] for p in manifest["parts"]] == PARTS[1:]
    assert [(p["first_row"], p["rows"]) for p in manifest["parts"]] == [(0, 1000), (1000, 1000), (2000, 500)]

    expected = expected_rows(work.model, 2500, seed=11)
    for part in manifest["parts"]:  # each part holds its rows of the one sample
        rows = pd.read_parquet(out_dir / part["file"])
        start = part["first_row"]
        pd.testing.assert_frame_equal(rows, expected.iloc[start:start + part["rows"]].reset_index(drop=True),
                                      check_exact=True)
    got = read_table(str(out_dir))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert_valid(got)


def test_sample_same_seed_same_rows_other_seed_other_rows(work, tmp_path, capsys):
    frames, manifests = {}, {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        code, _, err = run(capsys, "sample", work.model, "-n", "300", "--chunk-rows", "128", "--seed", seed,
                           "-o", tmp_path / name, "--no-progress")
        assert code == 0, err
        frames[name] = read_table(str(tmp_path / name))
        manifests[name] = json.loads((tmp_path / name / "manifest.json").read_text())
    pd.testing.assert_frame_equal(frames["a"], frames["b"], check_exact=True)
    assert manifests["a"] == manifests["b"]
    assert len(frames["c"]) == 300
    different = (frames["a"]["amount"] != frames["c"]["amount"]).mean()
    assert different > 0.5, f"seeds 5 and 6 gave {1 - different:.0%} identical amounts"


def test_sample_to_one_csv_or_parquet_file(work, tmp_path, capsys):
    expected = expected_rows(work.model, 700, seed=3)
    for name in ("rows.csv", "rows.parquet"):
        code, out, err = run(capsys, "sample", work.model, "-n", "700", "--chunk-rows", "256", "--seed", "3",
                             "-o", tmp_path / name, "--no-progress")
        assert code == 0, err
        assert f"wrote 700 rows to {tmp_path / name}" in out
        assert (tmp_path / name).is_file()
    assert sorted(os.listdir(tmp_path)) == ["rows.csv", "rows.parquet"]
    from_parquet = read_table(str(tmp_path / "rows.parquet"))
    pd.testing.assert_frame_equal(from_parquet, expected, check_exact=True)
    from_csv = read_table(str(tmp_path / "rows.csv"))
    assert_csv_rows_equal(from_csv, expected)
    assert_csv_rows_equal(from_csv, from_parquet)
    assert_valid(from_csv)


def test_sample_with_a_chosen_sampler(work, tmp_path, capsys):
    model = TabularBridge.load(str(work.model), progress=False)
    expected = model.sample(400, seed=4, solver="bridge", steps=8, grid="s^3")
    code, out, err = run(capsys, "sample", work.model, "-n", "400", "--seed", "4", "--solver", "bridge", "--steps", "8",
                         "--grid", "s^3", "--chunk-rows", "150", "-o", tmp_path / "parts", "--no-progress")
    assert code == 0, err
    got = read_table(str(tmp_path / "parts"))
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_exact=True)
    assert_valid(got)
    manifest = json.loads((tmp_path / "parts" / "manifest.json").read_text())
    assert manifest["sampler"] == {"solver": "bridge", "steps": 8, "grid": "s^3"}


@pytest.mark.parametrize("argv, code, message", [
    (["--solver", "heun"], 2, "invalid choice: 'heun'"),
    (["--steps", "1"], 2, "steps must be >= 2"),
    (["--grid", "log"], 1, "grid"),
])
def test_sample_refuses_bad_sampler_options_by_name(work, tmp_path, capsys, argv, code, message):
    try:
        got, out, err = run(capsys, "sample", work.model, "-n", "10", "-o", tmp_path / "rows.csv", "--no-progress", *argv)
    except SystemExit as exit:  # argparse's own errors exit with 2
        got, err = exit.code, capsys.readouterr().err
    assert got == code and message in err, err
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("name", ["rows.csv", "rows.parquet"])
def test_an_existing_output_file_needs_overwrite(work, tmp_path, capsys, name):
    path = tmp_path / name
    path.write_text("someone else's data\n")
    code, out, err = run(capsys, "sample", work.model, "-n", "50", "-o", path, "--no-progress")
    assert code == 2
    assert str(path) in err and "--overwrite" in err and "already exists" in err
    assert path.read_text() == "someone else's data\n" and os.listdir(tmp_path) == [name]
    code, out, err = run(capsys, "sample", work.model, "-n", "50", "-o", path, "--overwrite", "--no-progress")
    assert code == 0, err
    assert len(read_table(str(path))) == 50 and os.listdir(tmp_path) == [name]


def test_fit_refuses_an_existing_checkpoint_before_training(work, tmp_path, capsys, monkeypatch):
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"an older model")

    def never(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(tabular_bridge.TabularBridge, "fit", never)
    code, out, err = run(capsys, "fit", work.data, "-o", path, "--schema", work.schema, *FAST)
    assert code == 2
    assert str(path) in err and "--overwrite" in err and "already exists" in err
    assert path.read_bytes() == b"an older model"
    monkeypatch.undo()
    code, out, err = run(capsys, "fit", work.data, "-o", path, "--schema", work.schema, "--overwrite", *FAST)
    assert code == 0, err
    assert TabularBridge.load(str(path), progress=False).sample(3, seed=0).shape[0] == 3


def test_an_existing_output_folder_needs_overwrite(work, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("old")
    code, out, err = run(capsys, "sample", work.model, "-n", "50", "-o", out_dir, "--no-progress")
    assert code == 2
    assert str(out_dir) in err and "--overwrite" in err and "already exists" in err
    assert os.listdir(out_dir) == ["keep.txt"] and (out_dir / "keep.txt").read_text() == "old"

    code, out, err = run(capsys, "sample", work.model, "-n", "50", "-o", out_dir, "--overwrite", "--no-progress")
    assert code == 0, err
    assert sorted(os.listdir(out_dir)) == ["manifest.json", "part-00000.parquet"]
    assert len(read_table(str(out_dir))) == 50
    assert os.listdir(tmp_path) == ["out"]


# ----------------------------------------------------------------------------------------
# atomic outputs
# ----------------------------------------------------------------------------------------
def failing_chunks(error: BaseException, parent, seen: list):
    """A ``sample_chunks`` that yields one real chunk, notes the temporary names in ``parent``, then raises."""
    real = tabular_bridge.TabularBridge.sample_chunks

    def sample_chunks(self, num_rows, seed=0, *, chunk_rows=100_000, batch_size=8192, **sampler):
        chunks = real(self, num_rows, seed, chunk_rows=chunk_rows, batch_size=batch_size, **sampler)
        yield next(chunks)
        seen.extend(leftovers(parent))  # the write is under way: something temporary must exist
        raise error

    return sample_chunks


@pytest.mark.parametrize(
    "name, error, code",
    [
        ("rows.csv", OSError("disk full"), 1),
        ("rows.csv", RuntimeError("boom"), None),
        ("rows.parquet", RuntimeError("boom"), None),
    ],
)
def test_a_failed_sample_to_a_file_leaves_no_output_and_no_temporary(work, tmp_path, capsys, monkeypatch, name, error,
                                                                     code):
    seen: list = []
    monkeypatch.setattr(tabular_bridge.TabularBridge, "sample_chunks", failing_chunks(error, tmp_path, seen))
    argv = ["sample", str(work.model), "-n", "300", "--chunk-rows", "100", "-o", str(tmp_path / name), "--no-progress"]
    run_failing(capsys, argv, error, code)
    assert seen and all(s.startswith("." + name + ".") for s in seen), seen
    assert not (tmp_path / name).exists()
    assert os.listdir(tmp_path) == []


def run_failing(capsys, argv: list[str], error: BaseException, code: int | None) -> str:
    """Run ``argv`` expecting ``error``: propagated when ``code`` is None, else exit ``code`` and a message; returns stderr."""
    if code is None:  # main does not handle it: the error propagates
        with pytest.raises(type(error), match=str(error)):
            cli.main(argv)
        return ""
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert (str(error) or "interrupted") in err and ": :" not in err, err
    return err


def failing_sample(error: BaseException, after: int):
    """A ``TabularBridge.sample`` that works ``after`` times, then raises ``error``."""
    real = tabular_bridge.TabularBridge.sample
    calls = [0]

    def sample(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise error
        return real(self, *args, **kwargs)

    return sample


@pytest.mark.parametrize(
    "error, code", [(RuntimeError("boom"), None), (OSError("disk full"), 1), (KeyboardInterrupt(), 130)]
)
def test_a_failed_sample_to_a_folder_keeps_its_finished_parts_and_the_rerun_resumes(work, tmp_path, capsys,
                                                                                   monkeypatch, error, code):
    out, staging = tmp_path / "parts", tmp_path / "parts.partial"
    argv = ["sample", str(work.model), "-n", "300", "--chunk-rows", "100", "--seed", "4", "-o", str(out), "--no-progress"]
    with monkeypatch.context() as patch:
        patch.setattr(tabular_bridge.TabularBridge, "sample", failing_sample(error, after=2))
        err = run_failing(capsys, argv, error, code)
        if code == 130:
            assert f"finished parts are kept in {staging}" in err and "run the same command again" in err
    assert not out.exists()
    assert sorted(os.listdir(staging)) == ["job.json", "part-00000.parquet", "part-00001.parquet"]
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    assert "(2 part(s) were already done)" in stdout
    assert sorted(os.listdir(tmp_path)) == ["parts"] and sorted(os.listdir(out)) == PARTS
    pd.testing.assert_frame_equal(read_table(str(out)), expected_rows(work.model, 300, seed=4), check_exact=True)


@pytest.mark.parametrize("name, left", [("parts", ["parts", "parts.partial"]), ("rows.csv", ["rows.csv"])])
def test_a_failed_overwrite_keeps_the_old_output(work, tmp_path, capsys, monkeypatch, name, left):
    path = tmp_path / name
    code, _, err = run(capsys, "sample", work.model, "-n", "120", "--chunk-rows", "50", "--seed", "1", "-o", path,
                       "--no-progress")
    assert code == 0, err
    before = read_table(str(path))
    seen: list = []
    if name == "parts":  # a folder is written part by part through TabularBridge.sample (and kept for resuming)
        monkeypatch.setattr(tabular_bridge.TabularBridge, "sample", failing_sample(RuntimeError("boom"), after=1))
    else:
        monkeypatch.setattr(tabular_bridge.TabularBridge, "sample_chunks", failing_chunks(RuntimeError("boom"), tmp_path, seen))
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["sample", str(work.model), "-n", "300", "--chunk-rows", "100", "--seed", "2", "-o", str(path),
                  "--overwrite", "--no-progress"])
    assert seen or name == "parts"
    pd.testing.assert_frame_equal(read_table(str(path)), before, check_exact=True)
    assert sorted(os.listdir(tmp_path)) == left


# ----------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------
def test_a_corrupt_checkpoint_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    code, _, err = run(capsys, "sample", bad, "-n", "10", "-o", tmp_path / "x.csv", "--no-progress")
    assert code == 1
    assert str(bad) in err and "not an omegabridge checkpoint" in err
    assert os.listdir(tmp_path) == ["bad.ckpt"]


def test_a_missing_checkpoint_is_named(tmp_path, capsys):
    code, _, err = run(capsys, "sample", tmp_path / "absent.ckpt", "-n", "10", "-o", tmp_path / "x", "--no-progress")
    assert code == 1 and str(tmp_path / "absent.ckpt") in err and "no such" in err
    assert os.listdir(tmp_path) == []


def test_a_missing_data_file_is_named(tmp_path, capsys):
    code, _, err = run(capsys, "fit", tmp_path / "absent.csv", "-o", tmp_path / "m.ckpt", *FAST)
    assert code == 1 and str(tmp_path / "absent.csv") in err and "no such file" in err
    assert os.listdir(tmp_path) == []


def test_a_schema_file_that_is_not_json_is_a_usage_error(work, tmp_path, capsys):
    schema = tmp_path / "schema.json"
    schema.write_text('{"level": {"kind": "interval",')
    code, _, err = run(capsys, "fit", work.data, "-o", tmp_path / "m.ckpt", "--schema", schema, *FAST)
    assert code == 2 and str(schema) in err and "not valid JSON" in err
    assert os.listdir(tmp_path) == ["schema.json"]


def test_a_schema_naming_a_missing_column_is_named(work, tmp_path, capsys):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"salary": "real"}))
    code, _, err = run(capsys, "fit", work.data, "-o", tmp_path / "m.ckpt", "--schema", schema, *FAST)
    assert code == 1 and "'salary'" in err and "lacks" in err
    assert os.listdir(tmp_path) == ["schema.json"]


def test_data_with_an_unknown_extension_is_an_error(work, tmp_path, capsys):
    data = tmp_path / "data.txt"
    data.write_text(work.data.read_text())
    code, _, err = run(capsys, "fit", data, "-o", tmp_path / "m.ckpt", *FAST)
    assert code == 1 and str(data) in err and "unknown table format" in err
    assert os.listdir(tmp_path) == ["data.txt"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-n", "0"], "rows must be >= 1"),
        (["-n", "ten"], "rows must be an integer"),
        (["-n", "10", "--chunk-rows", "0"], "chunk rows must be >= 1"),
        (["-n", "10", "--seed", "-1"], "seed must be >= 0"),
        (["-n", "10", "--device", "gpu0"], "device must name a torch device"),
        pytest.param(["-n", "10", "--device", "cuda"], "CUDA is not available",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    ],
)
def test_bad_sample_options_exit_2(work, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sample", str(work.model), *argv, "-o", str(tmp_path / "x.csv")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_a_bad_evaluate_target_is_a_usage_error(work, capsys):
    code, out, err = run(capsys, "evaluate", work.data, work.heldout, "--target", "x>abc")
    assert code == 2 and "--target" in err and "'x>abc'" in err
    assert "column" not in out  # refused before any table is printed


# ----------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------
@pytest.fixture
def one_openmp_thread():
    """Efficacy fits scikit-learn's HistGradientBoosting, whose OpenMP threads (next to torch's own
    OpenMP pool) slow it down tens of times on a small, busy machine; one thread keeps it to a second."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def test_evaluate_with_the_model_reports_full_validity_and_efficacy(work, tmp_path, capsys, one_openmp_thread):
    synthetic = tmp_path / "synthetic"
    code, _, err = run(capsys, "sample", work.model, "-n", "400", "--chunk-rows", "150", "--seed", "2",
                       "-o", synthetic, "--no-progress")
    assert code == 0, err
    assert_valid(read_table(str(synthetic)))
    metrics_path = tmp_path / "metrics.json"
    code, out, err = run(capsys, "evaluate", work.data, synthetic, "--model", work.model, "--target", "count>4",
                         "--test", work.heldout, "-o", metrics_path)
    assert code == 0, err
    lines = out.splitlines()
    assert "valid" in lines[0]
    for column in COLUMNS:
        rows = [line for line in lines if line.split()[:1] == [column]]
        assert rows and rows[0].rstrip().endswith("100.00%"), f"{column}:\n{out}"
    for entry in ("min_validity", "rows_valid", "efficacy", "real_efficacy"):
        assert any(line.split()[:1] == [entry] for line in lines), f"{entry} missing:\n{out}"
    assert "note: no --test" not in out and f"wrote {metrics_path}" in out
    assert not leftovers(tmp_path)

    metrics = json.loads(metrics_path.read_text())
    assert list(metrics["columns"]) == COLUMNS
    for column, row in metrics["columns"].items():
        assert row["synthetic_validity"] == 1.0, (column, row)
        assert 0.0 <= row["synthetic_fidelity"] <= 1.0
    assert metrics["summary"]["synthetic_rows_valid"] == 1.0
    efficacy = metrics["efficacy"]["synthetic"]
    assert efficacy["task"] == "classification"
    assert 0.0 <= efficacy["real"] <= 1.0 and 0.0 <= efficacy["synthetic"] <= 1.0
    assert metrics["summary"]["synthetic_efficacy"] == efficacy["synthetic"]


def test_evaluate_without_a_model_infers_the_schema_from_real(work, tmp_path, capsys, one_openmp_thread):
    synthetic = tmp_path / "synthetic.csv"
    code, _, err = run(capsys, "sample", work.model, "-n", "300", "--seed", "4", "-o", synthetic, "--no-progress")
    assert code == 0, err
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"amount": {"kind": "interval", "low": 0, "high": 1}}))
    metrics_path = tmp_path / "metrics.json"
    code, out, err = run(capsys, "evaluate", work.data, synthetic, "--schema", schema, "--target", "level>50",
                         "-o", metrics_path)
    assert code == 0, err
    assert "note: no --test given" in out
    for column in COLUMNS:
        assert any(line.split()[:1] == [column] for line in out.splitlines()), f"{column}:\n{out}"

    # Inferred from REAL: colour, count, level; declared here: amount in [0, 1], which the model does not know.
    amount = pd.read_csv(synthetic)["amount"]
    inside = float(((amount >= 0) & (amount <= 1)).mean())
    assert 0.0 < inside < 1.0
    columns = json.loads(metrics_path.read_text())["columns"]
    assert columns["amount"]["synthetic_validity"] == pytest.approx(inside, abs=1e-12)
    assert all(columns[c]["synthetic_validity"] == 1.0 for c in ("colour", "count", "level"))
    assert json.loads(metrics_path.read_text())["efficacy"]["synthetic"]["task"] == "classification"


# ----------------------------------------------------------------------------------------
# python -m omegabridge
# ----------------------------------------------------------------------------------------
def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_python_dash_m_samples_to_a_csv(work, tmp_path):
    out = tmp_path / "x.csv"
    command = [sys.executable, "-m", "omegabridge", "sample", str(work.model), "-n", "40", "--seed", "9",
               "-o", str(out), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=_env(), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert f"wrote 40 rows to {out}" in result.stdout
    assert_csv_rows_equal(pd.read_csv(out), expected_rows(work.model, 40, seed=9))
    assert os.listdir(tmp_path) == ["x.csv"]


def test_python_dash_m_help_lists_the_subcommands():
    result = subprocess.run([sys.executable, "-m", "omegabridge", "--help"], capture_output=True, text=True,
                            timeout=120, env=_env(), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: omegabridge")
    for command in ("fit", "sample", "evaluate", "demo"):
        assert f"    {command} " in result.stdout, result.stdout
