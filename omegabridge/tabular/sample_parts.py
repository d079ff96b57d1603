"""Sampling a large table to a folder of Parquet parts: resumable after a kill, shardable across workers.

Rows are cut into parts of ``chunk_rows`` rows (``part-00000.parquet``, ... names that
sort in row order). Part p holds rows ``[p * chunk_rows, ...)``, sampled with that row
offset, so its content depends only on the model, the seed and p: not on how many
workers there are or which one drew it. K workers (torchrun, or any caller passing
``rank`` and ``world_size``) take contiguous runs of parts.

The work happens in ``OUT.partial`` beside the final folder ``OUT``:

0. Rank 0 holds ``output_lock(OUT)`` from start to end (``OUT.lock``, owner's host and
   pid): a second job into ``OUT``, even with ``overwrite``, fails at once (at its rank 0)
   while this one lives; after a kill the lock is gone and a rerun resumes. Workers of
   one job share the lock through rank 0, so callers passing ``rank``/``world_size``
   themselves must start rank 0 too.
1. ``job.json`` there says which job it holds (rows, seed, chunk size, a fingerprint of
   the model); a folder of another job is refused unless ``overwrite``.
2. Each part is written to a temporary file and renamed into place, so a part under its
   final name is complete; a rerun skips those and removes temporaries left by a kill.
3. When every worker is done, rank 0 checks each part's row count, writes
   ``manifest.json`` last, and renames ``OUT.partial`` to ``OUT`` (replacing an old
   ``OUT`` only with ``overwrite``, and only at that moment).

So ``OUT`` appears only complete, and a killed job, rerun with the same command, redoes
no finished part and leaves no partial one.

Example:
    >>> part_rows(250, 100)
    [(0, 100), (100, 100), (200, 50)]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from typing import Callable

from omegabridge.training import distributed
from omegabridge.files import atomic_write, output_lock, refuse_existing, remove_temporaries, replace_folder, write_json
from omegabridge.tabular.table_files import MAX_PARTS, part_name, write_manifest
from omegabridge.errors import TableFileError

__all__ = ["PARTIAL_SUFFIX", "JOB_FILE", "part_rows", "worker_parts", "model_fingerprint", "write_sample_parts"]

PARTIAL_SUFFIX = ".partial"
JOB_FILE = "job.json"
JOB_FORMAT = "omegabridge.sample-job"
#: What a job file without a "sampler" entry ran: Euler on the model's steps and grid "t", the only
#: sampler before samplers were recorded. Every other sampler is recorded, so such jobs still resume.
UNRECORDED_SAMPLER = {"solver": "euler", "steps": None, "grid": "t"}


def part_rows(rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """(first row, row count) of each part."""
    return [(first, min(chunk_rows, rows - first)) for first in range(0, rows, chunk_rows)]


def worker_parts(rows: int, chunk_rows: int, rank: int, world_size: int) -> list[tuple[int, int, int]]:
    """(part number, first row, row count) of the parts worker ``rank`` of ``world_size`` writes: a contiguous run.

    >>> worker_parts(250, 100, rank=1, world_size=2)
    [(2, 200, 50)]
    """
    parts = part_rows(rows, chunk_rows)
    return [(number, *parts[number]) for number in distributed.contiguous_range(len(parts), rank, world_size)]


def model_fingerprint(model) -> str:
    """sha256 of a fitted ``TabularBridge``'s weights, schema, encoder and sampler settings."""
    digest = hashlib.sha256()
    described = {"schema": model.schema.to_dict(), "encoder": model.encoder.to_dict(), "steps": model.steps,
                 "schedule": repr(model.schedule)}
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_sample_parts(
    model,
    rows: int,
    path: str,
    *,
    seed: int = 0,
    chunk_rows: int = 100_000,
    batch_size: int = 8192,
    overwrite: bool = False,
    manifest_extra: dict | None = None,
    on_chunk: Callable[[int], None] | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    sampler: dict | None = None,
) -> dict:
    """Sample ``rows`` rows of ``model`` (a fitted ``TabularBridge``) to the parts folder ``path``.

    ``rank`` and ``world_size`` default to the torch.distributed process group's (one
    process when there is none); every worker calls this with the same arguments. Returns
    a summary: the final path, rows, this worker's parts and how many of them a previous
    run had already written (``resumed``). ``on_chunk(rows)`` follows this worker's progress.
    ``sampler`` (``solver``, ``steps``, ``grid`` of ``TabularBridge.sample``; ``None``: Euler on the
    model's own grid) is recorded in the job unless it is ``UNRECORDED_SAMPLER``, so a resumed job
    cannot mix parts of two samplers.
    """
    for name, value, low in (("rows", rows, 1), ("chunk_rows", chunk_rows, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    parts = part_rows(rows, chunk_rows)
    if len(parts) > MAX_PARTS:
        raise ValueError(f"{rows} rows in chunks of {chunk_rows} would be {len(parts)} parts (at most {MAX_PARTS}); "
                         "use larger chunks")
    rank = distributed.rank() if rank is None else rank
    world_size = distributed.world_size() if world_size is None else world_size
    final = os.path.abspath(path)
    staging = final + PARTIAL_SUFFIX
    # Rank 0 holds OUT's lock for the whole job, for all its workers: a second job into OUT fails at once.
    with output_lock(final) if rank == 0 else contextlib.nullcontext():
        refuse_existing(final, overwrite)
        sampler = dict(UNRECORDED_SAMPLER if not sampler else sampler)
        job = {"format": JOB_FORMAT, "rows": rows, "seed": seed, "chunk_rows": chunk_rows, "batch_size": batch_size,
               "model": model_fingerprint(model)}
        if sampler != UNRECORDED_SAMPLER:
            job["sampler"] = sampler
        if rank == 0:
            _prepare_staging(staging, job, overwrite)
        distributed.barrier()
        if not os.path.isdir(staging):
            raise TableFileError(f"{staging}: not found by worker {rank}; all workers must share one file system")
        summary = {"path": final, "kind": "parts", "rows": rows, "parts": [], "resumed": 0}
        for number, first, count in worker_parts(rows, chunk_rows, rank, world_size):
            target = os.path.join(staging, part_name(number))
            if os.path.exists(target):
                summary["resumed"] += 1
            else:
                frame = model.sample(count, seed, batch_size=batch_size, row_offset=first, **sampler)
                atomic_write(target, lambda temporary: frame.to_parquet(temporary, index=False))
            summary["parts"].append({"file": part_name(number), "first_row": first, "rows": count})
            if on_chunk:
                on_chunk(count)
        distributed.barrier()
        if rank == 0:
            _finish(staging, final, parts, manifest_extra)
        distributed.barrier()
        return summary


def _prepare_staging(staging: str, job: dict, overwrite: bool) -> None:
    """Create ``staging`` for ``job``, or keep the one a killed run of the same job left."""
    if os.path.exists(staging):
        found = _read_job(staging)
        if found != job and not overwrite:
            keys = [*job, *(key for key in found if key not in job)] if found else []
            differences = [f"{key} {found.get(key)!r} there, {job.get(key)!r} here" for key in keys
                           if found.get(key) != job.get(key)] if found else ["no readable job.json"]
            raise TableFileError(f"{staging} holds an unfinished sample of another job ({'; '.join(differences)}); "
                                 "rerun that job to finish it, or pass overwrite (--overwrite) to discard it")
        if found != job:
            shutil.rmtree(staging)
    if not os.path.exists(staging):
        os.makedirs(staging)
        write_json(os.path.join(staging, JOB_FILE), job)
    remove_temporaries(staging)  # of parts a kill interrupted


def _read_job(staging: str) -> dict | None:
    try:
        with open(os.path.join(staging, JOB_FILE), encoding="utf-8") as handle:
            found = json.load(handle)
        return found if isinstance(found, dict) else None
    except (OSError, ValueError):
        return None


def _finish(staging: str, final: str, parts: list[tuple[int, int]], extra: dict | None) -> None:
    """Check every part, write the manifest, move the folder into place."""
    import pyarrow.parquet as parquet

    listed, columns = [], None
    for number, (first, count) in enumerate(parts):
        file = os.path.join(staging, part_name(number))
        if not os.path.exists(file):
            raise TableFileError(f"{file}: missing after every worker finished; rerun to complete it")
        metadata = parquet.ParquetFile(file).metadata
        if metadata.num_rows != count:
            raise TableFileError(f"{file}: holds {metadata.num_rows} rows, expected {count}; delete it and rerun")
        if columns is None:
            columns = [str(name) for name in parquet.read_schema(file).names]
        listed.append({"file": part_name(number), "first_row": first, "rows": count})
    write_manifest(staging, sum(count for _, count in parts), columns, listed, extra)
    replace_folder(staging, final)
    with contextlib.suppress(OSError):  # kept until now: a kill before the rename must leave the job named
        os.unlink(os.path.join(final, JOB_FILE))
