"""SHA-256 of a checkpoint's content, so that a changed byte is detected on load.

``state_sha256`` walks nested dicts (in key order), lists and tuples, tensors (dtype,
shape and raw bytes) and plain scalars, so the same content always gives the same
digest whatever order it was built in, and any change to a value, a key, a shape or
a dtype gives another.

Example:
    >>> import torch
    >>> a = state_sha256({"w": torch.ones(2), "step": 3})
    >>> a == state_sha256({"step": 3, "w": torch.ones(2)}), a == state_sha256({"w": torch.ones(2), "step": 4})
    (True, False)
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["state_sha256"]


def state_sha256(value) -> str:
    """The hex SHA-256 of ``value`` (``TypeError`` naming a part it cannot digest)."""
    digest = hashlib.sha256()
    _update(digest, value, "state")
    return digest.hexdigest()


def _update(digest, value, where: str) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=repr):
            _update(digest, key, f"{where} key")
            _update(digest, value[key], f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__[0]}{len(value)}:".encode())
        for index, item in enumerate(value):
            _update(digest, item, f"{where}[{index}]")
    elif value is None or isinstance(value, (bool, int, float, str)):
        text = repr(value)
        digest.update(f"{type(value).__name__}{len(text)}:{text}".encode())
    else:
        raise TypeError(f"{where}: cannot digest a {type(value).__name__}")
