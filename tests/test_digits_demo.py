"""``omegabridge demo digits`` at tiny size through the command line, its independent-pixel baseline and its
Frechet distance against answers computed here."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("pandas")

from omegabridge import cli  # noqa: E402
from omegabridge.demos import common, digits as digit_demo, tables as demo

FILES = ["digits_field.png", "digits_metrics.json", "digits_samples.npy"]
SCORED = {"U-Net", "flat MLP", "independent pixels", "held-out real"}
SCORE_KEYS = {"class_histogram", "histogram_tv_from_uniform", "mean_top_probability", "frechet_distance"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``omegabridge demo digits --quick --steps 8`` run shared by the checks below: (exit code, stdout, folder)."""
    import torch

    threads = torch.get_num_threads()
    output = tmp_path_factory.mktemp("digits")
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            code = cli.main(["demo", "digits", "--quick", "--steps", "8", "--no-progress", "-o", str(output)])
    finally:
        torch.set_num_threads(threads)  # the demo sets one thread for the process
    return code, printed.getvalue(), output


def test_the_digits_demo_writes_its_three_files_and_prints_the_table(quick_run):
    code, out, output = quick_run
    assert code == 0
    assert sorted(p.name for p in output.iterdir()) == FILES
    assert (output / "digits_field.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "DriftUNet" in out and "DriftMLP" in out and "Frechet" in out
    for name in SCORED:
        assert name in out


def test_the_digits_metrics_hold_every_score_and_the_settings_used(quick_run):
    _, _, output = quick_run
    metrics = json.loads((output / "digits_metrics.json").read_text())
    assert metrics["config"]["steps"] == 8  # --steps reached the config
    assert metrics["config"]["iterations"] == digit_demo.DIGITS_QUICK["iterations"]
    assert "Exp(a=3.0, b=256.0)" in metrics["bridge"] and "steps=8" in metrics["bridge"]
    assert metrics["data"]["train"] + metrics["data"]["held_out"] == 1797
    assert metrics["valid"] == {"U-Net": 1.0, "flat MLP": 1.0, "independent pixels": 1.0}
    assert set(metrics["scores"]) == SCORED
    for name, score in metrics["scores"].items():
        assert set(score) == SCORE_KEYS, name
        assert sum(score["class_histogram"]) == pytest.approx(1.0)
        assert 0.0 <= score["histogram_tv_from_uniform"] <= 0.9
        assert 0.1 <= score["mean_top_probability"] <= 1.0
        assert math.isfinite(score["frechet_distance"]) and score["frechet_distance"] >= 0.0
    # Real digits are far closer to the held-out ones than independent pixels are (2 against ~60 in logit units).
    assert metrics["scores"]["held-out real"]["frechet_distance"] < metrics["scores"]["independent pixels"]["frechet_distance"]
    assert metrics["classifier_accuracy"] > 0.9
    assert set(metrics["seconds"]) == {"U-Net", "flat MLP"}


def test_the_saved_samples_are_digits_on_the_lattice_scored_as_reported(quick_run):
    _, _, output = quick_run
    samples = np.load(output / "digits_samples.npy")
    assert samples.shape == (digit_demo.DIGITS_QUICK["samples"], 8, 8)
    assert samples.min() >= 0 and samples.max() <= 16
    # Rescore the saved images with a classifier fitted here on the same split: the reported U-Net scores are theirs.
    pixels, labels = common.load_digits()
    train_rows, test_rows = common.split(len(pixels), seed=0)
    classifier = common.digit_classifier(pixels.to_numpy()[train_rows], labels[train_rows])
    probabilities = classifier.predict_proba(samples.reshape(len(samples), 64).astype(float))
    histogram = np.bincount(probabilities.argmax(axis=1), minlength=10) / len(samples)
    reported = json.loads((output / "digits_metrics.json").read_text())["scores"]["U-Net"]
    np.testing.assert_allclose(reported["class_histogram"], histogram)
    assert reported["mean_top_probability"] == pytest.approx(probabilities.max(axis=1).mean())


def test_only_with_the_digits_demo_points_to_the_tables_demo(tmp_path, capsys):
    assert cli.main(["demo", "digits", "--only", "digits", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--only chooses a data set of the tables demo" in err and "omegabridge demo --only digits" in err
    assert list(tmp_path.iterdir()) == []


def test_demo_without_a_name_still_runs_the_tables_demo(tmp_path, monkeypatch):
    configs = []
    monkeypatch.setattr(demo, "run_demo", lambda config: configs.append(config))
    assert cli.main(["demo", "--quick", "--only", "digits", "--no-progress", "-o", str(tmp_path)]) == 0
    assert len(configs) == 1 and configs[0].only == "digits" and configs[0].quick


def test_independent_pixels_keep_each_marginal_and_break_the_dependence():
    rng = np.random.default_rng(1)
    # Pixel (0, 0) is 0, 5 or 16 with shares 0.5 / 0.3 / 0.2; pixel (0, 1) copies it (fully dependent); pixel (1, 0)
    # is uniform on 0..16 on its own; pixel (1, 1) is constant.
    first = rng.choice([0, 5, 16], size=400, p=[0.5, 0.3, 0.2])
    train = np.stack([np.stack([first, first], axis=1), np.stack([rng.integers(0, 17, 400), np.full(400, 7)], axis=1)],
                     axis=1)[:, None]  # (400, 1, 2, 2)
    count = 20000
    drawn = common.independent_pixels(train, count, seed=3)
    assert drawn.shape == (count, 1, 2, 2)
    tolerance = 0.02  # a share's sampling sd is at most sqrt(0.25 / 20000) = 0.0035: the bound is over 5 sd
    for row in range(2):
        for column in range(2):
            expected = np.bincount(train[:, 0, row, column], minlength=17) / len(train)
            observed = np.bincount(drawn[:, 0, row, column], minlength=17) / count
            np.testing.assert_allclose(observed, expected, atol=tolerance, err_msg=f"pixel ({row}, {column})")
            assert set(np.unique(drawn[:, 0, row, column])) <= set(np.unique(train[:, 0, row, column]))
    # The copy is no longer a copy: the two pixels agree about as often as independent draws do.
    agreement = np.mean(drawn[:, 0, 0, 0] == drawn[:, 0, 0, 1])
    independent_agreement = sum(share ** 2 for share in (0.5, 0.3, 0.2))  # 0.38 in the ideal marginal
    assert abs(agreement - independent_agreement) < 0.05, agreement
    assert np.array_equal(common.independent_pixels(train, 50, seed=3), common.independent_pixels(train, 50, seed=3))


class _IdentityClassifier:
    """A stand-in whose features (logits) are the pixels themselves, to test the Frechet distance alone."""

    def decision_function(self, rows):
        return rows


def _with_exact_moments(rng, mean, covariance, rows: int) -> np.ndarray:
    """Rows whose sample mean and (n - 1)-normalised sample covariance are exactly ``mean`` and ``covariance``."""
    noise = rng.normal(size=(rows, len(mean)))
    noise -= noise.mean(axis=0)
    whiten = np.linalg.inv(np.linalg.cholesky(np.cov(noise, rowvar=False)))
    return noise @ whiten.T @ np.linalg.cholesky(covariance).T + mean


def test_feature_frechet_of_two_gaussians_with_non_commuting_covariances():
    rng = np.random.default_rng(0)
    mean_a, mean_b = np.array([0.0, 0.0]), np.array([1.0, 2.0])
    cov_a, cov_b = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([[1.0, 0.0], [0.0, 4.0]])  # cov_a cov_b != cov_b cov_a
    a = _with_exact_moments(rng, mean_a, cov_a, 500)
    b = _with_exact_moments(rng, mean_b, cov_b, 300)
    # For 2 x 2 matrices with positive eigenvalues, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); M = cov_a cov_b.
    trace_root = math.sqrt(np.trace(cov_a @ cov_b) + 2.0 * math.sqrt(np.linalg.det(cov_a) * np.linalg.det(cov_b)))
    expected = float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)
    assert expected == pytest.approx(5.7712, abs=1e-4)  # 5 + 4 + 5 - 2 sqrt(10 + 2 sqrt(12)), by hand
    classifier = _IdentityClassifier()
    assert digit_demo.feature_frechet(classifier, a, b) == pytest.approx(expected, rel=1e-9)
    assert digit_demo.feature_frechet(classifier, b, a) == pytest.approx(expected, rel=1e-9)
    assert digit_demo.feature_frechet(classifier, a, a) == pytest.approx(0.0, abs=1e-9)
    # Images of any shape are flattened to rows of features first.
    assert digit_demo.feature_frechet(classifier, a.reshape(500, 1, 2, 1), b) == pytest.approx(expected, rel=1e-9)
