"""``omegabridge demo segments`` at tiny size: it runs, writes its files, and every sampled map is a valid map."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

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


@pytest.mark.parametrize("name, module, run", [("digits", "digits", "run_digits"), ("segments", "segments", "run_segments"),
                                               ("points", "points", "run_points")])
def test_paper_gives_the_field_demo_its_paper_sizes_and_the_device(name, module, run, tmp_path, monkeypatch):
    demo_module = importlib.import_module(f"omegabridge.demos.{module}")
    configs = []
    monkeypatch.setattr(demo_module, run, configs.append)
    assert cli.main(["demo", name, "--paper", "--no-progress", "-o", str(tmp_path)]) == 0
    paper = getattr(demo_module, f"{name.upper()}_PAPER")
    (config,) = configs
    assert config.device == "cpu" and all(getattr(config, key) == value for key, value in paper.items())
    assert config.iterations >= 10 * type(config)().iterations  # paper scale: at least ten times the training


def test_paper_and_quick_exclude_each_other_and_the_tables_demo_refuses_both_device_and_paper(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["demo", "digits", "--paper", "--quick", "-o", str(tmp_path)])
    assert stopped.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert cli.main(["demo", "--paper", "-o", str(tmp_path)]) == 2
    assert "--paper and --device are for the field demos" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_cuda_device_is_checked_before_anything_runs(tmp_path, capsys, monkeypatch):
    from omegabridge.demos import points

    configs = []
    monkeypatch.setattr(points, "run_points", configs.append)
    if torch.cuda.is_available():
        assert cli.main(["demo", "points", "--device", "cuda", "-o", str(tmp_path)]) == 0
        assert configs[0].device == "cuda"
    else:
        with pytest.raises(SystemExit) as stopped:
            cli.main(["demo", "points", "--device", "cuda", "-o", str(tmp_path)])
        assert stopped.value.code == 2 and "--device" in capsys.readouterr().err and configs == []


def test_the_quick_points_demo_on_an_explicit_cpu_device_records_it(tmp_path):
    assert cli.main(["demo", "points", "--quick", "--device", "cpu", "--no-progress", "-o", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "points_metrics.json").read_text())
    assert metrics["config"]["device"] == "cpu" and metrics["valid"] == 1.0


def test_the_gpu_recipe_says_plainly_when_there_is_no_gpu(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "field_demos_gpu.sh"
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the recipe would run at paper scale")
    done = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode != 0 and "no CUDA GPU here" in done.stderr
    assert list((tmp_path / "out").iterdir()) == []
