"""Throughput of the step and the training target per backend, against this machine's copy rate.

Prints one table, writes it as Markdown and CSV under bench/results/, and draws a PNG bar chart.
A step reads z and f and writes z (12 bytes per element); the copy rate is measured in the
same run as torch's in-place add of two float32 tensors, which moves the same 12 bytes.

    python bench/run.py                 # full sizes (a few minutes on 2 cores)
    python bench/run.py --scale 0.05    # quick look
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import omegabridge as ob  # noqa: E402
from omegabridge import dispatch  # noqa: E402
from layouts import layouts  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _time(function, repeats: int) -> float:
    function()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def copy_rate(elements: int, repeats: int) -> float:
    """Elements per second of z += f on float32 (12 bytes per element)."""
    z = torch.rand(elements)
    f = torch.rand(elements)
    return elements / _time(lambda: z.add_(f), repeats)


def measure(name: str, domain, rows: int, backend: str, repeats: int) -> dict:
    table = domain.segment_table()
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(rows, domain.width, generator=generator)
    f = torch.randn(rows, domain.width, generator=generator)
    x = domain.project(torch.randn(rows, domain.width, generator=generator))
    elements = rows * domain.width
    step = lambda: dispatch.step(z, f, table, remaining=0.5, increment=0.01, seed=1, step_index=3, backend=backend)  # noqa: E731
    scale = torch.full((rows, 1), 0.5)
    target = lambda: dispatch.bridge_target(x, table, mean_scale=scale, noise_scale=scale, remaining=scale, seed=1, backend=backend)  # noqa: E731
    return {
        "layout": name,
        "backend": backend,
        "rows": rows,
        "width": domain.width,
        "step_elements_per_s": elements / _time(step, repeats),
        "target_elements_per_s": elements / _time(target, repeats),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every layout's row count")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="reference", help="comma-separated backends")
    parser.add_argument("--output", default=str(RESULTS / "cpu"), help="path prefix of the .md, .csv and .png")
    args = parser.parse_args(argv)

    rate = copy_rate(1 << 24, args.repeats)
    rows = []
    for backend in args.backends.split(","):
        for name, (domain, count) in layouts(args.scale).items():
            result = measure(name, domain, count, backend, args.repeats)
            rows.append(result)
            print(f"{name:>16} {backend:>10}: step {result['step_elements_per_s'] / 1e9:.4f} G el/s, "
                  f"target {result['target_elements_per_s'] / 1e9:.4f} G el/s", flush=True)

    header = (f"Device: {machine()}. Copy rate (z += f, float32, 12 bytes/element): {rate / 1e9:.3f} G elements/s. "
              f"{datetime.date.today()}, omegabridge {ob.__version__}, command: python bench/run.py "
              f"--scale {args.scale} --repeats {args.repeats} --backends {args.backends}")
    lines = [header, "", "| layout | backend | rows x width | step G el/s | step / copy | target G el/s | target / copy |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['layout']} | {r['backend']} | {r['rows']} x {r['width']} | {r['step_elements_per_s'] / 1e9:.4f} | "
            f"{r['step_elements_per_s'] / rate:.2%} | {r['target_elements_per_s'] / 1e9:.4f} | {r['target_elements_per_s'] / rate:.2%} |"
        )
    text = "\n".join(lines)
    print("\n" + text)
    prefix = Path(args.output)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".md").write_text(text + "\n")
    with open(prefix.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) + ["copy_elements_per_s", "device"])
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "copy_elements_per_s": rate, "device": machine()})
    _plot(rows, rate, prefix.with_suffix(".png"))
    print(f"\nwrote {prefix.with_suffix('.md')}, .csv and .png")
    return 0


def _plot(rows, rate, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['layout']}\n{r['backend']}" for r in rows]
    figure, axis = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4))
    positions = range(len(rows))
    axis.bar([p - 0.2 for p in positions], [r["step_elements_per_s"] / rate for r in rows], width=0.4, label="step")
    axis.bar([p + 0.2 for p in positions], [r["target_elements_per_s"] / rate for r in rows], width=0.4, label="target")
    axis.set_yscale("log")
    axis.set_ylabel("fraction of copy rate (log)")
    axis.set_xticks(list(positions), labels, fontsize=7)
    axis.legend()
    axis.set_title("omegabridge throughput vs z += f copy rate")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
