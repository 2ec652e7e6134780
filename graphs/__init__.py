"""Test-time-compute strategies as LangGraph graphs, one module each.

Each module exposes a ``build_*_graph(...)`` builder that returns an *uncompiled*
``StateGraph`` (callers pick the checkpointer and name at compile time) and a compiled default.
"""

from collections.abc import Callable
from typing import Any

from langgraph.graph import StateGraph

from graphs.beam_search import build_beam_search_graph, build_lookahead_graph
from graphs.best_of_n import best_of_n_graph, build_best_of_n_graph
from graphs.dvts import build_dvts_graph
from graphs.filter_vote import build_filter_vote_graph, filter_vote_graph
from graphs.rebase import build_rebase_graph
from graphs.revision import build_mix_graph, build_revision_graph
from graphs.vote import build_vote_graph, vote_graph

STRATEGIES: dict[str, Callable[..., StateGraph[Any, Any, Any, Any]]] = {
    "vote": build_vote_graph,
    "filter-vote": build_filter_vote_graph,
    "best-of-n": build_best_of_n_graph,
    "weighted-best-of-n": lambda n, **kwargs: build_best_of_n_graph(n, weighted=True, **kwargs),
    "beam-search": build_beam_search_graph,
    "lookahead": build_lookahead_graph,
    "dvts": build_dvts_graph,
    "rebase": build_rebase_graph,
    "revision": lambda n, **kwargs: build_mix_graph(n, 1, **kwargs),
    "mix": build_mix_graph,
}
"""Builders by the name ``ttc run --strategy`` takes; the first argument is the number of samples."""

__all__ = [
    "STRATEGIES",
    "best_of_n_graph",
    "build_beam_search_graph",
    "build_best_of_n_graph",
    "build_dvts_graph",
    "build_filter_vote_graph",
    "build_lookahead_graph",
    "build_mix_graph",
    "build_rebase_graph",
    "build_revision_graph",
    "build_vote_graph",
    "filter_vote_graph",
    "vote_graph",
]
