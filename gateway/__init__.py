"""Lineside gateway service: configuration, store, supervisor, CLI and health."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lineside")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
