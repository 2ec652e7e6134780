"""Beam search and lookahead search over reasoning steps, guided by a process reward model.

Beam search (Snell et al.; search-and-learn): sample ``n`` first steps; each round keep the
``n / beam_width`` best-scored unfinished prefixes and sample ``beam_width`` next steps from each;
stop when ``n`` solutions are finished, nothing is left to expand, or after ``max_rounds``.
Lookahead search scores each new step by greedily rolling out up to ``lookahead`` more steps and
scoring the end of the roll-out (``lookahead = 0`` is plain beam search; cost about
``n · (lookahead + 1)``). The answer is the weighted Best-of-N over the finished solutions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.graph import StateGraph
from langgraph.types import RetryPolicy

from graphs.compose import QuestionInput
from graphs.search.graph import (
    Expansion,
    Node,
    SearchOutput,
    SearchView,
    build_search_graph,
    check_beam_width,
    reward_of,
)
from nodes.context import RunContext
from nodes.endpoint import RETRY_POLICY
from nodes.scorers import Scorer

__all__ = ["BeamPolicy", "build_beam_search_graph", "build_lookahead_graph"]


@dataclass(frozen=True)
class BeamPolicy:
    beam_width: int
    name: str = "beam-search"

    def first(self, width: int) -> int:
        return width

    def expand(self, fresh: list[Node], completed: list[Node], width: int, view: SearchView) -> list[Expansion]:
        if len(completed) >= width:
            return []  # n solutions are finished: the outcome is decided
        keep = max(1, width // self.beam_width)
        active = sorted((n for n in fresh if not n["final"]), key=lambda n: (-reward_of(n), n["id"]))
        return [{"node": n["id"], "children": self.beam_width} for n in active[:keep]]


def build_beam_search_graph(
    n: int = 16,
    beam_width: int = 4,
    *,
    scorer: Scorer | None = None,
    max_rounds: int = 40,
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[Any, RunContext, QuestionInput, SearchOutput]:
    """Build beam search: ``n`` beams, ``beam_width`` children each (``n / beam_width`` kept).

    Args:
        n: number of beams (samples per round).
        beam_width: ``M``: children per kept beam.
        scorer: the process reward model (default :class:`nodes.scorers.SelfEvalPRM`).
        max_rounds: the round limit (40 in Snell et al.).

    Example:
        >>> graph = build_beam_search_graph(n=8, beam_width=2).compile()
    """
    check_beam_width(n, beam_width)
    return build_search_graph(BeamPolicy(beam_width), n, scorer=scorer, max_rounds=max_rounds, retry=retry)


def build_lookahead_graph(
    n: int = 16,
    beam_width: int = 4,
    lookahead: int = 3,
    *,
    scorer: Scorer | None = None,
    max_rounds: int = 40,
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[Any, RunContext, QuestionInput, SearchOutput]:
    """Build lookahead search: beam search whose steps are scored after a greedy roll-out of up
    to ``lookahead`` more steps.

    Example:
        >>> graph = build_lookahead_graph(n=4, beam_width=2, lookahead=2).compile()
    """
    check_beam_width(n, beam_width)
    policy = BeamPolicy(beam_width, name="lookahead")
    return build_search_graph(policy, n, scorer=scorer, max_rounds=max_rounds, lookahead=lookahead, retry=retry)
