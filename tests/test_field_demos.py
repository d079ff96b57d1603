"""``omegabridge demo segments`` at tiny size: it runs, writes its files, and every sampled map is a valid map."""

from __future__ import annotations

import json

import numpy as np

from omegabridge import cli


def test_the_segments_demo_writes_maps_a_picture_and_metrics(tmp_path, capsys):
    code = cli.main(["demo", "segments", "--quick", "--no-progress", "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "DriftUNet" in out and "co-occ. TV" in out and "independent pixels" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segments.png", "segments_metrics.json", "segments_samples.npy"]
    metrics = json.loads((tmp_path / "segments_metrics.json").read_text())
    assert metrics["valid"] == 1.0
    assert set(metrics["scores"]) == {"omegabridge", "independent pixels", "held-out real (train vs test)"}
    for score in metrics["scores"].values():
        assert 0.0 <= score["cooccurrence_tv"] <= 1.0 and 0.0 <= score["class_frequency_tv"] <= 1.0
    maps = np.load(tmp_path / "segments_samples.npy")
    assert maps.shape == (32, 16, 16) and maps.min() >= 0 and maps.max() <= 5


def test_only_is_for_the_tables_demo(tmp_path, capsys):
    assert cli.main(["demo", "segments", "--only", "fair", "-o", str(tmp_path)]) == 2
    assert "--only chooses a data set of the tables demo" in capsys.readouterr().err
