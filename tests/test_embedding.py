"""A strategy embedded in a user's own LangGraph app, as a subgraph, with a checkpointer."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from graphs import build_filter_vote_graph, vote_graph
from nodes import RunContext
from tests.fakes import FakeServer


@dataclass(frozen=True)
class AppContext(RunContext):
    user: str = "anonymous"


class AppState(TypedDict, total=False):
    request: str
    question: str
    answer: str | None
    log: Annotated[list[str], operator.add]


async def prepare(state: AppState, runtime: Runtime[AppContext]) -> dict[str, Any]:
    return {"question": state["request"].removeprefix("please: "), "log": [f"prepared for {runtime.context.user}"]}


async def report(state: AppState) -> dict[str, Any]:
    return {"log": [f"answered {state['answer']}"]}


def app_builder() -> StateGraph[AppState, AppContext, AppState, AppState]:
    builder = StateGraph(AppState, context_schema=AppContext)
    builder.add_node("prepare", prepare)
    # The compiled strategy is an ordinary subgraph: it reads `question`, writes `answer`.
    builder.add_node("solve", build_filter_vote_graph(k=3).compile(name="solve"))
    builder.add_node("report", report)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "solve")
    builder.add_edge("solve", "report")
    builder.add_edge("report", END)
    return builder


async def test_strategy_as_subgraph_with_checkpointer_and_streaming(tmp_path: Path, fake: FakeServer) -> None:
    ctx = AppContext(llm=fake.llm(), user="ada")
    config = {"configurable": {"thread_id": "t1"}}
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "checkpoints.sqlite")) as saver:
        app = app_builder().compile(checkpointer=saver)
        events: list[tuple[tuple[str, ...], str, Any]] = []
        async for namespace, mode, chunk in app.astream(
            {"request": "please: What is 20+22?"},
            config,
            context=ctx,
            stream_mode=["updates", "custom"],
            subgraphs=True,
        ):
            events.append((namespace, mode, chunk))

        progress = [chunk for ns, mode, chunk in events if mode == "custom"]
        assert [e["event"] for e in progress].count("verified") == 3
        assert any(e["event"] == "proposed" and e["indices"] == [0, 1, 2] for e in progress)
        # progress comes from inside the subgraph's namespace
        assert all(ns and ns[0].startswith("solve:") for ns, mode, _ in events if mode == "custom")
        updated = [next(iter(chunk)) for ns, mode, chunk in events if mode == "updates" and not ns]
        assert updated == ["prepare", "solve", "report"]

        state = await app.aget_state(config)
        assert state.values["answer"] == "42"
        assert state.values["log"] == ["prepared for ada", "answered 42"]
        assert state.next == ()

    # The checkpoint is durable: a new saver on the same file sees the finished run.
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "checkpoints.sqlite")) as saver:
        again = await app_builder().compile(checkpointer=saver).aget_state(config)
        assert again.values["answer"] == "42"


async def test_strategy_called_from_a_node_with_a_different_state(fake: FakeServer) -> None:
    solver = vote_graph(k=5)

    class Chat(TypedDict, total=False):
        messages: Annotated[list[str], operator.add]

    async def answer(state: Chat, runtime: Runtime[RunContext]) -> dict[str, Any]:
        out = await solver.ainvoke({"question": state["messages"][-1]}, context=runtime.context)
        tokens = out["ledger"]["propose"]["completion_tokens"]
        return {"messages": [f"{out['answer']} ({tokens} tokens)"]}

    builder = StateGraph(Chat, context_schema=RunContext)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    app = builder.compile()
    out = await app.ainvoke({"messages": ["What is 2+3?"]}, context=fake.context())
    assert out["messages"][-1].startswith("5 (")


async def test_a_state_edit_at_an_interrupt_is_carried_out(fake: FakeServer) -> None:
    # human in the loop: stop before the first proposals, change the question, go on
    graph = vote_graph(3).builder.compile(checkpointer=InMemorySaver(), interrupt_before=["propose"])
    cfg: Any = {"configurable": {"thread_id": "edit-question"}}
    await graph.ainvoke({"question": "What is 20+22?"}, cfg, context=fake.context())
    assert (await graph.aget_state(cfg)).next == ("propose",) and fake.requests == []
    await graph.aupdate_state(cfg, {"question": "What is 2+3?"})
    await graph.ainvoke(None, cfg, context=fake.context())  # tally plans the new question's wave: stop before it
    state = await graph.aget_state(cfg)
    assert state.next == ("propose",) and fake.requests == []
    assert [t.name for t in state.tasks] == ["propose"]
    out = await graph.ainvoke(None, cfg, context=fake.context())
    assert out["answer"] == "5" and len(out["candidates"]) == 3
    assert all("2+3" in r["messages"][0]["content"] for r in fake.requests)


async def test_a_state_edit_before_the_judges_keeps_the_planned_wave(fake: FakeServer) -> None:
    # stop before the judge calls, look at the candidates, resume after an edit as tally
    graph = build_filter_vote_graph(3).compile(checkpointer=InMemorySaver(), interrupt_before=["verify"])
    cfg: Any = {"configurable": {"thread_id": "edit-before-verify"}}
    await graph.ainvoke({"question": "What is 20+22?"}, cfg, context=fake.context())
    state = await graph.aget_state(cfg)
    assert state.next == ("verify", "verify", "verify") and len(state.values["candidates"]) == 3
    await graph.aupdate_state(cfg, {"question": "What is 20+22?"}, as_node="tally")
    out = await graph.ainvoke(None, cfg, context=fake.context())
    assert len(out["verdicts"]) == 3 and out["answer"] == "42"
