"""Lazy loader of the optional C++ extension ``omegabridge._native_ext``.

The extension (built from ``pybridge/module.cpp`` by setup.py, see OMEGABRIDGE_BUILD_NATIVE)
is imported on the first call of :func:`load`, never at package import time; the result,
or the reason it could not be imported, is cached.

The extension is named ``_native_ext`` and not ``_native`` because this loader module
already owns the name ``omegabridge._native`` (a compiled ``_native*.so`` next to
``_native.py`` would shadow it).

Example:
    >>> from omegabridge import _native
    >>> ext = _native.load()
    >>> if ext is None:
    ...     print("no native backend:", _native.unavailable_reason())
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

__all__ = ["EXTENSION", "ABI", "load", "is_available", "unavailable_reason"]

EXTENSION = "omegabridge._native_ext"
ABI = 2  # the `abi` attribute this Python code expects of the extension

_lock = threading.Lock()
_loaded = False
_module: ModuleType | None = None
_reason = ""


def load() -> ModuleType | None:
    """The extension module, or None when it is not built or cannot be imported (cached)."""
    global _loaded, _module, _reason
    if _loaded:
        return _module
    with _lock:
        if not _loaded:
            try:
                module = importlib.import_module(EXTENSION)
            except ImportError as error:
                _module, _reason = None, (
                    f"{EXTENSION} could not be imported ({type(error).__name__}: {error}); "
                    "reinstall omegabridge with a C++17 compiler (OMEGABRIDGE_BUILD_NATIVE=1 "
                    "makes a failed build an error)"
                )
            else:
                abi = getattr(module, "abi", None)
                if abi != ABI:
                    _module, _reason = None, (
                        f"{EXTENSION} has abi {abi!r} but this omegabridge expects {ABI}; "
                        "rebuild it (pip install -e . or pip install .)"
                    )
                else:
                    _module, _reason = module, ""
            _loaded = True
    return _module


def is_available() -> bool:
    """Whether the extension can be used."""
    return load() is not None


def unavailable_reason() -> str:
    """Why the extension is unavailable ("" when it is available)."""
    load()
    return _reason
