"""Throughput of the step and the training target per backend, against this machine's copy rate.

Backends: ``cpu`` (the fused C++ kernels), ``reference`` (the torch reference, eager),
``compile`` (torch.compile of the reference, torch.randn noise) and ``per-column`` (log h
differentiated by autograd one factor at a time, as the paper's public code does; see
bench/baselines.py). Prints one table, writes it as Markdown and CSV under bench/results/, and
draws a PNG bar chart. A step reads z and f and writes z (12 bytes per element); the copy rate
is measured in the same run as torch's in-place add of two float32 tensors, which moves the
same 12 bytes. The step runs in place (``out=z``), as ``Bridge.sample`` runs it, and the target
writes into two reused buffers (``out=``), as a training loop can.

A second table times one sampling step end to end on the Adult-like layout with the paper's
network (one hidden layer of 512): the MLP's forward pass and the step of each backend, and
the share of the step spent outside the MLP.

``--final-step`` instead times the exact last step (``ops.final_step`` into a reused buffer, as
``Bridge.sample`` writes its sample) against the step (``ops.step``, in place) of the same backend on the same inputs, per element, for every layout
and each ``--remaining`` s, and writes ``bench/results/final-step-cpu.md``; ``--max-ratio R``
makes the run fail when a layout's last step costs more than R steps.

``--bridge-step`` times the bridge solver's fused step (``ops.bridge_step`` with the multistep term: reads z, f
and the previous prediction, writes z in place and the new prediction into a reused buffer, as
``solvers.BridgeSolver`` runs it) against the Euler step (``ops.step``) of the same backend on the same inputs,
per element, for every layout, and writes ``bench/results/bridge-step-cpu.md``; ``--min-ratio R`` makes the run
fail when a layout's bridge step runs at less than R times the Euler step's elements per second.

    python bench/run.py                 # full sizes (about 10 minutes on 2 cores)
    python bench/run.py --scale 0.05    # quick look
    python bench/run.py --final-step --max-ratio 3   # the last step against the step (about 2 minutes)
    python bench/run.py --bridge-step --min-ratio 0.8  # the bridge solver's step against the Euler step
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
from omegabridge.ops import native as _native  # noqa: E402
from omegabridge import ops as dispatch
from baselines import compiled_reference, per_column_step, per_column_target  # noqa: E402
from layouts import adult_like, layouts  # noqa: E402

BACKENDS = ("cpu", "reference", "compile", "per-column")

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


def _operations(backend: str, domain, table, z, f, x, scale):
    """(step, target) callables of one backend on these inputs."""
    if backend in ("cpu", "reference"):
        state = z.clone()
        step = lambda: dispatch.step(state, f, table, remaining=0.5, increment=0.01, seed=1, step_index=3, backend=backend, out=state)  # noqa: E731
        buffers = (torch.empty_like(z), torch.empty_like(z))  # reused, as a training loop would
        target = lambda: dispatch.bridge_target(x, table, mean_scale=scale, noise_scale=scale, remaining=scale, seed=1, backend=backend, out=buffers)  # noqa: E731
    elif backend == "compile":
        compiled_step, compiled_target = compiled_reference("step"), compiled_reference("target")
        step = lambda: compiled_step(z, f, table, 0.5, 0.01)  # noqa: E731
        target = lambda: compiled_target(x, table, scale, scale, scale)  # noqa: E731
    elif backend == "per-column":
        step = lambda: per_column_step(domain, z, f, 0.5, 0.01)  # noqa: E731
        target = lambda: per_column_target(domain, x, scale, scale, 0.5)  # noqa: E731
    else:
        raise SystemExit(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    return step, target


def measure(name: str, domain, rows: int, backend: str, repeats: int) -> dict:
    table = domain.segment_table()
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(rows, domain.width, generator=generator)
    f = torch.randn(rows, domain.width, generator=generator)
    x = domain.project(torch.randn(rows, domain.width, generator=generator))
    elements = rows * domain.width
    scale = torch.full((rows, 1), 0.5)
    step, target = _operations(backend, domain, table, z, f, x, scale)
    return {
        "layout": name,
        "backend": backend,
        "rows": rows,
        "width": domain.width,
        "step_elements_per_s": elements / _time(step, repeats),
        "target_elements_per_s": elements / _time(target, repeats),
    }


def final_versus_step(name: str, domain, rows: int, backend: str, remaining: float, repeats: int) -> dict:
    """Seconds per element of the last step and of the step, on the same z and f, timed alternately so that
    both see the same machine state (turbo, other load)."""
    table = domain.segment_table()
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(rows, domain.width, generator=generator)
    f = torch.randn(rows, domain.width, generator=generator)
    state, sample = z.clone(), torch.empty_like(z)
    increment = min(0.01, 0.5 * remaining)
    step = lambda: dispatch.step(state, f, table, remaining=remaining, increment=increment, seed=1, step_index=3, backend=backend, out=state)  # noqa: E731
    final = lambda: dispatch.final_step(z, f, table, remaining=remaining, seed=1, step_index=3, backend=backend, out=sample)  # noqa: E731
    # The last step into a new tensor too (ops.final_step without out=): what a fresh output's page faults cost.
    fresh = lambda: dispatch.final_step(z, f, table, remaining=remaining, seed=1, step_index=3, backend=backend)  # noqa: E731
    step(), final(), fresh()  # warm-up
    step_samples, final_samples, fresh_samples = [], [], []
    for _ in range(repeats):
        for function, samples in ((step, step_samples), (final, final_samples), (fresh, fresh_samples)):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
    elements = rows * domain.width
    step_seconds, final_seconds = statistics.median(step_samples), statistics.median(final_samples)
    return {"layout": name, "backend": backend, "rows": rows, "width": domain.width, "remaining": remaining,
            "step_ns_per_element": 1e9 * step_seconds / elements, "final_ns_per_element": 1e9 * final_seconds / elements,
            "ratio": final_seconds / step_seconds, "fresh_ratio": statistics.median(fresh_samples) / step_seconds}


def _write_table(lines: list[str], args, default_name: str) -> None:
    """Print a comparison table and write it to ``--output`` (.md), or to bench/results/``default_name``."""
    text = "\n".join(lines)
    print("\n" + text)
    path = Path(args.output) if args.output != str(RESULTS / "cpu") else RESULTS / default_name
    path = path.with_suffix(".md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(f"\nwrote {path}")


def bridge_versus_step(name: str, domain, rows: int, backend: str, repeats: int) -> dict:
    """Seconds per element of the bridge solver's step and of the Euler step on the same z and f, timed
    alternately (as final_versus_step) at s = 0.5 and delta = 0.01, each in place."""
    table = domain.segment_table()
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(rows, domain.width, generator=generator)
    f = torch.randn(rows, domain.width, generator=generator)
    previous = torch.randn(rows, domain.width, generator=generator)
    euler_state, bridge_state, prediction = z.clone(), z.clone(), torch.empty_like(z)
    spread = torch.full((domain.width,), 0.1)
    euler = lambda: dispatch.step(euler_state, f, table, remaining=0.5, increment=0.01, seed=1, step_index=3, backend=backend, out=euler_state)  # noqa: E731
    bridge = lambda: dispatch.bridge_step(bridge_state, f, previous, table, remaining=0.5, fraction=0.02, weight=0.3, spread=spread,  # noqa: E731
                                          seed=1, step_index=3, backend=backend, out=bridge_state, prediction=prediction)
    euler(), bridge()  # warm-up
    euler_samples, bridge_samples = [], []
    for _ in range(repeats):
        for function, samples in ((euler, euler_samples), (bridge, bridge_samples)):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
    elements = rows * domain.width
    euler_seconds, bridge_seconds = statistics.median(euler_samples), statistics.median(bridge_samples)
    return {"layout": name, "backend": backend, "rows": rows, "width": domain.width,
            "euler_ns_per_element": 1e9 * euler_seconds / elements, "bridge_ns_per_element": 1e9 * bridge_seconds / elements,
            "ratio": euler_seconds / bridge_seconds}


def bridge_step_table(args) -> int:
    """--bridge-step: the bridge solver's step against the Euler step per layout; exit status 1 when a ratio of
    elements per second falls below --min-ratio."""
    results = []
    for name, (domain, count) in layouts(args.scale).items():
        r = bridge_versus_step(name, domain, count, "cpu", args.repeats)
        results.append(r)
        print(f"{name:>40}: Euler step {r['euler_ns_per_element']:.2f} ns/el, bridge step {r['bridge_ns_per_element']:.2f} "
              f"ns/el, {r['ratio']:.0%} of the Euler step's elements per second", flush=True)
    command = (f"python bench/run.py --bridge-step --scale {args.scale} --repeats {args.repeats}"
               + (f" --min-ratio {args.min_ratio:g}" if args.min_ratio else "") + (f" --threads {args.threads}" if args.threads else ""))
    lines = ["# The bridge solver's fused step against the Euler step on CPU (backend='cpu')", "",
             f"{datetime.date.today()}, omegabridge {ob.__version__}. Device: {machine()}.", "",
             f"Command: `{command}`", "",
             "Per element, the median of the repeats, both timed alternately on the same z and f (standard normal), s = 0.5. "
             "The Euler step (`ops.step`) reads z and f and writes z; the bridge step (`ops.bridge_step`, as "
             "`solvers.BridgeSolver` runs it, with the multistep term) reads z, f and the previous prediction and writes z "
             "and the new prediction (20 bytes per element against 12).", "",
             "| layout | rows x width | Euler step ns/element | bridge step ns/element | bridge step elements/s, share of Euler's |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['layout']} | {r['rows']} x {r['width']} | {r['euler_ns_per_element']:.2f} | {r['bridge_ns_per_element']:.2f} | "
              f"{r['ratio']:.0%} |" for r in results]
    _write_table(lines, args, "bridge-step-cpu.md")
    worst = min(results, key=lambda r: r["ratio"])
    if args.min_ratio and worst["ratio"] < args.min_ratio:
        print(f"FAIL: the bridge step runs at {worst['ratio']:.0%} of the Euler step's elements per second on "
              f"{worst['layout']}, below --min-ratio {args.min_ratio:g}")
        return 1
    return 0


def final_step_table(args) -> int:
    """--final-step: the last step against the step per layout; exit status 1 when a ratio exceeds --max-ratio."""
    results = []
    for remaining in args.remaining:
        for name, (domain, count) in layouts(args.scale).items():
            r = final_versus_step(name, domain, count, "cpu", remaining, args.repeats)
            results.append(r)
            print(f"{name:>40} s={remaining:g}: step {r['step_ns_per_element']:.2f} ns/el, last step "
                  f"{r['final_ns_per_element']:.2f} ns/el, ratio {r['ratio']:.2f}", flush=True)
    command = (f"python bench/run.py --final-step --scale {args.scale} --repeats {args.repeats} "
               f"--remaining {' '.join(f'{s:g}' for s in args.remaining)}" + (f" --max-ratio {args.max_ratio:g}" if args.max_ratio else "")
               + (f" --threads {args.threads}" if args.threads else ""))
    lines = [f"# The exact last step against the step on CPU (backend='cpu')", "",
             f"{datetime.date.today()}, omegabridge {ob.__version__}. Device: {machine()}.", "",
             f"Command: `{command}`", "",
             "Per element, the median of the repeats; the step runs in place (`out=z`, as Bridge.sample), the last step "
             "(`ops.final_step`) into a reused buffer (`out=`, as Bridge.sample writes its sample), and, in the last column, "
             "into a new tensor (no `out=`); all on the same z and f (standard normal), drift given, step "
             "increment min(0.01, s/2).", "",
             "| layout | rows x width | s | step ns/element | last step ns/element | last step / step | into a new tensor / step |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['layout']} | {r['rows']} x {r['width']} | {r['remaining']:g} | {r['step_ns_per_element']:.2f} | "
              f"{r['final_ns_per_element']:.2f} | {r['ratio']:.2f}x | {r['fresh_ratio']:.2f}x |" for r in results]
    _write_table(lines, args, "final-step-cpu.md")
    worst = max(results, key=lambda r: r["ratio"])
    if args.max_ratio and worst["ratio"] > args.max_ratio:
        print(f"FAIL: the last step costs {worst['ratio']:.2f} steps on {worst['layout']} (s={worst['remaining']:g}), "
              f"above --max-ratio {args.max_ratio:g}")
        return 1
    return 0


def paper_mlp(width: int, hidden: int = 512) -> torch.nn.Module:
    """The paper's tabular network: (z, t) -> one hidden layer of 512 -> drift."""

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(width + 1, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, width))

        def forward(self, z, t):
            return self.net(torch.cat([z, t[:, None]], dim=1))

    return MLP()


@torch.no_grad()
def end_to_end(rows: int, repeats: int, backends) -> list[dict]:
    """Per sampling step on the Adult-like layout: MLP forward vs the step of each backend."""
    domain = adult_like()
    table = domain.segment_table()
    model = paper_mlp(domain.width)
    z = torch.randn(rows, domain.width)
    t = torch.full((rows,), 0.5)
    mlp_seconds = _time(lambda: model(z, t), repeats)
    f = model(z, t)
    results = []
    for backend in backends:
        step, _ = _operations(backend, domain, table, z, f, z, torch.full((rows, 1), 0.5))
        step_seconds = _time(step, repeats)
        results.append({"backend": backend, "rows": rows, "mlp_ms": 1e3 * mlp_seconds, "step_ms": 1e3 * step_seconds,
                        "outside_mlp": step_seconds / (step_seconds + mlp_seconds)})
        print(f"end to end {backend:>10}: MLP {1e3 * mlp_seconds:.1f} ms, step {1e3 * step_seconds:.1f} ms, "
              f"{results[-1]['outside_mlp']:.1%} of the step outside the MLP", flush=True)
    return results


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
    ext = _native.load()
    simd = f", kernels built for {ext.simd}" if ext is not None else ""
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads){simd}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every layout's row count")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, from {', '.join(BACKENDS)}")
    parser.add_argument("--end-to-end-rows", type=int, default=30000, help="rows of the end-to-end sampling step (0: skip)")
    parser.add_argument("--output", default=str(RESULTS / "cpu"), help="path prefix of the .md, .csv and .png")
    parser.add_argument("--final-step", action="store_true", help="time ops.final_step against ops.step instead (cpu backend)")
    parser.add_argument("--remaining", type=float, nargs="+", default=[0.5], help="--final-step: the s of both ops")
    parser.add_argument("--max-ratio", type=float, default=0.0, help="--final-step: fail above this last step / step ratio")
    parser.add_argument("--bridge-step", action="store_true", help="time ops.bridge_step against ops.step instead (cpu backend)")
    parser.add_argument("--min-ratio", type=float, default=0.0, help="--bridge-step: fail below this share of the Euler step's elements/s")
    parser.add_argument("--threads", type=int, default=0, help="torch (and kernel) threads; 0: torch's default")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.final_step and args.bridge_step:
        parser.error("--final-step and --bridge-step are separate runs; give one")
    if args.final_step:
        return final_step_table(args)
    if args.bridge_step:
        return bridge_step_table(args)

    backends = args.backends.split(",")
    for backend in backends:
        if backend not in BACKENDS:
            parser.error(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    rate = copy_rate(1 << 24, args.repeats)
    rows = []
    for name, (domain, count) in layouts(args.scale).items():
        for backend in backends:
            result = measure(name, domain, count, backend, args.repeats)
            rows.append(result)
            print(f"{name:>16} {backend:>10}: step {result['step_elements_per_s'] / 1e9:.4f} G el/s, "
                  f"target {result['target_elements_per_s'] / 1e9:.4f} G el/s", flush=True)
    end_rows = end_to_end(args.end_to_end_rows, args.repeats, backends) if args.end_to_end_rows > 0 else []

    header = (f"Device: {machine()}. Copy rate (z += f, float32, 12 bytes/element): {rate / 1e9:.3f} G elements/s. "
              f"{datetime.date.today()}, omegabridge {ob.__version__}, command: python bench/run.py "
              f"--scale {args.scale} --repeats {args.repeats} --backends {args.backends}")
    lines = [header, "", "| layout | backend | rows x width | step G el/s | step / copy | step / reference | "
             "target G el/s | target / copy | target / reference |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    baseline = {r["layout"]: r for r in rows if r["backend"] == "reference"}
    for r in rows:
        ref = baseline.get(r["layout"])
        versus = (lambda key: f"{r[key] / ref[key]:.1f}x") if ref else (lambda key: "")  # noqa: E731
        lines.append(
            f"| {r['layout']} | {r['backend']} | {r['rows']} x {r['width']} | {r['step_elements_per_s'] / 1e9:.4f} | "
            f"{r['step_elements_per_s'] / rate:.2%} | {versus('step_elements_per_s')} | {r['target_elements_per_s'] / 1e9:.4f} | "
            f"{r['target_elements_per_s'] / rate:.2%} | {versus('target_elements_per_s')} |"
        )
    if end_rows:
        lines += ["", f"One sampling step, Adult-like layout ({end_rows[0]['rows']} rows x 109), paper MLP (one hidden layer of 512):", "",
                  "| backend | MLP ms | step ms | share of the step outside the MLP |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['backend']} | {r['mlp_ms']:.1f} | {r['step_ms']:.1f} | {r['outside_mlp']:.1%} |" for r in end_rows]
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


def grouped_bars(axis, rows, key, scale=1.0) -> list[str]:
    """One group of bars per layout, one bar per backend, of ``row[key] * scale``; returns the layouts in order."""
    layout_names = list(dict.fromkeys(r["layout"] for r in rows))
    backend_names = list(dict.fromkeys(r["backend"] for r in rows))
    by_key = {(r["layout"], r["backend"]): r for r in rows}
    width = 0.8 / len(backend_names)
    for j, backend in enumerate(backend_names):
        heights = [by_key[(name, backend)][key] * scale if (name, backend) in by_key else 0 for name in layout_names]
        positions = [i + (j - (len(backend_names) - 1) / 2) * width for i in range(len(layout_names))]
        axis.bar(positions, heights, width=width, label=backend)
    return layout_names


def _plot(rows, rate, path):
    """Two panels (step, target): per layout one bar per backend, as a fraction of the copy rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(14, 4.8), sharey=True)
    for axis, key, title in zip(axes, ("step_elements_per_s", "target_elements_per_s"), ("step", "training target")):
        layout_names = grouped_bars(axis, rows, key, scale=1.0 / rate)
        axis.axhline(0.4, color="black", linestyle="--", linewidth=1)
        axis.text(len(layout_names) - 0.5, 0.42, "40% of copy", ha="right", va="bottom", fontsize=8)
        axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xticks(range(len(layout_names)), [name.replace(" (", "\n(") for name in layout_names], fontsize=7, rotation=20, ha="right")
        axis.grid(axis="y", which="major", alpha=0.3)
    axes[0].set_ylabel("elements/s as a fraction of the copy rate (log)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    figure.suptitle(f"omegabridge on {machine()}", fontsize=9)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
