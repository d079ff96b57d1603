"""The package's layers: no import cycle, and no module imports from a layer above its own.

Layers, lowest first (omegabridge/__init__.py lists them): a module may import only from its own
layer or lower ones. Read from the source with ast, so function-local imports count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = [
    {"errors", "files", "checksums", "version"},
    {"core"},
    {"reference"},
    {"kernels", "ops"},
    {"bridge", "solvers"},
    {"models"},
    {"training"},
    {"tabular", "fields"},
    {"demos"},
    {"cli", "__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _modules():
    for path in sorted((ROOT / "omegabridge").rglob("*.py")):
        parts = path.relative_to(ROOT / "omegabridge").with_suffix("").parts
        if parts != ("__init__",):
            yield path, parts[0]
    for path in sorted((ROOT / "kernels").glob("*.py")):
        yield path, "kernels"


def _imported_layers(path: Path, package: str):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("omegabridge"):
            names = [node.module] if node.module != "omegabridge" else [f"omegabridge.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("omegabridge")]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if len(parts) > 1 and parts[1] in RANK:
                yield parts[1], node.lineno


def test_every_module_belongs_to_a_layer():
    assert {layer for _, layer in _modules()} <= set(RANK)


def test_no_module_imports_from_a_higher_layer():
    upward = []
    for path, layer in _modules():
        for imported, line in _imported_layers(path, layer):
            if RANK[imported] > RANK[layer]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({layer}) imports {imported}")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)
