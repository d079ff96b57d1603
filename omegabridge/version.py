"""The package version, in a module of its own so that any layer can read it without importing the package root.

Example:
    >>> from omegabridge.version import __version__
    >>> __version__.count(".")
    2
"""

__version__ = "0.1.0"
