"""Time per sampling step of the singular force and of the whole fused step on the paper's field layouts.

Layouts (one row = one image, map or cloud):

* image 3x32x32, K=256: ``Lattice(0, 255, shape=(3, 32, 32))``, 3,072 columns;
* segmentation 64x64, K=19: ``Categorical(19, shape=(64, 64))``, 77,824 columns;
* point cloud 2048x3, K=64: ``Lattice(0, 63, shape=(2048, 3))``, 6,144 columns;
* half-line 3x32x32: ``HalfLine(low=0, shape=(3, 32, 32))``, the cheapest constrained kind, to
  compare the lattice's rate per element against (target: K=256 at >= 50% of it on ``cpu``).

Each layout runs on the default schedule of ``ob.Bridge(domain, steps=200)`` (scale-free: the
lattices' spread is their reach), at 8 step indices spread over the grid, with states drawn from
the bridge's own marginal at that time (Z_t = c x + sqrt(v) eps for data x in the domain), so
every regime a sampler meets is timed: the lattice's Euler-Maclaurin form early (large s) and
its window late (small s). Reported: the mean over those steps of the time per step, for

* ``force``: the singular force m(z, s) (``dispatch.posterior_mean``; (m - z)/s is one more
  element-wise pass), and ``step``: the fused Euler step with a neural drift f (in place);
* backends ``cpu`` (fused C++), ``reference`` (the torch reference, eager), ``per-element``
  (grad log h by autograd one element at a time, as the paper's public code does per column:
  3,072 to 6,144 autograd calls per step; timed at one step index only, it is the slowest by far)
  and ``triton`` when a GPU is present.

    python bench/fields.py --threads 1   # about 5 minutes
    python bench/fields.py --quick     # a smoke run
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import omegabridge as ob  # noqa: E402
from omegabridge import ops as dispatch  # noqa: E402
from baselines import _log_h as log_h  # noqa: E402
from run import _time, grouped_bars, machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = ("cpu", "reference", "per-element", "triton")
STEPS = 200
STEP_INDICES = 8


def layouts(quick: bool) -> dict[str, tuple[ob.Domain, int]]:
    """name -> (domain, rows)."""
    scale = 8 if quick else 1
    return {
        "image 3x32x32 K=256": (ob.Lattice(0, 255, step=1, shape=(3, 32, 32)), 64 // scale),
        "segmentation 64x64 K=19": (ob.Categorical(19, shape=(64, 64)), 8 // min(scale, 8) or 1),
        "point cloud 2048x3 K=64": (ob.Lattice(0, 63, step=1, shape=(2048, 3)), 32 // scale),
        "half-line 3x32x32": (ob.HalfLine(low=0.0, shape=(3, 32, 32)), 64 // scale),
    }


def _data(domain, rows: int, generator) -> torch.Tensor:
    """Points of the domain: lattice points, one-hot vectors, half-line values."""
    raw = torch.rand(rows, domain.width, generator=generator)
    if isinstance(domain, ob.Lattice):
        return domain.project(raw * (domain.reach + 1.0) - 0.5)
    if isinstance(domain, ob.Categorical):
        classes = torch.randint(0, domain.element_width, (rows, *domain.shape), generator=generator)
        return domain.flatten(torch.nn.functional.one_hot(classes, domain.element_width).float())
    return -torch.log(raw.clamp_min(1e-7))


def _state(bridge, x: torch.Tensor, index: int, generator) -> torch.Tensor:
    """Z_t of the x-bridge at grid point ``index`` (bridge-math.md section 4)."""
    c = float(bridge._mean_scale[index])
    v = float(bridge._noise_variance[index])
    return c * x + math.sqrt(v) * torch.randn(x.shape, generator=generator)


def _per_element_force(domain, z: torch.Tensor, s: float) -> torch.Tensor:
    """grad log h by autograd, one element (a column, or a categorical's K columns) at a time,
    with bench/baselines' log h of the factor (a field's elements share its parameters)."""
    score = torch.empty_like(z)
    width = domain.element_width
    for start in range(0, domain.width, width):
        columns = z[:, start:start + width].detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(log_h(domain, columns, s), columns)
        score[:, start:start + width] = grad
    return score


def measure(name: str, domain, rows: int, backend: str, repeats: int, device: str) -> dict:
    generator = torch.Generator().manual_seed(0)
    bridge = ob.Bridge(domain, steps=STEPS, grid="t")
    table = bridge.table
    x = _data(domain, rows, generator)
    indices = [round(i * (STEPS - 2) / (STEP_INDICES - 1)) for i in range(STEP_INDICES)]
    if backend == "per-element":
        indices = [indices[len(indices) // 2]]
    force_seconds, step_seconds = [], []
    for index in indices:
        s = bridge._remaining[index]
        increment = bridge._increment[index]
        z = _state(bridge, x, index, generator).to(device)
        f = (0.1 * torch.randn(z.shape, generator=generator)).to(device)
        if backend == "per-element":
            force = lambda: _per_element_force(domain, z, s)  # noqa: E731
            step = lambda: z + increment * ((_per_element_force(domain, z, s)) + f) + math.sqrt(increment) * torch.randn_like(z)  # noqa: E731
        else:
            s_rows = torch.full((rows, 1), s, device=device)
            state = z.clone()
            force = lambda: dispatch.posterior_mean(z, table, s_rows, backend=backend)  # noqa: E731
            step = lambda: dispatch.step(state, f, table, remaining=s, increment=increment, seed=1, step_index=index,  # noqa: E731
                                         backend=backend, out=state)
        synchronise = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        force_seconds.append(_time(lambda: (force(), synchronise()), repeats))
        step_seconds.append(_time(lambda: (step(), synchronise()), repeats))
    return {
        "layout": name, "backend": backend, "rows": rows, "width": domain.width,
        "force_ms": 1e3 * statistics.mean(force_seconds), "step_ms": 1e3 * statistics.mean(step_seconds),
        "force_worst_ms": 1e3 * max(force_seconds), "step_worst_ms": 1e3 * max(step_seconds),
        "step_indices": len(indices),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="an eighth of the rows, 1 repeat (a smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="cpu,reference,per-element" + (",triton" if torch.cuda.is_available() else ""))
    parser.add_argument("--threads", type=int, default=0, help="torch (and kernel) threads; 0 keeps torch's default")
    parser.add_argument("--output", default=str(RESULTS / "fields"), help="path prefix of the .md, .csv and .png")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = args.backends.split(",")
    for backend in backends:
        if backend not in BACKENDS:
            parser.error(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if backend == "triton" and not torch.cuda.is_available():
            parser.error("the triton backend is timed on a GPU only (none here)")
    repeats = 1 if args.quick else args.repeats
    results = []
    for name, (domain, rows) in layouts(args.quick).items():
        for backend in backends:
            result = measure(name, domain, rows, backend, repeats, "cuda" if backend == "triton" else "cpu")
            results.append(result)
            print(f"{name:>26} {backend:>11}: force {result['force_ms']:9.2f} ms, step {result['step_ms']:9.2f} ms "
                  f"per step ({rows} rows)", flush=True)

    device = machine() + (f"; GPU {torch.cuda.get_device_name()}" if "triton" in backends else "")
    command = ("python bench/fields.py" + (" --quick" if args.quick else f" --repeats {args.repeats}") + f" --backends {args.backends}"
               + (f" --threads {args.threads}" if args.threads else ""))
    lines = [f"Device: {device}. {datetime.date.today()}, omegabridge {ob.__version__}, command: {command}", "",
             f"Mean time per step over {STEP_INDICES} steps spread over the default {STEPS}-step schedule (per-element: "
             "the middle step only). Element rate = rows x width / time.", "",
             "| layout | backend | rows x width | force ms | step ms | step M el/s | step vs reference | step vs per-element |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    by_key = {(r["layout"], r["backend"]): r for r in results}
    for r in results:
        rate = r["rows"] * r["width"] / (r["step_ms"] / 1e3)
        reference_row, per_element_row = by_key.get((r["layout"], "reference")), by_key.get((r["layout"], "per-element"))
        versus = lambda other: f"{other['step_ms'] / r['step_ms']:.1f}x" if other else ""  # noqa: E731
        lines.append(f"| {r['layout']} | {r['backend']} | {r['rows']} x {r['width']} | {r['force_ms']:.2f} | {r['step_ms']:.2f} | "
                     f"{rate / 1e6:.1f} | {versus(reference_row)} | {versus(per_element_row)} |")
    image, halfline = by_key.get(("image 3x32x32 K=256", "cpu")), by_key.get(("half-line 3x32x32", "cpu"))
    if image and halfline:
        ratio = halfline["step_ms"] / image["step_ms"]
        lines += ["", f"Lattice K=256 step on cpu at **{ratio:.0%}** of the half-line rate per element (target >= 50%)."]
    text = "\n".join(lines)
    print("\n" + text)
    prefix = Path(args.output)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".md").write_text(text + "\n")
    with open(prefix.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(results[0]) + ["device"])
        writer.writeheader()
        for r in results:
            writer.writerow({**r, "device": device})
    _plot(results, prefix.with_suffix(".png"), device)
    print(f"\nwrote {prefix.with_suffix('.md')}, .csv and .png")
    return 0


def _plot(results, path, device):
    """Per layout, the time per step of each backend (log scale): force and fused step side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from omegabridge.files import save_figure

    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for axis, key, title in zip(axes, ("force_ms", "step_ms"), ("singular force m(z, s)", "fused step")):
        layout_names = grouped_bars(axis, results, key)
        axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xticks(range(len(layout_names)), layout_names, fontsize=7, rotation=15, ha="right")
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("ms per step (log)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    figure.suptitle(f"field layouts, time per step: {device}", fontsize=8)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(figure, str(path), dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
