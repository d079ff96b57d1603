"""Loading the C++ extension in tests: skip without it, unless OMEGABRIDGE_REQUIRE_NATIVE=1 (then fail)."""

from __future__ import annotations

import os

import pytest

from omegabridge.ops import native as _native


def require_extension():
    """The extension module; skips the calling test module when it is not built (fails under make test)."""
    ext = _native.load()
    if ext is None:
        why = _native.unavailable_reason()
        if os.environ.get("OMEGABRIDGE_REQUIRE_NATIVE") == "1":
            raise RuntimeError(f"OMEGABRIDGE_REQUIRE_NATIVE=1 but the native extension is unavailable: {why}")
        pytest.skip(f"native extension unavailable: {why}", allow_module_level=True)
    return ext
