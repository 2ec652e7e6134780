"""Step-level searches on fake models whose steps and step rewards depend on the text."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest
from langgraph.types import RetryPolicy

from graphs.search.beam import build_beam_search_graph, build_lookahead_graph
from graphs.search.dvts import build_dvts_graph
from graphs.search.rebase import allocate, build_rebase_graph
from nodes import Budget, ConfigError, is_transient
from nodes.step import STEP_INSTRUCTION
from tests.fakes import FakeServer, Request

FAST_RETRY = RetryPolicy(
    initial_interval=0.001, max_interval=0.001, max_attempts=2, jitter=False, retry_on=is_transient
)


def stepper(req: Request) -> str:
    """Steps are 'good' on even sample numbers and 'bad' on odd ones; the third step answers
    42 after two good steps and 41 otherwise. The PRM says Yes to good steps and to 42."""
    if "Is the last step of this solution correct?" in req.prompt:
        shown = req.prompt.split("Solution so far:\n", 1)[1].split("\n\nIs the last step")[0]
        last = [s for s in shown.split("\n\n") if s.strip()][-1]
        return "Yes" if "good" in last or "is 42" in last else "No"
    prefix = req.prompt.split(STEP_INSTRUCTION, 1)[1]
    done = prefix.count("Step ")
    rollout = req.temperature == 0.0 and req.n == 1 and (req.max_tokens or 0) > 200
    if done >= 2:
        return f"The answer is {42 if prefix.count('good') == 2 else 41}."
    quality = "good" if req.sample % 2 == 0 else "bad"
    text = f"Step {done + 1}: a {quality} move.\n\n"
    if rollout:  # a greedy roll-out continues to the end
        return text + ("Step 2: a good move.\n\nThe answer is 42." if done == 0 else "The answer is 41.")
    return text


async def run(
    builder: Any, *args: Any, budget: Budget | None = None, **kwargs: Any
) -> tuple[dict[str, Any], FakeServer]:
    fake = FakeServer(reply=stepper)
    graph = builder(*args, retry=FAST_RETRY, **kwargs).compile()
    ctx = fake.context(max_tokens=64, **({"budget": budget} if budget else {}))
    return await graph.ainvoke({"question": "What is 20+22?"}, context=ctx), fake


def children_of(nodes: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for n in nodes:
        if n["parent"] is not None:
            out[n["parent"]].append(n)
    return out


def check_termination(out: dict[str, Any]) -> None:
    nodes = out["nodes"]
    kids = children_of(nodes)
    assert all(not kids[n["id"]] for n in nodes if n["final"])  # a finished node is never revived
    chosen = {c["index"] for c in out["candidates"]}
    assert all(n["final"] and not n["truncated"] and n["answer"] for n in nodes if n["id"] in chosen)


async def test_beam_search_keeps_the_top_candidates() -> None:
    out, _ = await run(build_beam_search_graph, 4, 2)
    check_termination(out)
    nodes = {n["id"]: n for n in out["nodes"]}
    kids = children_of(out["nodes"])
    by_depth: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for n in out["nodes"]:
        by_depth[n["depth"]].append(n)
    for depth in (1, 2):
        wave = [n for n in by_depth[depth] if not n["final"]]
        expanded = [n for n in wave if kids[n["id"]]]
        assert len(expanded) == 2  # n / M beams kept
        assert min(n["reward"] for n in expanded) >= max((n["reward"] for n in wave if not kids[n["id"]]), default=0)
        assert all(len(kids[n["id"]]) == 2 for n in expanded)
    assert out["answer"] == "42"
    assert {n["answer"] for n in nodes.values() if n["final"]} == {"42"}
    assert out["ledger"]["step"]["calls"] == 4 + 4 + 4 and out["ledger"]["verify"]["calls"] == 12


async def test_dvts_keeps_subtrees_independent() -> None:
    out, _ = await run(build_dvts_graph, 8, 2)
    check_termination(out)
    nodes = out["nodes"]
    kids = children_of(nodes)
    roots = [n for n in nodes if n["depth"] == 1]
    assert len(roots) == 4 and sorted(n["subtree"] for n in roots) == [0, 1, 2, 3]
    for n in nodes:
        for child in kids[n["id"]]:
            if n["depth"] >= 1:
                assert child["subtree"] == n["subtree"]
    # per subtree and round, exactly one node (the subtree's best) is expanded, with M children
    expanded = Counter((n["subtree"], n["depth"]) for n in nodes if kids[n["id"]] and n["depth"] >= 1)
    assert set(expanded.values()) == {1}
    assert all(len(kids[n["id"]]) == 2 for n in nodes if kids[n["id"]] and n["depth"] >= 1)


async def test_rebase_allocates_exactly_by_the_rule() -> None:
    width, temperature = 6, 0.2
    out, _ = await run(build_rebase_graph, width, temperature=temperature)
    check_termination(out)
    nodes = out["nodes"]
    kids = children_of(nodes)
    finished_before = 0
    for depth in (1, 2):
        wave = sorted((n for n in nodes if n["depth"] == depth), key=lambda n: n["id"])
        active = [n for n in wave if not n["final"]]
        budget = width - finished_before - sum(n["final"] for n in wave)
        expected = allocate([n["reward"] for n in active], budget, temperature)
        assert [len(kids[n["id"]]) for n in active] == expected
        finished_before += sum(n["final"] for n in wave)
    assert out["answer"] == "42"


async def test_rebase_with_equal_rewards_spreads_the_width() -> None:
    assert allocate([1.0, 1.0, 1.0], 6, 0.2) == [2, 2, 2]


async def test_lookahead_scores_after_a_rollout_and_counts_it() -> None:
    out, fake = await run(build_lookahead_graph, 4, 2, 2)
    check_termination(out)
    assert out["ledger"]["lookahead"]["calls"] > 0
    rollouts = [b for b in fake.requests if b.get("temperature") == 0.0 and "stop" not in b]
    assert rollouts and all(b["n"] == 1 for b in rollouts)
    assert out["answer"] == "42"


async def test_search_respects_a_call_budget_and_still_answers_only_finished_solutions() -> None:
    out, _ = await run(build_beam_search_graph, 4, 2, budget=Budget(max_calls=10))
    assert out["budget"]["exhausted"]
    total = sum(u["calls"] for u in out["ledger"].values())
    assert total <= 10
    check_termination(out)


async def test_round_limit_bounds_the_search() -> None:
    out, _ = await run(build_beam_search_graph, 4, 2, max_rounds=1)
    assert out["decision"]["stopped"].startswith("round limit")
    assert max(n["depth"] for n in out["nodes"]) == 1
    assert out["answer"] is None  # nothing finished within one round: no unfinished answer is returned


def test_bad_widths() -> None:
    with pytest.raises(ConfigError):
        build_beam_search_graph(4, 5)
    with pytest.raises(ConfigError):
        build_dvts_graph(4, 0)


def test_drawings() -> None:
    for graph in (build_beam_search_graph(4, 2), build_dvts_graph(4, 2), build_rebase_graph(4)):
        mermaid = graph.compile().get_graph().draw_mermaid()
        for edge in ("__start__ --> tally", "tally -.-> step", "step --> tally", "tally -.-> reward",
                     "reward --> tally", "tally -.-> select"):  # fmt: skip
            assert edge in mermaid
        assert "__start__ -.->" not in mermaid  # a search's first step needs its root node: tally makes it
