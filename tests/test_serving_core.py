"""graphs.serving.strategy: the core every door shares (config from a request or a model name, the
question from chat messages, a run's result and usage), on the fake server."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph

from graphs.serving import StrategyConfig, StrategyFailed, StrategyResult, StrategyRunner, question_of
from nodes.errors import ConfigError
from tests.fakes import FakeServer

QUESTION = "What is 17 + 25?"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vote-8/Qwen/Qwen2.5-0.5B", ("vote", 8, "Qwen/Qwen2.5-0.5B")),
        ("filter-vote", ("filter-vote", None, None)),
        ("deepconf-online-16/m", ("deepconf-online", 16, "m")),
        ("best-of-n-4", ("best-of-n", 4, None)),
        ("gpt-4o", None),
        ("vote-x/m", None),
    ],
)
def test_model_names(name: str, expected: Any) -> None:
    assert StrategyConfig.split_model_name(name) == expected


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"strategy": "nope"}, "strategy: unknown strategy 'nope'"),
        ({"k": 0}, "k: Input should be greater than or equal to 1"),
        ({"temperature": 0.0, "k": 4}, "temperature 0 would make the 4 samples one greedy sample"),
        ({"scorer": "oracle"}, "scorer: unknown scorer 'oracle'"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_configs_are_one_line_config_errors(values: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        StrategyConfig.parse(values)
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_bad_options_fail_when_the_runner_is_built() -> None:
    with pytest.raises(ConfigError, match="adaptive-vote: stop must be one of"):
        StrategyRunner(StrategyConfig(strategy="adaptive-vote", options={"stop": "never"}))
    with pytest.raises(ConfigError, match="vote takes no scorer"):
        StrategyRunner(StrategyConfig(strategy="vote", scorer="judge-grade"))


def test_the_question_is_the_last_user_message_with_the_conversation_before_it() -> None:
    assert question_of([HumanMessage(QUESTION)]) == QUESTION
    messages = [SystemMessage("Be brief."), HumanMessage("Hi"), AIMessage("Hello."), HumanMessage(QUESTION)]
    assert question_of(messages) == f"System: Be brief.\n\nUser: Hi\n\nAssistant: Hello.\n\nUser: {QUESTION}"
    with pytest.raises(ConfigError, match="no user message"):
        question_of([{"role": "assistant", "content": "x"}])
    with pytest.raises(ConfigError, match="empty"):
        question_of([{"role": "user", "content": "  "}])


async def test_a_run_gives_the_chosen_text_and_the_ledger(fake: FakeServer) -> None:
    runner = StrategyRunner(StrategyConfig(strategy="vote", k=6))
    async with fake.llm() as llm:
        items = [item async for item in runner.astream(QUESTION, llm)]
    *events, result = items
    assert [e["event"] for e in events] == ["proposed"]
    assert isinstance(result, StrategyResult)
    assert result.answer == "42" and result.text.endswith("The answer is 42.")
    assert result.report["votes"] == {"42": 4, "43": 2} and result.report["chosen"] == 0
    assert result.usage == {"requests": 1, "calls": 6, "prompt_tokens": 24, "completion_tokens": 66}


async def test_a_run_may_change_sampling_but_not_the_graph(fake: FakeServer) -> None:
    runner = StrategyRunner(StrategyConfig(strategy="vote", k=2))
    async with fake.llm() as llm:
        await runner.ainvoke(QUESTION, llm, config=StrategyConfig(strategy="vote", k=2, temperature=0.3, seed=9))
        assert fake.requests[-1]["temperature"] == 0.3 and fake.requests[-1]["seed"] == 9
        with pytest.raises(ConfigError, match="not the strategy, k"):
            await runner.ainvoke(QUESTION, llm, config=StrategyConfig(strategy="vote", k=3))


async def test_a_run_whose_calls_all_fail_raises() -> None:
    fake = FakeServer(fault=lambda body, count: 401)
    runner = StrategyRunner(StrategyConfig(strategy="vote", k=2))
    async with fake.llm() as llm:
        with pytest.raises(StrategyFailed) as raised:
            await runner.ainvoke(QUESTION, llm)
    assert raised.value.status == 401 and not raised.value.transient


async def test_a_run_inside_another_graphs_node_keeps_its_result(fake: FakeServer) -> None:
    """Run in a node, every namespace the strategy streams has the node's prefix: the result is still read."""

    class State(TypedDict):
        question: str
        answer: str | None

    runner = StrategyRunner(StrategyConfig(strategy="vote", k=3))

    async def answer(state: State) -> dict[str, Any]:
        async with fake.llm() as llm:
            result = await runner.ainvoke(state["question"], llm)
        return {"answer": result.answer}

    graph = StateGraph(State)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    out = await graph.compile().ainvoke({"question": QUESTION, "answer": None})
    assert out["answer"] == "42"
