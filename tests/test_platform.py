"""The LangGraph Server graphs (graphs.serving.platform) run in-process on the fake server: the run's
context becomes the strategy's config and endpoint, the strategy's progress events come out on the
``custom`` stream, and a bad context ends the run with one ConfigError line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from graphs import registry
from graphs.registry import StrategySpec
from graphs.serving import platform
from graphs.serving.platform import ServerContext, build_platform_graph, platform_graph
from graphs.serving.strategy import StrategyConfig, StrategyResult, StrategyRunner
from graphs.strategies import build_vote_graph
from graphs.strategies.builtin import BUILTIN
from nodes import LLM, Endpoint
from nodes.errors import ConfigError
from tests.fakes import FakeServer

QUESTION = "What is 17 + 25?"
FAKE_URL, FAKE_MODEL = "http://fake.test/v1", "fake-model"
FAKE: dict[str, Any] = {"base_url": FAKE_URL, "model": FAKE_MODEL}  # a run's context as the server passes it: JSON


async def invoke(graph: Any, inputs: dict[str, Any], context: dict[str, Any], config: Any = None) -> dict[str, Any]:
    """A run as the server starts it: plain JSON input and context (langgraph makes the latter a ServerContext)."""
    out: dict[str, Any] = await graph.ainvoke(inputs, config, context=context)
    return out


class Opened:
    """An ``open_llm`` onto the fake server that records the endpoints the graph asked for."""

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        self.endpoints: list[Endpoint] = []

    def __call__(self, endpoint: Endpoint) -> LLM:
        self.endpoints.append(endpoint)
        return self.fake.llm()


@pytest.fixture(autouse=True)
def no_server_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TTC_BASE_URL", "TTC_MODEL", "TTC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_context_defaults_are_the_strategy_configs() -> None:
    assert ServerContext().config("vote") == StrategyConfig(strategy="vote")


def test_context_maps_onto_the_strategy_config() -> None:
    ctx = ServerContext(
        base_url=FAKE_URL, model=FAKE_MODEL, k=5, options={"stop": "beta"}, answer_format="number", temperature=0.3,
        max_tokens=64, seed=7, judge_temperature=0.0, judge_max_tokens=32, max_calls=9, max_total_tokens=999,
    )  # fmt: skip
    assert ctx.config("adaptive-vote") == StrategyConfig(
        strategy="adaptive-vote", k=5, options={"stop": "beta"}, answer_format="number", temperature=0.3,
        max_tokens=64, seed=7, judge_temperature=0.0, judge_max_tokens=32, max_calls=9, max_total_tokens=999,
        upstream_model="fake-model",
    )  # fmt: skip


def test_the_endpoint_comes_from_the_context_else_the_servers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServerContext(base_url="http://gpu:8000/v1/", model="m").endpoint("vote") == Endpoint(
        base_url="http://gpu:8000/v1", model="m"
    )
    monkeypatch.setenv("TTC_BASE_URL", "http://server:8000/v1")
    monkeypatch.setenv("TTC_MODEL", "served")
    assert ServerContext().endpoint("vote") == Endpoint(base_url="http://server:8000/v1", model="served")
    assert ServerContext(model="other").endpoint("vote").model == "other"


def test_the_servers_api_key_goes_only_to_the_servers_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_BASE_URL", "http://server:8000/v1")
    monkeypatch.setenv("TTC_MODEL", "served")
    monkeypatch.setenv("TTC_API_KEY", "sk-secret")
    assert ServerContext().endpoint("vote").api_key.get_secret_value() == "sk-secret"
    assert ServerContext(base_url="http://server:8000/v1").endpoint("vote").api_key.get_secret_value() == "sk-secret"
    elsewhere = ServerContext(base_url="http://elsewhere:9000/v1", model="m").endpoint("vote")
    assert elsewhere.api_key.get_secret_value() == "EMPTY"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({}, "vote: no endpoint: pass base_url and model in the run's context, or set TTC_BASE_URL and TTC_MODEL"),
        ({**FAKE, "k": 0}, "vote: bad run context: k: Input should be greater than or equal to 1"),
        ({**FAKE, "temperature": 3}, "vote: bad run context: temperature: Input should be less than or equal to 2"),
        ({**FAKE, "answer_format": "prose"}, "vote: bad run context: answer_format: Input should be 'auto', "),
        ({**FAKE, "options": {"stop": "beta"}}, "vote: bad run context: vote has no option 'stop' (its options: none)"),
        ({**FAKE, "scorer": "judge-grade"}, "vote: bad run context: vote takes no scorer"),
        ({**FAKE, "scorer": "oracle"}, "vote: bad run context: scorer: unknown scorer 'oracle'"),
        ({"base_url": "gpu:8000", "model": "m"}, "vote: bad run context: base_url: Value error, base URL must start"),
    ],
)
async def test_a_bad_context_ends_the_run_with_one_config_error_line(
    fake: FakeServer, context: dict[str, Any], message: str
) -> None:
    graph = platform_graph("vote", open_llm=Opened(fake))
    with pytest.raises(ConfigError) as raised:
        await invoke(graph, {"question": QUESTION}, context)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
    assert fake.requests == []


async def test_options_that_cannot_work_at_the_size_are_a_config_error(fake: FakeServer) -> None:
    graph = platform_graph("beam-search", open_llm=Opened(fake))
    with pytest.raises(ConfigError) as raised:
        await invoke(graph, {"question": QUESTION}, {**FAKE, "k": 2, "options": {"beam_width": 4}})
    assert str(raised.value) == "beam-search: bad run context: beam width 4 exceeds the budget 2"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "vote: the input needs a question or messages"),
        ({"question": "  "}, "vote: the input needs a question or messages"),
        ({"messages": [{"role": "system", "content": "Be brief."}]}, "vote: the messages hold no user message"),
    ],
)
async def test_an_input_without_a_question_is_a_config_error(
    fake: FakeServer, inputs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        await invoke(platform_graph("vote", open_llm=Opened(fake)), inputs, FAKE)
    assert str(raised.value) == message


def test_an_unknown_strategy_fails_when_the_graph_is_built() -> None:
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        platform_graph("nope")


async def test_a_run_answers_with_the_chosen_text_usage_and_report(fake: FakeServer) -> None:
    opened = Opened(fake)
    graph = platform_graph("vote", open_llm=opened)
    context = ServerContext(base_url=FAKE_URL, model=FAKE_MODEL, k=3, temperature=0.2, max_tokens=99, seed=5)
    out = await graph.ainvoke({"question": QUESTION}, context=context)
    # seeds 5, 6, 7: the fake is off by one on every third sample (seed 5)
    text = "Adding up step by step gives 42. The answer is 42."
    assert out["answer"] == "42" and out["text"] == text and out["finish_reason"] == "stop"
    prompt_tokens = len(fake.requests[0]["messages"][0]["content"].split())  # the fake counts words
    assert out["usage"] == {"requests": 1, "calls": 3, "prompt_tokens": prompt_tokens, "completion_tokens": 33}
    assert out["report"]["strategy"] == "vote" and out["report"]["k"] == 3
    assert [s["answer"] for s in out["report"]["samples"]] == ["43", "42", "42"]
    assert out["report"]["votes"] == {"42": 2.0, "43": 1.0}
    assert [(type(m), m.content) for m in out["messages"]] == [(HumanMessage, QUESTION), (AIMessage, text)]
    assert opened.endpoints == [Endpoint(base_url=FAKE_URL, model=FAKE_MODEL)]
    [body] = fake.requests
    assert (body["n"], body["temperature"], body["max_completion_tokens"], body["seed"]) == (3, 0.2, 99, 5)


async def test_the_strategys_progress_events_come_out_on_the_custom_stream(fake: FakeServer) -> None:
    graph = platform_graph("filter-vote", open_llm=Opened(fake))
    context = ServerContext(base_url=FAKE_URL, model=FAKE_MODEL, k=3)
    events = [e async for e in graph.astream({"question": QUESTION}, context=context, stream_mode="custom")]
    direct = [
        item
        async for item in StrategyRunner(context.config("filter-vote")).astream(QUESTION, fake.llm())
        if not isinstance(item, StrategyResult)
    ]
    assert events == direct
    assert [e["event"] for e in events] == ["proposed", "verified", "verified", "verified"]


async def test_messages_are_a_conversation_that_a_thread_continues(fake: FakeServer) -> None:
    graph = build_platform_graph("vote", open_llm=Opened(fake)).compile(checkpointer=InMemorySaver())
    thread: RunnableConfig = {"configurable": {"thread_id": "t"}}
    first = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
    await invoke(graph, {"messages": first}, {**FAKE, "k": 1}, thread)
    out = await invoke(graph, {"question": "What is 2 + 3?"}, {**FAKE, "k": 1}, thread)
    assert [m.type for m in out["messages"]] == ["system", "human", "ai", "human", "ai"]
    prompt = fake.requests[-1]["messages"][0]["content"]
    assert prompt.startswith(f"System: Be brief.\n\nUser: {QUESTION}\n\nAssistant: Adding up")
    assert "User: What is 2 + 3?" in prompt
    state = await graph.aget_state(thread)
    assert state.values["question"] == ""  # consumed: a later run with only messages does not ask it again


async def test_runners_are_compiled_once_per_config(fake: FakeServer) -> None:
    graph = platform_graph("vote", open_llm=Opened(fake))
    platform._runner.cache_clear()
    for seed in (0, 0, 1):
        await invoke(graph, {"question": QUESTION}, {**FAKE, "k": 2, "seed": seed})
    info = platform._runner.cache_info()
    assert (info.hits, info.misses) == (1, 2)


async def test_a_registered_strategy_is_served_the_same_way(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", dict(registry.strategies()))

    def twice(k: int) -> Any:
        return build_vote_graph(2 * k)

    registry.register(StrategySpec("vote-twice", twice, summary="a vote over 2k samples"))
    out = await invoke(platform_graph("vote-twice", open_llm=Opened(fake)), {"question": QUESTION}, {**FAKE, "k": 2})
    assert out["usage"]["calls"] == 4 and out["report"]["strategy"] == "vote-twice"


def test_langgraph_json_serves_every_built_in_strategy_by_its_name() -> None:
    config = json.loads((Path(__file__).parents[1] / "langgraph.json").read_text())
    assert config["dependencies"] == ["."]
    assert config["graphs"] == {s.name: f"graphs.serving.platform:{s.name.replace('-', '_')}" for s in BUILTIN}
    for name, target in config["graphs"].items():
        graph = getattr(platform, target.rpartition(":")[2])
        assert graph.name == name and graph.context_schema is ServerContext
