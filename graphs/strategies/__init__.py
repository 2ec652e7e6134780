"""The built-in strategies, each built on the public composition layer (:mod:`graphs.compose`)."""

from graphs.strategies.adaptive_vote import adaptive_vote_graph, build_adaptive_vote_graph
from graphs.strategies.best_of_n import (
    BestOfNOutput,
    best_of_n_graph,
    build_best_of_n_graph,
    select_best,
    select_weighted,
)
from graphs.strategies.deepconf import (
    build_deepconf_graph,
    build_deepconf_online_graph,
    confidence_vote,
    deepconf_graph,
    deepconf_online_graph,
)
from graphs.strategies.filter_vote import FilterVoteOutput, build_filter_vote_graph, filter_vote_graph
from graphs.strategies.revision import MixOutput, build_mix_graph, build_revision_graph, chain_depths
from graphs.strategies.vote import build_vote_graph, vote_graph

__all__ = [
    "BestOfNOutput",
    "FilterVoteOutput",
    "MixOutput",
    "adaptive_vote_graph",
    "best_of_n_graph",
    "build_adaptive_vote_graph",
    "build_best_of_n_graph",
    "build_deepconf_graph",
    "build_deepconf_online_graph",
    "build_filter_vote_graph",
    "build_mix_graph",
    "build_revision_graph",
    "build_vote_graph",
    "chain_depths",
    "confidence_vote",
    "deepconf_graph",
    "deepconf_online_graph",
    "filter_vote_graph",
    "select_best",
    "select_weighted",
    "vote_graph",
]
