"""The ``ttc`` command (see :mod:`graphs.cli.main`)."""

from graphs.cli.main import main

__all__ = ["main"]
