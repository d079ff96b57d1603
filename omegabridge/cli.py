"""Command line of omegabridge: ``omegabridge demo`` (also ``python -m omegabridge demo``).

Example:
    $ omegabridge demo --quick -o /tmp/ob-demo --no-progress

Exit codes: 0 success, 1 the job failed, 2 bad usage or a missing optional dependency
(the demo needs statsmodels and pandas: ``pip install 'omegabridge[demo]'``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _integer(name: str, minimum: int, maximum: int | None = None):
    """An argparse type: an integer ``name`` in [minimum, maximum), with a message naming the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {value}")
        if maximum is not None and value >= maximum:
            raise argparse.ArgumentTypeError(f"{name} must be < {maximum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand, ``demo``."""
    from omegabridge import __version__
    from omegabridge.demo import DemoConfig

    defaults = DemoConfig()
    parser = argparse.ArgumentParser(
        prog="omegabridge",
        description="omegabridge: diffusion bridges on constrained domains (every sample lands in its domain).",
    )
    parser.add_argument("--version", action="version", version=f"omegabridge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    demo = commands.add_parser(
        "demo",
        help="train on statsmodels' 'fair' table, sample synthetic rows, print and save metrics",
        description=(
            "Fit a diffusion bridge to statsmodels' 'fair' table (6366 rows, 9 mixed-type columns), sample "
            "synthetic rows that are valid by construction, compare them with the real table and with an "
            "independent-marginals baseline, and write marginals.png, metrics.json, metrics.csv and "
            "synthetic.csv to the output folder. Needs statsmodels and pandas: pip install 'omegabridge[demo]'."
        ),
    )
    demo.add_argument("-o", "--output", metavar="DIR", default=defaults.output,
                      help=f"folder for the output files (default: ./{defaults.output})")
    demo.add_argument("--iterations", type=_integer("iterations", 1), metavar="N", help=f"training iterations (default {defaults.iterations})")
    demo.add_argument("--rows", type=_integer("rows", 2), metavar="N",
                      help="synthetic rows to sample (default: as many as the data, 6366)")
    demo.add_argument("--seed", type=_integer("seed", 0, 2**63), metavar="N", help=f"seed of training, sampling and baseline (default {defaults.seed})")
    demo.add_argument("--steps", type=_integer("steps", 2), metavar="N", help=f"time steps of the bridge (default {defaults.steps})")
    demo.add_argument("--threads", type=_integer("threads", 0), metavar="N",
                      help=f"torch CPU threads (default {defaults.threads}: fastest on a small or shared machine; "
                      "0: torch's own choice)")
    demo.add_argument("--quick", action="store_true",
                      help="tiny sizes (a few seconds; for tests and smoke runs, not for quality)")
    demo.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return parser


def _config(args: argparse.Namespace):
    from omegabridge.demo import QUICK, DemoConfig

    values = dict(QUICK) if args.quick else {}
    values.update(output=args.output, progress=args.progress, quick=args.quick)
    for name in ("iterations", "rows", "seed", "steps", "threads"):
        given = getattr(args, name)
        if given is not None:
            values[name] = given
    return DemoConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script passes it to sys.exit)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with code 2 and a message on a bad command or option
    if args.command == "demo":
        from omegabridge import demo

        try:
            demo.require_demo_dependencies()
        except demo.MissingDependencyError as error:
            print(f"omegabridge demo: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        try:
            demo.run_demo(_config(args))
        except KeyboardInterrupt:
            print("omegabridge demo: interrupted", file=sys.stderr)
            return 130
        except (OSError, ValueError) as error:
            print(f"omegabridge demo: error: {error}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    parser.error(f"unknown command {args.command!r}")  # unreachable: argparse rejects unknown commands
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
