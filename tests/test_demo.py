"""The demo job (``python -m omegabridge demo``) end to end at --quick sizes, and its command line's errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pandas")
pytest.importorskip("statsmodels")

import pandas as pd  # noqa: E402

from omegabridge import cli  # noqa: E402
from omegabridge.demos import common, tables as demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = [
    "rate_marriage",
    "age",
    "yrs_married",
    "children",
    "religious",
    "educ",
    "occupation",
    "occupation_husb",
    "affairs",
]
# Allowed values, written out here rather than taken from omegabridge.
ALLOWED = {
    "rate_marriage": {1, 2, 3, 4, 5},
    "age": {17.5, 22, 27, 32, 37, 42},
    "yrs_married": {0.5, 2.5, 6, 9, 13, 16.5, 23},
    "children": {0, 1, 2, 3, 4, 5.5},
    "religious": {1, 2, 3, 4},
    "educ": {9, 12, 14, 16, 17, 20},
    "occupation": {1, 2, 3, 4, 5, 6},
    "occupation_husb": {1, 2, 3, 4, 5, 6},
}
FILES = ("fair_marginals.png", "digits.png", "metrics.json", "fair_synthetic.csv", "digits_synthetic.csv")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``python -m omegabridge demo --quick`` run shared by the checks below."""
    output = tmp_path_factory.mktemp("demo") / "out"
    command = [sys.executable, "-m", "omegabridge", "demo", "--quick", "--no-progress", "-o", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
    return result, output


def test_quick_demo_exits_zero_and_writes_non_empty_files(quick_run):
    result, output = quick_run
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    for name in FILES:
        path = output / name
        assert path.is_file(), f"{name} missing; files: {sorted(os.listdir(output))}"
        assert path.stat().st_size > 0, f"{name} is empty"
    for name in ("fair_marginals.png", "digits.png"):
        assert (output / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leftovers = [name for name in os.listdir(output) if name.startswith(".")]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    assert str(output) in result.stdout, "the demo must print where the files went"


def test_quick_demo_fair_rows_are_all_valid(quick_run):
    result, output = quick_run
    assert result.returncode == 0, result.stderr
    metrics = json.loads((output / "metrics.json").read_text())["fair"]
    assert set(metrics["columns"]) == set(COLUMNS)
    for column, row in metrics["columns"].items():
        assert row["omegabridge_validity"] == 1.0, (column, row)
        assert 0.0 <= row["omegabridge_fidelity"] <= 1.0
    assert metrics["summary"]["omegabridge_rows_valid"] == 1.0
    assert 0.0 <= metrics["summary"]["omegabridge_association_error"] <= 2.0
    assert "omegabridge_efficacy_ratio" in metrics["summary"]

    # Independently of the demo's own validity code: reread the synthetic rows.
    synthetic = pd.read_csv(output / "fair_synthetic.csv")
    assert list(synthetic.columns) == COLUMNS
    assert len(synthetic) == metrics["run"]["rows_synthetic"] > 0
    for column, allowed in ALLOWED.items():
        outside = set(synthetic[column].unique()) - allowed
        assert not outside, f"{column}: values outside the allowed set: {sorted(outside)}"
    affairs = synthetic["affairs"].to_numpy()
    assert np.isfinite(affairs).all() and (affairs >= 0).all()


def test_quick_demo_digits_are_integer_images_in_0_to_16(quick_run):
    result, output = quick_run
    assert result.returncode == 0, result.stderr
    pixels = pd.read_csv(output / "digits_synthetic.csv").to_numpy()
    assert pixels.shape[1] == 64 and len(pixels) > 0
    assert np.issubdtype(pixels.dtype, np.integer) and pixels.min() >= 0 and pixels.max() <= 16
    scores = json.loads((output / "metrics.json").read_text())["digits"]["scores"]
    histogram = np.asarray(scores["omegabridge"]["class_histogram"])
    assert histogram.shape == (10,) and abs(histogram.sum() - 1.0) < 1e-9


def test_quick_demo_prints_every_column(quick_run):
    result, _ = quick_run
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for column in COLUMNS:
        rows = [line for line in lines if line.split()[:1] == [column]]
        assert rows, f"column {column} missing from the printed metrics table:\n{result.stdout}"
        assert "100.00%" in rows[-1]
    assert "association_error" in result.stdout and "class hist. TV from uniform" in result.stdout


def test_unknown_subcommand_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in error and "demo" in error


def test_missing_subcommand_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
    assert "required" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["demo", "--iterations", "zero"], "--iterations"),
        (["demo", "--steps", "1"], "steps must be >= 2"),
        (["demo", "--only", "tables"], "invalid choice: 'tables'"),
    ],
)
def test_bad_option_is_a_clear_error(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_statsmodels_exits_2_with_install_hint(tmp_path):
    code = (
        "import sys; sys.modules['statsmodels'] = None\n"
        "from omegabridge.cli import main\n"
        f"sys.exit(main(['demo', '--quick', '--no-progress', '-o', {str(tmp_path / 'out')!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=_env())
    assert result.returncode == 2, result.stderr
    assert "statsmodels" in result.stderr and "pip install" in result.stderr
    assert not (tmp_path / "out").exists()


def test_console_script_is_declared():
    text = open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
    assert 'omegabridge = "omegabridge.cli:main"' in text
    script = shutil.which("omegabridge")
    assert script is not None, "the omegabridge console script is not installed (pip install -e .)"
    result = subprocess.run([script, "demo", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--quick" in result.stdout


def test_split_is_a_seeded_partition():
    train, test = common.split(100, seed=3)
    again, _ = common.split(100, seed=3)
    assert len(test) == 20 and sorted(np.concatenate([train, test]).tolist()) == list(range(100))
    assert (train == again).all() and not (train == common.split(100, seed=4)[0]).all()
