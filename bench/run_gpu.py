"""Throughput of the fused GPU kernels (Triton, CUDA C++), beside the baselines, against the device's copy bandwidth.

For each layout (those of bench/run.py at >= 1M rows, plus 2^28 half-line elements) it times the
step (in place) and the training target (into reused buffers) of:

* ``cuda``: the fused CUDA C++ kernels (this package's ``omegabridge._cuda_ext``);
* ``triton``: the fused Triton kernels (this package);
* ``reference``: the torch reference, eager (with its bit-exact int64 Philox noise);
* ``compile``, ``compile-max-autotune``: torch.compile of the reference math (modes default
  and max-autotune-no-cudagraphs; torch.randn noise, see bench/baselines.py), on the layouts
  named by ``--compile-layouts`` (each compile takes tens of seconds);
* ``per-column``: log h differentiated by autograd one factor at a time (the paper's code).

Bandwidth: a step reads z and f and writes z, a target reads x and writes z_t and y: 12 bytes
per element each; the fraction is 12 bytes x elements/s over the device-to-device copy
bandwidth (bytes read + written by ``dst.copy_(src)`` of 1 GiB) measured in the same run.
Times are medians of ``triton.testing.do_bench`` (CUDA events). A second table sweeps the
Triton launch settings on two layouts. Results are written (and rewritten after each row, so
a run cut short keeps what it measured) as Markdown and CSV, plus a PNG chart.

    python bench/run_gpu.py --out bench/results            # on a machine with a CUDA GPU
"""

from __future__ import annotations

import argparse
import csv
import datetime
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import triton  # noqa: E402
import triton.testing  # noqa: E402

import omegabridge as ob  # noqa: E402
from omegabridge import ops as dispatch  # noqa: E402
from omegabridge.kernels import bridge as triton_bridge  # noqa: E402
from baselines import compiled_reference, per_column_step, per_column_target  # noqa: E402
from layouts import adult_like  # noqa: E402

MILLION = 1 << 20
FIELDS = ["layout", "backend", "rows", "width", "step_gelem_s", "step_of_copy", "step_vs_reference",
          "target_gelem_s", "target_of_copy", "target_vs_reference"]


def gpu_layouts() -> dict[str, tuple[ob.Domain, int]]:
    """The CPU benchmark's layouts at >= 1M rows, plus 2^28 half-line elements."""
    return {
        "half-line 16M": (ob.Product([ob.HalfLine(low=0.0)] * 16), MILLION),
        "unconstrained 16M (noise + update only)": (ob.Product([ob.Real()] * 16), MILLION),
        "interval 16M": (ob.Product([ob.Interval(0.0, 1.0)] * 16), MILLION),
        "binary 16M": (ob.Product([ob.Binary()] * 16), MILLION),
        "categorical K=8": (ob.Product([ob.Categorical(8)] * 2), MILLION),
        "categorical K=64": (ob.Product([ob.Categorical(64)]), MILLION),
        "lattice K=17": (ob.Product([ob.Lattice(0, 16)] * 16), MILLION),
        "lattice K=256": (ob.Product([ob.Lattice(0, 255)] * 16), MILLION),
        "adult-like 1M": (adult_like(), MILLION),
        "half-line 2^28": (ob.Product([ob.HalfLine(low=0.0)] * 16), 1 << 24),
    }


def milliseconds(function) -> float:
    return float(triton.testing.do_bench(function, warmup=25, rep=100, return_mode="median"))


def copy_bandwidth() -> float:
    """Bytes per second (read + written) of a 1 GiB device-to-device copy."""
    source = torch.rand(1 << 28, device="cuda")
    destination = torch.empty_like(source)
    seconds = milliseconds(lambda: destination.copy_(source)) * 1e-3
    return 2 * source.numel() * 4 / seconds


def inputs(domain, rows: int):
    generator = torch.Generator(device="cuda").manual_seed(0)
    width = domain.width
    z = torch.randn(rows, width, device="cuda", generator=generator) * 2
    f = torch.randn(rows, width, device="cuda", generator=generator)
    x = domain.project(torch.randn(rows, width, device="cuda", generator=generator) * 3).contiguous()
    scale = torch.rand(rows, 1, device="cuda", generator=generator) * 0.9 + 0.05
    return z, f, x, scale


def operations(backend: str, domain, table, z, f, x, scale):
    """(step, target) callables of one backend."""
    if backend in ("cuda", "triton", "reference"):
        state = z.clone()
        buffers = (torch.empty_like(z), torch.empty_like(z))
        step = lambda: dispatch.step(state, f, table, remaining=0.5, increment=0.01, seed=1, step_index=3, backend=backend, out=state)  # noqa: E731
        target = lambda: dispatch.bridge_target(x, table, mean_scale=scale, noise_scale=scale, remaining=scale, seed=1, backend=backend, out=buffers)  # noqa: E731
        return step, target
    if backend.startswith("compile"):
        mode = "max-autotune-no-cudagraphs" if backend == "compile-max-autotune" else None
        compiled_step, compiled_target = compiled_reference("step", mode), compiled_reference("target", mode)
        return (lambda: compiled_step(z, f, table, 0.5, 0.01)), (lambda: compiled_target(x, table, scale, scale, scale))
    if backend == "per-column":
        return (lambda: per_column_step(domain, z, f, 0.5, 0.01)), (lambda: per_column_target(domain, x, scale, scale, 0.5))
    raise SystemExit(f"unknown backend {backend!r}")


class Report:
    """Rows of the main table, rewritten to disk after each one."""

    def __init__(self, out: Path, name: str, header: str):
        self.out, self.name, self.header, self.rows, self.sweep = out, name, header, [], []

    def add(self, row: dict) -> None:
        self.rows.append(row)
        print(" | ".join(str(row[k]) for k in FIELDS), flush=True)
        self.write()

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / f"{self.name}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)
        lines = [self.header, "", "| " + " | ".join(FIELDS) + " |", "|" + " --- |" * len(FIELDS)]
        lines += ["| " + " | ".join(str(row[k]) for k in FIELDS) + " |" for row in self.rows]
        if self.sweep:
            lines += ["", "Triton launch settings (step, G elements/s):", "", "| layout | rows per program | tile | warps | step G el/s | step / copy |", "| --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {s['layout']} | {s['rows_per_program']} | {s['tile']} | {s['warps']} | {s['gelem_s']} | {s['of_copy']} |" for s in self.sweep]
        (self.out / f"{self.name}.md").write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layouts = list(dict.fromkeys(r["layout"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    figure, axis = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(backends)
    for index, backend in enumerate(backends):
        values = [next((float(r["step_gelem_s"]) for r in rows if r["layout"] == l and r["backend"] == backend), 0.0) for l in layouts]
        axis.bar([i + index * width for i in range(len(layouts))], values, width, label=backend)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(layouts))], layouts, rotation=25, ha="right")
    axis.set_yscale("log")
    axis.set_ylabel("step, G elements/s (log)")
    axis.set_title(f"Fused step on {torch.cuda.get_device_name()}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--backends", default="cuda,triton,reference,per-column,compile,compile-max-autotune")
    parser.add_argument("--name", default="kernels-gpu", help="file name stem of the .md, .csv and .png under --out")
    parser.add_argument("--compile-layouts", default="adult-like 1M,half-line 16M")
    parser.add_argument("--compile-budget", type=float, default=240.0, help="seconds; later compile rows are skipped past it")
    parser.add_argument("--layouts", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--no-sweep", action="store_true")
    arguments = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/run_gpu.py needs a CUDA GPU; bench/run.py measures the CPU backends")
    bandwidth = copy_bandwidth()
    device = torch.cuda.get_device_name()
    command = "python " + " ".join(sys.argv)
    header = (
        f"Device: {device}, torch {torch.__version__}, triton {triton.__version__}. Copy bandwidth (1 GiB "
        f"device-to-device, read + write): {bandwidth / 1e12:.3f} TB/s = {bandwidth / 12e9:.1f} G elements/s at 12 "
        f"bytes/element. {datetime.date.today()}, command: {command}. Triton launch settings: {triton_bridge.GPU_SETTINGS}, tile {triton_bridge.MIXED_LAYOUT_TILE} for layouts mixing kinds."
    )
    print(header, flush=True)
    report = Report(arguments.out, arguments.name, header)
    backends = sorted(arguments.backends.split(","), key=lambda name: name != "reference")  # the ratios need it first
    compile_layouts = set(arguments.compile_layouts.split(","))
    chosen = set(arguments.layouts.split(",")) if arguments.layouts else None
    compile_spent = 0.0
    for name, (domain, rows) in gpu_layouts().items():
        if chosen and name not in chosen:
            continue
        table = domain.segment_table()
        z, f, x, scale = inputs(domain, rows)
        elements = z.numel()
        reference_rates = None
        for backend in backends:
            if backend.startswith("compile") and (name not in compile_layouts or compile_spent > arguments.compile_budget):
                continue
            started = time.perf_counter()
            try:
                step, target = operations(backend, domain, table, z, f, x, scale)
                rates = [elements / (milliseconds(op) * 1e-3) / 1e9 for op in (step, target)]
            except Exception as error:  # a baseline that cannot run here is reported, not fatal
                print(f"{name} {backend}: {type(error).__name__}: {str(error)[:200]}", flush=True)
                continue
            finally:
                if backend.startswith("compile"):
                    compile_spent += time.perf_counter() - started
            if backend == "reference":
                reference_rates = rates
            of_copy = [rate * 12e9 / bandwidth for rate in rates]
            versus = [f"{rate / reference_rates[i]:.1f}x" if reference_rates else "" for i, rate in enumerate(rates)]
            report.add({
                "layout": name, "backend": backend, "rows": rows, "width": domain.width,
                "step_gelem_s": f"{rates[0]:.3f}", "step_of_copy": f"{of_copy[0]:.1%}", "step_vs_reference": versus[0],
                "target_gelem_s": f"{rates[1]:.3f}", "target_of_copy": f"{of_copy[1]:.1%}", "target_vs_reference": versus[1],
            })
        del z, f, x, scale
        torch.cuda.empty_cache()
    plot(report.rows, arguments.out / f"{arguments.name}.png")
    if arguments.no_sweep:
        return
    default = dict(triton_bridge.GPU_SETTINGS)
    mixed_tile = triton_bridge.MIXED_LAYOUT_TILE
    triton_bridge.MIXED_LAYOUT_TILE = 0  # the sweep sets the tile of every layout itself
    for name in ("adult-like 1M", "half-line 16M", "lattice K=256"):
        domain, rows = gpu_layouts()[name]
        table = domain.segment_table()
        z, f, x, scale = inputs(domain, rows)
        for rows_per_program, tile, warps in ((256, 512, 4), (256, 1024, 4), (256, 2048, 4), (256, 1024, 8), (128, 1024, 4), (512, 2048, 8)):
            triton_bridge.GPU_SETTINGS.update(ROWS_PER_PROGRAM=rows_per_program, TILE=tile, num_warps=warps)
            step, _ = operations("triton", domain, table, z, f, x, scale)
            rate = z.numel() / (milliseconds(step) * 1e-3) / 1e9
            report.sweep.append({"layout": name, "rows_per_program": rows_per_program, "tile": tile, "warps": warps,
                                 "gelem_s": f"{rate:.3f}", "of_copy": f"{rate * 12e9 / bandwidth:.1%}"})
            print(report.sweep[-1], flush=True)
            report.write()
        triton_bridge.GPU_SETTINGS.clear()
        triton_bridge.GPU_SETTINGS.update(default)
    triton_bridge.MIXED_LAYOUT_TILE = mixed_tile


if __name__ == "__main__":
    main()
