"""Every named exception of omegabridge, in one place. Each subclasses the built-in error a caller
would expect to catch, and its message names the problem: the column, row, file, step or parameter.

Example:
    >>> from omegabridge.errors import DomainError
    >>> issubclass(DomainError, ValueError)
    True
"""

__all__ = [
    "DomainError", "ModelOutputError", "BackendUnavailableError", "SchemaError", "CheckpointError", "NotFittedError",
    "TrainingCheckpointError", "TableFileError", "OutputLockedError", "MissingDependencyError", "UsageError",
]


class DomainError(ValueError):
    """Data that does not lie in the declared domain (the message names columns and row counts)."""


class ModelOutputError(RuntimeError):
    """A model returned a drift of the wrong shape or with non-finite values (the message names the step)."""


class BackendUnavailableError(RuntimeError):
    """A backend was asked for by name but cannot run here (the message says why)."""


class SchemaError(ValueError):
    """A schema that cannot describe the data (the message names the column and, where known, the row)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded (the message names the file and why)."""


class NotFittedError(RuntimeError):
    """``sample``, ``transform`` or ``save`` was called before ``fit``."""


class TrainingCheckpointError(ValueError):
    """A training checkpoint that cannot be resumed (the message names the file and why)."""


class TableFileError(ValueError):
    """A table file that cannot be read or written (the message names the path)."""


class OutputLockedError(RuntimeError):
    """Another live job is writing the same output (the message names the output and that job's host and pid)."""


class MissingDependencyError(RuntimeError):
    """The demo's optional dependencies (statsmodels, pandas, scikit-learn) are not installed."""


class UsageError(Exception):
    """Bad command-line usage found after parsing (the CLI reports it with exit code 2)."""
