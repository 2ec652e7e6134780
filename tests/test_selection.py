"""Compute-optimal selection (cross-validated, per difficulty bin) and the router graph."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from graphs.evaluation import Results
from graphs.evaluation.selection import (
    Policy,
    Route,
    agreement,
    assign_bins,
    bin_edges,
    difficulty,
    select_compute_optimal,
)
from graphs.lab.pool import QuestionPool
from graphs.strategies.router import build_router_graph
from nodes import ConfigError
from nodes.errors import BadModelOutput
from tests.fakes import FakeServer, Request, arithmetic_truth

# Easy questions: the probe's samples agree, one sample is nearly always right, and more calls help a little.
# Hard questions: the samples disagree, and a vote over more of them is worse (the non-monotone case).
ACCURACY = {"easy": {("vote", 1): 0.9, ("vote", 8): 1.0}, "hard": {("vote", 1): 0.5, ("vote", 8): 0.2}}
TOKENS = {("vote", 1): 10.0, ("vote", 8): 80.0}


def synthetic(n_easy: int = 20, n_hard: int = 20) -> Results:
    pools, rows, qids = {}, [], []
    for kind, count in (("easy", n_easy), ("hard", n_hard)):
        for i in range(count):
            qid = f"{kind}-{i}"
            qids.append(qid)
            answers: list[str | None] = ["7"] * 8 if kind == "easy" else ["7", "8", "9", None] * 2
            pools[qid] = QuestionPool(qid, "q", "7", {}, answers, [None] * 8)
            for (strategy, budget), acc in ACCURACY[kind].items():
                tokens = TOKENS[(strategy, budget)]
                rows.append({"qid": qid, "strategy": strategy, "budget": budget, "accuracy": acc,
                             "calls": float(budget), "tokens": tokens, "method": "pool"})  # fmt: skip
            rows.append({"qid": qid, "strategy": "pass@k", "budget": 8, "accuracy": 1.0, "calls": 8.0,
                         "tokens": 80.0, "method": "pool"})  # fmt: skip
    return Results("toy", "m", qids, rows, [], [], pools)


def test_agreement_and_bins() -> None:
    assert agreement(["1", "1.0", "2", None]) == 0.5 and agreement([None, None]) == 0.0
    values = np.array([0.0, 0.0, 0.0, 0.5, 0.75, 0.75])
    edges = bin_edges(values, 3)
    assert list(assign_bins(values, edges)) == [0, 0, 0, 1, 1, 1] or len(edges) == 2
    assert len(bin_edges(np.zeros(10), 5)) == 1  # all tied: one edge, everything in bin 0
    assert list(assign_bins(np.zeros(3), bin_edges(np.zeros(10), 5))) == [0, 0, 0]


def test_difficulty_probes() -> None:
    res = synthetic(2, 2)
    assert list(difficulty(res, res.questions, "agreement", 4)) == [0.0, 0.0, 0.75, 0.75]
    assert list(difficulty(res, res.questions, "oracle")) == [0.0, 0.0, 0.75, 0.75]
    with pytest.raises(ConfigError, match="needs 16 pool samples"):
        difficulty(res, res.questions, "agreement", 16)


def test_a_held_out_probe_reads_its_own_samples_not_the_pool() -> None:
    res = synthetic(2, 2)
    assert not select_compute_optimal(res, probe_size=4, bins=2).held_out
    # held out: the easy questions' probes happen to disagree, the hard ones' to agree on the right answer
    res.probes = {q: (["7", "8", "9", "6"] if q.startswith("easy") else ["7"] * 4) for q in res.questions}
    assert list(difficulty(res, res.questions, "agreement", 4)) == [0.75, 0.75, 0.0, 0.0]
    assert list(difficulty(res, res.questions, "oracle", 4)) == [0.75, 0.75, 0.0, 0.0]
    with pytest.raises(ConfigError, match="needs 5 held-out probe samples, there are 4"):
        difficulty(res, res.questions, "agreement", 5)
    assert select_compute_optimal(res, probe_size=4, bins=2).held_out


def test_results_by_difficulty_bin() -> None:
    from graphs.evaluation.selection import by_difficulty

    res = synthetic(3, 2)
    res.probes = {q: (["7"] * 4 if q.startswith("easy") else ["7", "8", "9", None]) for q in res.questions}
    for r in res.per_question:
        r["flops"] = 2.0 * r["tokens"]
    rows = by_difficulty(res, probe_size=4, bins=2)
    got = {(r["bin"], r["strategy"], r["budget"]): r for r in rows}
    assert {b for b, _, _ in got} == {0, 1}
    assert got[(0, "vote", 8)]["questions"] == 3 and got[(1, "vote", 8)]["questions"] == 2
    assert got[(0, "vote", 8)]["accuracy"] == pytest.approx(1.0)
    assert got[(1, "vote", 8)]["accuracy"] == pytest.approx(0.2)
    assert got[(1, "vote", 1)]["accuracy"] == pytest.approx(0.5) and got[(1, "vote", 1)]["flops"] == 20.0
    assert got[(0, "vote", 1)]["difficulty_high"] == 0.0 and got[(1, "vote", 1)]["difficulty_low"] == 0.75
    assert all(r["held_out"] for r in rows)


def test_compute_optimal_beats_the_best_fixed_strategy_at_equal_tokens() -> None:
    sel = select_compute_optimal(synthetic(), probe_size=4, bins=2, folds=2)
    assert sel.configs == ["vote@1", "vote@8"]  # pass@k is an oracle, never chosen
    at = {p.token_budget: p for p in sel.points}
    assert set(at) == {10.0, 80.0}
    # with 10 tokens per question both can only run vote@1
    assert at[10.0].optimal_accuracy == at[10.0].fixed_accuracy == pytest.approx(0.7)
    # with 80: the best fixed choice is still vote@1 (0.7 > 0.6), but per bin easy -> vote@8, hard -> vote@1
    p = at[80.0]
    assert p.fixed_choices == ["vote@1", "vote@1"] and p.fixed_accuracy == pytest.approx(0.7)
    assert p.optimal_choices == [["vote@8", "vote@1"], ["vote@8", "vote@1"]]
    assert p.optimal_accuracy == pytest.approx(0.75) and p.optimal_tokens == pytest.approx(45.0)
    policy = sel.policies["80.0"]
    assert policy.route(0.0) == Route("vote", 8) and policy.route(0.75) == Route("vote", 1)


def test_the_held_out_fold_never_informs_its_own_choice() -> None:
    # one easy question is an outlier where vote@1 is perfect: it may not help choose vote@1 for itself
    res = synthetic(4, 4)
    for r in res.per_question:
        if r["qid"] == "easy-0":
            r["accuracy"] = {1: 1.0, 8: 0.0}.get(r["budget"], r["accuracy"]) if r["strategy"] == "vote" else 1.0
    sel = select_compute_optimal(res, probe_size=4, bins=2, folds=2)
    p = next(p for p in sel.points if p.token_budget == 80.0)
    # trained with easy-0, a fold picks vote@1 for easy questions; the fold holding easy-0 out picks vote@8
    assert {choices[0] for choices in p.optimal_choices} == {"vote@1", "vote@8"}
    # so easy-0 scores 0 (vote@8), its fold-mate 1.0 (vote@8), the other fold's two easy ones 0.9 (vote@1)
    assert p.optimal_accuracy == pytest.approx((0.0 + 1.0 + 0.9 + 0.9 + 4 * 0.5) / 8)


def test_selection_needs_enough_questions() -> None:
    with pytest.raises(ConfigError, match="at least 4 questions"):
        select_compute_optimal(synthetic(1, 1))


def test_policy_files_round_trip_and_bad_ones_fail_clearly(tmp_path: Path) -> None:
    policy = Policy("agreement", 4, [0.3], [Route("vote", 1), Route("filter-vote", 4)], 80.0)
    assert Policy.from_json(policy.to_json()) == policy
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"probe": "agreement", "probe_size": 4, "edges": [0.3], "routes": []}))
    with pytest.raises(ConfigError, match="one route per bin"):
        Policy.load(bad)
    bad.write_text("{")
    with pytest.raises(ConfigError, match="not a routing policy"):
        Policy.load(bad)
    with pytest.raises(ConfigError, match="cannot read policy"):
        Policy.load(tmp_path / "missing.json")


def probe_reply(req: Request) -> str:
    """Agrees with itself on sums and scatters on products."""
    truth = arithmetic_truth(req.prompt)
    assert truth is not None
    value = truth if "+" in req.prompt else truth + req.sample % 4
    return f"So it is {value}. The answer is {value}."


async def test_the_router_probes_then_runs_the_strategy_of_the_questions_bin() -> None:
    fake = FakeServer(reply=probe_reply)
    policy = Policy("agreement", 4, [0.3], [Route("vote", 1), Route("vote", 3)])
    graph = build_router_graph(policy).compile()
    ctx = fake.context(answer_format="number")

    easy = await graph.ainvoke({"question": "What is 2 + 2?"}, context=ctx)
    assert easy["probe"]["agreement"] == 1.0 and easy["probe"]["route"] == "vote@1"
    assert easy["answer"] == "4" and len(easy["candidates"]) == 1
    assert easy["ledger"]["probe"]["calls"] == 4 and easy["ledger"]["propose"]["calls"] == 1

    events = []
    async for ns, mode, chunk in graph.astream({"question": "What is 12 * 3?"}, context=ctx,
                                               stream_mode=["custom", "values"], subgraphs=True):  # fmt: skip
        if mode == "custom":
            events.append(chunk)
        elif ns == ():
            hard = chunk
    assert hard["probe"]["agreement"] == 0.25 and hard["probe"]["route"] == "vote@3"
    assert len(hard["candidates"]) == 3 and hard["ledger"]["propose"]["calls"] == 3
    assert events[0] == {"event": "routed", "agreement": 0.25, "route": "vote@3"}
    assert any(e.get("event") == "proposed" for e in events[1:])  # the subgraph's events stream out


def test_a_router_refuses_what_it_cannot_measure_or_run() -> None:
    with pytest.raises(ConfigError, match="only measure agreement"):
        build_router_graph(Policy("oracle", 4, [], [Route("vote", 1)]))
    with pytest.raises(ConfigError, match="unknown strategies"):
        build_router_graph(Policy("agreement", 4, [], [Route("pass@k", 1)]))


async def test_the_probe_respects_max_n_and_refuses_missing_samples() -> None:
    fake = FakeServer(reply=probe_reply)
    graph = build_router_graph(Policy("agreement", 4, [0.3], [Route("vote", 1), Route("vote", 3)])).compile()
    out = await graph.ainvoke({"question": "What is 12 * 3?"}, context=fake.context(endpoint={"max_n": 3}))
    assert [b.get("n") for b in fake.requests[:2]] == [3, 1] and [b["seed"] for b in fake.requests[:2]] == [0, 3]
    assert out["probe"]["agreement"] == 0.25 and out["ledger"]["probe"] == {
        "requests": 2, "calls": 4, "prompt_tokens": out["ledger"]["probe"]["prompt_tokens"],
        "completion_tokens": out["ledger"]["probe"]["completion_tokens"],
    }  # fmt: skip

    class OneReply(FakeServer):  # a server that ignores n
        def handler(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/chat/completions"):
                body = json.loads(request.content)
                body["n"] = 1
                request = httpx.Request("POST", request.url, json=body)
            return super().handler(request)

    with pytest.raises(BadModelOutput, match="asked for 4 samples and got 1"):
        await graph.ainvoke({"question": "What is 12 * 3?"}, context=OneReply(reply=probe_reply).context())


async def test_a_policy_fitted_on_a_held_out_probe_probes_past_the_strategys_seeds() -> None:
    res = synthetic(2, 2)
    res.probes = {q: (["7"] * 4 if q.startswith("easy") else ["7", "8", "9", None]) for q in res.questions}
    policy = select_compute_optimal(res, probe_size=4, bins=2).policies["80.0"]
    assert policy.probe_seed_offset == 8  # the pools hold 8 scored samples; the probe's came after them
    assert Policy.from_json(policy.to_json()).probe_seed_offset == 8
    assert (
        Policy.from_dict(
            {"probe": "agreement", "probe_size": 2, "edges": [], "routes": [{"strategy": "vote", "budget": 1}]}
        ).probe_seed_offset
        == 0
    )  # a policy file from before
    fake = FakeServer(reply=probe_reply)
    graph = build_router_graph(Policy("agreement", 4, [0.3], [Route("vote", 1), Route("vote", 3)],
                                      probe_seed_offset=8)).compile()  # fmt: skip
    out = await graph.ainvoke({"question": "What is 12 * 3?"}, context=fake.context(answer_format="number", seed=5))
    probe, routed = fake.requests[0], fake.requests[1]
    assert (probe["n"], probe["seed"]) == (4, 13) and routed["seed"] == 5
    assert out["probe"]["route"] == "vote@3"
