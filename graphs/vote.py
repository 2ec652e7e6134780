"""Vote (self-consistency): ``k`` parallel proposals, then a plurality vote.

Topology::

    START ─Send×⌈k/max_n⌉→ propose → tally (─Send→ propose → tally …) → vote → END

``tally`` is where the graph decides: it plans the next wave of proposals (all ``k`` at once
unless a budget cap makes it go wave by wave) and, when no more can or need be made, hands
over to ``vote``. The first wave leaves from START; when a budget cap trims it, START leads to
``tally`` instead (see :func:`graphs._common.add_tally`). A propose request that fails for good
becomes a recorded failure and the vote goes on with the rest.
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
    plan_proposals,
)
from nodes.context import RunContext, context_of
from nodes.endpoint import RETRY_POLICY
from nodes.vote import plurality_vote

__all__ = ["build_vote_graph", "vote_graph"]


def build_vote_graph(
    k: int = 8, *, retry: RetryPolicy = RETRY_POLICY
) -> StateGraph[VoteState, RunContext, QuestionInput, VoteOutput]:
    """Build the Vote strategy: ``k`` samples, the most common answer wins.

    Args:
        k: number of proposals (LLM calls).
        retry: retry policy of the LLM node (transient endpoint errors only, by default).

    Returns:
        An uncompiled ``StateGraph``; compile it with your own checkpointer or name.

    Example:
        >>> import asyncio
        >>> from nodes import LLM, Endpoint, RunContext
        >>> graph = build_vote_graph(k=8).compile()
        >>> ctx = RunContext(llm=LLM(Endpoint(base_url="http://127.0.0.1:8000/v1", model="m")))
        >>> asyncio.run(graph.ainvoke({"question": "What is 6 x 7?"}, context=ctx))  # doctest: +SKIP
        {'answer': '42', 'decision': {'votes': {'42': 7.0, '48': 1.0}, ...}, ...}
    """
    check_k(k)

    async def tally(state: VoteState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        guard_rounds(state, limit=k + 2)
        ctx = context_of(runtime)
        tasks, report = plan_proposals(state, ctx, k)
        update: dict[str, Any] = {"rounds": 1, "plan": {"node": "propose" if tasks else "vote", "tasks": tasks}}
        if report:
            update["budget"] = report
        return update

    async def vote(state: VoteState) -> dict[str, Any]:
        result = plurality_vote(state.get("candidates") or [])
        return decided(state, result)

    builder = StateGraph(VoteState, context_schema=RunContext, input_schema=QuestionInput, output_schema=VoteOutput)
    add_propose_node(builder, retry)
    builder.add_node("vote", vote)
    add_tally(builder, tally, ["propose"], "vote", first="propose")
    builder.add_edge("vote", END)
    return builder


def vote_graph(k: int = 8) -> CompiledStateGraph[VoteState, RunContext, QuestionInput, VoteOutput]:
    """``build_vote_graph(k)`` compiled without a checkpointer."""
    return build_vote_graph(k).compile(name=f"vote-k{k}")
