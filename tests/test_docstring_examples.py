"""Every docstring example in the package runs and prints what it says (``doctest`` over each module)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import omegabridge

import omegabridge.kernels  # installed from kernels/, so not under omegabridge.__path__

MODULES = sorted(
    {info.name for info in pkgutil.walk_packages(omegabridge.__path__, prefix="omegabridge.")
     if not info.name.endswith("__main__")}
    | {"omegabridge.kernels"}
    | {info.name for info in pkgutil.walk_packages(omegabridge.kernels.__path__, prefix="omegabridge.kernels.")}
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name} (see output)"
