"""DVTS, diverse verifier tree search (search-and-learn): ``n / beam_width`` independent subtrees.

Each subtree is a greedy beam of width one: every round its current node gets ``beam_width``
next steps, and the best-scored of them (compared only within the subtree) becomes its next
node; a subtree ends when that best step finishes the solution. Keeping the subtrees apart is
what keeps the candidates diverse. The answer is the weighted Best-of-N over finished solutions.
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

__all__ = ["DVTSPolicy", "build_dvts_graph"]


@dataclass(frozen=True)
class DVTSPolicy:
    beam_width: int
    name: str = "dvts"

    def first(self, width: int) -> int:
        return max(1, width // self.beam_width)  # one root step per subtree

    def expand(self, fresh: list[Node], completed: list[Node], width: int, view: SearchView) -> list[Expansion]:
        by_subtree: dict[int, list[Node]] = {}
        for node in fresh:
            by_subtree.setdefault(node["subtree"], []).append(node)
        out: list[Expansion] = []
        for subtree in sorted(by_subtree):
            best = min(by_subtree[subtree], key=lambda n: (-reward_of(n), n["id"]))
            if not best["final"]:  # the subtree's best step ends the solution: the subtree is done
                out.append({"node": best["id"], "children": self.beam_width})
        return out


def build_dvts_graph(
    n: int = 16,
    beam_width: int = 4,
    *,
    scorer: Scorer | None = None,
    max_rounds: int = 40,
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[Any, RunContext, QuestionInput, SearchOutput]:
    """Build DVTS with ``n / beam_width`` subtrees of ``beam_width`` children per round.

    Example:
        >>> graph = build_dvts_graph(n=8, beam_width=2).compile()
    """
    check_beam_width(n, beam_width)
    return build_search_graph(DVTSPolicy(beam_width), n, scorer=scorer, max_rounds=max_rounds, retry=retry)
