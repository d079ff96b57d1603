"""Checkpoint files of a fitted ``TabularBridge``: weights, schema, encoder, schedule and versions.

A checkpoint is one ``torch.save`` file holding only plain types and tensors, so it
loads with ``torch.load(weights_only=True)`` (no code runs on load). It is written
atomically. ``read_checkpoint`` raises ``CheckpointError`` naming the file and the
problem: not a checkpoint or corrupt, another format, a newer format version, or a
missing entry.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.ckpt")
    >>> _ = write_checkpoint(path, {"schema": {}, "encoder": {}, "bridge": {}, "model": {}, "weights": {}})
    >>> read_checkpoint(path)["format"]
    'omegabridge.tabular'
"""

from __future__ import annotations

import os

import torch

from omegabridge.files import atomic_write
from omegabridge.errors import CheckpointError

__all__ = ["FORMAT", "FORMAT_VERSION", "write_checkpoint", "read_checkpoint"]

FORMAT = "omegabridge.tabular"
FORMAT_VERSION = 1
REQUIRED = ("schema", "encoder", "bridge", "model", "weights")


def write_checkpoint(path: str, content: dict) -> str:
    """Write ``content`` plus the format and version entries to ``path`` atomically."""
    from omegabridge.version import __version__

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": {"omegabridge": __version__, "torch": str(torch.__version__)},
        **content,
    }
    return atomic_write(path, lambda temporary: torch.save(payload, temporary))


def read_checkpoint(path: str) -> dict:
    """The checked content of a checkpoint file (see the module docstring for the errors)."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # zip, EOF, unpickling and torch's own errors: any failure to read the file
        raise CheckpointError(f"{path}: not an omegabridge checkpoint, or a corrupt one ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not an omegabridge tabular checkpoint (format {found!r}, expected {FORMAT!r})")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        written = payload.get("versions", {}).get("omegabridge", "?")
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} (written by omegabridge {written}) is not supported by this "
            f"omegabridge, which reads version {FORMAT_VERSION}; upgrade omegabridge"
        )
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {missing}")
    return payload
