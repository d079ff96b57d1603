"""Checkpoint files of a fitted ``TabularBridge``: weights, schema, encoder, schedule and versions.

A checkpoint is one ``torch.save`` file holding three entries beside its format
name and version: ``metadata``, one JSON text (schema, encoder, settings, training
record, versions) in which every non-JSON value carries its type tag
(``typed_json``), ``weights``, a dict of tensors, and ``sha256``, the checksum of
both. So it loads with ``torch.load(weights_only=True)`` (no code runs on load)
whatever category values the table had, and a flipped byte anywhere in the
metadata or the weights is detected. It is written atomically, and only after the
metadata has been read back equal (``write_checkpoint`` refuses, naming the value,
what it could not store).

``read_checkpoint`` raises ``CheckpointError`` naming the file and the problem: not
a checkpoint or unreadable, another format, a newer format version, a checksum
mismatch (corrupt), or a missing entry. Version 1 files (pickled metadata, no
checksum) still load.

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

from omegabridge.checksums import state_sha256
from omegabridge.errors import CheckpointError
from omegabridge.files import atomic_write
from omegabridge.tabular import typed_json

__all__ = ["FORMAT", "FORMAT_VERSION", "write_checkpoint", "read_checkpoint", "checksum"]

FORMAT = "omegabridge.tabular"
FORMAT_VERSION = 2
REQUIRED = ("schema", "encoder", "bridge", "model", "weights")


def checksum(metadata: str, weights: dict) -> str:
    """SHA-256 of the metadata text and the weights (``checksums.state_sha256``)."""
    return state_sha256({"metadata": metadata, "weights": weights})


def write_checkpoint(path: str, content: dict) -> str:
    """Write ``content`` (``weights`` a dict of tensors, the rest typed-JSON-safe) to ``path`` atomically.

    ``CheckpointError`` naming the entry, before anything is written, when a value
    cannot be stored and read back equal.
    """
    from omegabridge.version import __version__

    content = dict(content)
    weights = {name: tensor.detach().cpu() for name, tensor in content.pop("weights").items()}
    metadata = {"versions": {"omegabridge": __version__, "torch": str(torch.__version__)}, **content}
    try:
        text = typed_json.encode_checked(metadata, where="checkpoint")
    except typed_json.UnsupportedValue as error:
        raise CheckpointError(f"{path}: cannot save: {error}") from None
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": text, "weights": weights,
               "sha256": checksum(text, weights)}
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
        written = payload.get("versions", {}).get("omegabridge", "?") if isinstance(payload.get("versions"), dict) else "?"
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} (written by omegabridge {written}) is not supported by this "
            f"omegabridge, which reads versions 1..{FORMAT_VERSION}; upgrade omegabridge"
        )
    if version >= 2:
        payload = _verified_content(path, payload)
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {missing}")
    return payload


def _verified_content(path: str, payload: dict) -> dict:
    text, weights, stored = payload.get("metadata"), payload.get("weights"), payload.get("sha256")
    if not isinstance(text, str) or not isinstance(weights, dict) or not isinstance(stored, str):
        raise CheckpointError(f"{path}: incomplete checkpoint (its metadata, weights or sha256 entry is missing or damaged)")
    try:
        computed = checksum(text, weights)
    except TypeError as error:
        raise CheckpointError(f"{path}: damaged checkpoint ({error})") from None
    if computed != stored:
        raise CheckpointError(f"{path}: corrupt checkpoint: the SHA-256 of its content is {computed[:16]}..., "
                              f"the file records {stored[:16]}...; the file was changed after it was written")
    try:
        metadata = typed_json.decode(text)
    except ValueError as error:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({error})") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: damaged checkpoint metadata (not a mapping)")
    return {"format": payload["format"], "format_version": payload["format_version"], **metadata, "weights": weights}
