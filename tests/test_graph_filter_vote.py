from __future__ import annotations

from typing import Any

from langgraph.types import RetryPolicy

from graphs.strategies.filter_vote import build_filter_vote_graph
from nodes import Budget, is_transient
from tests.fakes import FakeServer, Request, default_reply, policy

FAST_RETRY = RetryPolicy(
    initial_interval=0.001, max_interval=0.001, max_attempts=2, jitter=False, retry_on=is_transient
)


async def run(fake: FakeServer, k: int, **settings: Any) -> dict[str, Any]:
    graph = build_filter_vote_graph(k, retry=FAST_RETRY).compile()
    return await graph.ainvoke({"question": "What is 20+22?"}, context=fake.context(**settings))


def minority_right(req: Request) -> str:
    """A policy that is right only on every third sample: the judge must rescue the vote."""
    if "conclude with either" in req.prompt:
        return default_reply(req)
    value = 42 if req.sample % 3 == 0 else 41
    return f"The answer is {value}."


async def test_the_judge_filters_before_the_vote() -> None:
    fake = FakeServer(reply=minority_right)
    out = await run(fake, 6)
    assert out["answer"] == "42"  # a plain vote would say 41 (4 of 6)
    assert out["decision"]["kept"] == [0, 3] and not out["decision"]["fallback"]
    assert sorted((v["index"], v["verdict"]) for v in out["verdicts"]) == [
        (0, "correct"), (1, "wrong"), (2, "wrong"), (3, "correct"), (4, "wrong"), (5, "wrong")]  # fmt: skip
    assert out["ledger"]["propose"]["calls"] == 6 and out["ledger"]["verify"]["calls"] == 6
    assert out["ledger"]["verify"]["requests"] == 6  # one judge call per candidate, in parallel


async def test_fallback_to_all_answers_when_nothing_is_kept() -> None:
    def harsh(req: Request) -> str:
        return "Everything is off. [[wrong]]" if "conclude with either" in req.prompt else policy(req)

    out = await run(FakeServer(reply=harsh), 6)
    assert out["decision"]["fallback"] and out["decision"]["kept"] == []
    assert out["answer"] == "42" and out["decision"]["votes"] == {"42": 4.0, "43": 2.0}


async def test_unparseable_verdicts_are_recorded_and_not_kept() -> None:
    def vague(req: Request) -> str:
        if "conclude with either" not in req.prompt:
            return policy(req)
        return "Seems fine." if "The answer is 42" in req.prompt else "No. [[wrong]]"

    out = await run(FakeServer(reply=vague), 3)
    assert sorted(v["verdict"] for v in out["verdicts"]) == ["unparseable", "unparseable", "wrong"]
    assert out["decision"]["fallback"] and out["answer"] == "42"


async def test_a_failed_judge_call_is_an_error_verdict_and_the_vote_goes_on() -> None:
    def judge_fault(body: dict[str, Any], count: int) -> int | None:
        text = body["messages"][0]["content"]
        return 404 if "conclude with either" in text and "The answer is 43" in text else None

    out = await run(FakeServer(fault=judge_fault), 3)  # sample 2 says 43; its judge call fails
    assert sorted((v["index"], v["verdict"]) for v in out["verdicts"]) == [(0, "correct"), (1, "correct"), (2, "error")]
    assert [f["node"] for f in out["failures"]] == ["verify"]
    assert out["answer"] == "42"


async def test_a_call_cap_keeps_a_judge_call_for_every_proposal(fake: FakeServer) -> None:
    out = await run(fake, 4, budget=Budget(max_calls=6))
    assert out["ledger"]["propose"]["calls"] == 3 and out["ledger"]["verify"]["calls"] == 3
    assert len(out["verdicts"]) == 3  # every candidate judged: the filter still filters
    assert out["budget"]["exhausted"] and "3 of 4 proposals" in out["budget"]["note"]
    assert out["answer"] == "42"


async def test_a_token_cap_holds_and_every_proposal_made_is_judged() -> None:
    def verbose(req: Request) -> str:  # long judge replies
        return ("word " * 300 + "[[correct]]") if "conclude with either" in req.prompt else policy(req)

    out = await run(FakeServer(reply=verbose), 4, budget=Budget(max_tokens=1400), judge_max_tokens=400)
    spent = sum(u["prompt_tokens"] + u["completion_tokens"] for u in out["ledger"].values())
    assert spent <= 1400 and out["budget"]["exhausted"]
    assert 0 < len(out["candidates"]) < 4 and len(out["verdicts"]) == len(out["candidates"])


async def test_a_cap_that_was_not_reached_is_not_reported() -> None:
    out = await run(FakeServer(), 4, budget=Budget(max_calls=100))
    assert out["budget"] == {"exhausted": False, "note": None} and len(out["verdicts"]) == 4


def test_the_drawing_shows_proposals_judges_and_vote() -> None:
    mermaid = build_filter_vote_graph(4).compile().get_graph().draw_mermaid()
    for edge in ("__start__ -.-> propose", "__start__ -.-> tally", "tally -.-> propose", "tally -.-> verify",
                 "verify --> tally", "tally -.-> vote"):  # fmt: skip
        assert edge in mermaid
