"""The exact theory of adaptive votes against brute force (every order of a small pool), against
Monte-Carlo simulation, against fixed-K votes when the rule never stops, and against the graph."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from graphs.lab.adaptive import adaptive_vote_outcome, simulate_adaptive_vote, stopping_point, subset_adaptive_vote
from graphs.lab.scaling import subset_vote_accuracy, vote_accuracy
from graphs.strategies.adaptive_vote import (
    BetaRule,
    DirichletRule,
    StoppingRule,
    SupermajorityRule,
    WindowRule,
    build_adaptive_vote_graph,
)
from graphs.strategies.vote import build_vote_graph
from nodes.answers import group_answers
from tests.fakes import FakeServer, policy


@dataclass(frozen=True)
class Never:
    """Draws ``step`` more every time: a fixed-K vote in waves."""

    step: int = 1
    name: str = "never"

    def more(self, counts: Sequence[int], drawn: int, answers: Sequence[str | None] = ()) -> int:
        return self.step


RULES: list[StoppingRule] = [
    BetaRule(),
    BetaRule(0.8),
    DirichletRule(0.8, draws=500),
    WindowRule(2),
    WindowRule(3),
    SupermajorityRule(),
    SupermajorityRule(0.6),
]


def brute_force(
    rule: StoppingRule, pool: list[str | None], tokens: list[int], cap: int, max_n: int
) -> dict[str, float]:
    """The average over every order of ``pool`` of what the planner does: stop point, winner
    (ties split evenly), tokens and requests."""
    acc = samples = spent = requests = 0.0
    orders = list(itertools.permutations(range(len(pool))))
    for order in orders:
        answers = [pool[i] for i in order]
        n = stopping_point(rule, answers, cap)
        drawn = 0
        while drawn < n:  # replay the waves for their requests
            size = rule.more(_counts(answers[:drawn]), drawn, answers[:drawn])
            step = min(size, cap - drawn)
            requests += math.ceil(step / max_n)
            drawn += step
        groups = group_answers(answers[:n])
        top = max((len(g.members) for g in groups), default=0)
        tied = [g.answer for g in groups if len(g.members) == top]
        acc += sum(a == R for a in tied) / len(tied) if tied else 0.0
        samples += n
        spent += sum(tokens[i] for i in order[:n])
    k = len(orders)
    return {"accuracy": acc / k, "samples": samples / k, "tokens": spent / k, "requests": requests / k}


def _counts(answers: Sequence[str | None]) -> list[int]:
    return sorted((len(g.members) for g in group_answers(list(answers))), reverse=True)


R = "1"  # the right answer; the wrong ones are other numbers (quick to tell apart)
POOLS: list[list[str | None]] = [
    [R, R, R, "21", "22", None],
    [R, R, "21", "21", "22", "23"],
    ["21", "21", "21", R, R, None, None],
    [R, "21", "22", "23", "24", "25"],
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.name}-{getattr(r, 'threshold', getattr(r, 'window', ''))}")
@pytest.mark.parametrize("pool", POOLS, ids=range(len(POOLS)))
@pytest.mark.parametrize("cap", [3, 6])
def test_the_pool_expectation_is_the_average_over_every_order(
    rule: StoppingRule, pool: list[str | None], cap: int
) -> None:
    tokens = [10 + 7 * i + (5 if a == R else 0) for i, a in enumerate(pool)]  # distinct per sample
    # the exact method sees each answer's mean tokens, which is all the expectation needs
    by_answer: dict[str | None, list[int]] = {}
    for a, t in zip(pool, tokens, strict=True):
        by_answer.setdefault(a, []).append(t)
    counts = {a: len(ts) for a, ts in by_answer.items() if a is not None}
    out = subset_adaptive_vote(rule, counts, R, cap, none=pool.count(None), max_n=2,
                               tokens={a: sum(ts) / len(ts) for a, ts in by_answer.items()})  # fmt: skip
    want = brute_force(rule, pool, tokens, cap, max_n=2)
    assert out.accuracy == pytest.approx(want["accuracy"], abs=1e-12)
    assert out.samples == pytest.approx(want["samples"], abs=1e-12)
    assert out.tokens == pytest.approx(want["tokens"], abs=1e-9)
    assert out.requests == pytest.approx(want["requests"], abs=1e-12)
    assert sum(out.stops.values()) == pytest.approx(1.0, abs=1e-12)
    assert sum(n * p for n, p in out.stops.items()) == pytest.approx(out.samples, abs=1e-12)


@pytest.mark.parametrize(
    "rule", [BetaRule(), WindowRule(4), SupermajorityRule(), DirichletRule(draws=500)], ids=lambda r: r.name
)
@pytest.mark.parametrize(
    ("dist", "correct"),
    [
        ({"1": 0.7, "2": 0.3}, "1"),
        ({"1": 0.4, "2": 0.35, "3": 0.15, None: 0.1}, "1"),
        ({"1": 0.3, "2": 0.5, "3": 0.2}, "1"),
    ],
)
def test_the_theory_agrees_with_simulation(rule: StoppingRule, dist: dict[Any, float], correct: str) -> None:
    trials = 2000
    exact = adaptive_vote_outcome(rule, dist, correct, cap=12)
    sim = simulate_adaptive_vote(rule, dist, correct, cap=12, trials=trials, seed=1)
    se = math.sqrt(exact.accuracy * (1 - exact.accuracy) / trials)
    assert abs(exact.accuracy - sim.accuracy) < 5 * se + 1e-9
    assert exact.samples == pytest.approx(sim.samples, rel=0.05)
    for n, p in exact.stops.items():
        assert abs(p - sim.stops.get(n, 0.0)) < 5 * math.sqrt(p * (1 - p) / trials) + 1e-3


@pytest.mark.parametrize("k", [1, 2, 5, 9])
@pytest.mark.parametrize("step", [1, 3])
def test_a_rule_that_never_stops_is_the_fixed_k_vote(k: int, step: int) -> None:
    dist = {"a": 0.45, "b": 0.35, None: 0.2}
    out = adaptive_vote_outcome(Never(step), dist, "a", cap=k, tokens={"a": 10.0, "b": 20.0, None: 30.0})
    assert out.accuracy == pytest.approx(vote_accuracy(dist, "a", k), abs=1e-12)
    assert out.samples == pytest.approx(k) and out.stops == {k: pytest.approx(1.0)}
    assert out.tokens == pytest.approx(k * (0.45 * 10 + 0.35 * 20 + 0.2 * 30))
    counts = {"a": 5, "b": 4, "c": 2}
    pooled = subset_adaptive_vote(Never(step), counts, "a", k, none=1)
    assert pooled.accuracy == pytest.approx(subset_vote_accuracy(counts, "a", k, none=1), abs=1e-12)


def test_stopping_early_saves_samples_on_easy_questions_and_costs_little() -> None:
    easy = {"a": 0.8, "b": 0.1, "c": 0.1}
    out = adaptive_vote_outcome(BetaRule(), easy, "a", cap=16)
    assert out.samples < 8 and out.accuracy > vote_accuracy(easy, "a", 16) - 0.01


async def test_the_graph_stops_where_the_planner_replay_says() -> None:
    for rule, options in [(BetaRule(), {"stop": "beta"}), (WindowRule(3), {"stop": "esc", "window": 3}),
                          (SupermajorityRule(0.8), {"stop": "supermajority", "threshold": 0.8})]:  # fmt: skip
        fake = FakeServer(reply=policy)
        out = (
            await build_adaptive_vote_graph(12, **options)
            .compile()
            .ainvoke({"question": "What is 2+3?"}, context=fake.context())
        )
        everything = (
            await build_vote_graph(12)
            .compile()
            .ainvoke({"question": "What is 2+3?"}, context=FakeServer(reply=policy).context())
        )  # sample i has seed i either way: the order the adaptive run saw, drawn to the cap
        order = [c["answer"] for c in sorted(everything["candidates"], key=lambda c: c["index"])]
        assert out["decision"]["drawn"] == stopping_point(rule, order, 12)


def test_bad_pools_are_refused() -> None:
    with pytest.raises(ValueError, match="cap"):
        subset_adaptive_vote(BetaRule(), {"a": 2}, "a", 3)
    with pytest.raises(ValueError, match="non-negative"):
        subset_adaptive_vote(BetaRule(), {"a": -1}, "a", 1)
