"""Triton kernels of omegabridge (installed as ``omegabridge.kernels``).

* ``plan``: the work items of a segment table (runs and groups, each with a tile class);
* ``bridge``: one kernel and its launcher for the posterior mean, the Euler step and the
  training target of a whole layout;
* ``final_step``: the exact last step of a whole layout;
* ``posterior``, ``special``, ``philox``: the per-domain means, the special functions and the
  noise contract (docs/noise.md) as Triton device functions.

Use them through ``omegabridge.ops`` (``backend="triton"``, or ``"auto"`` on float32 CUDA
tensors), which validates inputs. Triton is optional: this package imports without it (the
submodules need it), and :func:`is_available` / :func:`unavailable_reason` say whether it can
be imported.

Example:
    >>> from omegabridge import kernels
    >>> isinstance(kernels.is_available(), bool)
    True
"""

from __future__ import annotations

__all__ = ["is_available", "unavailable_reason"]

_reason: str | None = None


def unavailable_reason() -> str:
    """Why ``triton`` cannot be imported ("" when it can); checked once, on first call, then cached."""
    global _reason
    if _reason is None:
        try:
            import triton  # noqa: F401  (imported lazily, only here)
        except Exception as error:  # ImportError, or a broken install raising something else
            _reason = f"triton cannot be imported ({type(error).__name__}: {error})"
        else:
            _reason = ""
    return _reason


def is_available() -> bool:
    """Whether ``triton`` can be imported."""
    return unavailable_reason() == ""
