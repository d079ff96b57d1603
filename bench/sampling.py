"""End-to-end sampling: Adult-like rows through the whole step loop with the paper's MLP.

Each variant draws the same rows (one batch, same seed) with the same network, one hidden layer
of 512 (``run.paper_mlp``, untrained: its speed does not depend on its weights), in the same
number of steps:

* ``cuda+graph``: ``Bridge.sample(..., backend="cuda", cuda_graph=True)``, one step (model +
  fused CUDA step) captured in a CUDA graph and replayed;
* ``cuda``, ``triton``, ``cpu``, ``reference``: ``Bridge.sample(..., backend=...)``, eager;
* ``per-column``: the same Euler loop with the singular force computed by autograd one factor
  at a time, every step (bench/baselines.py, the paper's public code's structure), and the
  final step an Euler step followed by projection onto the domain, as that code ends.

It also times one step's parts on their own (the MLP's forward pass, and the fused step of each
backend on the MLP's drift), so the share of a step spent in the fused kernel is measured
directly, and it compares every sample with the first fused one (same seed: equal up to float
rounding, except where a rounding difference moves a last-step draw across a boundary).
Timings are wall clock around whole calls, with the device synchronised before and after, after
one warm-up sample of a few steps per variant (Triton's and torch's first-call costs).
Results go to ``<out>/sampling-<device>.md`` and ``.json``, rewritten after each variant.

    python bench/sampling.py --device cuda                       # 30,000 rows, 2,000 steps (GPU)
    python bench/sampling.py --device cpu --rows 2000 --steps 50  # a quick look on a CPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import omegabridge as ob  # noqa: E402
from omegabridge import ops as dispatch  # noqa: E402
from baselines import per_column_step  # noqa: E402
from layouts import adult_like  # noqa: E402
from run import paper_mlp  # noqa: E402

GPU_VARIANTS = ("cuda+graph", "cuda", "triton", "reference", "per-column")
CPU_VARIANTS = ("cpu", "reference", "per-column")
FUSED = ("cuda", "triton", "cpu", "reference")  # the backends whose step is timed on its own


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(function, device: torch.device):
    """(seconds, result) of one call of ``function``, device synchronised around it."""
    _synchronise(device)
    start = time.perf_counter()
    result = function()
    _synchronise(device)
    return time.perf_counter() - start, result


def _seconds(function, device: torch.device, repeats: int) -> float:
    """Wall-clock seconds per call of ``function`` over ``repeats`` back-to-back calls."""
    return _timed(lambda: [function() for _ in range(repeats)], device)[0] / repeats


@torch.no_grad()
def per_column_sample(bridge: ob.Bridge, model, rows: int, seed: int, device: torch.device) -> torch.Tensor:
    """The Euler loop of ``Bridge.sample`` with the per-column autograd singular force."""
    generator = torch.Generator(device=device).manual_seed(seed)
    times = bridge.time_grid.t[:-1].to(torch.float32).to(device)
    z = bridge._start(rows, 0, seed, device)
    for k in range(bridge.steps):
        drift = model(z, times[k].expand(rows))
        z = per_column_step(bridge.domain, z, drift, bridge._remaining[k], bridge._increment[k], generator=generator)
    return bridge.domain.project(z)


def draw(variant: str, bridge: ob.Bridge, model, rows: int, seed: int, device: torch.device) -> torch.Tensor:
    """One sample of ``rows`` rows by ``variant``."""
    if variant == "per-column":
        return per_column_sample(bridge, model, rows, seed, device)
    backend = "cuda" if variant == "cuda+graph" else variant
    return bridge.sample(model, rows, seed=seed, batch_size=rows, device=device, backend=backend,
                         progress=False, cuda_graph=variant == "cuda+graph", solver="euler")  # the graphed step


@torch.no_grad()
def step_parts(bridge: ob.Bridge, model, rows: int, device: torch.device, backends, repeats: int) -> dict:
    """Milliseconds of the MLP's forward pass and of each backend's fused step, each alone."""
    generator = torch.Generator(device=device).manual_seed(1)
    z = torch.randn(rows, bridge.width, generator=generator, device=device)
    t = torch.full((rows,), 0.5, device=device)
    drift = model(z, t)
    parts = {"mlp": 1e3 * _seconds(lambda: model(z, t), device, repeats)}
    middle = bridge.steps // 2
    for backend in backends:
        state = z.clone()

        def fused_step():
            dispatch.step(state, drift, bridge.table, remaining=bridge._remaining[middle], increment=bridge._increment[middle],
                          seed=0, step_index=middle, backend=backend, out=state)

        try:
            fused_step()  # warm-up (Triton's first call compiles)
            parts[backend] = 1e3 * _seconds(fused_step, device, repeats)
        except Exception as error:  # a backend that cannot run here is reported, not fatal
            print(f"step parts, {backend}: {type(error).__name__}: {str(error)[:300]}", flush=True)
    return parts


def _agreement(sample: torch.Tensor, first: torch.Tensor) -> dict:
    """How far ``sample`` is from ``first``; a difference over 1e-3 (relative) counts as a differing
    value: float rounding moves continuous values far less, a different last-step draw by a whole
    category or lattice point."""
    gap = (sample - first).abs()
    differ = gap > 1e-3 * (1 + first.abs())
    return {"elements_differing": float(differ.float().mean()), "rows_differing": float(differ.any(dim=1).float().mean()),
            "max_abs_difference": float(gap.max())}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    from run import machine

    return machine()


def write(out: Path, tag: str, header: str, results: list[dict], parts: dict) -> None:
    """Markdown and JSON of what has been measured so far."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"sampling-{tag}.json").write_text(json.dumps({"header": header, "variants": results, "step_parts_ms": parts}, indent=2) + "\n")
    baseline = next((r for r in results if r["variant"] == "per-column"), None)
    lines = [header, "", "| variant | seconds | ms per step | per-column loop / this | rows differing from the first fused sample |",
             "| --- | --- | --- | --- | --- |"]
    for r in results:
        speedup = f"{baseline['seconds'] / r['seconds']:.1f}x" if baseline else ""
        differing = f"{r['rows_differing']:.2%}" if "rows_differing" in r else ""
        lines.append(f"| {r['variant']} | {r['seconds']:.2f} | {r['ms_per_step']:.3f} | {speedup} | {differing} |")
    if parts:
        mlp = parts["mlp"]
        lines += ["", "One step's parts, each timed alone (ms per call, mean over repeated calls):", "",
                  "| part | ms | fused step / (MLP + fused step) |", "| --- | --- | --- |", f"| MLP forward | {mlp:.4f} | |"]
        lines += [f"| {name} fused step | {ms:.4f} | {ms / (ms + mlp):.1%} |" for name, ms in parts.items() if name != "mlp"]
    (out / f"sampling-{tag}.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", type=int, default=30000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--variants", default="", help=f"comma-separated (default on a GPU: {','.join(GPU_VARIANTS)}; "
                                                       f"on a CPU: {','.join(CPU_VARIANTS)})")
    parser.add_argument("--repeats", type=int, default=200, help="calls per timing of one step's parts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    arguments = parser.parse_args(argv)
    device = dispatch.check_device(arguments.device)
    variants = arguments.variants.split(",") if arguments.variants else list(GPU_VARIANTS if device.type == "cuda" else CPU_VARIANTS)
    unknown = sorted(set(variants) - set(GPU_VARIANTS) - set(CPU_VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {sorted(set(GPU_VARIANTS + CPU_VARIANTS))}")
    if arguments.rows < 1 or arguments.steps < 3:
        parser.error("--rows must be >= 1 and --steps >= 3 (a CUDA graph replays steps 1 .. N-2)")

    torch.manual_seed(0)
    domain = adult_like()
    model = paper_mlp(domain.width).to(device).eval()
    bridge = ob.Bridge(domain, steps=arguments.steps, grid="t")
    warm_up = ob.Bridge(domain, steps=4, grid="t")
    tag = "gpu" if device.type == "cuda" else "cpu"
    header = (f"Device: {_device_name(device)}. {datetime.date.today()}. Adult-like layout "
              f"({arguments.rows} rows x {domain.width}), paper MLP (one hidden layer of 512), {arguments.steps} steps, seed "
              f"{arguments.seed}, one batch. Command: python bench/sampling.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(header, flush=True)
    results: list[dict] = []
    parts: dict = {}
    first = None
    for variant in variants:
        try:
            draw(variant, warm_up, model, arguments.rows, arguments.seed, device)
            with warnings.catch_warnings(record=True) as caught:  # e.g. a CUDA graph that fell back
                warnings.simplefilter("always")
                seconds, sample = _timed(lambda: draw(variant, bridge, model, arguments.rows, arguments.seed, device), device)
        except Exception as error:  # a variant that cannot run here is reported, not fatal
            print(f"{variant}: {type(error).__name__}: {str(error)[:300]}", flush=True)
            continue
        row = {"variant": variant, "seconds": seconds, "ms_per_step": 1e3 * seconds / arguments.steps,
               "in_domain": bool(ob.reference.membership(sample, bridge.table).all()),
               "warnings": [str(w.message)[:200] for w in caught]}
        if variant != "per-column":
            if first is None:
                first = sample
            row.update(_agreement(sample, first))
        results.append(row)
        print(json.dumps(row), flush=True)
        write(arguments.out, tag, header, results, parts)
    fused = [b for b in FUSED if b in variants or (b == "cuda" and "cuda+graph" in variants)]
    parts = step_parts(bridge, model, arguments.rows, device, fused, arguments.repeats)
    write(arguments.out, tag, header, results, parts)
    print((arguments.out / f"sampling-{tag}.md").read_text(), flush=True)
    return results


if __name__ == "__main__":
    main()
