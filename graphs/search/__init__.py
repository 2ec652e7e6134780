"""The public search layer: a step-level tree search is a :class:`Policy` and :func:`build_search_graph`.

Built-in policies: :class:`BeamPolicy` (beam search and lookahead), :class:`DVTSPolicy` and
:class:`RebasePolicy`; a new search implements ``first`` and ``expand`` and gets the rest (the
step and reward waves, budget trimming, failure handling, the weighted vote over finished
solutions) from :func:`build_search_graph`.
"""

from graphs.search.beam import BeamPolicy, build_beam_search_graph, build_lookahead_graph
from graphs.search.dvts import DVTSPolicy, build_dvts_graph
from graphs.search.graph import (
    Expansion,
    Node,
    Policy,
    SearchOutput,
    build_search_graph,
    check_beam_width,
    reward_of,
)
from graphs.search.rebase import RebasePolicy, allocate, build_rebase_graph

__all__ = [
    "BeamPolicy",
    "DVTSPolicy",
    "Expansion",
    "Node",
    "Policy",
    "RebasePolicy",
    "SearchOutput",
    "allocate",
    "build_beam_search_graph",
    "build_dvts_graph",
    "build_lookahead_graph",
    "build_rebase_graph",
    "build_search_graph",
    "check_beam_width",
    "reward_of",
]
