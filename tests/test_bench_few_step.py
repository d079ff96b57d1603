"""bench/few_step_tables.py runs end to end on a tiny budget and writes its table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("statsmodels")  # fair ships with statsmodels (the demo extra)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import few_step_tables  # noqa: E402


def test_a_tiny_run_scores_every_sampler(tmp_path):
    assert few_step_tables.main(["--iterations", "5", "--rows", "150", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "few-step-tables.json").read_text())
    samplers = [f"{solver} {steps} {grid}" for solver, steps, grid in few_step_tables.SAMPLERS]
    expected = [("-", "real (train)")] + [(model, name) for model in few_step_tables.MODELS for name in samplers]
    assert [(row["model"], row["sampler"]) for row in rows] == expected
    assert all(row["validity"] == 1.0 for row in rows[1:])  # every sampler keeps every row valid
    assert all(0.0 <= row["discrete_tv"] <= 1.0 and 0.0 <= row["association_error"] for row in rows)
    text = (tmp_path / "few-step-tables.md").read_text()
    assert f"`python bench/few_step_tables.py --iterations 5 --rows 150 --out {tmp_path}`" in text
    assert "| continuous | bridge 25 s^3 | 25 |" in text and "| posterior logits | bridge 25 s^3 | 25 |" in text


def test_the_fields_run_scores_each_sampler_as_the_digits_demo_does(monkeypatch, tmp_path):
    pytest.importorskip("sklearn")  # the digits and the demo's classifier
    import few_step_fields

    monkeypatch.setattr(few_step_fields, "SAMPLERS", (("euler", 4, "t"), ("bridge", 3, "domain")))
    monkeypatch.setattr(few_step_fields, "TIMES", ("continuous",))
    result = few_step_fields.run(1, samplers=few_step_fields.SAMPLERS, times_settings=few_step_fields.TIMES, log=lambda _: None)
    assert [(c["times"], c["solver"], c["steps"]) for c in result["cells"]] == [("continuous", "euler", 4), ("continuous", "bridge", 3)]
    assert result["cells"][0]["grid"] == "t" and result["cells"][1]["grid"].startswith("s^")  # "domain" resolved
    assert all(cell["valid"] == 1.0 for cell in result["cells"])  # every image on the lattice
    assert all(cell["frechet_distance"] > result["floor"]["frechet_distance"] for cell in result["cells"])  # one iteration: far from real
    text = few_step_fields.markdown(result, "python bench/few_step_fields.py --iterations 1")
    assert "| continuous | euler | 4 | t |" in text and "| held-out digits (the floor) |" in text


def test_the_demos_run_reproduces_each_demo_at_its_own_sampler_and_scores_the_fewer_steps(tmp_path):
    import few_step_demos

    from omegabridge.demos import points, segments

    assert few_step_demos.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "few-step-demos.json").read_text())
    quick = dict(progress=False, output=str(tmp_path / "demo"))
    demos = {"segments": segments.run_segments(segments.SegmentsConfig(**segments.SEGMENTS_QUICK, **quick), log=lambda _: None),
             "points": points.run_points(points.PointsConfig(**points.POINTS_QUICK, **quick), log=lambda _: None)}
    for name, demo in demos.items():
        cells = result[name]["cells"]
        steps = demo["config"]["steps"]
        config = demo["config"]
        own = (config["solver"], 1, config["sampling_grid"])
        assert [(c["solver"], c["steps"], c["grid"]) for c in cells] == [
            (solver, max(2, steps // fraction), grid)
            for solver, fraction, grid in [own] + [sampler for sampler in few_step_demos.SAMPLERS if sampler != own]]
        assert all(cell["valid"] == 1.0 for cell in cells)
        # The first cell is the demo's own sampler on the same trained model: the demo's own scores.
        scored = {key: value for key, value in cells[0].items() if key in demo["scores"]["omegabridge"]}
        assert scored == pytest.approx(demo["scores"]["omegabridge"], rel=1e-12)
    text = (tmp_path / "few-step-demos.md").read_text()
    assert f"`python bench/few_step_demos.py --quick --out {tmp_path}`" in text
    assert "| bridge | 2 | domain |" in text and "| real training clouds against held-out |" in text
