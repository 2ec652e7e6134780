"""Live: the real local vLLM behind a proxy that fails 20% of requests (429, 500, resets, timeouts)."""

from __future__ import annotations

import pytest

from graphs import build_filter_vote_graph
from nodes import LLM, Endpoint, RunContext
from tests.faults import FaultProxy

pytestmark = pytest.mark.live

QUESTIONS = ["What is 2 + 3?", "What is 7 + 8?", "What is 12 + 30?", "What is 9 + 9?"]


async def run(endpoint: Endpoint) -> list[dict[str, object]]:
    graph = build_filter_vote_graph(4).compile()
    async with LLM(endpoint) as llm:
        ctx = RunContext(llm=llm, max_tokens=48, judge_max_tokens=24, seed=5, answer_format="number")
        return [await graph.ainvoke({"question": q}, context=ctx) for q in QUESTIONS]


async def test_transient_faults_are_retried_and_change_nothing(live_endpoint: Endpoint) -> None:
    clean = await run(live_endpoint)
    proxy = FaultProxy(live_endpoint.base_url.removesuffix("/v1"), rate=0.2, seed=3, hang=20.0)
    with proxy.running() as url:
        faulty = await run(live_endpoint.model_copy(update={"base_url": f"{url}/v1", "request_timeout": 15.0}))
    assert sum(proxy.counts[f] for f in ("429", "500", "reset", "timeout")) >= 3, proxy.counts
    for a, b in zip(clean, faulty, strict=True):
        assert b["failures"] == []  # every fault was retried away
        assert [c["text"] for c in b["candidates"]] == [c["text"] for c in a["candidates"]]  # seeded: same samples
        assert b["answer"] == a["answer"] and b["ledger"] == a["ledger"]  # failed attempts cost nothing
    requests = sum(u["requests"] for out in clean for u in out["ledger"].values())
    assert proxy.counts["forwarded"] == requests  # each call got through exactly once
    assert sum(proxy.counts.values()) <= 4 * requests  # at most 4 attempts each


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_a_permanent_error_fails_fast_naming_the_endpoint(live_endpoint: Endpoint, status: int) -> None:
    proxy = FaultProxy(live_endpoint.base_url.removesuffix("/v1"), permanent=status)
    with proxy.running() as url:
        graph = build_filter_vote_graph(4).compile()
        async with LLM(live_endpoint.model_copy(update={"base_url": f"{url}/v1"})) as llm:
            out = await graph.ainvoke({"question": QUESTIONS[0]}, context=RunContext(llm=llm))
    assert proxy.counts[str(status)] == 1  # one request for the 4 samples, not retried
    (failure,) = out["failures"]
    assert f"endpoint {url}/v1 answered HTTP {status}" in failure["error"] and "\n" not in failure["error"]
    assert out["answer"] is None
