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

from langgraph.errors import NodeError
from langgraph.graph import END, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from graphs._common import (
    QuestionInput,
    VoteOutput,
    VoteState,
    add_propose_node,
    add_tally,
    check_k,
    decided,
    guard_rounds,
    plan_propose_then_judge,
    recover_to,
)
from nodes._calls import error_line
from nodes.context import RunContext, context_of
from nodes.endpoint import RETRY_POLICY
from nodes.scorers import Aggregation, JudgeGrade, Scorer, aggregate, split_steps
from nodes.types import Candidate, Score
from nodes.vote import plurality_vote, weighted_vote

__all__ = ["BestOfNOutput", "build_best_of_n_graph", "select_best", "select_weighted"]


class BestOfNOutput(VoteOutput):
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
) -> StateGraph[VoteState, RunContext, QuestionInput, BestOfNOutput]:
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
    check_k(n, "n")
    judge: Scorer = scorer or JudgeGrade()
    if aggregation not in ("last", "min", "prod", "mean"):
        raise ValueError(f"unknown aggregation {aggregation!r} (last, min, prod, mean)")

    def calls(c: Candidate) -> int:
        return (len(split_steps(c["text"])) or 1) if judge.process else 1

    async def tally(state: VoteState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        guard_rounds(state, limit=2 * n + 3)
        question = state.get("question") or ""
        return plan_propose_then_judge(
            state, context_of(runtime), n, judged="scores", judge_node="score", final_node="select",
            prompt=lambda c: question + c["text"], calls=calls,
        )  # fmt: skip

    async def score(task: dict[str, Any], runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = context_of(runtime)
        candidate = task["candidate"]
        scored = await judge.score(task["question"], candidate["text"], ctx)
        record: Score = {
            "index": candidate["index"],
            "steps": scored.steps,
            "score": aggregate(scored.steps, aggregation),
            "label": scored.label,
        }
        runtime.stream_writer({"event": "scored", "index": record["index"], "score": record["score"]})
        return {"scores": [record], "ledger": scored.usage}

    def score_failed(task: dict[str, Any], error: NodeError) -> dict[str, Any]:
        index = task["candidate"]["index"]
        record: Score = {"index": index, "steps": [], "score": None, "label": "error"}
        return {"scores": [record], "failures": [{"node": "score", "indices": [index], "error": error_line(error)}]}

    async def select(state: VoteState) -> dict[str, Any]:
        candidates, scores = state.get("candidates") or [], state.get("scores") or []
        result = select_weighted(candidates, scores) if weighted else select_best(candidates, scores)
        return decided(state, result)

    builder = StateGraph(VoteState, context_schema=RunContext, input_schema=QuestionInput, output_schema=BestOfNOutput)
    add_propose_node(builder, retry)
    score_node: Any = score  # langgraph's node protocols do not match an async (state, runtime) function for mypy
    builder.add_node("score", score_node, retry_policy=retry, error_handler=recover_to(score_failed, "tally"))
    builder.add_node("select", select)
    add_tally(builder, tally, ["propose", "score"], "select", first="propose")
    builder.add_edge("select", END)
    return builder


def best_of_n_graph(
    n: int = 8, **kwargs: Any
) -> CompiledStateGraph[VoteState, RunContext, QuestionInput, BestOfNOutput]:
    """``build_best_of_n_graph(n, **kwargs)`` compiled without a checkpointer."""
    return build_best_of_n_graph(n, **kwargs).compile(name=f"best-of-{n}")
