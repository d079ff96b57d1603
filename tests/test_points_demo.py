"""``omegabridge demo points`` at tiny size, and its independent-coordinate baseline."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from omegabridge import cli
from omegabridge.fields import datasets, metrics as fm
from omegabridge.demos.points import POINTS_QUICK, PointsConfig, independent_coordinates

ROWS = {"omegabridge", "independent coordinates", "held-out real (train vs test)"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Run the demo once through the command line at POINTS_QUICK size: (output folder, exit code, printed text)."""
    import torch

    threads = torch.get_num_threads()
    output, printed = tmp_path_factory.mktemp("points"), io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            code = cli.main(["demo", "points", "--quick", "--no-progress", "-o", str(output)])
    finally:
        torch.set_num_threads(threads)  # the demo sets one thread, as the CLI's --threads default says
    return output, code, printed.getvalue()


def test_the_points_demo_writes_clouds_a_picture_and_metrics(quick_run):
    output, code, printed = quick_run
    assert code == 0
    assert "DriftSetNetwork" in printed and "1-NN accuracy" in printed and "valid 100%" in printed
    for row in ROWS:
        assert row in printed
    assert sorted(p.name for p in output.iterdir()) == ["points.png", "points_metrics.json", "points_samples.npy"]
    assert (output / "points.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((output / "points_metrics.json").read_text())
    assert metrics["valid"] == 1.0
    assert metrics["schedule"] == f"Exp(a={PointsConfig().schedule_a}, b={63.0 ** 2})"  # b: (grid - 1)^2 by default
    assert set(metrics["scores"]) == ROWS
    for score in metrics["scores"].values():
        assert 0.0 <= score["one_nn_accuracy"] <= 1.0
        assert score["chamfer_coverage"] >= 0.0 and score["chamfer_fidelity"] >= 0.0
    clouds = np.load(output / "points_samples.npy")
    assert clouds.shape == (POINTS_QUICK["test_clouds"], POINTS_QUICK["points"], 3)
    assert np.issubdtype(clouds.dtype, np.integer) and clouds.min() >= 0 and clouds.max() <= 63


def _regenerated():
    """The quick run's training and held-out clouds, regenerated from the data set's own seed."""
    count = POINTS_QUICK["train_clouds"] + POINTS_QUICK["test_clouds"]
    clouds, _ = datasets.point_shapes(count, points=POINTS_QUICK["points"], grid=64, seed=0)
    return clouds[:POINTS_QUICK["train_clouds"]], clouds[POINTS_QUICK["train_clouds"]:]


def _brute_force_scores(rows, held_out):
    """The demo's three scores through the brute-force Chamfer distance (field_metrics.pairwise_chamfer)."""
    return {
        "chamfer_coverage": fm.minimum_matching_distance(rows, held_out),
        "chamfer_fidelity": float(fm.pairwise_chamfer(rows, held_out).min(axis=1).mean()),
        "one_nn_accuracy": fm.one_nearest_neighbour_accuracy(rows, held_out),
    }


def test_the_scores_are_those_of_the_written_samples_and_of_the_baseline(quick_run):
    output = quick_run[0]
    metrics = json.loads((output / "points_metrics.json").read_text())["scores"]
    train, test = _regenerated()
    rows = {
        "omegabridge": np.load(output / "points_samples.npy").astype(np.int64),
        "independent coordinates": independent_coordinates(train, POINTS_QUICK["test_clouds"], seed=0),
        "held-out real (train vs test)": train[:POINTS_QUICK["test_clouds"]],
    }
    for name, clouds in rows.items():
        expected = _brute_force_scores(clouds, test)
        for key, value in expected.items():
            assert metrics[name][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (name, key)


def _axis_histograms(clouds, low, high):
    points = np.asarray(clouds).reshape(-1, 3)
    return [np.bincount(points[:, axis] - low, minlength=high - low + 1) / len(points) for axis in range(3)]


def test_the_baseline_draws_each_axis_from_its_own_marginal_and_independently():
    rng = np.random.default_rng(1)
    # Three axes with disjoint, differently shaped laws, and y tied to x in the training data.
    x = rng.integers(0, 10, (40, 50))
    y = 50 + np.clip(x + rng.integers(-1, 2, x.shape), 0, 9)
    z = 20 + np.minimum(rng.geometric(0.4, x.shape) - 1, 9)
    train = np.stack([x, y, z], axis=-1)
    baseline = independent_coordinates(train, count=400, seed=0)
    assert baseline.shape == (400, 50, 3) and np.issubdtype(baseline.dtype, np.integer)
    # 20000 draws from laws on 10 values: the expected TV from sampling alone is about 0.01.
    tolerance = 0.03
    for axis, (mine, theirs) in enumerate(zip(_axis_histograms(baseline, 0, 63), _axis_histograms(train, 0, 63))):
        assert 0.5 * np.abs(mine - theirs).sum() < tolerance, axis
    points = baseline.reshape(-1, 3)
    assert abs(np.corrcoef(points[:, 0], points[:, 1])[0, 1]) < 0.05  # the training data's is about 0.9
    assert np.corrcoef(train[..., 0].ravel(), train[..., 1].ravel())[0, 1] > 0.8
    assert not np.array_equal(baseline, independent_coordinates(train, count=400, seed=1))
    np.testing.assert_array_equal(baseline, independent_coordinates(train, count=400, seed=0))
