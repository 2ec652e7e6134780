"""The ``ttc`` command: ``run`` (:mod:`~graphs.cli.run`), ``eval`` (:mod:`~graphs.cli.evaluate`) and
``serve`` (:mod:`~graphs.cli.main`), their flags in :mod:`~graphs.cli.parser`."""

from graphs.cli.evaluate import format_eval
from graphs.cli.main import amain, main
from graphs.cli.parser import build_parser, strategy_options
from graphs.cli.run import format_result

__all__ = ["amain", "build_parser", "format_eval", "format_result", "main", "strategy_options"]
