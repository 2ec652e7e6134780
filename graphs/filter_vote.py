"""Filter-Vote (Chen et al.): ``k`` proposals, ``k`` parallel judge calls, a vote among the kept.

Topology::

    START ─Send→ propose → tally ─Send×k→ verify → tally → vote → END

Every candidate is judged once with the paper's filter prompt; the vote counts the candidates
judged ``[[correct]]`` and falls back to all candidates when none is kept. Unparseable verdicts,
failed judge calls and candidates left unjudged by a budget cap are not kept. The run makes
``2k`` LLM calls: ``k`` generations and ``k`` judge calls.
"""

from __future__ import annotations

from typing import Any

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
from nodes.context import RunContext, context_of
from nodes.endpoint import RETRY_POLICY
from nodes.types import Verdict
from nodes.verify import VerifyTask, filter_prompt, verify, verify_failed
from nodes.vote import filter_then_vote

__all__ = ["FilterVoteOutput", "build_filter_vote_graph", "filter_vote_graph"]


class FilterVoteOutput(VoteOutput):
    verdicts: list[Verdict]


# langgraph's node protocols do not match an async (state, runtime) function for mypy.
VERIFY_NODE: Any = verify


def build_filter_vote_graph(
    k: int = 8, *, retry: RetryPolicy = RETRY_POLICY
) -> StateGraph[VoteState, RunContext, QuestionInput, FilterVoteOutput]:
    """Build the Filter-Vote strategy.

    Args:
        k: number of proposals; each is judged once, so the run makes ``2k`` LLM calls.
        retry: retry policy of the LLM nodes (transient endpoint errors only, by default).

    Returns:
        An uncompiled ``StateGraph``.

    Example:
        >>> import asyncio
        >>> from nodes import LLM, Endpoint, RunContext
        >>> graph = build_filter_vote_graph(k=4).compile()
        >>> ctx = RunContext(llm=LLM(Endpoint(base_url="http://127.0.0.1:8000/v1", model="m")))
        >>> out = asyncio.run(graph.ainvoke({"question": "What is 6 x 7?"}, context=ctx))  # doctest: +SKIP
        >>> out["answer"], [v["verdict"] for v in out["verdicts"]]  # doctest: +SKIP
        ('42', ['correct', 'correct', 'wrong', 'correct'])
    """
    check_k(k)

    async def tally(state: VoteState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        guard_rounds(state, limit=2 * k + 3)
        question = state.get("question") or ""
        return plan_propose_then_judge(
            state, context_of(runtime), k, judged="verdicts", judge_node="verify", final_node="vote",
            prompt=lambda c: filter_prompt(question, c["text"]),
        )  # fmt: skip

    async def vote(state: VoteState) -> dict[str, Any]:
        result = filter_then_vote(state.get("candidates") or [], state.get("verdicts") or [])
        return decided(state, result)

    builder = StateGraph(
        VoteState, context_schema=RunContext, input_schema=QuestionInput, output_schema=FilterVoteOutput
    )
    add_propose_node(builder, retry)
    builder.add_node(
        "verify",
        VERIFY_NODE,
        input_schema=VerifyTask,
        retry_policy=retry,
        error_handler=recover_to(verify_failed, "tally"),
    )
    builder.add_node("vote", vote)
    add_tally(builder, tally, ["propose", "verify"], "vote", first="propose")
    builder.add_edge("vote", END)
    return builder


def filter_vote_graph(k: int = 8) -> CompiledStateGraph[VoteState, RunContext, QuestionInput, FilterVoteOutput]:
    """``build_filter_vote_graph(k)`` compiled without a checkpointer."""
    return build_filter_vote_graph(k).compile(name=f"filter-vote-k{k}")
