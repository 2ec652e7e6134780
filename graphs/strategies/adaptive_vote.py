"""Adaptive vote: sample in waves and stop as soon as the winner is decided (at most ``k`` samples).

Topology::

    START ─Send→ propose → tally (─Send→ propose → tally …) → vote → END

The planner asks a :class:`StoppingRule` how many more samples to draw given the answer counts so
far (samples that state no answer never count, so "no answer" is never a winner), draws them as
one wave (requests of at most ``max_n``, trimmed to the budget), and repeats until the rule says
stop or ``k`` samples are drawn. Nothing is in flight when the rule decides: a wave ends before the
planner runs (the planner is a barrier), so stopping wastes no request; the ledger holds exactly
what was drawn.

Rules (the references' defaults):

- :class:`BetaRule` (Aggarwal et al., EMNLP 2023, "Let's Sample Step by Step"): with ``v1`` and
  ``v2`` the counts of the two most frequent answers, stop when
  ``P(p1 > p2) = 1 − I_{1/2}(v1 + 1, v2 + 1) ≥ threshold`` (0.95), the probability under a uniform
  prior that the leader's share exceeds the runner-up's, a binomial sum computed exactly. One
  sample a wave, as in the paper. (its_hub 1.2.0's ``BetaSelfConsistency`` uses the same sum but
  launches every request at once and cancels the unfinished ones.)
- :class:`DirichletRule` (the same paper, more than two answers): stop when the leader is the
  largest share with posterior probability ``≥ threshold`` under ``Dirichlet(counts + 1)``,
  estimated from a fixed number of seeded draws, so a decision is reproducible.
- :class:`WindowRule` (Li et al., ICLR 2024, Early-Stopping Self-Consistency): draw windows of
  ``window`` samples (8); stop after the first window whose answers all agree.
- :class:`SupermajorityRule` (its_hub 1.2.0's ``AdaptiveSelfConsistency``): draw 2, then double the
  total each round; stop when ``threshold`` (75%) of the samples that state an answer agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from graphs.compose import (
    RECURSION_LIMIT,
    QuestionInput,
    StrategyOutput,
    StrategyState,
    add_final,
    add_planner,
    add_worker,
    check_count,
    decided,
    finish,
    plan_proposals,
    proposals_issued,
    wave,
)
from nodes.answers import group_answers
from nodes.context import RunContext, context_of
from nodes.endpoint import RETRY_POLICY
from nodes.errors import ConfigError
from nodes.kinds import PROPOSE
from nodes.vote import plurality_vote

__all__ = [
    "RULES",
    "BetaRule",
    "DirichletRule",
    "StoppingRule",
    "SupermajorityRule",
    "WindowRule",
    "adaptive_vote_graph",
    "answer_counts",
    "beta_stop_probability",
    "build_adaptive_vote_graph",
    "make_rule",
]


class StoppingRule(Protocol):
    """Decides how many more samples to draw: 0 means the winner is decided."""

    @property
    def name(self) -> str: ...

    def more(self, counts: Sequence[int], drawn: int, answers: Sequence[str | None] = ()) -> int:
        """``counts``: each stated answer's count, largest first; ``drawn``: samples so far
        (those stating no answer included); ``answers``: the samples' answers in sample order.
        Returns the next wave's size (0: stop)."""
        ...


def beta_stop_probability(v1: int, v2: int) -> float:
    """``P(p1 > p2)`` for the two leading answers' counts under a uniform prior:
    ``1 − I_{1/2}(v1 + 1, v2 + 1) = 1 − Σ_{j ≤ v2} C(n, j) / 2^n`` with ``n = v1 + v2 + 1``.

    Example:
        >>> round(beta_stop_probability(4, 0), 4), round(beta_stop_probability(3, 1), 4)
        (0.9688, 0.8125)
    """
    n = v1 + v2 + 1
    below = sum(math.comb(n, j) for j in range(v2 + 1))
    return 1.0 - below / float(2**n)


@dataclass(frozen=True)
class BetaRule:
    threshold: float = 0.95
    step: int = 1
    name: str = "beta"

    def more(self, counts: Sequence[int], drawn: int, answers: Sequence[str | None] = ()) -> int:
        if not drawn:
            return self.step
        v1, v2 = [*counts, 0, 0][:2]
        return 0 if v1 and beta_stop_probability(v1, v2) >= self.threshold else self.step


@dataclass(frozen=True)
class DirichletRule:
    threshold: float = 0.95
    step: int = 1
    draws: int = 4000
    name: str = "dirichlet"

    def more(self, counts: Sequence[int], drawn: int, answers: Sequence[str | None] = ()) -> int:
        if not drawn:
            return self.step
        if not counts or not counts[0]:
            return self.step
        if len(counts) == 1:
            counts = [counts[0], 0]  # one more, unseen answer keeps the leader's share uncertain
        rng = np.random.default_rng(sum(counts) * 7919 + len(counts))  # seeded by the counts: reproducible
        shares = rng.dirichlet(np.asarray(counts, dtype=float) + 1.0, size=self.draws)
        leader_wins = float(np.mean(shares.argmax(axis=1) == 0))
        return 0 if leader_wins >= self.threshold else self.step


@dataclass(frozen=True)
class WindowRule:
    window: int = 8
    name: str = "esc"

    def more(self, counts: Sequence[int], drawn: int, answers: Sequence[str | None] = ()) -> int:
        last = list(answers[-self.window :]) if drawn and drawn % self.window == 0 else []
        return 0 if last and None not in last and len(answer_counts(last)) == 1 else self.window


@dataclass(frozen=True)
class SupermajorityRule:
    threshold: float = 0.75
    start: int = 2
    name: str = "supermajority"

    def more(self, counts: Sequence[int], drawn: int, answers: Sequence[str | None] = ()) -> int:
        if not drawn:
            return self.start
        stated = sum(counts)
        if stated and counts[0] / stated >= self.threshold:
            return 0
        return drawn  # double the total


RULES = ("beta", "dirichlet", "esc", "supermajority")


def make_rule(name: str, threshold: float | None = None, window: int | None = None) -> StoppingRule:
    """The rule called ``name`` with its defaults, or the given threshold (and ESC's window)."""
    if threshold is not None and not 0.5 < threshold <= 1.0:
        raise ConfigError(f"a stopping threshold is a probability above 0.5, got {threshold}")
    if name == "beta":
        return BetaRule(threshold or 0.95)
    if name == "dirichlet":
        return DirichletRule(threshold or 0.95)
    if name == "esc":
        return WindowRule(check_count(window or 8, "window"))
    if name == "supermajority":
        return SupermajorityRule(threshold or 0.75)
    raise ConfigError(f"unknown stopping rule {name!r} ({', '.join(RULES)})")


def answer_counts(answers: Sequence[str | None]) -> list[int]:
    """Each stated answer's count (equivalent answers together), largest first."""
    return sorted((len(g.members) for g in group_answers(list(answers))), reverse=True)


def build_adaptive_vote_graph(
    k: int = 16,
    *,
    stop: str = "beta",
    threshold: float | None = None,
    window: int | None = None,
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[StrategyState, RunContext, QuestionInput, StrategyOutput]:
    """Build the adaptive vote: at most ``k`` samples, drawn in waves until ``stop`` decides.

    Args:
        k: the sample cap.
        stop: ``beta``, ``dirichlet``, ``esc`` or ``supermajority`` (see the module docstring).
        threshold: the rule's threshold (beta and dirichlet 0.95, supermajority 0.75).
        window: ESC's window (8).
        retry: retry policy of the propose node.

    Example:
        >>> graph = build_adaptive_vote_graph(16, stop="esc", window=4).compile()
    """
    check_count(k)
    rule = make_rule(stop, threshold, window)

    async def plan(state: StrategyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = context_of(runtime)
        answers = [c["answer"] for c in sorted(state.get("candidates") or [], key=lambda c: c["index"])]
        drawn = proposals_issued(state)
        size = rule.more(answer_counts(answers), drawn, answers)
        target = min(k, drawn + size)
        tasks, report = plan_proposals(state, ctx, target) if size and drawn < k else ([], None)
        extra = {"budget": report} if report else {}
        return wave("propose", tasks, **extra) if tasks else finish("vote", **extra)

    async def vote(state: StrategyState) -> dict[str, Any]:
        result = plurality_vote(state.get("candidates") or [])
        return decided(state, {**result, "drawn": proposals_issued(state), "cap": k, "rule": rule.name})

    builder = StateGraph(
        StrategyState, context_schema=RunContext, input_schema=QuestionInput, output_schema=StrategyOutput
    )
    add_worker(builder, PROPOSE, retry=retry)
    add_final(builder, "vote", vote)
    add_planner(builder, plan, ["propose"], "vote", first="propose", max_rounds=k + 2)
    return builder


def adaptive_vote_graph(k: int = 16, **options: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
    """``build_adaptive_vote_graph(k, **options)`` compiled without a checkpointer."""
    graph = build_adaptive_vote_graph(k, **options).compile(name=f"adaptive-vote-k{k}")
    return graph.with_config(recursion_limit=RECURSION_LIMIT)
