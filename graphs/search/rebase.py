"""REBASE (Wu et al.): reward-balanced expansion of a search tree.

:func:`allocate` is the expansion rule, exactly as in the authors' ``rebase.py``
(shared/specs/algorithms.md §4): candidates are taken in descending reward order, each gets
``W_j = ceil(B · w_j / S)`` children with ``w_j = exp(R_j / T_b)``, then ``B -= W_j`` and
``S -= w_j``. The allocations always sum to the budget ``B``.

:func:`build_rebase_graph` is the search: the root gets ``n`` children; each round the budget is
``n`` minus the finished solutions, and the unfinished nodes of the newest depth share it by
:func:`allocate` over their rewards (a node allocated nothing is pruned). The answer is the
weighted Best-of-N over the finished solutions (the paper's scripts use weighted majority).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.graph import StateGraph
from langgraph.types import RetryPolicy

from graphs.compose import QuestionInput
from graphs.search.graph import Expansion, Node, SearchOutput, SearchView, build_search_graph
from nodes.context import RunContext
from nodes.endpoint import RETRY_POLICY
from nodes.scorers import Scorer

__all__ = ["RebasePolicy", "allocate", "build_rebase_graph"]


def allocate(rewards: Sequence[float], budget: int, temperature: float = 0.2) -> list[int]:
    """How many children each candidate gets, in the order of ``rewards``.

    Args:
        rewards: the candidates' rewards (e.g. the PRM score of their last step).
        budget: children to hand out (the remaining width).
        temperature: the softmax temperature ``T_b`` (0.2 in the paper's configuration).

    Example:
        >>> allocate([0.9, 0.1, 0.5], budget=8, temperature=0.2)
        [7, 0, 1]
        >>> allocate([0.3, 0.3, 0.3], budget=5)  # equal rewards: as even as ceil allows
        [2, 2, 1]
    """
    if budget < 0 or isinstance(budget, bool) or not isinstance(budget, int):
        raise ValueError(f"budget must be a non-negative integer, got {budget!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    if not rewards:
        if budget:
            raise ValueError(f"cannot allocate a budget of {budget} to no candidates")
        return []
    order = sorted(range(len(rewards)), key=lambda i: -rewards[i])  # stable: ties keep their order
    top = max(rewards)
    # exp((R - max)/T): the same ratios w_j / S, without overflow
    weights = [math.exp((rewards[i] - top) / temperature) for i in order]
    remaining_weight = math.fsum(weights)
    out = [0] * len(rewards)
    left = budget
    for position, (i, w) in enumerate(zip(order, weights, strict=True)):
        if position == len(order) - 1:
            share = left  # the last one's ceil(B * w / S) is B itself; say so exactly
        else:
            share = min(left, math.ceil(left * w / remaining_weight)) if remaining_weight > 0 else 0
        out[i] = share
        left -= share
        remaining_weight -= w
    return out


@dataclass(frozen=True)
class RebasePolicy:
    temperature: float = 0.2
    name: str = "rebase"

    def first(self, width: int) -> int:
        return width

    def expand(self, fresh: list[Node], completed: list[Node], width: int, view: SearchView) -> list[Expansion]:
        budget = width - len(completed)  # each finished solution uses up one unit of width
        candidates = [n for n in fresh if not n["final"]]
        if budget <= 0 or not candidates:
            return []
        rewards = [n["reward"] if n["reward"] is not None else 0.0 for n in candidates]
        shares = allocate(rewards, budget, self.temperature)
        return [{"node": n["id"], "children": w} for n, w in zip(candidates, shares, strict=True) if w > 0]


def build_rebase_graph(
    n: int = 16,
    *,
    temperature: float = 0.2,
    scorer: Scorer | None = None,
    max_rounds: int = 25,
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[Any, RunContext, QuestionInput, SearchOutput]:
    """Build REBASE with width ``n`` and balance temperature ``T_b`` (depth limit 25 as in the paper).

    Example:
        >>> graph = build_rebase_graph(n=8, temperature=0.2).compile()
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    return build_search_graph(RebasePolicy(temperature), n, scorer=scorer, max_rounds=max_rounds, retry=retry)
