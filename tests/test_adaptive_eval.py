"""``ttc eval`` computes adaptive votes and offline DeepConf from the same pools as Vote: the pooled
results equal the mean of direct graph runs over every order (adaptive) or every ordered choice
(DeepConf) of each question's pool, accuracy, calls and tokens alike."""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import Any

import pytest

from graphs.evaluation import EvalPlan, EvalStore, evaluate, results
from graphs.strategies import build_adaptive_vote_graph, build_deepconf_graph
from nodes import ConfigError
from nodes.budget import ledger_totals
from tests.fakes import FakeServer, Request, arithmetic_truth
from tests.test_evaluation import DATASET, ORDERS, POOL, QUESTIONS, REPLAY, sample_text

PERMS = list(itertools.permutations(range(POOL)))
BIG = 10**6  # seeds from BIG + p * POOL + i replay sample PERMS[p][i] (a wave's request has seed base + first index)


def replay(req: Request) -> str:
    truth = arithmetic_truth(req.prompt)
    assert truth is not None
    question = next(i for i, r in enumerate(QUESTIONS) if r.question in req.prompt)
    seed = req.seed or 0
    if seed >= BIG:
        p, position = divmod(seed - BIG, POOL)
        return sample_text(question, PERMS[p][position + req.choice], truth)
    if seed < REPLAY:
        return sample_text(question, seed + req.choice, truth)
    k, j = divmod(seed, REPLAY)
    return sample_text(question, ORDERS[k][j][req.choice], truth)


def confidence(req: Request, words: list[str]) -> list[float]:
    """Each token's confidence from its sample's number and the word: different for every sample."""
    number = int(m.group(1)) if (m := re.match(r"Sample (\d+):", " ".join(words))) else 0
    return [1.0 + ((3 * number + len(w)) % 7) for w in words]


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer(reply=replay, confidence=confidence)


OPTIONS: list[dict[str, Any]] = [
    {"stop": "beta", "threshold": 0.8},
    {"stop": "esc", "window": 2},
    {"stop": "supermajority"},
    {"stop": "dirichlet", "threshold": 0.7},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: o["stop"])
async def test_pooled_adaptive_votes_are_the_mean_over_every_order(fake: FakeServer, options: dict[str, Any]) -> None:
    ctx = fake.context(answer_format="number", max_tokens=64, endpoint={"max_n": 2})
    # with logprobs each sample knows its own tokens, so the expected tokens are exact too (without
    # them, each answer's samples count the pool's mean)
    plan = EvalPlan(("adaptive-vote",), (2, 4, POOL), options={"adaptive-vote": options}, logprobs=1)
    store = EvalStore(":memory:")
    await evaluate(store, DATASET, plan, ctx)
    pooled = {(r["qid"], r["budget"]): r for r in results(store, plan, max_n=2).per_question}
    for k in (2, 4, POOL):
        graph = build_adaptive_vote_graph(k, **options).compile()
        for record in QUESTIONS:
            runs = await asyncio.gather(*(
                graph.ainvoke({"question": record.question}, context=fake.context(
                    answer_format="number", max_tokens=64, seed=BIG + p * POOL, endpoint={"max_n": 2}))
                for p in range(len(PERMS))
            ))  # fmt: skip
            right = [DATASET.check_answer(record, out["answer"]) for out in runs]
            spent = [ledger_totals(out["ledger"]) for out in runs]
            row = pooled[(record.qid, k)]
            assert row["accuracy"] == pytest.approx(sum(right) / len(runs), abs=1e-12), (options, k, record)
            assert row["calls"] == pytest.approx(sum(t["calls"] for t in spent) / len(runs), abs=1e-12)
            mean_tokens = sum(t["prompt_tokens"] + t["completion_tokens"] for t in spent) / len(runs)
            assert row["tokens"] == pytest.approx(mean_tokens, abs=1e-9), (options, k, record)


@pytest.mark.parametrize(
    "options", [{"keep": 50.0, "measure": "bottom10", "window": 3}, {"keep": 90.0, "measure": "tail", "window": 4}]
)
async def test_pooled_deepconf_is_the_mean_over_every_ordered_choice(fake: FakeServer, options: dict[str, Any]) -> None:
    ctx = fake.context(answer_format="number", max_tokens=64)
    plan = EvalPlan(("deepconf", "vote"), (1, 2, 3, POOL), options={"deepconf": options})
    assert plan.top_logprobs == 20
    store = EvalStore(":memory:")
    await evaluate(store, DATASET, plan, ctx)
    assert store.settings()["top_logprobs"] == 20
    assert all(s["confidences"] and s["tokens"] for r in QUESTIONS for s in store.samples(r.qid))
    pooled = {(r["qid"], r["strategy"], r["budget"]): r for r in results(store, plan).per_question}
    for k in (1, 2, 3):
        graph = build_deepconf_graph(k, **options).compile()
        for record in QUESTIONS:
            runs = await asyncio.gather(*(
                graph.ainvoke({"question": record.question}, context=fake.context(
                    answer_format="number", max_tokens=64, seed=REPLAY * k + j))
                for j in range(len(ORDERS[k]))
            ))  # fmt: skip
            right = [DATASET.check_answer(record, out["answer"]) for out in runs]
            row = pooled[(record.qid, "deepconf", k)]
            assert row["accuracy"] == pytest.approx(sum(right) / len(runs), abs=1e-12), (options, k, record)
            assert row["tokens"] == pooled[(record.qid, "vote", k)]["tokens"]  # the same samples as Vote@k


async def test_deepconf_on_a_pool_without_logprobs_says_so(fake: FakeServer) -> None:
    store = EvalStore(":memory:")
    await evaluate(store, DATASET, EvalPlan(("vote",), (2,)), fake.context(answer_format="number"))
    with pytest.raises(ConfigError, match="no token confidences"):
        results(store, EvalPlan(("deepconf",), (2,)))
    with pytest.raises(ConfigError, match="logprobs"):
        EvalPlan(("deepconf",), (2,), logprobs=0)


async def test_a_store_drawn_with_logprobs_keeps_drawing_them(fake: FakeServer) -> None:
    store = EvalStore(":memory:")
    await evaluate(store, DATASET, EvalPlan(("deepconf",), (2,)), fake.context(answer_format="number"))
    await evaluate(store, DATASET, EvalPlan(("vote",), (4,)), fake.context(answer_format="number"))
    assert all(s["confidences"] for r in QUESTIONS for s in store.samples(r.qid))
    with pytest.raises(ConfigError, match="top_logprobs"):
        await evaluate(store, DATASET, EvalPlan(("vote",), (5,), logprobs=0), fake.context(answer_format="number"))


def test_ttc_eval_passes_the_rule_and_the_measure_to_the_pooled_methods() -> None:
    from graphs.cli import build_parser
    from graphs.cli.evaluate import _eval_plan

    flags = ["--stop", "esc", "--window", "4", "--measure", "tail", "--keep", "50"]
    args = build_parser().parse_args(
        ["eval", "--strategies", "vote,adaptive-vote,deepconf", "--budgets", "4,16", *flags]
    )
    plan = _eval_plan(args)
    assert plan.run_options("adaptive-vote", 16) == {"stop": "esc", "window": 4}
    assert plan.run_options("deepconf", 16) == {"measure": "tail", "keep": 50.0}
    assert plan.run_options("vote", 16) == {} and plan.top_logprobs == 20
