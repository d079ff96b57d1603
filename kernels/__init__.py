"""Triton kernels of omegabridge (installed as ``omegabridge.kernels``).

The GPU kernels written in Triton will live here; they follow the same Philox noise
contract as the torch reference (docs/noise.md). Triton is optional: this package imports
without it, and :func:`is_available` says whether it can be used.
"""

from __future__ import annotations

__all__ = ["is_available"]

_available: bool | None = None


def is_available() -> bool:
    """Whether ``triton`` can be imported (checked once, on first call, then cached)."""
    global _available
    if _available is None:
        try:
            import triton  # noqa: F401  (imported lazily, only here)
        except Exception:  # ImportError, or a broken install raising something else
            _available = False
        else:
            _available = True
    return _available
