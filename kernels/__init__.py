"""Triton kernels of omegabridge (installed as ``omegabridge.kernels``).

* ``plan``: the work items of a segment table (runs and groups, each with a tile class);
* ``bridge``: one kernel and its launcher for the posterior mean, the Euler step and the
  training target of a whole layout;
* ``final_step``: the exact last step of a whole layout;
* ``posterior``, ``special``, ``philox``: the per-domain means, the special functions and the
  noise contract (docs/noise.md) as Triton device functions.

Use them through ``omegabridge.dispatch`` (``backend="triton"``, or ``"auto"`` on float32 CUDA
tensors), which validates inputs. Triton is optional: this package imports without it (the
submodules need it), and :func:`is_available` says whether it can be imported.

Example:
    >>> from omegabridge import kernels
    >>> isinstance(kernels.is_available(), bool)
    True
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
