"""What the tables benchmarks share: the demo's model of a training split, and writing a result table.

    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_results(folder, "example", ["# Example", "", "| a |"], [{"a": 1}], echo=False)
    >>> json.loads((folder / "example.json").read_text()), (folder / "example.md").read_text()
    ([{'a': 1}], '# Example\\n\\n| a |\\n')
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegabridge.files import atomic_write

__all__ = ["demo_model", "write_results"]


def demo_model(train, *, iterations: int, seed: int, path: str | None = None, conditional: bool = True):
    """(a ``TabularBridge`` with the tables demo's settings trained on ``train`` with fair's overrides, or the
    checkpoint at ``path``; the seconds it took)."""
    from omegabridge.demos.tables import FAIR_SCHEMA, DemoConfig
    from omegabridge.tabular import TabularBridge

    started = time.perf_counter()
    if path:
        return TabularBridge.load(path, progress=False), time.perf_counter() - started
    config = DemoConfig(iterations=iterations, seed=seed)
    model = TabularBridge(steps=config.steps, hidden=config.hidden, depth=config.depth, learning_rate=config.learning_rate,
                          conditional=conditional, verbose=False, progress=False)
    model.fit(train, FAIR_SCHEMA, iterations=config.iterations, batch_size=config.batch_size, seed=config.seed)
    return model, time.perf_counter() - started


def write_results(out: Path, stem: str, lines: list[str], rows, *, echo: bool = True) -> None:
    """``<out>/<stem>.md`` (the lines) and ``<out>/<stem>.json`` (the rows), each written atomically."""
    text = "\n".join(lines) + "\n"
    atomic_write(str(Path(out) / f"{stem}.md"), lambda temporary: open(temporary, "w").write(text))
    atomic_write(str(Path(out) / f"{stem}.json"), lambda temporary: open(temporary, "w").write(json.dumps(rows, indent=1)))
    if echo:
        print(text, end="")
