"""Monte-Carlo tree search over reasoning steps with UCT (Kocsis & Szepesvári), in batches.

Every node of the tree was evaluated once when it was made: its value is the process scorer's
score of its newest step (or, with ``rollout > 0``, the score at the end of a greedy roll-out of
up to that many more steps). Back-propagation is therefore a sum over the subtree:
``N(v)`` = the nodes in ``v``'s subtree (itself included) and ``W(v)`` their values, so
``Q(v) = W(v) / N(v)``; the root's ``N`` is every node but the root.

A round selects nodes to expand by descending from the root, at each node taking the child of
largest ``UCT(c) = Q(c) + C · sqrt(ln N(parent) / N(c))`` (ties to the older child) among the
children with something left to expand. The descent ends at an unexpanded unfinished node (a
leaf), or at a *saturated* node, one whose children have all finished: it gets ``M`` next steps in
one request (``n = M``), which are scored and so back-propagated before the next round. Expanding
a saturated node again (a simple form of widening) keeps the search spending its budget on the
prefixes it values once their first continuations are finished. ``n / M`` nodes are selected a
round (tree parallelisation with a virtual loss: each selected path counts one more visit of value
0 while the round's later nodes are chosen, and a node is selected once), so a round costs ``n``
steps like beam search's. With ``n = M`` it is sequential UCT.

The search stops when ``n`` solutions are finished, or at the round limit or a budget cap. The
answer is by *visits* (from the root, follow the most visited child whose subtree holds a finished
solution, ties to the larger ``Q`` and then the older, down to a finished solution) or by *value*
(the finished solution with the largest value).

Where this differs from textbook MCTS: children come ``M`` at a time and a node is expanded again
only once all its children are finished (no progressive widening by visit count: tried on the
tests' fake model, ``max(M, ceil(N^0.5))`` children kept widening the top of the tree and never
finished a solution in 40 rounds); finished solutions are never re-simulated, since sampling a step from a
finished solution has nothing to add. Expanded only once, the tree was used up at
``n = 16``, ``M = 2`` after about 22 calls on easy arithmetic (the embedded model), so larger budgets
bought nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

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
    weighted_by_reward,
)
from nodes.context import RunContext
from nodes.endpoint import RETRY_POLICY
from nodes.errors import ConfigError
from nodes.scorers import Scorer

__all__ = [
    "AnswerBy",
    "MCTSPolicy",
    "Statistics",
    "build_mcts_graph",
    "tree_statistics",
    "uct_select",
]

AnswerBy = Literal["visits", "value", "vote"]


@dataclass
class Statistics:
    """Back-propagated statistics of one node: visits ``N``, total value ``W``, its children, whether
    it is *saturated* (expanded, and every child finished: it may be expanded again) and closed
    (finished)."""

    visits: float
    value: float
    children: list[int]
    closed: bool
    saturated: bool = False

    @property
    def q(self) -> float:
        return self.value / self.visits if self.visits else 0.0


def tree_statistics(tree: Mapping[int, Node]) -> dict[int, Statistics]:
    """``N``, ``W``, children and state of every node (an unscored node counts a visit of value 0).

    Example:
        >>> root = {"id": 0, "parent": None, "depth": 0, "reward": None, "final": False}
        >>> a = {"id": 1, "parent": 0, "depth": 1, "reward": 0.5, "final": False}
        >>> b = {"id": 2, "parent": 1, "depth": 2, "reward": 1.0, "final": True}
        >>> s = tree_statistics({0: root, 1: a, 2: b})  # type: ignore[dict-item]
        >>> s[0].visits, s[1].visits, s[1].q, s[1].saturated, s[2].closed
        (2.0, 2.0, 0.75, True, True)
    """
    stats = {i: Statistics(0.0, 0.0, [], bool(n["final"])) for i, n in tree.items()}
    for n in sorted(tree.values(), key=lambda n: n["id"]):
        if n["parent"] is not None:
            stats[n["parent"]].children.append(n["id"])
    for n in sorted(tree.values(), key=lambda n: -n["depth"]):  # leaves first
        s = stats[n["id"]]
        if n["parent"] is not None:
            s.visits += 1
            s.value += n["reward"] or 0.0
        s.saturated = not s.closed and bool(s.children) and all(stats[c].closed for c in s.children)
        if n["parent"] is not None:
            stats[n["parent"]].visits += s.visits
            stats[n["parent"]].value += s.value
    return stats


def uct_select(
    stats: Mapping[int, Statistics], exploration: float, taken: Iterable[int] = (), root: int = 0
) -> list[int] | None:
    """The path (node ids from the root) to the node UCT selects for expansion: an unexpanded
    unfinished node, or a saturated one (all its children finished) where the descent ends; None
    if nothing is left once the ``taken`` nodes are set aside.

    Example:
        >>> s = {0: Statistics(2, 1.0, [1, 2], False), 1: Statistics(1, 0.9, [], False),
        ...      2: Statistics(1, 0.1, [], False)}
        >>> uct_select(s, 1.0)
        [0, 1]
    """
    blocked = set(taken)
    if _exhausted(stats, root, blocked):
        return None
    path = [root]
    while True:
        here = stats[path[-1]]
        options = [c for c in here.children if not _exhausted(stats, c, blocked)]
        if not options:  # an unexpanded node, or a saturated one: expand it
            return path
        log_n = math.log(max(here.visits, 1.0))
        # rounded: sums of the same values in another order must still tie (ties go to the older child)
        path.append(max(options, key=lambda c: (round(_uct(stats[c], log_n, exploration), 9), -c)))


def _uct(s: Statistics, log_parent: float, exploration: float) -> float:
    return s.q + exploration * math.sqrt(log_parent / s.visits) if s.visits else math.inf


def _exhausted(stats: Mapping[int, Statistics], node: int, blocked: set[int]) -> bool:
    """Nothing left to expand under ``node`` once the ``blocked`` nodes are set aside."""
    s = stats[node]
    if s.closed:
        return True
    if not s.children or s.saturated:
        return node in blocked
    return all(_exhausted(stats, c, blocked) for c in s.children)


@dataclass(frozen=True)
class MCTSPolicy:
    """Batched UCT as a search :class:`~graphs.search.Policy` (see the module's docstring).

    Attributes:
        children: ``M``, next steps sampled for a selected leaf (one request).
        exploration: the UCT constant ``C``.
        answer_by: ``visits``, ``value`` or ``vote``.
    """

    children: int = 4
    exploration: float = math.sqrt(2)
    answer_by: AnswerBy = "visits"
    name: str = "mcts"

    def first(self, width: int) -> int:
        return self.children

    def expand(self, fresh: list[Node], completed: list[Node], width: int, view: SearchView) -> list[Expansion]:
        if len(completed) >= width:
            return []  # n solutions are finished
        stats = tree_statistics(view.tree)
        taken: list[int] = []
        for _ in range(max(1, width // self.children)):
            path = uct_select(stats, self.exploration, taken)
            if path is None:
                break
            taken.append(path[-1])
            for i in path:  # virtual loss: one more visit of value 0 on the way to a node already chosen
                stats[i].visits += 1
        return [{"node": leaf, "children": self.children} for leaf in taken]

    def decide(self, finished: list[Node], view: SearchView) -> Mapping[str, Any]:
        """By visits (the most visited path down to a finished solution), by value, or by a vote
        (the weighted vote by reward over every finished solution, as the other searches answer)."""
        if self.answer_by == "vote":
            return {**weighted_by_reward(finished, view), "by": "vote"}
        answering = {n["id"] for n in finished}
        if not answering:
            return {"answer": None, "votes": {}, "supporters": [], "tie": False, "voters": 0, "by": self.answer_by}
        stats = tree_statistics(view.tree)
        if self.answer_by == "value":
            chosen = max(finished, key=lambda n: (n["reward"] or 0.0, -n["id"]))["id"]
        else:
            holds: dict[int, bool] = {}
            for n in sorted(view.tree.values(), key=lambda n: -n["depth"]):
                i = n["id"]
                holds[i] = i in answering or any(holds.get(c, False) for c in stats[i].children)
            chosen = 0
            while chosen not in answering:
                options = [c for c in stats[chosen].children if holds[c]]
                chosen = max(options, key=lambda c: (stats[c].visits, round(stats[c].q, 9), -c))
        node = view.tree[chosen]
        return {"answer": node["answer"], "votes": {node["answer"]: stats[chosen].visits}, "supporters": [chosen],
                "tie": False, "voters": len(answering), "by": self.answer_by, "node": chosen}  # fmt: skip


def build_mcts_graph(
    n: int = 16,
    beam_width: int = 4,
    *,
    exploration: float = math.sqrt(2),
    rollout: int = 0,
    answer_by: AnswerBy = "visits",
    scorer: Scorer | None = None,
    max_rounds: int = 40,
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[Any, RunContext, QuestionInput, SearchOutput]:
    """Build MCTS: ``n / beam_width`` leaves a round get ``beam_width`` children each.

    Args:
        n: steps a round and the number of finished solutions that ends the search.
        beam_width: ``M``, children of a selected leaf (sampled with ``n = M`` in one request).
        exploration: the UCT constant ``C`` (rewards are in [0, 1]; √2 is UCB1's).
        rollout: evaluate a new node by a greedy roll-out of up to this many steps (0: its own score).
        answer_by: ``visits``, ``value`` or ``vote`` (a weighted vote by reward over the finished solutions).
        scorer: the process reward model (default :class:`nodes.scorers.SelfEvalPRM`).
        max_rounds: the round limit.

    Example:
        >>> graph = build_mcts_graph(n=4, beam_width=2, exploration=1.0).compile()
    """
    check_beam_width(n, beam_width)
    if not exploration >= 0 or math.isinf(exploration):
        raise ConfigError(f"UCT exploration constant must be 0 or more, got {exploration!r}")
    if isinstance(rollout, bool) or not isinstance(rollout, int) or rollout < 0:
        raise ConfigError(f"rollout must be a whole number of steps, 0 or more, got {rollout!r}")
    if answer_by not in ("visits", "value", "vote"):
        raise ConfigError(f"answer_by must be visits, value or vote, got {answer_by!r}")
    policy = MCTSPolicy(beam_width, exploration, answer_by)
    return build_search_graph(
        policy, n, scorer=scorer, max_rounds=max_rounds, lookahead=rollout, decide=policy.decide, retry=retry
    )
