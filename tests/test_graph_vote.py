from __future__ import annotations

from typing import Any

import pytest
from langgraph.types import RetryPolicy

from graphs.strategies.vote import build_vote_graph
from nodes import Budget, ConfigError, is_transient
from tests.fakes import FakeServer, Request, policy

FAST_RETRY = RetryPolicy(
    initial_interval=0.001, max_interval=0.001, max_attempts=3, jitter=False, retry_on=is_transient
)


async def run(fake: FakeServer, k: int, question: str = "What is 20+22?", **settings: Any) -> dict[str, Any]:
    endpoint = settings.pop("endpoint", None)
    graph = build_vote_graph(k, retry=FAST_RETRY).compile()
    return await graph.ainvoke({"question": question}, context=fake.context(endpoint=endpoint, **settings))


async def test_vote_returns_the_majority_with_its_evidence(fake: FakeServer) -> None:
    out = await run(fake, 9)
    # samples 0..8: every third (2, 5, 8) is off by one
    assert out["answer"] == "42"
    assert out["decision"]["votes"] == {"42": 6.0, "43": 3.0}
    assert out["decision"]["supporters"] == [0, 1, 3, 4, 6, 7]
    assert [c["index"] for c in out["candidates"]] == list(range(9))
    assert out["failures"] == [] and out["budget"] == {"exhausted": False, "note": None}
    assert len(fake.requests) == 1 and fake.requests[0]["n"] == 9  # one request with n=k by default


async def test_ledger_adds_up_over_parallel_requests(fake: FakeServer) -> None:
    out = await run(fake, 7, endpoint={"max_n": 2})  # a server limited to n=2: four parallel requests
    assert sorted(b["n"] for b in fake.requests) == [1, 2, 2, 2]
    assert sorted(b["seed"] for b in fake.requests) == [0, 2, 4, 6]  # seed = base seed + first sample
    prompt = len(fake.requests[0]["messages"][0]["content"].split())
    completion = sum(len(c["text"].split()) for c in out["candidates"])
    assert out["ledger"] == {"propose": {"requests": 4, "calls": 7, "prompt_tokens": 4 * prompt,
                                         "completion_tokens": completion}}  # fmt: skip


async def test_same_seed_same_run_and_other_seed_other_samples(fake: FakeServer) -> None:
    a, b, c = await run(fake, 5, seed=1), await run(fake, 5, seed=1), await run(fake, 5, seed=2)
    assert [x["answer"] for x in a["candidates"]] == [x["answer"] for x in b["candidates"]]
    assert [x["answer"] for x in a["candidates"]] != [x["answer"] for x in c["candidates"]]


async def test_a_failing_sample_is_recorded_and_the_vote_goes_on() -> None:
    # A server limited to n=1; the request for sample 3 fails for good (HTTP 400, not retried).
    fake = FakeServer(fault=lambda body, count: 400 if body.get("seed") == 3 else None)
    out = await run(fake, 6, endpoint={"max_n": 1})
    assert out["answer"] == "42"
    assert [c["index"] for c in out["candidates"]] == [0, 1, 2, 4, 5]
    (failure,) = out["failures"]
    assert failure["node"] == "propose" and failure["indices"] == [3]
    assert "PermanentEndpointError" in failure["error"] and "HTTP 400" in failure["error"]
    assert sum(1 for b in fake.requests if b["seed"] == 3) == 1  # permanent: no retry
    prompt = len(fake.requests[0]["messages"][0]["content"].split())
    assert out["ledger"]["propose"] == {"requests": 6, "calls": 5, "prompt_tokens": 5 * prompt,
                                        "completion_tokens": out["ledger"]["propose"]["completion_tokens"]}  # fmt: skip


async def test_transient_errors_are_retried_then_succeed() -> None:
    attempts: dict[int, int] = {}

    def flaky(body: dict[str, Any], count: int) -> int | None:
        attempts[body["seed"]] = attempts.get(body["seed"], 0) + 1
        return {1: 503, 2: 429}.get(attempts[body["seed"]])  # 1st attempt 503, 2nd 429, 3rd answers

    fake = FakeServer(fault=flaky)
    out = await run(fake, 4, endpoint={"max_n": 2})
    assert out["failures"] == [] and len(out["candidates"]) == 4
    assert attempts == {0: 3, 2: 3}


async def test_transient_errors_give_up_after_the_retry_limit() -> None:
    fake = FakeServer(fault=lambda body, count: 500)
    out = await run(fake, 3)
    assert out["answer"] is None and out["candidates"] == []
    assert len(fake.requests) == 3  # FAST_RETRY.max_attempts
    assert "HTTP 500" in out["failures"][0]["error"]


async def test_call_cap_stops_proposals_and_says_so(fake: FakeServer) -> None:
    out = await run(fake, 8, budget=Budget(max_calls=5))
    assert len(out["candidates"]) == 5 and out["ledger"]["propose"]["calls"] == 5
    assert out["answer"] == "42"
    assert out["budget"]["exhausted"] and "5 of 8 proposals" in out["budget"]["note"]


async def test_token_cap_is_not_exceeded_and_decides_with_what_it_has() -> None:
    # Replies of exactly 10 whitespace tokens; a prompt of 16 tokens; completion limit 12.
    fake = FakeServer(reply=lambda req: "one two three four five six seven eight nine The answer is 42."[:62])
    out = await run(fake, 8, budget=Budget(max_tokens=200), max_tokens=12, endpoint={"max_n": 1})
    spent = out["ledger"]["propose"]["prompt_tokens"] + out["ledger"]["propose"]["completion_tokens"]
    assert spent <= 200
    assert 0 < len(out["candidates"]) < 8
    assert out["budget"]["exhausted"] and out["answer"] == "42"


async def nodes_run(fake: FakeServer, k: int, **settings: Any) -> list[str]:
    graph = build_vote_graph(k, retry=FAST_RETRY).compile()
    ctx = fake.context(**settings)
    return [node async for chunk in graph.astream({"question": "What is 20+22?"}, context=ctx) for node in chunk]


async def test_the_first_wave_leaves_from_start_and_one_tally_joins_it(fake: FakeServer) -> None:
    # three parallel requests (n=1), then a single tally that sees all of them, then the vote
    assert await nodes_run(fake, 3, endpoint={"max_n": 1}) == ["propose", "propose", "propose", "tally", "vote"]


async def test_a_budget_that_allows_no_call_goes_through_tally_to_say_so(fake: FakeServer) -> None:
    assert await nodes_run(fake, 3, budget=Budget(max_tokens=5)) == ["tally", "vote"]
    out = await run(fake, 3, budget=Budget(max_tokens=5))
    assert out["candidates"] == [] and out["answer"] is None
    assert out["budget"]["exhausted"] and "0 of 3 proposals" in out["budget"]["note"]
    assert fake.requests == []


async def test_no_stated_answer_gives_no_answer() -> None:
    fake = FakeServer(reply=lambda req: "I am not sure how to do this.")
    out = await run(fake, 3)
    assert out["answer"] is None and out["decision"]["voters"] == 0
    assert [c["answer"] for c in out["candidates"]] == [None, None, None]


async def test_empty_question_fails_before_any_call(fake: FakeServer) -> None:
    with pytest.raises(ConfigError, match="empty"):
        await run(fake, 3, question="   ")
    assert fake.requests == []


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k_is_rejected_at_build_time(k: Any) -> None:
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        build_vote_graph(k)


def test_the_drawing_shows_fan_out_and_vote() -> None:
    mermaid = build_vote_graph(4).compile().get_graph().draw_mermaid()
    for edge in (
        "__start__ -.-> propose",
        "__start__ -.-> tally",
        "tally -.-> propose",
        "propose --> tally",
        "tally -.-> vote",
        "vote --> __end__",
    ):
        assert edge in mermaid


def test_fake_policy_is_computed_from_the_prompt() -> None:
    # guards the fixtures the tests above rely on
    assert policy(Request("What is 2+2?", 0, 0, 1, None, None)).endswith("The answer is 4.")
    assert policy(Request("What is 2+2?", 0, 2, 1, None, None)).endswith("The answer is 5.")
    assert policy(Request("What is 6x7?", 3, 0, 1, None, None)).endswith("The answer is 42.")
