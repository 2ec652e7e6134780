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
from nodes.kinds import PROPOSE, VERIFY
from nodes.types import Verdict
from nodes.verify import filter_prompt
from nodes.vote import filter_then_vote

__all__ = ["FilterVoteOutput", "build_filter_vote_graph", "filter_vote_graph"]


class FilterVoteOutput(StrategyOutput):
    """Filter-Vote's output: the common keys and every judge verdict."""

    verdicts: list[Verdict]


def build_filter_vote_graph(
    k: int = 8, *, retry: RetryPolicy = RETRY_POLICY
) -> StateGraph[StrategyState, RunContext, QuestionInput, FilterVoteOutput]:
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
    check_count(k)
    plan = propose_then_judge(
        k, judged="verdicts", judge="verify", final="vote", prompt=lambda q, c: filter_prompt(q, c["text"])
    )

    async def vote(state: StrategyState) -> dict[str, Any]:
        return decided(state, filter_then_vote(state.get("candidates") or [], state.get("verdicts") or []))

    builder = StateGraph(
        StrategyState, context_schema=RunContext, input_schema=QuestionInput, output_schema=FilterVoteOutput
    )
    add_worker(builder, PROPOSE, retry=retry)
    add_worker(builder, VERIFY, retry=retry)
    add_final(builder, "vote", vote)
    add_planner(builder, plan, ["propose", "verify"], "vote", first="propose", max_rounds=2 * k + 3)
    return builder


def filter_vote_graph(k: int = 8) -> CompiledStateGraph[StrategyState, RunContext, QuestionInput, FilterVoteOutput]:
    """``build_filter_vote_graph(k)`` compiled without a checkpointer."""
    return build_filter_vote_graph(k).compile(name=f"filter-vote-k{k}")
