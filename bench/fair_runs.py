"""What the benchmarks share: the tables demo's model of a training split, and writing a result table.

    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_results(folder, "example", ["# Example", "", "| a |"], [{"a": 1}], echo=False)
    >>> json.loads((folder / "example.json").read_text()), (folder / "example.md").read_text()
    ([{'a': 1}], '# Example\\n\\n| a |\\n')
"""

from __future__ import annotations

import datetime
import json
import platform
import sys
import time
from pathlib import Path

from omegabridge.files import atomic_write

__all__ = ["add_common_arguments", "results_folder", "measured", "demo_model", "write_results"]

#: Where the benchmarks' tables are committed.
RESULTS = Path(__file__).resolve().parent / "results"


def add_common_arguments(parser, default_iterations: int) -> None:
    """``--iterations`` (of the demo's model), ``--seed`` and ``--out`` (default bench/results)."""
    parser.add_argument("--iterations", type=int, default=default_iterations)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))


def results_folder(path: str) -> Path:
    """``path`` as a folder that exists."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def measured(script: str, argv, detail: str = "") -> str:
    """``"Measured DATE on MACHINE<detail>: `python bench/SCRIPT ARGS`"``, the arguments ``argv`` (None: the
    command line's)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = " ".join([f"python bench/{script}", *argv])
    return (f"Measured {datetime.date.today().isoformat()} on {platform.processor() or platform.machine()}{detail}: "
            f"`{command}`")


def demo_model(train, *, iterations: int, seed: int, path: str | None = None, conditional: bool = True, **settings):
    """(a ``TabularBridge`` with the tables demo's settings, and any other ``TabularBridge`` ``settings``, trained on
    ``train`` with fair's overrides, or the checkpoint at ``path``; the seconds it took)."""
    from omegabridge.demos.tables import FAIR_SCHEMA, DemoConfig
    from omegabridge.tabular import TabularBridge

    started = time.perf_counter()
    if path:
        return TabularBridge.load(path, progress=False), time.perf_counter() - started
    config = DemoConfig(iterations=iterations, seed=seed)
    model = TabularBridge(steps=config.steps, hidden=config.hidden, depth=config.depth, learning_rate=config.learning_rate,
                          conditional=conditional, verbose=False, progress=False, **settings)
    model.fit(train, FAIR_SCHEMA, iterations=config.iterations, batch_size=config.batch_size, seed=config.seed)
    return model, time.perf_counter() - started


def write_results(out: Path, stem: str, lines: list[str], rows, *, echo: bool = True) -> None:
    """``<out>/<stem>.md`` (the lines) and ``<out>/<stem>.json`` (the rows), each written atomically."""
    text = "\n".join(lines) + "\n"
    atomic_write(str(Path(out) / f"{stem}.md"), lambda temporary: open(temporary, "w").write(text))
    atomic_write(str(Path(out) / f"{stem}.json"), lambda temporary: open(temporary, "w").write(json.dumps(rows, indent=1)))
    if echo:
        print(text, end="")
