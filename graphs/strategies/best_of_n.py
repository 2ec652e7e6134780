"""Best-of-N and weighted Best-of-N: ``n`` proposals, each scored by a verifier or reward model.

Topology::

    START ─Send→ propose → tally ─Send×n→ score → tally → select → END

Best-of-N answers with the best-scored candidate that states an answer (ties: the first
sample). Weighted Best-of-N sums the scores of equivalent answers and picks the largest sum
(Snell et al.: ``â = argmax_a Σ_i 1[ans_i = a]·score_i``). Step scores are aggregated with
``last | min | prod | mean``. A candidate whose scoring failed or could not tell weighs nothing;
if no candidate has a score the answer is the plurality vote, and the output says so.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy

from graphs.compose import (
    QuestionInput,
    StrategyOutput,
    StrategyState,
    add_final,
    add_planner,
    add_worker,
    check_count,
    decided,
    propose_then_judge,
)
from nodes.context import RunContext
from nodes.endpoint import RETRY_POLICY
from nodes.kinds import PROPOSE, NodeKind, scoring, wave_scoring
from nodes.scorers import Aggregation, JudgeGrade, Scorer, split_steps
from nodes.types import Candidate, Score
from nodes.vote import plurality_vote, weighted_vote

__all__ = ["BestOfNOutput", "build_best_of_n_graph", "select_best", "select_weighted"]


class BestOfNOutput(StrategyOutput):
    """Best-of-N's output: the common keys and every candidate's score."""

    scores: list[Score]


def select_best(candidates: list[Candidate], scores: list[Score]) -> dict[str, Any]:
    """The best-scored candidate that states an answer (ties: lowest index)."""
    by_index = {s["index"]: s["score"] for s in scores}
    scored: list[tuple[float, Candidate]] = [
        (s, c) for c in candidates if (s := by_index.get(c["index"])) is not None and c["answer"] is not None
    ]
    if not scored:
        return {**plurality_vote(candidates), "fallback": True, "chosen": None}
    best_score = max(s for s, _ in scored)
    chosen = min((c for s, c in scored if s == best_score), key=lambda c: c["index"])
    return {
        "answer": chosen["answer"],
        "votes": {},
        "supporters": [chosen["index"]],
        "tie": sum(1 for s, _ in scored if s == best_score) > 1,
        "voters": len(scored),
        "fallback": False,
        "chosen": chosen["index"],
    }


def select_weighted(candidates: list[Candidate], scores: list[Score]) -> dict[str, Any]:
    """Weighted vote: equivalent answers' scores add up."""
    weights = {s["index"]: s["score"] for s in scores if s["score"] is not None}
    if not any(weights.values()):
        return {**plurality_vote(candidates), "fallback": True}
    return {**weighted_vote(candidates, weights), "fallback": False}


def build_best_of_n_graph(
    n: int = 8,
    *,
    scorer: Scorer | None = None,
    weighted: bool = False,
    aggregation: Aggregation = "last",
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[StrategyState, RunContext, QuestionInput, BestOfNOutput]:
    """Build (weighted) Best-of-N.

    Args:
        n: number of proposals.
        scorer: verifier or reward model (default: :class:`nodes.scorers.JudgeGrade`).
        weighted: sum scores over equivalent answers instead of taking the single best.
        aggregation: how step scores become one score.
        retry: retry policy of the LLM nodes.

    Example:
        >>> from nodes.scorers import SelfEvalPRM
        >>> graph = build_best_of_n_graph(8, scorer=SelfEvalPRM(), weighted=True, aggregation="min").compile()
    """
    check_count(n, "n")
    judge: Scorer = scorer or JudgeGrade()
    batch = callable(getattr(judge, "score_many", None))  # a scorer that takes a wave gets it in one call
    score: NodeKind[Any] = wave_scoring(judge, aggregation) if batch else scoring(judge, aggregation)

    def calls(c: Candidate) -> int:
        return (len(split_steps(c["text"])) or 1) if judge.process else 1

    plan = propose_then_judge(
        n, judged="scores", judge="score", final="select", prompt=lambda q, c: q + c["text"], calls=calls, batch=batch
    )

    async def select(state: StrategyState) -> dict[str, Any]:
        candidates, scores = state.get("candidates") or [], state.get("scores") or []
        result = select_weighted(candidates, scores) if weighted else select_best(candidates, scores)
        return decided(state, result)

    builder = StateGraph(
        StrategyState, context_schema=RunContext, input_schema=QuestionInput, output_schema=BestOfNOutput
    )
    add_worker(builder, PROPOSE, retry=retry)
    add_worker(builder, score, retry=retry)
    add_final(builder, "select", select)
    add_planner(builder, plan, ["propose", "score"], "select", first="propose", max_rounds=2 * n + 3)
    return builder


def best_of_n_graph(
    n: int = 8, **kwargs: Any
) -> CompiledStateGraph[StrategyState, RunContext, QuestionInput, BestOfNOutput]:
    """``build_best_of_n_graph(n, **kwargs)`` compiled without a checkpointer."""
    return build_best_of_n_graph(n, **kwargs).compile(name=f"best-of-{n}")
