"""Lazy loading of the optional compiled extensions, and the segment table in the form both take.

The CPU extension ``omegabridge._native_ext`` (built from ``pybridge/module.cpp`` by setup.py,
see OMEGABRIDGE_BUILD_NATIVE) is imported on the first call of :func:`load`, never at package
import time; the result, or the reason it could not be imported, is cached. ``LazyExtension``
does the same for the CUDA extension (``omegabridge.ops.backends.cuda``).

Example:
    >>> from omegabridge.ops import native
    >>> ext = native.load()
    >>> if ext is None:
    ...     print("no native backend:", native.unavailable_reason())
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

import torch

__all__ = ["EXTENSION", "ABI", "LazyExtension", "load", "is_available", "unavailable_reason", "make_layout"]

EXTENSION = "omegabridge._native_ext"
ABI = 2  # the `abi` attribute this Python code expects of the extension


class LazyExtension:
    """An optional compiled module imported on first use, its `abi` checked; the result, or the
    reason it cannot be used, is cached (thread-safe). ``missing`` says how to build it.

    Example:
        >>> LazyExtension("omegabridge._no_such_ext", 1, "it is only an example").reason().startswith("omegabridge._no_such_ext")
        True
    """

    def __init__(self, name: str, abi: int, missing: str):
        self.name, self.abi, self.missing = name, abi, missing
        self._lock = threading.Lock()
        self._loaded = False
        self._module: ModuleType | None = None
        self._reason = ""

    def load(self) -> ModuleType | None:
        """The module, or None when it is not built or cannot be imported."""
        if self._loaded:
            return self._module
        with self._lock:
            if not self._loaded:
                try:
                    module = importlib.import_module(self.name)
                except ImportError as error:
                    self._module = None
                    self._reason = f"{self.name} could not be imported ({type(error).__name__}: {error}); {self.missing}"
                else:
                    abi = getattr(module, "abi", None)
                    if abi != self.abi:
                        self._module = None
                        self._reason = (f"{self.name} has abi {abi!r} but this omegabridge expects {self.abi}; "
                                        "rebuild it (pip install -e . or pip install .)")
                    else:
                        self._module, self._reason = module, ""
                self._loaded = True
        return self._module

    def reason(self) -> str:
        """Why the module is unavailable ("" when it can be used)."""
        self.load()
        return self._reason


_extension = LazyExtension(
    EXTENSION, ABI,
    "reinstall omegabridge with a C++17 compiler (OMEGABRIDGE_BUILD_NATIVE=1 makes a failed build an error)",
)


def load() -> ModuleType | None:
    """The extension module, or None when it is not built or cannot be imported (cached)."""
    return _extension.load()


def is_available() -> bool:
    """Whether the extension can be used."""
    return load() is not None


def unavailable_reason() -> str:
    """Why the extension is unavailable ("" when it is available)."""
    return _extension.reason()


def make_layout(extension: ModuleType, table):
    """``extension.make_layout`` of a segment table: its packed arrays handed over as raw addresses
    (both extensions take the same arrays and check them)."""
    tensors = table.as_tensors()
    kinds = tensors["kinds"].to(torch.int32).contiguous()
    offsets, widths, points, repeats = (tensors[k].to(torch.int64).contiguous() for k in ("offsets", "widths", "points", "repeats"))
    parameters = tensors["parameters"].to(torch.float64).contiguous()
    return extension.make_layout(
        kinds.numel(), kinds.data_ptr(), offsets.data_ptr(), widths.data_ptr(), points.data_ptr(), repeats.data_ptr(),
        parameters.data_ptr(),
    )
