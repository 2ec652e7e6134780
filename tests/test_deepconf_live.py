"""Live: token logprobs, streamed traces stopped on the real vLLM (which then stops generating), and
online DeepConf's ledger against the server's own counters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from graphs.strategies import build_deepconf_online_graph
from nodes import LLM, Endpoint, RunContext, user
from nodes.budget import ledger_totals
from nodes.confidence import token_confidences
from nodes.kinds import PROPOSE
from tests.test_live import server_counters

pytestmark = pytest.mark.live

LONG = "Count from 1 to 400, separated by commas. Write every number."


@pytest.fixture
async def llm(live_endpoint: Endpoint) -> AsyncIterator[LLM]:
    async with LLM(live_endpoint) as client:
        yield client


async def quiet_counters(endpoint: Endpoint) -> dict[str, float]:
    """The counters once nothing is running (earlier tests' requests have finished)."""
    before = server_counters(endpoint)
    for _ in range(50):
        await asyncio.sleep(0.2)
        now = server_counters(endpoint)
        if now == before:
            return now
        before = now
    return before


async def test_a_stopped_stream_is_aborted_on_the_server(llm: LLM, live_endpoint: Endpoint) -> None:
    before = await quiet_counters(live_endpoint)
    seen: list[dict[str, Any]] = []

    def stop_after_eight(entry: dict[str, Any]) -> bool:
        seen.append(entry)
        return len(seen) >= 8

    completion = await llm.chat_stream([user(LONG)], on_token=stop_after_eight, seed=3, temperature=0.0,
                                       max_tokens=600, logprobs=True, top_logprobs=5)  # fmt: skip
    assert completion.finish_reasons == ["stopped"] and completion.prompt_tokens > 0
    assert 8 <= completion.completion_tokens < 20
    assert len(token_confidences(completion.logprobs[0], 5)) == len(seen) >= 8
    after = await quiet_counters(live_endpoint)
    generated = after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    # without the abort the server would have gone on to the 600-token limit
    assert generated < 100, generated


async def test_a_finished_stream_reports_the_servers_usage(llm: LLM) -> None:
    streamed = await llm.chat_stream([user("Say hello.")], seed=1, temperature=0.0, max_tokens=16)
    plain = await llm.chat([user("Say hello.")], seed=1, temperature=0.0, max_tokens=16)
    assert streamed.texts == plain.texts and streamed.finish_reasons == plain.finish_reasons
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (plain.prompt_tokens, plain.completion_tokens)


async def test_proposals_with_logprobs_carry_each_tokens_confidence(llm: LLM) -> None:
    ctx = RunContext(llm=llm, max_tokens=24, top_logprobs=5)

    class Runtime:
        context = ctx

        @staticmethod
        def stream_writer(_: Any) -> None:
            pass

    out = await PROPOSE.run({"question": "What is 3 + 4?", "first_index": 0, "n": 3}, Runtime())  # type: ignore[arg-type]
    assert sum(c["tokens"] for c in out["candidates"]) == out["ledger"]["propose"]["completion_tokens"]
    assert all(len(c["confidences"]) == c["tokens"] and min(c["confidences"]) >= 0 for c in out["candidates"])


async def test_online_deepconf_ledger_matches_the_servers_counters(llm: LLM, live_endpoint: Endpoint) -> None:
    graph = build_deepconf_online_graph(8, warmup=2, window=4, keep=90, wave_size=3).compile()
    ctx = RunContext(llm=llm, max_tokens=48, temperature=1.0)
    before = await quiet_counters(live_endpoint)
    out = await graph.ainvoke({"question": "What is 17 + 25?"}, context=ctx)
    after = await quiet_counters(live_endpoint)
    spent = ledger_totals(out["ledger"])
    # vLLM counts a prompt once per sample in its metrics: the warm-up's request of 2 counts it twice
    per_request = spent["prompt_tokens"] // spent["requests"]
    assert (
        after["vllm:prompt_tokens_total"] - before["vllm:prompt_tokens_total"] == spent["prompt_tokens"] + per_request
    )
    generated = after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    stopped = len(out["decision"].get("stopped") or []) + len(out["decision"].get("cancelled") or [])
    # a stopped trace may generate a token or two after the last one streamed, before the abort lands
    assert spent["completion_tokens"] <= generated <= spent["completion_tokens"] + 4 * stopped
    assert out["failures"] == []
