"""Vote (self-consistency): ``k`` parallel proposals, then a plurality vote.

Topology::

    START ─Send×⌈k/max_n⌉→ propose → tally (─Send→ propose → tally …) → vote → END

``tally`` is the planner (:func:`graphs.compose.add_planner`): it plans the next wave of
proposals (all ``k`` at once unless a budget cap makes it go wave by wave) and, when no more can
or need be made, hands over to ``vote``. The first wave leaves from START; when a budget cap
trims it, START leads to ``tally`` instead. A propose request that fails for good becomes a
recorded failure and the vote goes on with the rest.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
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
    finish,
    plan_proposals,
    wave,
)
from nodes.context import RunContext, context_of
from nodes.endpoint import RETRY_POLICY
from nodes.kinds import PROPOSE
from nodes.vote import plurality_vote

__all__ = ["build_vote_graph", "vote_graph"]


def build_vote_graph(
    k: int = 8, *, retry: RetryPolicy = RETRY_POLICY
) -> StateGraph[StrategyState, RunContext, QuestionInput, StrategyOutput]:
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
    check_count(k)

    async def plan(state: StrategyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        tasks, report = plan_proposals(state, context_of(runtime), k)
        extra = {"budget": report} if report else {}
        return wave("propose", tasks, **extra) if tasks else finish("vote", **extra)

    async def vote(state: StrategyState) -> dict[str, Any]:
        return decided(state, plurality_vote(state.get("candidates") or []))

    builder = StateGraph(
        StrategyState, context_schema=RunContext, input_schema=QuestionInput, output_schema=StrategyOutput
    )
    add_worker(builder, PROPOSE, retry=retry)
    add_final(builder, "vote", vote)
    add_planner(builder, plan, ["propose"], "vote", first="propose", max_rounds=k + 2)
    return builder


def vote_graph(k: int = 8) -> CompiledStateGraph[StrategyState, RunContext, QuestionInput, StrategyOutput]:
    """``build_vote_graph(k)`` compiled without a checkpointer."""
    return build_vote_graph(k).compile(name=f"vote-k{k}")
