"""Test-time-compute strategies as LangGraph graphs.

- :mod:`graphs.compose` — the public composition layer a strategy graph is built from;
- :mod:`graphs.strategies` — the built-in strategies (Vote, Filter-Vote, Best-of-N, revision
  chains and their mix with parallel sampling, the compute-optimal router);
- :mod:`graphs.search` — the step-level search layer (beam search, lookahead, DVTS, REBASE);
- :mod:`graphs.registry` — the one strategy registry (``ttc run``, ``ttc eval``, the router);
- :mod:`graphs.evaluation` — the evaluation harness behind ``ttc eval``;
- :mod:`graphs.lab` — the exact theory of votes and the lab over real sample pools;
- :mod:`graphs.cli` — the ``ttc`` command.

Each builder returns an *uncompiled* ``StateGraph`` (callers pick the checkpointer and name at
compile time).
"""

from graphs.registry import Option, StrategySpec, get, register, strategies
from graphs.search import (
    build_beam_search_graph,
    build_dvts_graph,
    build_lookahead_graph,
    build_rebase_graph,
    build_search_graph,
)
from graphs.strategies.best_of_n import best_of_n_graph, build_best_of_n_graph
from graphs.strategies.filter_vote import build_filter_vote_graph, filter_vote_graph
from graphs.strategies.revision import build_mix_graph, build_revision_graph
from graphs.strategies.vote import build_vote_graph, vote_graph

__all__ = [
    "Option",
    "StrategySpec",
    "best_of_n_graph",
    "build_beam_search_graph",
    "build_best_of_n_graph",
    "build_dvts_graph",
    "build_filter_vote_graph",
    "build_lookahead_graph",
    "build_mix_graph",
    "build_rebase_graph",
    "build_revision_graph",
    "build_search_graph",
    "build_vote_graph",
    "filter_vote_graph",
    "get",
    "register",
    "strategies",
    "vote_graph",
]
