"""The benchmarks' paper-style baselines compute the same singular force as the reference,
so bench/run.py and bench/fields.py time the same math (a wrong log h would still time, silently)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import omegabridge as ob
from omegabridge import reference

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from baselines import per_column_score  # noqa: E402
from fields import _per_element_force  # noqa: E402


def _score(domain, z, s):
    return (reference.posterior_mean(z, domain.segment_table(), s) - z) / s


def test_per_column_autograd_gives_the_reference_score():
    domain = ob.Product([ob.Interval(-1.0, 2.0), ob.Categorical(4), ob.HalfLine(low=0.5), ob.HalfLine(high=1.0),
                         ob.Lattice(0, 16, step=1), ob.Binary(), ob.Real()])
    z = 2.0 * torch.randn(16, domain.width, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(per_column_score(domain, z, 0.7), _score(domain, z, 0.7), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("field", [ob.Lattice(0, 255, step=1, shape=(2, 3)), ob.Categorical(5, shape=(3,)),
                                   ob.HalfLine(low=0.0, shape=(4,))], ids=repr)
def test_per_element_autograd_gives_the_reference_score(field):
    z = 50.0 * torch.randn(8, field.width, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(_per_element_force(field, z, 30.0), _score(field, z, 30.0), rtol=1e-9, atol=1e-9)


def test_the_end_to_end_sampling_bench_runs_every_cpu_variant_and_they_agree(tmp_path):
    """bench/sampling.py on a CPU at a small size: each variant's sample lands in the domain, the
    fused C++ and reference loops give the same sample (same seed), and both reports are written."""
    import json

    from sampling import main as sampling_main

    results = sampling_main(["--device", "cpu", "--rows", "64", "--steps", "6", "--repeats", "2", "--out", str(tmp_path)])
    assert [r["variant"] for r in results] == ["cpu", "reference", "per-column"]
    assert all(r["in_domain"] and r["seconds"] > 0 for r in results)
    fused = {r["variant"]: r for r in results if r["variant"] != "per-column"}
    assert fused["reference"]["rows_differing"] == 0.0 and fused["reference"]["max_abs_difference"] < 1e-4
    report = json.loads((tmp_path / "sampling-cpu.json").read_text())
    assert set(report["step_parts_ms"]) == {"mlp", "cpu", "reference"}
    assert "| per-column |" in (tmp_path / "sampling-cpu.md").read_text()


def test_the_bridge_step_bench_times_every_layout_and_fails_below_its_ratio(tmp_path):
    """bench/run.py --bridge-step at a tiny size: one line per layout of bench/layouts.py with both ops' times, and
    the exit status 1 once a layout runs below --min-ratio (a ratio above any attainable one)."""
    from native_helpers import require_extension

    require_extension()
    from layouts import layouts
    from run import main as run_main

    output = tmp_path / "bridge-step"
    assert run_main(["--bridge-step", "--scale", "0.001", "--repeats", "1", "--output", str(output)]) == 0
    text = output.with_suffix(".md").read_text()
    for name in layouts(0.001):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        euler, bridge, share = (cell.strip() for cell in row.split("|")[3:6])
        assert float(euler) > 0 and float(bridge) > 0 and share.endswith("%")
    assert run_main(["--bridge-step", "--scale", "0.001", "--repeats", "1", "--output", str(output), "--min-ratio", "1000"]) == 1
