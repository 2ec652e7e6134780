"""StrategyChatModel: a strategy behind LangChain's chat-model interface, on the fake server (and
one live run on the real vLLM, whose own counters check the reported usage)."""

from __future__ import annotations

import asyncio
import json
import operator
from functools import reduce
from typing import Any, TypedDict, cast

import httpx
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

from graphs.serving import StrategyChatModel, StrategyConfig, StrategyFailed
from nodes import ConfigError, Endpoint
from tests.fakes import FakeServer
from tests.test_deepconf_live import quiet_counters

QUESTION = "What is 17 + 25?"
VOTED = "Adding up step by step gives 42. The answer is 42."  # samples 0, 1, 3 say 42; sample 2 says 43


class Counted:
    """The fake server behind a transport that also keeps the usage each reply reported."""

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        self.usages: list[dict[str, int]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        response = self.fake.handler(request)
        if response.status_code == 200:
            self.usages.append(json.loads(response.content)["usage"])
        return response

    def model(self, **config: Any) -> StrategyChatModel:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handler))
        endpoint = Endpoint(base_url="http://fake.test/v1", model=self.fake.model)
        return StrategyChatModel(config=StrategyConfig(**{"k": 4, **config}), endpoint=endpoint,
                                 http_async_client=client)  # fmt: skip

    def usage(self) -> dict[str, int]:
        prompt = sum(u["prompt_tokens"] for u in self.usages)
        completion = sum(u["completion_tokens"] for u in self.usages)
        return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}


@pytest.fixture
def server(fake: FakeServer) -> Counted:
    return Counted(fake)


def check_reply(reply: Any, server: Counted) -> None:
    assert isinstance(reply, AIMessage)
    assert reply.content == VOTED
    assert reply.usage_metadata == server.usage() and server.usage()["input_tokens"] > 0
    ttc = reply.response_metadata["ttc"]
    assert (ttc["answer"], ttc["votes"]) == ("42", {"42": 3.0, "43": 1.0})
    assert ttc["usage"]["calls"] == 4 and ttc["usage"]["requests"] == len(server.fake.requests) == 1
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["model_name"] == "vote-4/fake-model"


async def test_ainvoke_answers_with_the_voted_sample_and_the_ledgers_usage(server: Counted) -> None:
    reply = await server.model().ainvoke(QUESTION)
    check_reply(reply, server)
    assert reply.additional_kwargs["reasoning_content"] == "proposed samples 0..3: 42, 42, 43, 42\n"


def test_invoke_without_a_running_loop(server: Counted) -> None:
    check_reply(server.model().invoke([HumanMessage(QUESTION)]), server)


async def test_invoke_inside_a_running_loop_does_not_block_it(server: Counted) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    reply = server.model().invoke(QUESTION)  # as a notebook cell would: the run gets a thread of its own
    ticker.cancel()
    check_reply(reply, server)


def test_batch_answers_each_question(server: Counted) -> None:
    replies = server.model().batch(["What is 20 + 22?", "What is 2 + 3?"])
    assert [r.content for r in replies] == [VOTED, "Adding up step by step gives 5. The answer is 5."]
    assert len(server.fake.requests) == 2
    assert sum(r.usage_metadata["total_tokens"] for r in replies if r.usage_metadata) == server.usage()["total_tokens"]


async def test_abatch_answers_each_question(server: Counted) -> None:
    replies = await server.model().abatch(["What is 20 + 22?", "What is 2 + 3?"])
    assert [r.content for r in replies] == [VOTED, "Adding up step by step gives 5. The answer is 5."]


async def test_astream_yields_progress_before_the_answer(server: Counted) -> None:
    chunks = [chunk async for chunk in server.model().astream(QUESTION)]
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    *progress, last = chunks
    assert [c.additional_kwargs for c in progress] == [{"reasoning_content": "proposed samples 0..3: 42, 42, 43, 42\n"}]
    assert all(c.content == "" and c.usage_metadata is None for c in progress)
    assert last.content == VOTED and last.usage_metadata == server.usage() and last.chunk_position == "last"
    assert last.response_metadata["ttc"]["votes"] == {"42": 3.0, "43": 1.0}
    merged = reduce(operator.add, chunks)
    assert (merged.content, merged.usage_metadata) == (VOTED, server.usage())


async def test_several_waves_stream_several_progress_chunks(server: Counted) -> None:
    model = server.model(strategy="adaptive-vote", k=8)
    chunks = [chunk async for chunk in model.astream(QUESTION)]
    lines = [c.additional_kwargs.get("reasoning_content") for c in chunks[:-1]]
    assert len(lines) >= 2 and all(line and line.startswith("proposed samples") for line in lines)
    assert chunks[-1].content and chunks[-1].usage_metadata == server.usage()


async def test_call_settings_reach_the_upstream_requests(server: Counted) -> None:
    model = server.model(temperature=0.3, max_tokens=100, seed=1)
    await model.ainvoke(QUESTION)
    await model.bind(temperature=0.1, max_tokens=33).ainvoke(QUESTION, seed=5)
    settings = [(b["temperature"], b["max_completion_tokens"], b["seed"]) for b in server.fake.requests]
    assert settings == [(0.3, 100, 1), (0.1, 33, 5)]
    assert (model.config.temperature, model.config.max_tokens, model.config.seed) == (0.3, 100, 1)


async def test_call_settings_are_checked(server: Counted) -> None:
    model = server.model()
    with pytest.raises(ConfigError, match=r"temperature: .*less than or equal to 2"):
        await model.ainvoke(QUESTION, temperature=3.0)
    with pytest.raises(ConfigError, match=r"unsupported call argument\(s\) top_p .*supported: temperature"):
        await model.ainvoke(QUESTION, top_p=0.5)
    with pytest.raises(ConfigError, match="stop sequences are not supported"):
        await model.ainvoke(QUESTION, stop=["\n"])
    with pytest.raises(ConfigError, match=r"tool calls are not supported \(got tools\)"):
        await model.ainvoke(QUESTION, tools=[{"type": "function", "function": {"name": "f"}}])
    with pytest.raises(NotImplementedError, match=r"vote-4/fake-model\) calls no tools"):
        model.bind_tools([])
    assert server.fake.requests == []


async def test_a_failing_endpoint_raises_instead_of_an_empty_reply() -> None:
    server = Counted(FakeServer(fault=lambda body, n: 401))
    with pytest.raises(StrategyFailed, match="401") as caught:
        await server.model().ainvoke(QUESTION)
    assert caught.value.status == 401 and not caught.value.transient
    with pytest.raises(StrategyFailed, match="401"):
        [chunk async for chunk in server.model().astream(QUESTION)]


def test_mistakes_raise_when_the_model_is_made(server: Counted, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="stop"):
        server.model(options={"stop": "nonsense"}, strategy="adaptive-vote")
    with pytest.raises(ValueError, match="strategy"):
        server.model(strategy="no-such-strategy")
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        StrategyChatModel(endpoint=Endpoint(base_url="http://x.test/v1", model="m"), strategy="vote")
    monkeypatch.delenv("TTC_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"pass endpoint=Endpoint.* or set TTC_BASE_URL and TTC_MODEL"):
        StrategyChatModel()


def test_the_endpoint_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("TTC_MODEL", "served")
    model = StrategyChatModel()
    assert (model.endpoint.base_url, model.model_name) == ("http://127.0.0.1:9/v1", "vote-8/served")
    other = StrategyChatModel(config=StrategyConfig.from_model_name("vote-3/other"))
    assert other.model_name == "vote-3/other"  # a named upstream model replaces the environment's


async def test_the_conversation_before_the_question_reaches_the_prompt(server: Counted) -> None:
    await server.model().ainvoke([SystemMessage("Be brief."), HumanMessage(QUESTION)])
    prompt = server.fake.requests[0]["messages"][-1]["content"]
    assert f"System: Be brief.\n\nUser: {QUESTION}" in prompt


async def test_in_a_chain(server: Counted) -> None:
    chain = ChatPromptTemplate.from_messages([("user", "What is {a} + {b}?")]) | server.model() | StrOutputParser()
    assert await chain.ainvoke({"a": 17, "b": 25}) == VOTED


class State(TypedDict, total=False):
    question: str
    reply: str


async def test_in_a_langgraph_node_whose_messages_are_streamed(server: Counted) -> None:
    model = server.model()

    async def answer(state: State) -> dict[str, Any]:
        return {"reply": (await model.ainvoke(state["question"])).content}

    saver = InMemorySaver()
    # the strategy's graph runs as a run of its own, not a subgraph sharing this graph's checkpointer
    graph = StateGraph(State).add_node(answer).add_edge(START, "answer").compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": "1"}}
    streamed = [message async for message, _ in graph.astream({"question": QUESTION}, config, stream_mode="messages")]
    assert [cast(AIMessageChunk, m).content for m in streamed] == ["", VOTED]  # the progress chunk, then the answer
    assert (await graph.ainvoke({"question": QUESTION}, config))["reply"] == VOTED
    assert {c.config["configurable"]["checkpoint_ns"] async for c in saver.alist(None)} == {""}


@pytest.mark.live
async def test_live_vote_usage_matches_the_servers_counters(live_endpoint: Endpoint) -> None:
    model = StrategyChatModel(
        config=StrategyConfig(strategy="vote", k=4, max_tokens=48, seed=7), endpoint=live_endpoint
    )
    before = await quiet_counters(live_endpoint)
    reply = await model.ainvoke(QUESTION)
    after = await quiet_counters(live_endpoint)
    assert isinstance(reply.content, str) and reply.content.strip()
    usage = reply.usage_metadata
    assert usage is not None and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert reply.response_metadata["ttc"]["usage"]["requests"] == 1
    # one request of n=4: vLLM counts its prompt once per sample
    assert after["vllm:prompt_tokens_total"] - before["vllm:prompt_tokens_total"] == 4 * usage["input_tokens"]
    assert after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"] == usage["output_tokens"]

    chunks = [chunk async for chunk in model.astream(QUESTION)]
    assert chunks[0].additional_kwargs["reasoning_content"].startswith("proposed samples 0..3")
    assert chunks[-1].content == reply.content and chunks[-1].usage_metadata == usage  # seeded: the same run
