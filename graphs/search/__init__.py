"""The public search layer: a step-level tree search is a :class:`Policy` and :func:`build_search_graph`.

Built-in policies: :class:`BeamPolicy` (beam search and lookahead), :class:`DVTSPolicy`,
:class:`RebasePolicy`, :class:`ParticlePolicy` (particle filtering and particle Gibbs) and
:class:`MCTSPolicy`; a new search implements ``first`` and ``expand`` (which sees the whole tree
through a :class:`SearchView`) and gets the rest (the step and reward waves, budget trimming,
failure handling, the answer from the finished solutions: a weighted vote by reward unless a
``decide`` function is given) from :func:`build_search_graph`.
"""

from graphs.search.beam import BeamPolicy, build_beam_search_graph, build_lookahead_graph
from graphs.search.dvts import DVTSPolicy, build_dvts_graph
from graphs.search.graph import (
    Decide,
    Expansion,
    Node,
    Policy,
    SearchOutput,
    SearchView,
    build_search_graph,
    check_beam_width,
    reward_of,
    weighted_by_reward,
)
from graphs.search.mcts import MCTSPolicy, Statistics, build_mcts_graph, tree_statistics, uct_select
from graphs.search.particles import (
    ParticlePolicy,
    build_particle_filter_graph,
    effective_sample_size,
    particle_weights,
    resample,
)
from graphs.search.rebase import RebasePolicy, allocate, build_rebase_graph

__all__ = [
    "BeamPolicy",
    "DVTSPolicy",
    "Decide",
    "Expansion",
    "MCTSPolicy",
    "Node",
    "ParticlePolicy",
    "Policy",
    "RebasePolicy",
    "SearchOutput",
    "SearchView",
    "Statistics",
    "allocate",
    "build_beam_search_graph",
    "build_dvts_graph",
    "build_lookahead_graph",
    "build_mcts_graph",
    "build_particle_filter_graph",
    "build_rebase_graph",
    "build_search_graph",
    "check_beam_width",
    "effective_sample_size",
    "particle_weights",
    "resample",
    "reward_of",
    "tree_statistics",
    "uct_select",
    "weighted_by_reward",
]
