"""Reading tables and writing samples: CSV, Parquet, and folders of Parquet parts with a manifest.

``read_table`` takes a ``.csv`` file, a ``.parquet`` file, or a folder written by
``write_chunks``. ``write_chunks`` streams an iterator of DataFrames (the chunks of a
large sample, in row order) to

- one ``.csv`` or ``.parquet`` file, when the path ends so (rows appended chunk by
  chunk to a temporary file, then moved into place), or
- a folder of ``part-00000.parquet``, ``part-00001.parquet``, ... (names that sort in
  row order) plus ``manifest.json`` (rows, parts with their first row and row count,
  columns, and any extra entries the caller passes), built under a temporary name and
  renamed into place when complete.

Only one chunk is held in memory at a time, and nothing appears under the final name
unless the whole write succeeded.

Example:
    >>> import os, tempfile, pandas as pd
    >>> out = os.path.join(tempfile.mkdtemp(), "rows.csv")
    >>> chunks = (pd.DataFrame({"a": [i, i + 1]}) for i in (0, 2))
    >>> write_chunks(chunks, out)["rows"]
    4
    >>> read_table(out)["a"].tolist()
    [0, 1, 2, 3]
"""

from __future__ import annotations

import json
import os
from typing import Iterable

from omegabridge.files import atomic_folder, atomic_write, output_lock, refuse_existing, remove_temporaries, write_json
from omegabridge.errors import TableFileError

__all__ = ["read_table", "write_table", "write_chunks", "write_manifest", "part_name", "output_kind",
           "MANIFEST", "MAX_PARTS"]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "omegabridge.sample-parts"
MAX_PARTS = 100_000  # five digits in the part names


def output_kind(path: str) -> str:
    """``"csv"``, ``"parquet"`` or ``"parts"`` (a folder) from the output path's ending.

    >>> output_kind("out.csv"), output_kind("out.parquet"), output_kind("out")
    ('csv', 'parquet', 'parts')
    """
    lower = path.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith(".parquet"):
        return "parquet" if not os.path.isdir(path) else "parts"
    return "parts"


def _require_pyarrow(path: str) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise TableFileError(f"{path}: Parquet needs pyarrow: pip install pyarrow (or 'omegabridge[demo]')") from None


def read_table(path: str):
    """A DataFrame from a ``.csv`` or ``.parquet`` file or a folder of parts with a manifest."""
    import pandas as pd

    if not os.path.exists(path):
        raise TableFileError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        manifest_path = os.path.join(path, MANIFEST)
        if not os.path.exists(manifest_path):
            raise TableFileError(f"{path}: a folder without {MANIFEST}; expected the output of 'omegabridge sample'")
        try:
            with open(manifest_path, encoding="utf-8") as handle:
                manifest = json.load(handle)
            parts = [os.path.join(path, part["file"]) for part in manifest["parts"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise TableFileError(f"{manifest_path}: unreadable manifest ({error})") from error
        _require_pyarrow(path)
        frames = [pd.read_parquet(part) for part in parts]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=manifest.get("columns", []))
        if len(frame) != manifest.get("rows", len(frame)):
            raise TableFileError(f"{path}: the parts hold {len(frame)} rows, the manifest says {manifest['rows']}")
        return frame
    kind = output_kind(path)
    try:
        if kind == "csv":
            _check_csv_fields(path)
            return pd.read_csv(path)
        if kind == "parquet":
            _require_pyarrow(path)
            return pd.read_parquet(path)
    except TableFileError:
        raise
    except Exception as error:  # OSError, ValueError, and the parsers' own types for malformed files
        raise TableFileError(f"{path}: cannot read the table ({type(error).__name__}: {error})") from error
    raise TableFileError(f"{path}: unknown table format; expected a .csv or .parquet file or a folder of parts")


def _check_csv_fields(path: str) -> None:
    """Every record has the header's number of fields (pandas would fill a short row with NaN silently)."""
    import csv

    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # pandas reads fields of any length
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        for record in reader:
            if record and len(record) != len(header):
                raise TableFileError(f"{path}, line {reader.line_num}: {len(record)} field(s), but the header has "
                                     f"{len(header)}; fix or remove that row")


def write_table(frame, path: str, *, overwrite: bool = False) -> str:
    """Write one DataFrame to a ``.csv`` or ``.parquet`` file atomically (an existing file only with ``overwrite``)."""
    write_chunks([frame], path, overwrite=overwrite)
    return path


def write_chunks(chunks: Iterable, path: str, *, overwrite: bool = False, manifest_extra: dict | None = None,
                 on_chunk=None) -> dict:
    """Stream DataFrames to ``path`` (see the module docstring); returns a summary dict.

    ``on_chunk(rows)`` is called after each chunk is written (for progress bars).
    An existing ``path`` (file or folder) is refused before any chunk is drawn unless ``overwrite``;
    then it is replaced only once the new output is complete. The job holds ``path``'s
    ``output_lock`` throughout.
    """
    with output_lock(path):  # another job writing path fails at once (OutputLockedError)
        return _write_chunks(chunks, path, overwrite, manifest_extra, on_chunk)


def _write_chunks(chunks: Iterable, path: str, overwrite: bool, manifest_extra: dict | None, on_chunk) -> dict:
    refuse_existing(path, overwrite)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(folder):  # temporaries a killed writer of this path left (we hold its lock: none is live)
        remove_temporaries(folder, os.path.basename(path))
    kind = output_kind(path)
    summary = {"path": os.path.abspath(path), "kind": kind, "rows": 0, "parts": []}
    if kind == "csv":
        def write(temporary: str) -> None:
            first = True
            for chunk in chunks:
                chunk.to_csv(temporary, index=False, header=first, mode="w" if first else "a")
                first = False
                summary["rows"] += len(chunk)
                if on_chunk:
                    on_chunk(len(chunk))
        atomic_write(path, write)
        return summary
    _require_pyarrow(path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind == "parquet":
        def write(temporary: str) -> None:
            writer = None
            try:
                for chunk in chunks:
                    table = pa.Table.from_pandas(chunk, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(temporary, table.schema)
                    writer.write_table(table.cast(writer.schema))
                    summary["rows"] += len(chunk)
                    if on_chunk:
                        on_chunk(len(chunk))
            finally:
                if writer is not None:
                    writer.close()
        atomic_write(path, write)
        return summary
    with atomic_folder(path, overwrite=overwrite) as folder:
        columns = None
        for number, chunk in enumerate(chunks):
            if number >= MAX_PARTS:
                raise TableFileError(f"{path}: more than 100000 parts; use larger chunks")
            name = part_name(number)
            chunk.to_parquet(os.path.join(folder, name), index=False)
            summary["parts"].append({"file": name, "first_row": summary["rows"], "rows": len(chunk)})
            summary["rows"] += len(chunk)
            columns = [str(c) for c in chunk.columns]
            if on_chunk:
                on_chunk(len(chunk))
        write_manifest(folder, summary["rows"], columns, summary["parts"], manifest_extra)
    return summary


def write_manifest(folder: str, rows: int, columns, parts: list[dict], extra: dict | None = None) -> str:
    """Write ``folder``/manifest.json (atomically): the rows, columns and parts (file, first row, rows) of a sample."""
    manifest = {"format": MANIFEST_FORMAT, "rows": rows, "columns": columns, "parts": parts, **(extra or {})}
    return write_json(os.path.join(folder, MANIFEST), manifest)


def part_name(number: int) -> str:
    """The file name of part ``number``: five digits keep the names sorting in row order.

    >>> part_name(7)
    'part-00007.parquet'
    """
    return f"part-{number:05d}.parquet"
