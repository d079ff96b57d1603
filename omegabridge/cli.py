"""The ``omegabridge`` command (also ``python -m omegabridge``): fit, sample, impute, evaluate, demo.

Examples:
    $ omegabridge fit data.csv --iterations 6000 -o model.ckpt
    $ omegabridge fit data.parquet --schema schema.json -o model.ckpt
    $ omegabridge sample model.ckpt -n 1000000 --seed 0 -o synthetic/        # Parquet parts + manifest
    $ omegabridge sample model.ckpt -n 5000 -o synthetic.csv                 # one file
    $ omegabridge sample model.ckpt -n 5000 --condition religious=4 -o religious.csv   # conditioned rows
    $ omegabridge impute model.ckpt with_holes.csv -o filled.csv             # missing cells filled
    $ omegabridge evaluate real.csv synthetic/ --model model.ckpt --target 'affairs>0' --test held_out.csv
    $ omegabridge demo --quick -o /tmp/ob-demo

``--schema FILE`` is JSON: ``{"column": "categorical", "share": {"kind": "interval", "low": 0, "high": 1}}``
(kinds: categorical, constant, lattice, ordinal, halfline, interval, real); columns it
does not name are inferred. Exit codes: 0 success, 1 the job failed (bad data, a bad
checkpoint, an unwritable output), 2 bad usage or a missing optional dependency, 130
interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from typing import Sequence

__all__ = ["main", "build_parser", "parse_target"]

from omegabridge.tabular.sample_parts import PARTIAL_SUFFIX
from omegabridge.tabular.table_files import MAX_PARTS
from omegabridge.errors import UsageError
from omegabridge.files import output_lock
from omegabridge.bridge import TRAINING_TIMES
from omegabridge.solvers import DEFAULT_SOLVER, SOLVERS, TABLE_GRID

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _integer(name: str, minimum: int, maximum: int | None = None):
    """An argparse type: an integer ``name`` in [minimum, maximum), with a message naming the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {value}")
        if maximum is not None and value >= maximum:
            raise argparse.ArgumentTypeError(f"{name} must be < {maximum}, got {value}")
        return value

    return parse


def parse_target(text: str) -> tuple[str, float | None]:
    """``"col"`` -> (col, None); ``"col>2.5"`` -> (col, 2.5): the efficacy task's label.

    >>> parse_target("affairs>0"), parse_target("income")
    (('affairs', 0.0), ('income', None))
    """
    if ">" not in text:
        return text, None
    column, _, value = text.partition(">")
    try:
        threshold = float(value)
    except ValueError:
        raise UsageError(f"--target: expected COLUMN or COLUMN>NUMBER, got {text!r}") from None
    if not column or not math.isfinite(threshold):
        raise UsageError(f"--target: expected COLUMN or COLUMN>NUMBER, got {text!r}")
    return column, threshold


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the subcommands fit, sample, impute, evaluate and demo."""
    from omegabridge.version import __version__
    from omegabridge.demos.tables import DemoConfig

    parser = argparse.ArgumentParser(
        prog="omegabridge",
        description="omegabridge: diffusion bridges on constrained domains (every sample lands in its domain).",
    )
    parser.add_argument("--version", action="version", version=f"omegabridge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    fit = commands.add_parser("fit", help="train a TabularBridge on a CSV or Parquet table and save a checkpoint",
                              description="Infer the schema (printed; override with --schema), train, save.")
    fit.add_argument("data", metavar="DATA", help="a .csv or .parquet file")
    fit.add_argument("-o", "--output", metavar="MODEL.ckpt", required=True, help="checkpoint to write (atomically)")
    fit.add_argument("--schema", metavar="FILE", help="JSON overrides of the inferred schema")
    fit.add_argument("--iterations", type=_integer("iterations", 1), default=None, metavar="N",
                     help="training iterations (default: about 1000 passes over the rows, 2000 to 20000)")
    fit.add_argument("--batch-size", type=_integer("batch size", 1), default=512, metavar="N", help="rows per iteration (default 512)")
    fit.add_argument("--steps", type=_integer("steps", 2), default=50, metavar="N", help="time steps of the sampler (default 50)")
    fit.add_argument("--seed", type=_integer("seed", 0, 2**63), default=0, metavar="N", help="seed (default 0)")
    fit.add_argument("--checkpoint-every", type=_integer("checkpoint interval", 1), default=500, metavar="N",
                     help="write the resumable training state MODEL.ckpt.partial every N iterations (default 500)")
    fit.add_argument("--restart", action="store_true",
                     help="ignore MODEL.ckpt.partial left by an interrupted run (default: resume from it)")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing MODEL.ckpt (default: refuse it)")
    fit.add_argument("--times", choices=TRAINING_TIMES, default="continuous",
                     help="training times: continuous (default; the model serves any --steps and --grid at sampling) "
                          "grid (the --steps grid times only), or decisions (continuous, half the rows where discrete "
                          "values are decided)")
    fit.add_argument("--posterior-logits", action=argparse.BooleanOptionalAction, default=True,
                     help="the network gives each discrete column log-odds per value (default); --no-posterior-logits: "
                          "it predicts each column's mean (docs/math.md, Rare values)")
    fit.add_argument("--ema-decay", type=_fraction("EMA decay"), default=None, metavar="D",
                     help="keep an exponential moving average of the weights (e.g. 0.999) and save it")
    _device(fit)
    _common(fit)

    sample = commands.add_parser("sample", help="sample rows from a checkpoint, streamed to Parquet parts or one file",
                                 description="OUT ending in .csv or .parquet is one file; any other OUT is a folder "
                                 "of part-NNNNN.parquet files (names sort in row order) plus manifest.json.")
    sample.add_argument("model", metavar="MODEL.ckpt")
    sample.add_argument("-n", "--rows", type=_integer("rows", 1, 2**48), required=True, metavar="N", help="rows to sample")
    sample.add_argument("-o", "--output", metavar="OUT", required=True, help="folder, or a .csv / .parquet file")
    sample.add_argument("--seed", type=_integer("seed", 0, 2**64), default=0, metavar="N", help="seed (default 0)")
    sample.add_argument("--chunk-rows", type=_integer("chunk rows", 1), default=100_000, metavar="N",
                        help="rows per chunk and per part file (default 100000; bounds memory)")
    sample.add_argument("--solver", choices=SOLVERS, default=DEFAULT_SOLVER,
                        help="sampler: bridge (default; a quarter of Euler's steps for the same error, docs/math.md, "
                             "Solvers) or euler")
    sample.add_argument("--steps", type=_integer("steps", 2), default=None, metavar="N",
                        help="time steps of the sampler (default: the model's own)")
    sample.add_argument("--grid", default=TABLE_GRID, metavar="GRID",
                        help="time grid: domain (default: the power of s chosen from the columns' spacings), t, beta, "
                             "s or s^RHO (steps spaced in the remaining variance)")
    sample.add_argument("--condition", action="append", default=[], metavar="COLUMN=VALUE",
                        help="fix COLUMN to VALUE in every sampled row (repeatable); the other columns come from "
                             "the model given the conditions")
    sample.add_argument("--overwrite", action="store_true",
                        help="replace an existing output (and discard an unfinished OUT.partial of another job)")
    _device(sample)
    _common(sample)

    impute = commands.add_parser("impute", help="fill the missing cells of a table from a checkpoint",
                                 description="Every missing cell of DATA drawn from the model given its row's observed "
                                 "cells (observed cells unchanged); written to one .csv or .parquet file.")
    impute.add_argument("model", metavar="MODEL.ckpt")
    impute.add_argument("data", metavar="DATA", help="a .csv or .parquet file with the model's columns")
    impute.add_argument("-o", "--output", metavar="OUT", required=True, help="a .csv or .parquet file")
    impute.add_argument("--seed", type=_integer("seed", 0, 2**64), default=0, metavar="N", help="seed (default 0)")
    impute.add_argument("--draws", type=_odd_integer, default=1, metavar="N",
                        help="1 (default): each filled cell is one draw from the model's conditional; an odd N > 1: "
                             "the per-cell median / most frequent value of N draws (a point estimate)")
    impute.add_argument("--solver", choices=SOLVERS, default=DEFAULT_SOLVER, help="sampler, as for sample")
    impute.add_argument("--steps", type=_integer("steps", 2), default=None, metavar="N",
                        help="time steps of the sampler (default: the model's own)")
    impute.add_argument("--grid", default=TABLE_GRID, metavar="GRID", help="time grid of the sampler, as for sample")
    impute.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    _device(impute)
    _common(impute)

    evaluate = commands.add_parser("evaluate", help="score a synthetic table against a real one",
                                   description="Validity, per-column fidelity (TV / KS), pairwise association error, "
                                   "the quality report of TabSyn / TabDiff (column shapes, column pair trends, "
                                   "alpha-precision, beta-recall, logistic detection; with held-out rows (--test) the "
                                   "distance to the closest record) and, with --target, machine-learning efficacy.")
    evaluate.add_argument("real", metavar="REAL", help="real rows (.csv, .parquet or a parts folder)")
    evaluate.add_argument("synthetic", metavar="SYNTHETIC", help="synthetic rows (.csv, .parquet or a parts folder)")
    evaluate.add_argument("--model", metavar="MODEL.ckpt", help="take the schema (allowed values) from this checkpoint")
    evaluate.add_argument("--schema", metavar="FILE", help="JSON schema overrides (when there is no --model)")
    evaluate.add_argument("--target", metavar="COLUMN[>VALUE]", help="efficacy task: predict COLUMN (or COLUMN > VALUE)")
    evaluate.add_argument("--test", metavar="FILE", help="held-out real rows for efficacy (default: 20%% of REAL)")
    evaluate.add_argument("--seed", type=_integer("seed", 0, 2**32), default=0, metavar="N")
    evaluate.add_argument("-o", "--output", metavar="METRICS.json", help="also write the metrics as JSON")

    defaults = DemoConfig()
    demo = commands.add_parser(
        "demo",
        help="train on statsmodels' 'fair' table and scikit-learn's digits, sample, print and save metrics",
        description=(
            "Fit TabularBridge to statsmodels' 'fair' table (6366 rows, 9 mixed-type columns) and to scikit-learn's "
            "8x8 digits (64 pixel columns on 0..16), sample, score the samples against held-out real rows and an "
            "independent-marginals baseline, and write PNGs, metrics and samples to the output folder."
        ),
    )
    demo.add_argument("name", nargs="?", choices=("digits", "segments", "points"), metavar="NAME",
                      help="a field demo: digits (scikit-learn's 8x8 digits as a (1, 8, 8) lattice 0..16 field, with the U-Net), "
                      "segments (procedural 32x32 scenes, 6 classes, with the U-Net), "
                      "points (procedural shapes of 512 points on a 64^3 grid, with the set network); "
                      "without NAME: the tables demo")
    demo.add_argument("-o", "--output", metavar="DIR", default=defaults.output,
                      help=f"folder for the output files (default: ./{defaults.output})")
    demo.add_argument("--iterations", type=_integer("iterations", 1), metavar="N",
                      help=f"training iterations per data set (default {defaults.iterations})")
    demo.add_argument("--seed", type=_integer("seed", 0, 2**63), metavar="N", help=f"seed (default {defaults.seed})")
    demo.add_argument("--steps", type=_integer("steps", 2), metavar="N", help=f"time steps (default {defaults.steps})")
    demo.add_argument("--only", choices=("fair", "digits"), help="run one data set only")
    sizes = demo.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="tiny sizes (seconds; for tests and smoke runs, not quality)")
    sizes.add_argument("--paper", action="store_true",
                       help="a field demo at paper scale: more data, larger networks, 10-30x the training (the GPU "
                       "recipe, with --device cuda; docs/benchmarks.md)")
    _device(demo)
    _common(demo, threads_default=defaults.threads)
    return parser


def _fraction(name: str):
    """An argparse type: a number strictly between 0 and 1."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not 0.0 < value < 1.0:
            raise argparse.ArgumentTypeError(f"{name} must be in (0, 1), got {value}")
        return value

    return parse


def _odd_integer(text: str) -> int:
    """An argparse type: an odd integer >= 1 (the median of an odd count of draws is one of them)."""
    value = _integer("draws", 1)(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"draws must be odd (the median of an odd count is one of the draws), got {value}")
    return value


def _device_name(text: str) -> str:
    from omegabridge.ops import check_device
    from omegabridge.errors import BackendUnavailableError

    try:
        check_device(text)
    except (ValueError, BackendUnavailableError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _device(command: argparse.ArgumentParser) -> None:
    command.add_argument("--device", type=_device_name, default="cpu", metavar="DEVICE",
                         help="cpu (default) or cuda (under torchrun: each worker's own GPU)")


def _common(command: argparse.ArgumentParser, threads_default: int = 0) -> None:
    command.add_argument("--threads", type=_integer("threads", 0), default=threads_default, metavar="N",
                         help=f"torch CPU threads (default {threads_default}; 0: torch's own choice)")
    command.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _threads(count: int) -> None:
    if count:
        import torch

        torch.set_num_threads(count)


def _read_schema_file(path: str | None) -> dict | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except OSError as error:
        raise UsageError(f"--schema {path}: cannot read it ({error.strerror})") from None
    except ValueError as error:
        raise UsageError(f"--schema {path}: not valid JSON ({error})") from None
    if not isinstance(entries, dict):
        raise UsageError(f"--schema {path}: expected a JSON object {{column: kind or {{...}}}}")
    return entries


def _refuse_existing_output(args) -> None:
    """Every output kind (checkpoint, folder, .csv, .parquet) is replaced only with --overwrite."""
    if os.path.lexists(args.output) and not args.overwrite:
        raise UsageError(f"{args.output} already exists; pass --overwrite to replace it")


def _fit(args) -> int:
    from omegabridge.training import distributed

    _threads(args.threads)
    _refuse_existing_output(args)  # before hours of training, not after
    distributed.initialize("nccl" if args.device.startswith("cuda") else "gloo")
    # The main worker owns MODEL.ckpt (and its .partial training state) from the start: a second fit into it fails at once.
    with output_lock(args.output) if distributed.is_main() else contextlib.nullcontext():
        return _fit_locked(args)


def _fit_locked(args) -> int:
    from omegabridge.training import distributed
    from omegabridge.tabular import TabularBridge
    from omegabridge.tabular.table_files import read_table

    say = print if distributed.is_main() else (lambda *_: None)
    overrides = _read_schema_file(args.schema)
    frame = read_table(args.data)
    workers = f" on {distributed.world_size()} workers" if distributed.is_distributed() else ""
    say(f"read {args.data}: {len(frame)} rows, {len(frame.columns)} columns{workers}")
    model = TabularBridge(steps=args.steps, times=args.times, posterior_logits=args.posterior_logits, ema_decay=args.ema_decay,
                          device=args.device, progress=args.progress, verbose=distributed.is_main())
    resume_file = args.output + PARTIAL_SUFFIX
    try:
        model.fit(frame, overrides, iterations=args.iterations, batch_size=args.batch_size, seed=args.seed,
                  checkpoint=resume_file, checkpoint_every=args.checkpoint_every, resume=not args.restart)
    except KeyboardInterrupt:
        if os.path.exists(resume_file) and distributed.is_main():
            print(f"training state is kept in {resume_file}; run the same command again to resume from it",
                  file=sys.stderr)
        raise
    if distributed.is_main():
        model.save(args.output, overwrite=args.overwrite)
        os.unlink(resume_file)
    distributed.barrier()
    say(f"final loss {model.training['final_loss']:.4g}; {model.training['seconds']:.1f} s; wrote {args.output}")
    return EXIT_OK


def _sample(args) -> int:
    from tqdm.auto import tqdm

    from omegabridge.training import distributed
    from omegabridge.tabular import TabularBridge
    from omegabridge.tabular.sample_parts import worker_parts
    from omegabridge.tabular.table_files import output_kind, write_chunks

    _threads(args.threads)
    kind = output_kind(args.output)
    _refuse_existing_output(args)
    if kind == "parts" and math.ceil(args.rows / args.chunk_rows) > MAX_PARTS:
        raise UsageError(f"{args.rows} rows in chunks of {args.chunk_rows} would be more than {MAX_PARTS} parts; "
                         "raise --chunk-rows")
    distributed.initialize("gloo")  # the workers only wait for each other; each samples on its own device
    if kind != "parts" and distributed.is_distributed():
        raise UsageError(f"{args.output}: several workers write a folder of parts; give a folder, not a .{kind} file")
    model = TabularBridge.load(args.model, device=args.device, progress=False)
    sampler = {"solver": args.solver, "steps": args.steps, "grid": args.grid}
    extra = {"model": os.path.abspath(args.model), "seed": args.seed, "schema": model.schema.to_dict(),
             "sampler": dict(sampler)}
    conditions = _conditions(model.schema, args.condition)
    if conditions:  # recorded in the manifest, and in the job so that a resumed job keeps them
        sampler["conditions"] = extra["conditions"] = conditions
    if kind == "parts":
        mine = worker_parts(args.rows, args.chunk_rows, distributed.rank(), distributed.world_size())
        total = sum(count for _, _, count in mine)
        workers = f" (worker 0 of {distributed.world_size()})" if distributed.is_distributed() else ""
        with tqdm(total=total, disable=not (args.progress and distributed.is_main()), desc=f"sampling{workers}",
                  unit="row", unit_scale=True) as bar:
            try:
                summary = model.sample_to(args.output, args.rows, args.seed, chunk_rows=args.chunk_rows,
                                          overwrite=args.overwrite, on_chunk=bar.update, manifest_extra=extra,
                                          **sampler)
            except KeyboardInterrupt:
                print(f"finished parts are kept in {args.output}{PARTIAL_SUFFIX}; run the same command again to resume",
                      file=sys.stderr)
                raise
        if distributed.is_main():
            whose = " of worker 0's" if distributed.is_distributed() else ""
            resumed = f" ({summary['resumed']}{whose} part(s) were already done)" if summary["resumed"] else ""
            parts = math.ceil(args.rows / args.chunk_rows)
            print(f"wrote {args.rows} rows to {args.output} in {parts} part file(s) + manifest.json{resumed}")
        return EXIT_OK
    chunks = model.sample_chunks(args.rows, args.seed, chunk_rows=args.chunk_rows, **sampler)
    with tqdm(total=args.rows, disable=not args.progress, desc="sampling", unit="row", unit_scale=True) as bar:
        summary = write_chunks(chunks, args.output, overwrite=args.overwrite, manifest_extra=extra, on_chunk=bar.update)
    print(f"wrote {summary['rows']} rows to {args.output}")
    return EXIT_OK


def _impute(args) -> int:
    from omegabridge.tabular import TabularBridge
    from omegabridge.tabular.table_files import output_kind, read_table, write_table

    _threads(args.threads)
    if output_kind(args.output) == "parts":
        raise UsageError(f"{args.output}: impute writes one table; give a .csv or .parquet file")
    _refuse_existing_output(args)
    model = TabularBridge.load(args.model, device=args.device, progress=args.progress)
    frame = read_table(args.data)
    missing = int(frame.isna().sum().sum())
    filled = model.impute(frame, args.seed, draws=args.draws, solver=args.solver, steps=args.steps, grid=args.grid)
    write_table(filled, args.output, overwrite=args.overwrite)
    rows = int(frame.isna().any(axis=1).sum())
    print(f"filled {missing} missing cell(s) in {rows} of {len(frame)} rows; wrote {args.output}")
    return EXIT_OK


def _conditions(schema, texts: list[str]) -> dict:
    """``--condition COLUMN=VALUE`` options as ``{column: value}``; a column given twice is a usage error."""
    from omegabridge.tabular.conditions import parse_condition

    conditions: dict = {}
    for text in texts:
        name, value = parse_condition(schema, text)
        if name in conditions:
            raise UsageError(f"--condition: column {name!r} is conditioned twice ({conditions[name]!r} and {value!r})")
        conditions[name] = value
    return conditions


def _evaluate(args) -> int:
    from omegabridge.tabular import metrics
    from omegabridge.tabular import TabularBridge, infer_schema
    from omegabridge.tabular.table_files import read_table

    real = read_table(args.real)
    synthetic = read_table(args.synthetic)
    if args.model:
        schema = TabularBridge.load(args.model, progress=False).schema
    else:
        schema = infer_schema(real, _read_schema_file(args.schema))
    target, threshold = parse_target(args.target) if args.target else (None, None)
    train, test = real, None
    if target is not None:
        if args.test:
            test = read_table(args.test)
        else:
            from omegabridge.demos.tables import split_frame

            train, test, _, _ = split_frame(real, args.seed)
            print("note: no --test given; efficacy is measured on 20% of REAL, which the generator may have seen")
    # A CSV file holds dates as text: the schema's time columns are read as times (validity is judged on the cells as given).
    train_times, synthetic_times = schema.parse_times(train), schema.parse_times(synthetic)
    test_times = None if test is None else schema.parse_times(test)
    result = metrics.evaluate(train_times, {"synthetic": synthetic_times}, discrete=schema.discrete_names(), target=target,
                              threshold=threshold, test_real=test_times, seed=args.seed)
    metrics.add_validity(result, schema, {"synthetic": synthetic})
    print(metrics.format_table(result, ["synthetic"]))
    from omegabridge.tabular.report import format_report, quality_report

    result["report"] = quality_report(train_times, synthetic_times, categorical=schema.categorical_names(),
                                      holdout=test_times, seed=args.seed)
    print(format_report(result["report"]))
    if args.output:
        from omegabridge.files import write_json

        write_json(args.output, result)
        print(f"wrote {args.output}")
    return EXIT_OK


def _demo(args) -> int:
    from omegabridge.demos import tables as demo

    if args.name is not None:
        return _field_demo(args)
    if args.paper or args.device != "cpu":
        raise UsageError("--paper and --device are for the field demos (demo digits|segments|points); "
                         "the tables demo runs on the CPU")
    demo.require_demo_dependencies()
    _threads(args.threads)
    values = dict(demo.QUICK) if args.quick else {}
    values.update(output=args.output, progress=args.progress, quick=args.quick, threads=args.threads)
    for name in ("iterations", "seed", "steps", "only"):
        given = getattr(args, name)
        if given is not None:
            values[name] = given
    demo.run_demo(demo.DemoConfig(**values))
    return EXIT_OK


def _field_demo_parts(name: str):
    """(quick sizes, paper sizes, config class, run function) of the field demo ``name``."""
    if name == "points":
        from omegabridge.demos import points as point_demo

        return point_demo.POINTS_QUICK, point_demo.POINTS_PAPER, point_demo.PointsConfig, point_demo.run_points
    if name == "digits":
        from omegabridge.demos import digits as digit_demo

        return digit_demo.DIGITS_QUICK, digit_demo.DIGITS_PAPER, digit_demo.DigitsConfig, digit_demo.run_digits
    from omegabridge.demos import segments as field_demos

    return (field_demos.SEGMENTS_QUICK, field_demos.SEGMENTS_PAPER, field_demos.SegmentsConfig,
            field_demos.run_segments)


def _field_demo(args) -> int:
    if args.only:
        tables_digits = " (the tables demo's flat digits: 'omegabridge demo --only digits')" if args.name == "digits" else ""
        raise UsageError(f"--only chooses a data set of the tables demo; 'demo {args.name}' has one{tables_digits}")
    quick, paper, config, run = _field_demo_parts(args.name)
    values = dict(quick) if args.quick else dict(paper) if args.paper else {}
    values.update(output=args.output, progress=args.progress, threads=args.threads, device=args.device)
    for name in ("iterations", "seed", "steps"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    run(config(**values))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script passes it to sys.exit)."""
    from omegabridge.errors import MissingDependencyError
    from omegabridge.errors import DomainError
    from omegabridge.tabular import CheckpointError, SchemaError
    from omegabridge.errors import OutputLockedError, TableFileError

    parser = build_parser()
    args = parser.parse_args(argv)  # exits with code 2 and a message on a bad command or option
    run = {"fit": _fit, "sample": _sample, "impute": _impute, "evaluate": _evaluate, "demo": _demo}[args.command]
    prefix = f"omegabridge {args.command}: error:"
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"omegabridge {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, MissingDependencyError) as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return EXIT_USAGE
    except (SchemaError, CheckpointError, TableFileError, DomainError, FileExistsError, OutputLockedError) as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"{prefix} {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_FAILED
    except ValueError as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
