"""Atomic, exclusive output: a crash or an error never leaves a half-written file under its
final name, and two jobs never write one output at once.

Each writer writes to a temporary name in the destination folder (same file system),
then renames it into place with ``os.replace`` (a file) or ``os.rename`` (a folder).
``output_lock(path)`` makes a job the only writer of ``path`` (its temporaries, its
``.partial`` folder) with an OS lock on ``path.lock`` that records the owner's host and
pid; the kernel drops the lock when the owner dies, so a stale lock never blocks a
rerun.

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = atomic_write(os.path.join(folder, "a.txt"), lambda tmp: open(tmp, "w").write("hi"))
    >>> open(path).read(), sorted(os.listdir(folder))
    ('hi', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import socket
import sys
import tempfile
import warnings
from typing import Callable, Iterator

from omegabridge.errors import OutputLockedError

__all__ = ["LOCK_SUFFIX", "output_lock", "refuse_existing", "atomic_write", "atomic_folder", "replace_folder", "remove_temporaries", "save_figure", "write_json", "json_safe"]


def refuse_existing(path: str, overwrite: bool) -> None:
    """Raise ``FileExistsError`` if ``path`` exists and ``overwrite`` is false: every output kind (a
    folder, a .csv or .parquet file, a checkpoint) refuses to replace what is there unless asked.

    >>> refuse_existing("/nonexistent/out.csv", overwrite=False)  # nothing there: fine
    """
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{os.path.abspath(path)} already exists (pass overwrite=True, or --overwrite, to replace it)")


LOCK_SUFFIX = ".lock"
_HELD: dict[str, list] = {}  # lock file -> [descriptor, depth]: this process's locks (re-entered, not re-taken)


@contextlib.contextmanager
def output_lock(path: str) -> Iterator[None]:
    """Hold the exclusive lock on output ``path`` (the file ``path.lock``) while the block runs.

    A second job asking for it while the first lives gets ``OutputLockedError`` at once,
    naming the first job's host, pid and start time. The lock is the kernel's (``flock``):
    it goes with the process that held it, so after a kill the next job takes it over.
    The same process may re-enter it (a command that locks its output, then saves into
    it). On a file system without locks it warns and goes on unlocked.

    >>> import os, tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "sample.csv")
    >>> with output_lock(out):
    ...     os.path.exists(out + ".lock")
    True
    >>> os.path.exists(out + ".lock")
    False
    """
    lock_path = os.path.abspath(path) + LOCK_SUFFIX
    if lock_path in _HELD:
        _HELD[lock_path][1] += 1
        try:
            yield
        finally:
            _HELD[lock_path][1] -= 1
        return
    descriptor = _acquire(path, lock_path)
    _HELD[lock_path] = [descriptor, 1]
    try:
        yield
    finally:
        del _HELD[lock_path]
        if descriptor is not None:
            with contextlib.suppress(OSError):  # unlinked while held, so no other job locks a file about to vanish
                os.unlink(lock_path)
            os.close(descriptor)


def _acquire(path: str, lock_path: str) -> int | None:
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): go on unlocked, and say so
        warnings.warn(f"{lock_path}: this platform has no flock; another job writing {path} would not be detected",
                      RuntimeWarning, stacklevel=4)
        return None

    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    while True:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(descriptor)
            os.close(descriptor)
            raise OutputLockedError(
                f"{os.path.abspath(path)} is being written by another job ({owner}); wait for it to finish or stop it "
                f"(its lock: {lock_path})") from None
        except OSError as error:  # e.g. ENOLCK on a network file system without lock support
            os.close(descriptor)
            warnings.warn(f"{lock_path}: cannot lock ({error.strerror}); another job writing {path} would not be detected",
                          RuntimeWarning, stacklevel=4)
            return None
        try:  # the previous owner may have unlinked the file between our open and our lock: lock the new one
            if os.stat(lock_path).st_ino == os.fstat(descriptor).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(descriptor)
    owner = {"host": socket.gethostname(), "pid": os.getpid(),
             "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "command": " ".join(sys.argv)[:500]}
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, (json.dumps(owner) + "\n").encode(), 0)
    return descriptor


def _read_owner(descriptor: int) -> str:
    try:
        owner = json.loads(os.pread(descriptor, 4096, 0).decode())
        return f"pid {owner['pid']} on host {owner['host']}, since {owner['since']}: {owner.get('command', '')}".rstrip(": ")
    except (OSError, ValueError, KeyError, TypeError):
        return "owner not yet recorded: it is starting"


def _temporary_name(path: str) -> tuple[str, str]:
    """(prefix, suffix) of the temporary files ``atomic_write`` makes for ``path``."""
    return "." + os.path.basename(path) + ".", ".tmp"


def remove_temporaries(folder: str, name: str | None = None) -> None:
    """Remove temporary files that atomic writes into ``folder`` left behind (a kill mid-write).

    ``name`` limits it to the temporaries of that one file; otherwise every one in ``folder`` goes.
    """
    prefix, suffix = _temporary_name(name) if name is not None else (".", ".tmp")
    for entry in os.listdir(folder):
        if not (entry.startswith(prefix) and entry.endswith(suffix)) or len(entry) <= len(prefix) + len(suffix):
            continue
        middle = entry[len(prefix):-len(suffix)]
        # With a name, only mkstemp's 8 random characters may follow the prefix: ".out." must not match ".out.csv.x.tmp".
        if name is None or (len(middle) == 8 and "." not in middle):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))


def save_figure(figure, path: str, dpi: int = 80) -> str:
    """Write a matplotlib ``figure`` to ``path`` as PNG atomically, then close it; returns ``path``."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=dpi))
    finally:
        plt.close(figure)


def _default_mode(path: str) -> None:
    os.chmod(path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode


def atomic_write(path: str, write: Callable[[str], None]) -> str:
    """Call ``write(temporary_path)``, then move the temporary file to ``path``; returns ``path``.

    On any error (or KeyboardInterrupt) the temporary file is removed and ``path`` is
    left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    prefix, suffix = _temporary_name(path)
    handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(handle)
    try:
        write(temporary)
        _default_mode(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


@contextlib.contextmanager
def atomic_folder(path: str, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary sibling folder to fill; on success it becomes ``path``.

    ``path`` must not exist unless ``overwrite`` (then the old folder is replaced only
    after the new one is complete). On an error the temporary folder is removed.
    """
    path = os.path.abspath(path)
    refuse_existing(path, overwrite)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    try:
        yield temporary
        replace_folder(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def replace_folder(source: str, destination: str) -> None:
    """Rename the complete folder ``source`` to ``destination``, replacing whatever stood there.

    The old ``destination`` is first moved aside and removed only once ``source`` is in
    place, so at every moment ``destination`` is either the old folder or the new one.
    """
    source, destination = os.path.abspath(source), os.path.abspath(destination)
    os.chmod(source, 0o777 & ~_umask())
    if not os.path.exists(destination):
        os.rename(source, destination)
        return
    parent = os.path.dirname(destination)
    old = tempfile.mkdtemp(prefix="." + os.path.basename(destination) + ".", suffix=".old", dir=parent)
    os.rmdir(old)
    os.rename(destination, old)
    os.rename(source, destination)
    if os.path.isdir(old):
        shutil.rmtree(old, ignore_errors=True)
    else:  # a plain file stood where the folder goes
        os.unlink(old)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def json_safe(value):
    """``value`` with NaN and infinities as None and numpy scalars as Python numbers (strict JSON).

    >>> json_safe({"a": float("nan"), "b": [1.5, float("inf")]})
    {'a': None, 'b': [1.5, None]}
    """
    import math

    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def write_json(path: str, value) -> str:
    """Write ``json_safe(value)`` to ``path`` (indented, strict JSON) atomically."""
    import json

    def dump(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(json_safe(value), handle, indent=2, allow_nan=False)
            handle.write("\n")

    return atomic_write(path, dump)
