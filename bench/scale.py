"""Scale-out benchmark: streaming a large sample to disk (rows/s, peak memory against n) and DDP training overhead.

    python bench/scale.py                 # full run (~10 min on 2 cores); writes bench/results/scale.{md,json,png}
    python bench/scale.py --quick         # smaller sizes, a smoke run (results not written unless --out)
    python bench/scale.py --device cuda   # on a GPU: sampling throughput of 10^6 rows (bench/results/scale-cuda.json)
    python bench/scale.py --stream-rows 100000000   # 10^8 rows through sample_to, RSS after every part

Sampling runs the real command, ``omegabridge sample MODEL -n N -o DIR`` (a fresh process
per run, its peak RSS read from ``os.wait4``), on an Adult-like table (5 numeric and 9
categorical columns with 9, 7, 16, 15, 6, 5, 2, 42 and 2 classes). Memory: a model with 3
sampler steps (so n = 3 x 10^6 runs in about three minutes) at growing n. Throughput: the
default model and 200 steps, in one process with 1 and 2 threads and under
``torchrun --nproc_per_node 2`` (1 thread each).

DDP overhead: ``ob.Trainer`` on the same table's domain with the default ``DriftMLP``
(256 x 3): seconds per iteration of one process with a batch of 512 rows, against each
worker of a 2-worker gloo DDP run with 512 rows per worker (global batch 1024), one
thread per process, at 512 and 2048 rows per worker; and the same for a bare torch MLP of
the same shape in a plain loop (the control: what DDP costs without omegabridge). The
ratio is what DDP's gradient all-reduce and synchronisation cost a worker; the
configurations alternate, three repetitions each, medians reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ADULT_CATEGORIES = (9, 7, 16, 15, 6, 5, 2, 42, 2)


def adult_like_table(rows: int, seed: int = 0):
    """An Adult-like DataFrame: age, hours (lattices), fnlwgt, gain (half-lines, gain mostly 0), a share in [0, 1], 9 categoricals."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns = {
        "age": rng.integers(17, 91, rows),
        "hours": rng.integers(1, 100, rows),
        "fnlwgt": rng.lognormal(12.0, 0.5, rows),
        "gain": np.where(rng.random(rows) < 0.9, 0.0, rng.exponential(5000.0, rows)),
        "share": rng.beta(2.0, 5.0, rows),
    }
    for number, classes in enumerate(ADULT_CATEGORIES):
        columns[f"category_{number}"] = rng.choice([f"c{i}" for i in range(classes)], rows)
    return pd.DataFrame(columns)


SCHEMA = {"age": "halfline", "hours": "halfline", "share": {"kind": "interval", "low": 0.0, "high": 1.0}}


def fit_model(path: str, steps: int, iterations: int) -> None:
    """A TabularBridge with the default network, briefly trained (throughput does not depend on quality)."""
    from omegabridge.tabular import TabularBridge

    model = TabularBridge(steps=steps, verbose=False, progress=False)
    model.fit(adult_like_table(30_000), SCHEMA, iterations=iterations, batch_size=512)
    model.save(path)


def run_measured(command: list[str], threads: int) -> dict:
    """Run ``command``; wall seconds and peak RSS (MiB, the largest process of its tree)."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    stdout, stderr = process.stdout.read().decode(), process.stderr.read().decode()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stdout}\n{stderr}")
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}


def stream_trace(folder: str, rows: int) -> dict:
    """Sample ``rows`` rows of a tiny model (2 steps, MLP 16 x 1: the cost is decoding and Parquet) through
    ``TabularBridge.sample_to`` in this process, recording the RSS after every part."""
    import resource

    import torch

    from omegabridge.tabular import TabularBridge

    torch.set_num_threads(1)
    model = TabularBridge(steps=2, hidden=16, depth=1, verbose=False, progress=False)
    model.fit(adult_like_table(30_000), SCHEMA, iterations=5, batch_size=512)
    page = os.sysconf("SC_PAGE_SIZE")
    trace: list[tuple[int, float, float]] = []
    done = [0]
    start = time.perf_counter()

    def on_chunk(count: int) -> None:
        done[0] += count
        with open("/proc/self/statm") as handle:
            resident = int(handle.read().split()[1]) * page / 2**20
        trace.append((done[0], resident, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
        if len(trace) % 100 == 0:
            print(f"stream: {done[0]:,} rows, RSS {resident:.0f} MiB, {time.perf_counter() - start:.0f} s", flush=True)

    out = os.path.join(folder, "stream")
    # The Euler sampler the committed results were measured with (docs/scale.md).
    model.sample_to(out, rows, seed=0, chunk_rows=100_000, on_chunk=on_chunk, solver="euler")
    seconds = time.perf_counter() - start
    size = sum(os.path.getsize(os.path.join(out, name)) for name in os.listdir(out))
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds, "bytes_on_disk": size,
            "parts": len(trace), "trace": trace}


def sample_command(model: str, rows: int, out: str, workers: int, threads: int, chunk_rows: int = 100_000,
                   device: str = "cpu") -> list[str]:
    prefix = [sys.executable, "-m"] + (["torch.distributed.run", "--standalone", f"--nproc_per_node={workers}", "-m"]
                                        if workers > 1 else [])
    return prefix + ["omegabridge", "sample", model, "-n", str(rows), "-o", out, "--overwrite", "--no-progress",
                     "--threads", str(threads), "--chunk-rows", str(chunk_rows), "--device", device, "--solver", "euler"]


def bench_sampling(folder: str, quick: bool, device: str = "cpu") -> dict:
    small, default = os.path.join(folder, "steps3.ckpt"), os.path.join(folder, "steps200.ckpt")
    fit_model(small, steps=3, iterations=20)
    fit_model(default, steps=200, iterations=20)
    memory = []
    for rows in ([10_000, 100_000] if quick else [10_000, 100_000, 300_000, 1_000_000, 3_000_000]):
        measured = run_measured(sample_command(small, rows, os.path.join(folder, "out"), 1, 1), 1)
        measured.update(rows=rows, steps=3, rows_per_second=rows / measured["seconds"])
        memory.append(measured)
        print(f"memory: {rows} rows, 3 steps: {measured['seconds']:.1f} s, peak RSS {measured['peak_rss_mib']:.0f} MiB",
              flush=True)
    throughput = []
    rows = 2_000 if quick else (20_000 if device == "cpu" else 1_000_000)
    for workers, threads in ((1, 1), (1, 2), (2, 1)) if device == "cpu" else ((1, 1),):
        # Parts of rows / 4, so that 2 workers have 2 parts each.
        command = sample_command(default, rows, os.path.join(folder, "out"), workers, threads, chunk_rows=rows // 4,
                                 device=device)
        measured = run_measured(command, threads)
        measured.update(rows=rows, steps=200, workers=workers, threads=threads, device=device,
                        rows_per_second=rows / measured["seconds"])
        throughput.append(measured)
        print(f"throughput: {workers} worker(s) x {threads} thread(s), 200 steps: {measured['rows_per_second']:.0f} rows/s",
              flush=True)
    return {"memory": memory, "throughput": throughput}


def bare_worker(iterations: int, batch: int, warmup: int) -> None:
    """The control: a bare torch MLP of DriftMLP's shape (223 -> 256 x 3 -> 110), Adam, a plain loop, DDP when launched so."""
    import torch

    from omegabridge.training import distributed

    torch.set_num_threads(1)
    distributed.initialize("gloo")
    torch.manual_seed(0)
    sizes = [223, 256, 256, 256]
    layers = [module for a, b in zip(sizes, sizes[1:]) for module in (torch.nn.Linear(a, b), torch.nn.SiLU())]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(256, 110))
    optimizer = torch.optim.Adam(model.parameters())
    network = model
    if distributed.is_distributed():
        network = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False, gradient_as_bucket_view=True)
    x = torch.randn(batch, 223)
    for iteration in range(iterations):
        if iteration == warmup:
            start = time.perf_counter()
        loss = network(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if distributed.is_main():
        print(json.dumps({"seconds_per_iteration": (time.perf_counter() - start) / (iterations - warmup), "width": 110}))


def ddp_worker(iterations: int, batch: int, warmup: int) -> None:
    """Under torchrun or alone: train the default model; rank 0 prints seconds per iteration after warmup as JSON."""
    import torch

    import omegabridge as ob
    from omegabridge.training import distributed
    from omegabridge.tabular import TableEncoder, infer_schema

    torch.set_num_threads(1)
    distributed.initialize("gloo")
    frame = adult_like_table(30_000)
    encoder = TableEncoder.fit(infer_schema(frame, SCHEMA), frame)
    data = encoder.encode(frame)
    bridge = ob.Bridge(encoder.domain, ob.schedules.Exp(a=3.0, b=16.0), steps=200)
    torch.manual_seed(0)
    model = ob.models.DriftMLP(bridge, data=data)
    marks = {}
    trainer = ob.Trainer(bridge, model, batch_size=batch * distributed.world_size(), progress=False, log_every=warmup,
                         hooks=[lambda record: marks.setdefault(record.iteration, time.perf_counter())])
    trainer.fit(data, iterations)
    if distributed.is_main():
        print(json.dumps({"seconds_per_iteration": (marks[iterations] - marks[warmup]) / (iterations - warmup),
                          "width": bridge.width}))


def bench_ddp(quick: bool) -> dict:
    """Seconds per iteration, 1 process vs each of 2 DDP workers, at two per-worker batch sizes."""
    results = []
    for batch, iterations, bare in ((512, 220, False), (2048, 120, False), (512, 220, True)):
        iterations, warmup = (40, 20) if quick else (iterations, 20)
        script = [os.path.abspath(__file__), "--ddp-worker", str(iterations), "--batch", str(batch), "--warmup", str(warmup)]
        script += ["--bare"] if bare else []
        runs: dict[str, list[float]] = {"single": [], "ddp2": []}
        for _ in range(1 if quick else 3):
            for name, prefix in (("single", [sys.executable]), ("ddp2", [sys.executable, "-m", "torch.distributed.run",
                                                                          "--standalone", "--nproc_per_node=2"])):
                result = subprocess.run(prefix + script, capture_output=True, text=True,
                                        env={**os.environ, "OMP_NUM_THREADS": "1"})
                if result.returncode != 0:
                    raise RuntimeError(result.stdout + result.stderr)
                line = json.loads([row for row in result.stdout.splitlines() if row.startswith("{")][-1])
                runs[name].append(line["seconds_per_iteration"])
                print(f"ddp: batch {batch} per worker, {name}: {1000 * line['seconds_per_iteration']:.2f} ms per iteration",
                      flush=True)
        single, ddp = statistics.median(runs["single"]), statistics.median(runs["ddp2"])
        results.append({"batch_per_worker": batch, "model": "bare torch MLP (control)" if bare else "ob.Trainer + DriftMLP",
                        "runs": runs, "single_ms": 1000 * single, "ddp2_ms": 1000 * ddp,
                        "overhead": ddp / single - 1.0, "iterations_timed": iterations - warmup, "width": line["width"]})
    return {"batches": results}


def describe_machine(device: str = "cpu") -> str:
    import torch

    if device != "cpu":
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            name = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores, torch {torch.__version__}"


def render(result: dict) -> str:
    lines = [
        "# Scale-out: sampling to disk and DDP training overhead",
        "",
        f"Machine: {result['machine']}. Command: `python bench/scale.py` ({result['date']}).",
        "",
        "## Sampling to Parquet parts (`omegabridge sample`, chunks of 100000 rows)",
        "",
        "Peak memory against the number of rows (3 sampler steps, so that millions of rows take minutes; the default "
        "network, 1 thread):",
        "",
        "| rows | seconds | rows/s | peak RSS (MiB) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for run in result["sampling"]["memory"]:
        lines.append(f"| {run['rows']:,} | {run['seconds']:.1f} | {run['rows_per_second']:,.0f} | {run['peak_rss_mib']:.0f} |")
    lines += ["", "Throughput with the default model (200 steps, DriftMLP 256 x 3):", "",
              "| workers x threads | rows | seconds | rows/s | peak RSS (MiB) |", "| --- | ---: | ---: | ---: | ---: |"]
    for run in result["sampling"]["throughput"]:
        lines.append(f"| {run['workers']} x {run['threads']} | {run['rows']:,} | {run['seconds']:.1f} | "
                     f"{run['rows_per_second']:,.0f} | {run['peak_rss_mib']:.0f} |")
    best = max(run["rows_per_second"] for run in result["sampling"]["throughput"])
    lines += ["", f"At the best rate here ({best:,.0f} rows/s), 100M rows would take {1e8 / best / 3600:.0f} h on this "
              "machine; memory stays at one chunk's worth whatever n is (table above).", ""]
    batches = result["ddp"]["batches"]
    lines += [
        "## DDP training overhead (gloo, CPU)",
        "",
        f"`ob.Trainer`, default `DriftMLP` (256 x 3) on the Adult-like domain (width {batches[0]['width']}), 1 thread per "
        f"process; the median of {len(batches[0]['runs']['single'])} alternating repetitions, each timing the iterations "
        "after 20 of warmup:",
        "",
        "| training | rows per worker | timed iterations | 1 process (ms / iteration) | each of 2 DDP workers (ms / iteration) "
        "| overhead | all runs (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for run in batches:
        every = "1 process " + ", ".join(f"{1000 * v:.1f}" for v in run["runs"]["single"]) + "; DDP " + ", ".join(
            f"{1000 * v:.1f}" for v in run["runs"]["ddp2"])
        lines.append(f"| {run['model']} | {run['batch_per_worker']} | {run['iterations_timed']} | {run['single_ms']:.2f} | {run['ddp2_ms']:.2f} | "
                     f"**{100 * run['overhead']:.0f}%** | {every} |")
    lines.append("")
    return "\n".join(lines)


def render_stream(result: dict) -> str:
    stream = result["stream"]
    trace = stream["trace"]
    first_peak = max(peak for _, _, peak in trace[: max(1, len(trace) // 100)])
    return "\n".join([
        "# Streaming a large sample to disk",
        "",
        f"Machine: {result['machine']}. Command: `python bench/scale.py --stream-rows {stream['rows']}` ({result['date']}).",
        "",
        "`TabularBridge.sample_to` (what `omegabridge sample` runs) on the Adult-like table, in parts of 100,000 rows, "
        "with a tiny model (2 steps, MLP 16 x 1) so that the run measures the pipeline (sampling kernels, decoding, "
        "Parquet), not the network; 1 thread.",
        "",
        "| rows | parts | seconds | rows/s | on disk (GB) | RSS after the first 1% of parts (MiB) | peak RSS over the run (MiB) | RSS at the end (MiB) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {stream['rows']:,} | {stream['parts']:,} | {stream['seconds']:.0f} | {stream['rows_per_second']:,.0f} | "
        f"{stream['bytes_on_disk'] / 1e9:.2f} | {first_peak:.0f} | {trace[-1][2]:.0f} | {trace[-1][1]:.0f} |",
        "",
        "The RSS after every part is in `scale-stream.json` (`trace`: rows done, RSS, peak RSS, in MiB).",
        "",
    ])


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    memory = result["sampling"]["memory"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot([r["rows"] for r in memory], [r["peak_rss_mib"] for r in memory], marker="o")
    left.set_xscale("log")
    left.set_ylim(0, 1.3 * max(r["peak_rss_mib"] for r in memory))
    left.set_xlabel("rows sampled")
    left.set_ylabel("peak RSS (MiB)")
    left.set_title("peak memory levels off (parts of 100k rows)")
    throughput = result["sampling"]["throughput"]
    labels = [f"{r['workers']} worker(s)\nx {r['threads']} thread(s)" for r in throughput]
    right.bar(labels, [r["rows_per_second"] for r in throughput], color="tab:green")
    right.set_ylabel("rows / s (200 steps)")
    right.set_title("sampling throughput")
    figure.suptitle(result["machine"], fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None, help="results folder (default bench/results, not written with --quick)")
    parser.add_argument("--ddp-worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=512, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu",
                        help="cuda: only the sampling throughput, 10^6 rows on the GPU (scale-DEVICE.json)")
    parser.add_argument("--render", metavar="JSON", help="only rewrite scale.md and scale.png from a saved scale.json")
    parser.add_argument("--stream-rows", type=int, default=None, metavar="N",
                        help="only the streaming run: N rows of a tiny model, RSS after every part (scale-stream.*)")
    args = parser.parse_args()
    if args.ddp_worker is not None:
        (bare_worker if args.bare else ddp_worker)(args.ddp_worker, args.batch, args.warmup)
        return
    if args.render:
        with open(args.render) as handle:
            result = json.load(handle)
        out = os.path.dirname(os.path.abspath(args.render))
        with open(os.path.join(out, "scale.md"), "w") as handle:
            handle.write(render(result))
        plot(result, os.path.join(out, "scale.png"))
        return
    if args.device != "cpu":
        with tempfile.TemporaryDirectory() as folder:
            result = {"machine": describe_machine(args.device), "date": time.strftime("%Y-%m-%d"),
                      "sampling": bench_sampling(folder, args.quick, args.device)}
        print(json.dumps(result, indent=2))
        out = args.out or os.path.join(HERE, "results")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"scale-{args.device.replace(':', '')}.json"), "w") as handle:
            json.dump(result, handle, indent=2)
        return
    if args.stream_rows is not None:
        with tempfile.TemporaryDirectory() as folder:
            result = {"machine": describe_machine(), "date": time.strftime("%Y-%m-%d"),
                      "stream": stream_trace(folder, args.stream_rows)}
        text = render_stream(result)
        print(text)
        out = args.out or os.path.join(HERE, "results")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "scale-stream.json"), "w") as handle:
            json.dump(result, handle)
        with open(os.path.join(out, "scale-stream.md"), "w") as handle:
            handle.write(text)
        return
    with tempfile.TemporaryDirectory() as folder:
        result = {"machine": describe_machine(), "date": time.strftime("%Y-%m-%d"),
                  "sampling": bench_sampling(folder, args.quick), "ddp": bench_ddp(args.quick)}
    text = render(result)
    print(text)
    out = args.out if args.out is not None else (None if args.quick else os.path.join(HERE, "results"))
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "scale.json"), "w") as handle:
            json.dump(result, handle, indent=2)
        with open(os.path.join(out, "scale.md"), "w") as handle:
            handle.write(text)
        plot(result, os.path.join(out, "scale.png"))


if __name__ == "__main__":
    main()
