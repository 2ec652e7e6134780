"""Adaptive vote: each stopping rule's decisions, the cap, the budget, and "no answer" never winning."""

from __future__ import annotations

from typing import Any

import pytest
from scipy import stats

from graphs.registry import get, strategies
from graphs.strategies.adaptive_vote import (
    BetaRule,
    DirichletRule,
    SupermajorityRule,
    beta_stop_probability,
    build_adaptive_vote_graph,
    make_rule,
)
from nodes import Budget, ConfigError
from tests.fakes import FakeServer, Request, policy


def unanimous(req: Request) -> str:
    return "The answer is 5."


def mostly_silent(req: Request) -> str:
    """Only sample 1 states an answer."""
    return "The answer is 7." if req.sample == 1 else "I am not sure."


async def run(reply: Any, k: int, **options: Any) -> dict[str, Any]:
    budget = options.pop("budget", None)
    fake = FakeServer(reply=reply)
    graph = build_adaptive_vote_graph(k, **options).compile()
    ctx = fake.context(**({"budget": budget} if budget else {}))
    return await graph.ainvoke({"question": "What is 2+3?"}, context=ctx)


@pytest.mark.parametrize(("v1", "v2"), [(1, 0), (4, 0), (3, 1), (6, 2), (9, 4), (12, 12)])
def test_the_beta_rule_is_the_posterior_probability_the_leader_is_ahead(v1: int, v2: int) -> None:
    # P(p1 > 1/2) with p1 ~ Beta(v1 + 1, v2 + 1): the two leaders' shares under a uniform prior
    assert beta_stop_probability(v1, v2) == pytest.approx(stats.beta.sf(0.5, v1 + 1, v2 + 1), abs=1e-12)


async def test_beta_stops_after_four_agreeing_samples() -> None:
    # P after 1..4 agreeing samples: 0.75, 0.875, 0.9375, 0.96875 (the first >= 0.95)
    out = await run(unanimous, 16, stop="beta")
    assert out["answer"] == "5" and out["decision"]["drawn"] == 4
    assert out["ledger"]["propose"]["calls"] == 4 and out["ledger"]["propose"]["requests"] == 4


async def test_beta_on_a_split_model_follows_the_rule_sample_by_sample() -> None:
    out = await run(policy, 16, stop="beta")  # right on samples i % 3 != 2: 5, 5, 6, 5, 5, 6, ...
    answers = [c["answer"] for c in sorted(out["candidates"], key=lambda c: c["index"])]
    rule = BetaRule()
    for n in range(1, len(answers)):  # every earlier point said "go on"
        counts = sorted([answers[:n].count("5"), answers[:n].count("6")], reverse=True)
        assert rule.more([c for c in counts if c], n) == 1
    counts = sorted([answers.count("5"), answers.count("6")], reverse=True)
    assert len(answers) == 16 or rule.more(counts, len(answers)) == 0  # it stopped at the first "stop", or the cap


async def test_the_cap_bounds_every_rule() -> None:
    for stop in ("beta", "dirichlet", "esc", "supermajority"):
        out = await run(policy, 5, stop=stop, **({"window": 4} if stop == "esc" else {}))
        assert out["decision"]["drawn"] <= 5 and out["ledger"]["propose"]["calls"] <= 5, stop


async def test_esc_stops_after_the_first_unanimous_window() -> None:
    assert (await run(unanimous, 16, stop="esc", window=4))["decision"]["drawn"] == 4
    out = await run(policy, 12, stop="esc", window=4)  # every window of 4 holds a wrong sample: the cap
    assert out["decision"]["drawn"] == 12 and out["answer"] == "5"


async def test_supermajority_doubles_until_enough_agree() -> None:
    assert (await run(unanimous, 16, stop="supermajority"))["decision"]["drawn"] == 2
    rule = SupermajorityRule()
    assert [rule.more([2, 1], 3), rule.more([3, 1], 4), rule.more([0], 0)] == [3, 0, 2]


async def test_no_answer_never_wins_and_never_counts() -> None:
    out = await run(mostly_silent, 6, stop="supermajority")
    assert out["answer"] == "7"
    silent = await run(lambda req: "I am not sure.", 4, stop="beta")
    assert silent["answer"] is None and silent["decision"]["drawn"] == 4  # nothing decided it: the cap


async def test_a_budget_cap_stops_the_waves() -> None:
    out = await run(policy, 16, stop="beta", budget=Budget(max_calls=3))
    assert out["ledger"]["propose"]["calls"] == 3 and out["budget"]["exhausted"]


def test_the_dirichlet_rule_is_reproducible_and_agrees_with_beta_on_two_answers() -> None:
    rule = DirichletRule()
    assert rule.more([4, 0], 4) == rule.more([4, 0], 4) == 0  # P ~ 0.969
    assert rule.more([3, 1], 4) == 1  # P ~ 0.81
    assert rule.more([9, 1, 1], 11) == 0 and rule.more([4, 3, 3], 10) == 1


def test_rules_and_registry() -> None:
    assert "adaptive-vote" in strategies() and get("adaptive-vote").pooled == "adaptive-vote"
    with pytest.raises(ConfigError, match="unknown stopping rule"):
        make_rule("coin")
    with pytest.raises(ConfigError, match=r"above 0\.5"):
        make_rule("beta", 0.3)


async def test_sixteen_one_sample_waves_run_past_langgraphs_default_recursion_limit() -> None:
    from graphs.strategies.adaptive_vote import adaptive_vote_graph

    fake = FakeServer(reply=lambda req: f"The answer is {req.sample % 2}.")  # a 50/50 split: never decided
    out = await adaptive_vote_graph(16, stop="beta").ainvoke({"question": "q"}, context=fake.context())
    assert out["decision"]["drawn"] == 16 and out["ledger"]["propose"]["requests"] == 16
