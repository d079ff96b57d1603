"""Named exceptions. Each subclasses the built-in error a caller would expect to catch.

Example:
    >>> from omegabridge.errors import DomainError
    >>> issubclass(DomainError, ValueError)
    True
"""


class DomainError(ValueError):
    """Data that does not lie in the declared domain (the message names columns and row counts)."""


class ModelOutputError(RuntimeError):
    """A model returned a drift of the wrong shape or with non-finite values (the message names the step)."""


class BackendUnavailableError(RuntimeError):
    """A backend was asked for by name but cannot run here (the message says why)."""
