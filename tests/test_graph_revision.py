from __future__ import annotations

import re
from typing import Any

import pytest
from langgraph.types import RetryPolicy

from graphs.strategies.revision import build_mix_graph, build_revision_graph, chain_depths
from nodes import Budget, ConfigError, is_transient
from tests.fakes import FakeServer, Request

FAST_RETRY = RetryPolicy(
    initial_interval=0.001, max_interval=0.001, max_attempts=2, jitter=False, retry_on=is_transient
)


def refiner(req: Request) -> str:
    """Proposals say 40 + sample number; a revision adds 1 to the last attempt's answer.

    Critiques say "too small" until the answer reaches 42; the grader likes 42 best.
    """
    if "Grade: <your grade" in req.prompt:
        stated = re.findall(r"The answer is (\d+)", req.prompt)
        return f"Grade: {9 if stated and stated[-1] == '42' else 3}"
    if req.prompt.startswith("[User Question]") and "List each mistake" in req.prompt:
        stated = int(re.findall(r"The answer is (\d+)", req.prompt)[-1])
        return "No mistake." if stated >= 42 else "The answer is too small."
    attempts = re.findall(r"Previous attempt (\d+):\n[^\n]*?The answer is (\d+)", req.prompt)
    if attempts:
        last = int(attempts[-1][1])
        seen = ",".join(n for n, _ in attempts)
        return f"Saw {seen}. The answer is {last + 1 if last < 42 else last}."
    return f"The answer is {40 + req.sample % 2}."


async def run(fake: FakeServer, graph_builder: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    budget = kwargs.pop("budget", None)
    graph = graph_builder(*args, retry=FAST_RETRY, **kwargs).compile()
    ctx = fake.context(**({"budget": budget} if budget else {}))
    return await graph.ainvoke({"question": "What is 20+22?"}, context=ctx)


def test_chain_depths_split_the_budget_exactly() -> None:
    assert chain_depths(10, 4) == [3, 3, 2, 2] and sum(chain_depths(37, 5)) == 37
    with pytest.raises(ConfigError):
        chain_depths(4, 5)
    with pytest.raises(ConfigError):
        chain_depths(0, 1)


@pytest.mark.parametrize(("budget", "chains"), [(10, 4), (8, 1), (6, 6), (12, 3)])
async def test_the_mix_spends_exactly_its_budget(budget: int, chains: int) -> None:
    fake = FakeServer(reply=refiner)
    out = await run(fake, build_mix_graph, budget, chains)
    assert len(out["candidates"]) == budget
    ledger = out["ledger"]
    revisions = budget - chains
    assert ledger["propose"]["calls"] == chains
    assert ledger.get("revise", {"calls": 0})["calls"] == revisions
    assert ledger.get("critique", {"calls": 0})["calls"] == revisions
    assert [len(c) for c in out["chains"]] == chain_depths(budget, chains)
    assert sorted(i for chain in out["chains"] for i in chain) == list(range(budget))


async def test_a_revision_chain_revises_in_order_with_truncated_context() -> None:
    fake = FakeServer(reply=refiner)
    out = await run(fake, build_revision_graph, 6, max_attempts=2, select="last")
    texts = [c["text"] for c in sorted(out["candidates"], key=lambda c: c["index"])]
    assert texts[0] == "The answer is 40."
    assert texts[1] == "Saw 1. The answer is 41."
    assert texts[2] == "Saw 1,2. The answer is 42."
    assert texts[5] == "Saw 4,5. The answer is 42."  # only the last two attempts are shown
    parents = [c["parent"] for c in sorted(out["candidates"], key=lambda c: c["index"])]
    assert parents == [None, 0, 1, 2, 3, 4]
    assert out["answer"] == "42"


async def test_selection_by_vote_last_and_verifier() -> None:
    # two chains of 3: chain 0 goes 40, 41, 42; chain 1 starts at 41: 41, 42, 42
    by_vote = await run(FakeServer(reply=refiner), build_mix_graph, 6, 2, select="vote")
    assert by_vote["answer"] == "42" and by_vote["decision"]["votes"] == {"40": 1.0, "41": 2.0, "42": 3.0}
    by_last = await run(FakeServer(reply=refiner), build_mix_graph, 6, 2, select="last")
    assert by_last["decision"]["votes"] == {"42": 2.0}
    fake = FakeServer(reply=refiner)
    by_verifier = await run(fake, build_mix_graph, 6, 2, select="verifier")
    assert by_verifier["answer"] == "42" and len(by_verifier["scores"]) == 6
    assert by_verifier["ledger"]["verify"]["calls"] == 6


async def test_a_failing_revision_ends_only_its_chain() -> None:
    def fault(body: dict[str, Any], count: int) -> int | None:
        text = body["messages"][0]["content"]
        return (
            400
            if "Previous attempt" in text and "The answer is 41" in text.split("Previous attempt 1:")[1][:40]
            else None
        )

    out = await run(FakeServer(reply=refiner, fault=fault), build_mix_graph, 6, 2, select="vote")
    lengths = sorted(len(c) for c in out["chains"])
    assert lengths == [1, 3]  # chain 1 (starting at 41) stopped after its failed revision
    assert [f["node"] for f in out["failures"]] == ["revise"]


async def test_budget_cap_stops_between_rounds() -> None:
    out = await run(FakeServer(reply=refiner), build_mix_graph, 12, 3, budget=Budget(max_calls=9))
    assert out["budget"]["exhausted"]
    total_calls = sum(u["calls"] for u in out["ledger"].values())
    assert total_calls <= 9 and out["answer"] is not None


def test_drawing_shows_the_chain_steps() -> None:
    mermaid = build_mix_graph(8, 2).compile().get_graph().draw_mermaid()
    for edge in (
        "tally -.-> propose",
        "tally -.-> critique",
        "tally -.-> revise",
        "revise --> tally",
        "tally -.-> select",
    ):
        assert edge in mermaid
