"""The composition layer's own guarantees, with a strategy built from public parts only."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from graphs.compose import (
    QuestionInput,
    StrategyOutput,
    StrategyState,
    add_final,
    add_planner,
    add_worker,
    decided,
    finish,
    plan_proposals,
    wave,
)
from nodes import PROPOSE, VERIFY, RunContext, is_transient, plurality_vote
from tests.fakes import FakeServer

FAST = RetryPolicy(initial_interval=0.001, max_interval=0.001, max_attempts=2, jitter=False, retry_on=is_transient)


def build(k: int, final: Any, *, planner: Any = None, max_rounds: int | None = None) -> Any:
    from langgraph.graph import StateGraph

    async def plan(state: StrategyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        tasks, _ = plan_proposals(state, runtime.context, k)
        if tasks:
            return wave("propose", tasks)
        judged = {v["index"] for v in state.get("verdicts") or []}
        todo = [c for c in state.get("candidates") or [] if c["index"] not in judged]
        question = state.get("question") or ""
        return wave("verify", [{"question": question, "candidate": c} for c in todo]) if todo else finish("vote")

    builder = StateGraph(StrategyState, context_schema=RunContext, input_schema=QuestionInput,
                         output_schema=StrategyOutput)  # fmt: skip
    add_worker(builder, PROPOSE, retry=FAST)
    add_worker(builder, VERIFY, retry=FAST)
    add_final(builder, "vote", final)
    add_planner(builder, planner or plan, ["propose", "verify"], "vote", first="propose", max_rounds=max_rounds)
    return builder.compile()


async def good_vote(state: StrategyState) -> dict[str, Any]:
    return decided(state, plurality_vote(state.get("candidates") or []))


async def test_every_judge_call_failing_does_not_strand_the_run() -> None:
    """Each verify task fails for good: the failure handler records it and the planner goes on."""
    fake = FakeServer(fault=lambda body, n: 400 if "conclude with either" in str(body["messages"]) else None)
    out = await build(4, good_vote).ainvoke({"question": "What is 2+3?"}, context=fake.context())
    assert out["answer"] == "5"
    failed = [f for f in out["failures"] if f["node"] == "verify"]
    assert sorted(i for f in failed for i in f["indices"]) == [0, 1, 2, 3]
    assert all(f["status"] == 400 and not f["transient"] and "HTTP 400" in f["message"] for f in failed)


async def test_a_final_node_that_raises_ends_with_no_answer_and_keeps_the_samples() -> None:
    async def broken(state: StrategyState) -> dict[str, Any]:
        raise ZeroDivisionError("a bug in the vote")

    out = await build(2, broken).ainvoke({"question": "What is 2+3?"}, context=FakeServer().context())
    assert out["answer"] is None and len(out["candidates"]) == 2 and out["ledger"]["propose"]["calls"] == 2
    assert out["failures"][-1]["node"] == "vote" and "ZeroDivisionError" in out["decision"]["error"]


async def test_a_planner_that_never_finishes_is_stopped_by_max_rounds() -> None:
    async def forever(state: StrategyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        candidates = state.get("candidates") or []
        if not candidates:
            return wave("propose", [{"question": "What is 2+3?", "first_index": 0, "n": 1}])
        return wave("verify", [{"question": "q", "candidate": candidates[0]}])  # the same judgement, for ever

    graph = build(1, good_vote, planner=forever, max_rounds=3)
    with pytest.raises(RuntimeError, match="no progress after 3 rounds"):
        await graph.ainvoke({"question": "What is 2+3?"}, context=FakeServer().context())
