"""Test-time-compute strategies as LangGraph graphs, one module each.

Each module exposes a ``build_*_graph(...)`` builder that returns an *uncompiled*
``StateGraph`` (callers pick the checkpointer and name at compile time) and a compiled default.
"""

from collections.abc import Callable
from typing import Any

from langgraph.graph import StateGraph

from graphs.filter_vote import build_filter_vote_graph, filter_vote_graph
from graphs.vote import build_vote_graph, vote_graph

STRATEGIES: dict[str, Callable[[int], StateGraph[Any, Any, Any, Any]]] = {
    "vote": build_vote_graph,
    "filter-vote": build_filter_vote_graph,
}
"""Builders by the name ``ttc run --strategy`` takes."""

__all__ = ["STRATEGIES", "build_filter_vote_graph", "build_vote_graph", "filter_vote_graph", "vote_graph"]
