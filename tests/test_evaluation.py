"""The evaluation harness: resume after an interruption, pooled curves against direct runs."""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
from pathlib import Path

import pytest
from langgraph.types import RetryPolicy

from graphs import build_best_of_n_graph, build_filter_vote_graph, build_vote_graph
from graphs.evaluation import (
    FILTER_SCORER,
    EvalPlan,
    EvalStore,
    Progress,
    evaluate,
    format_table,
    pending,
    prefix_accuracy,
    results,
    subset_selection_accuracy,
    write_outputs,
)
from graphs.evaluation.datasets import Dataset, Record, load
from graphs.evaluation.plan import options_key
from graphs.strategies.best_of_n import select_weighted
from nodes import ConfigError
from nodes.budget import ledger_totals
from nodes.scorers import JudgeGrade
from tests.fakes import FakeServer, Request, arithmetic_truth, default_reply, judge

# -- a fake model whose samples are fixed per question, so direct runs can replay any subset ----------

POOL = 5  # samples per question in the pool
OFFSETS = [  # each question's samples, as offsets from the true answer (None: states no answer)
    [0, 1, 0, None, 1],
    [1, 1, 0, 2, 0],
    [0, 0, 0, 3, 0],
    [2, 1, 2, 0, None],
]
QUESTIONS = [Record(f"q{i}", f"What is {10 + i} + {20 + 3 * i}?", str(30 + 4 * i)) for i in range(len(OFFSETS))]
DATASET = Dataset("toy", QUESTIONS, "number")
ORDERS = {k: list(itertools.permutations(range(POOL), k)) for k in range(1, 4)}
REPLAY = 1000  # seeds from REPLAY * k + j replay the pool's samples in order j of k of them


def sample_text(question: int, i: int, truth: int) -> str:
    offset = OFFSETS[question][i]
    if offset is None:
        return f"Sample {i}: I am not sure."
    return f"Sample {i}: adding gives {truth + offset}. The answer is {truth + offset}."


def fixed_pool_reply(req: Request) -> str:
    if "Grade: <your grade" in req.prompt:  # the grading judge: a grade computed from the judged text
        stated = re.search(r"\[Answer\]:Sample (\d+)", req.prompt)
        return f"Grade: {2 + 3 * int(stated.group(1)) % 9}" if stated else "No grade."
    if "conclude with either" in req.prompt:
        # a noisy filter judge: says wrong about sample 0 whatever it states
        return "[[wrong]]" if "[Answer]:Sample 0:" in req.prompt else judge(req)
    truth = arithmetic_truth(req.prompt)
    assert truth is not None
    question = next(i for i, r in enumerate(QUESTIONS) if r.question in req.prompt)
    seed = req.seed or 0
    if seed < REPLAY:  # the pool: sample i is choice i of the request
        return sample_text(question, seed + req.choice, truth)
    k, j = divmod(seed, REPLAY)
    return sample_text(question, ORDERS[k][j][req.choice], truth)


@pytest.fixture
def fixed() -> FakeServer:
    return FakeServer(reply=fixed_pool_reply)


PLAN = EvalPlan(("vote", "filter-vote", "best-of-n", "weighted-best-of-n", "pass@k"), (1, 2, 3, POOL),
                scorer=JudgeGrade())  # fmt: skip


async def test_pooled_curves_equal_the_mean_of_direct_runs_over_every_subset(fixed: FakeServer) -> None:
    """Direct graph runs, one per ordered choice of k of the pool's samples, average to exactly the pooled
    results: subsets, and ties broken as sample order breaks them in the graphs."""
    ctx = fixed.context(answer_format="number", max_tokens=64)
    store = EvalStore(":memory:")
    await evaluate(store, DATASET, PLAN, ctx)
    res = results(store, PLAN)
    pooled = {(r["qid"], r["strategy"], r["budget"]): r for r in res.per_question}
    builders = {
        "vote": lambda k: build_vote_graph(k),
        "filter-vote": lambda k: build_filter_vote_graph(k),
        "best-of-n": lambda k: build_best_of_n_graph(k, scorer=JudgeGrade()),
        "weighted-best-of-n": lambda k: build_best_of_n_graph(k, scorer=JudgeGrade(), weighted=True),
    }
    for k in (1, 2, 3):
        for strategy, build in builders.items():
            graph = build(k).compile()
            for record in QUESTIONS:
                runs = await asyncio.gather(*(
                    graph.ainvoke({"question": record.question}, context=fixed.context(
                        answer_format="number", max_tokens=64, seed=REPLAY * k + j))
                    for j in range(len(ORDERS[k]))
                ))  # fmt: skip
                right = [DATASET.check_answer(record, out["answer"]) for out in runs]
                tokens = [ledger_totals(out["ledger"]) for out in runs]
                row = pooled[(record.qid, strategy, k)]
                assert row["accuracy"] == pytest.approx(sum(right) / len(right), abs=1e-12), (strategy, k, record)
                assert row["calls"] == pytest.approx(sum(t["calls"] for t in tokens) / len(runs))
                mean_tokens = sum(t["prompt_tokens"] + t["completion_tokens"] for t in tokens) / len(runs)
                assert row["tokens"] == pytest.approx(mean_tokens), (strategy, k, record)


async def test_a_direct_vote_with_the_pools_seed_is_the_pools_prefix(fixed: FakeServer) -> None:
    ctx = fixed.context(answer_format="number", max_tokens=64)
    store = EvalStore(":memory:")
    await evaluate(store, DATASET, EvalPlan(("vote",), (POOL,)), ctx)
    res = results(store, EvalPlan(("vote",), (POOL,)))
    for k in range(1, POOL + 1):
        graph = build_vote_graph(k).compile()
        for record in QUESTIONS:
            out = await graph.ainvoke({"question": record.question}, context=ctx)
            assert DATASET.check_answer(record, out["answer"]) == prefix_accuracy(res.pools[record.qid], k)


async def test_pass_at_k_and_the_filter_follow_the_stored_verdicts(fixed: FakeServer) -> None:
    store = EvalStore(":memory:")
    await evaluate(store, DATASET, PLAN, fixed.context(answer_format="number", max_tokens=64))
    res = results(store, PLAN)
    by = {(r["qid"], r["strategy"], r["budget"]): r["accuracy"] for r in res.per_question}
    # q3's samples state 32+2, 32+1, 32+2, 32 (sample 3) and nothing: pass@1 = 1/5, pass@5 = 1
    assert by[("q3", "pass@k", 1)] == pytest.approx(1 / 5) and by[("q3", "pass@k", POOL)] == 1.0
    # the judge keeps only sample 3 (the right one; it rejects sample 0 whatever it says): Filter-Vote@5 is right
    assert by[("q3", "filter-vote", POOL)] == 1.0 and by[("q3", "vote", POOL)] == 0.0
    labels = [j["label"] for j in store.judgements("q3", FILTER_SCORER)]
    assert labels == ["wrong", "wrong", "wrong", "correct", "wrong"]


# -- resuming ------------------------------------------------------------------------------------------


def arithmetic(per_level: int = 2) -> Dataset:
    return load("arithmetic", per_level=per_level, levels=["1+1", "2+2", "2x2"])


MIXED = EvalPlan(("vote", "filter-vote", "weighted-best-of-n", "mix"), (1, 2, 4), scorer=JudgeGrade())


async def run_to_end(store: EvalStore, fake: FakeServer) -> None:
    await evaluate(store, arithmetic(), MIXED, fake.context(answer_format="number", max_tokens=64), concurrency=2)


@pytest.mark.parametrize("stop_after", [1, 4, 15, 40, 75])
async def test_an_interrupted_eval_resumes_to_exactly_the_rows_of_an_uninterrupted_one(
    tmp_path: Path, stop_after: int
) -> None:
    whole = EvalStore(tmp_path / "whole.sqlite")
    await run_to_end(whole, FakeServer())

    task: asyncio.Task[None] | None = None

    def cancelling(req: Request) -> str:
        if len(fake.requests) >= stop_after and task is not None:
            task.cancel()  # like Ctrl-C: lands at the next await, in the middle of the work
        return default_reply(req)

    fake = FakeServer(reply=cancelling)
    path = tmp_path / "resumed.sqlite"
    with EvalStore(path) as interrupted:
        task = asyncio.create_task(run_to_end(interrupted, fake))
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pending(interrupted, arithmetic(), MIXED) > 0
    stored = sum(len(rows) for table, rows in EvalStore(path).dump().items() if table in ("samples", "runs"))
    resumed_fake = FakeServer()
    with EvalStore(path) as resumed:  # a new process would open the file like this
        await run_to_end(resumed, resumed_fake)
        assert resumed.dump() == whole.dump()
        assert pending(resumed, arithmetic(), MIXED) == 0
    if stored:  # what was stored is not asked for again
        assert len(resumed_fake.requests) < await requests_of_one_run()


async def requests_of_one_run() -> int:
    fake = FakeServer()
    await run_to_end(EvalStore(":memory:"), fake)
    return len(fake.requests)


async def test_a_finished_store_makes_no_calls_and_results_match(tmp_path: Path) -> None:
    fake = FakeServer()
    with EvalStore(tmp_path / "s.sqlite") as store:
        await run_to_end(store, fake)
        before = len(fake.requests)
        first = results(store, MIXED).table
        await run_to_end(store, fake)
        assert len(fake.requests) == before and results(store, MIXED).table == first


async def test_a_larger_budget_extends_the_pool_without_redrawing(tmp_path: Path) -> None:
    fake = FakeServer()
    small, large = EvalPlan(("vote",), (1, 2)), EvalPlan(("vote",), (1, 2, 4))
    ctx = fake.context(answer_format="number", max_tokens=64)
    store = EvalStore(":memory:")
    await evaluate(store, arithmetic(1), small, ctx)
    first = {r.qid: store.samples(r.qid) for r in arithmetic(1).records}
    await evaluate(store, arithmetic(1), large, ctx)
    for qid, samples in first.items():
        now = store.samples(qid)
        assert len(now) == 4 and now[:2] == samples
        assert [s["seed"] for s in now] == [0, 0, 2, 2]  # the extension continues the seeds


async def test_a_store_refuses_other_settings(fake: FakeServer) -> None:
    store = EvalStore(":memory:")
    await evaluate(store, arithmetic(1), EvalPlan(("vote",), (1,)), fake.context(answer_format="number"))
    with pytest.raises(ConfigError, match=r"temperature=0\.7, not 0\.2"):
        await evaluate(store, arithmetic(1), EvalPlan(("vote",), (1,)),
                       fake.context(answer_format="number", temperature=0.2))  # fmt: skip
    assert len(fake.requests) == 1 * len(arithmetic(1).records)


def test_duplicate_rows_are_impossible() -> None:
    store = EvalStore(":memory:")
    columns = "qid, idx, text, answer, finish_reason, seed, correct"
    row = f"INSERT INTO samples ({columns}) VALUES ('q', 0, 't', '1', 'stop', 0, 1)"
    store._db.execute(row)
    with pytest.raises(sqlite3.IntegrityError):
        store._db.execute(row)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategies": ("vote", "tree-of-thought"), "budgets": (1,)}, "unknown strategies"),
        ({"strategies": ("vote",), "budgets": (0, 2)}, "budgets must be positive"),
        ({"strategies": ("vote",), "budgets": ()}, "budgets must be positive"),
        ({"strategies": ("best-of-n",), "budgets": (2,)}, "need a scorer"),
        ({"strategies": (), "budgets": (2,)}, "no strategies"),
        ({"strategies": ("vote", "vote"), "budgets": (2,)}, "listed twice"),
    ],
)
def test_bad_plans_fail_before_any_call(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EvalPlan(**kwargs)  # type: ignore[arg-type]


async def test_code_data_sets_only_take_strategies_without_a_vote(fake: FakeServer) -> None:
    code = Dataset("humaneval", [Record("h", "def f(): ...", "", {})], "auto")
    with pytest.raises(ConfigError, match="humaneval is code"):
        await evaluate(EvalStore(":memory:"), code, EvalPlan(("vote",), (2,)), fake.context())
    assert fake.requests == []


async def test_outputs_and_progress(tmp_path: Path, fake: FakeServer) -> None:
    lines: list[str] = []

    class Lines:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    store = EvalStore(":memory:")
    plan = EvalPlan(("vote", "pass@k"), (1, 2))
    progress = Progress(len(arithmetic().records), stream=Lines(), every=0.0)  # type: ignore[arg-type]
    await evaluate(store, arithmetic(), plan, fake.context(answer_format="number"), progress=progress)
    assert len(lines) == len(arithmetic().records) and "6/6" in lines[-1] and "tokens" in lines[-1]
    paths = write_outputs(results(store, plan), tmp_path)
    assert (tmp_path / "results.csv").read_text().splitlines()[0].startswith("strategy,budget,questions,accuracy")
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 1 + 4
    assert {"accuracy_vs_calls.png", "accuracy_vs_tokens.png"} <= set(paths)


async def test_pooled_tokens_charge_one_prompt_per_request(fake: FakeServer) -> None:
    store = EvalStore(":memory:")
    plan = EvalPlan(("vote",), (1, 3))
    await evaluate(store, arithmetic(1), plan, fake.context(answer_format="number"))
    one_request, three_requests = results(store, plan), results(store, plan, max_n=1)
    qid = arithmetic(1).records[0].qid
    usage = store.usage(qid)  # one request with n=3
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"] / 3
    for res, prompts in ((one_request, 1), (three_requests, 3)):
        row = next(r for r in res.per_question if r["qid"] == qid and r["budget"] == 3)
        assert row["tokens"] == pytest.approx(prompts * prompt + 3 * completion)


# -- what the review found ---------------------------------------------------------------------------


def test_weighted_ties_are_ties_in_every_order() -> None:
    # grades 2, 2, 5 for "a" and 1, 7 for "b": (g - 1) / 9 sums to 6/9 on both sides, whatever the order
    scores_by_answer = [("a", 1 / 9), ("a", 1 / 9), ("a", 4 / 9), ("b", 0.0), ("b", 6 / 9)]
    right_share = []
    for order in itertools.permutations(range(5)):
        candidates = [{"index": i, "text": "", "answer": scores_by_answer[j][0], "finish_reason": "stop",
                       "seed": 0, "parent": None} for i, j in enumerate(order)]  # fmt: skip
        scores = [
            {"index": i, "steps": [], "score": scores_by_answer[j][1], "label": None} for i, j in enumerate(order)
        ]
        right_share.append(select_weighted(candidates, scores)["answer"] == "a")  # type: ignore[arg-type]
    candidates = [{"index": i, "text": "", "answer": a, "finish_reason": "stop", "seed": 0, "parent": None}
                  for i, (a, _) in enumerate(scores_by_answer)]  # fmt: skip
    scores = [{"index": i, "steps": [], "score": v, "label": None} for i, (_, v) in enumerate(scores_by_answer)]
    pooled = subset_selection_accuracy(candidates, scores, [True] * 5, 5, weighted=True, reference="a")  # type: ignore[arg-type]
    assert pooled == pytest.approx(sum(right_share) / len(right_share)) == pytest.approx(3 / 5)


async def test_results_cover_the_questions_asked_for(fake: FakeServer) -> None:
    store = EvalStore(":memory:")
    await evaluate(store, arithmetic(), EvalPlan(("vote",), (2,)), fake.context(answer_format="number"))
    chosen = arithmetic().records[:2]
    res = results(store, EvalPlan(("vote",), (2,)), chosen)
    assert res.questions == [r.qid for r in chosen] and res.table[0]["questions"] == 2


async def test_direct_runs_with_other_options_are_other_runs(fake: FakeServer) -> None:
    store = EvalStore(":memory:")
    ctx = fake.context(answer_format="number", max_tokens=64)
    by_vote = EvalPlan(("mix",), (2,), scorer=JudgeGrade(), options={"mix": {"select": "vote"}})
    by_last = EvalPlan(("mix",), (2,), scorer=JudgeGrade(), options={"mix": {"select": "last"}})
    await evaluate(store, arithmetic(1), by_vote, ctx)
    assert pending(store, arithmetic(1), by_vote) == 0 and pending(store, arithmetic(1), by_last) == 3
    await evaluate(store, arithmetic(1), by_last, ctx)
    assert len(store.dump()["runs"]) == 2 * 3
    assert len(results(store, by_last).per_question) == 3


async def test_a_failed_sampling_request_leaves_no_hole_in_the_costs() -> None:
    clean, flaky = FakeServer(), FakeServer(fault=lambda body, count: 400 if count == 1 else None)
    plan = EvalPlan(("vote",), (2,))
    stores = []
    for fake in (clean, flaky):
        store = EvalStore(":memory:")
        await evaluate(store, arithmetic(1), plan, fake.context(answer_format="number"), concurrency=1)
        stores.append(results(store, plan).per_question)
    assert stores[0] == stores[1]  # the failed request is drawn again and costs are per successful request


async def test_a_missing_judgement_makes_a_question_incomplete_not_misaligned(fixed: FakeServer) -> None:
    store = EvalStore(":memory:")
    await evaluate(store, DATASET, PLAN, fixed.context(answer_format="number", max_tokens=64))
    with store._db:
        store._db.execute("DELETE FROM judgements WHERE qid = 'q3' AND idx = 1 AND scorer = ?", (FILTER_SCORER,))
    res = results(store, PLAN)
    assert res.incomplete == ["q3"] and all(r["qid"] != "q3" for r in res.per_question)
    assert pending(store, DATASET, PLAN) == 1


async def test_a_judge_that_keeps_failing_is_judged_again_on_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("graphs.evaluation.run.RETRY_POLICY", RetryPolicy(initial_interval=0.001, max_attempts=2))
    down = FakeServer(fault=lambda body, count: 503 if "conclude with either" in str(body["messages"]) else None)
    plan = EvalPlan(("filter-vote",), (2,))
    store = EvalStore(":memory:")
    await evaluate(store, arithmetic(1), plan, down.context(answer_format="number"))
    assert store.dump()["judgements"] == [] and pending(store, arithmetic(1), plan) == 3
    await evaluate(store, arithmetic(1), plan, FakeServer().context(answer_format="number"))
    assert len(store.dump()["judgements"]) == 2 * 3 and pending(store, arithmetic(1), plan) == 0


async def test_a_direct_run_the_endpoint_failed_is_not_stored_and_a_resume_runs_it() -> None:
    """A search whose step requests keep answering 503 ends with a transient failure: that is the
    endpoint's doing, so the run is not filed as a wrong answer, and the next evaluate runs it."""
    down = FakeServer(fault=lambda body, count: 503)
    plan = EvalPlan(("beam-search",), (2,), options={"beam-search": {"beam_width": 1, "max_rounds": 2}})
    store = EvalStore(":memory:")
    one = arithmetic(1).select(1)
    deferred = await evaluate(store, one, plan, down.context(answer_format="number", max_tokens=32))
    assert deferred == 1 and store.dump()["runs"] == [] and pending(store, one, plan) == 1
    deferred = await evaluate(store, one, plan, FakeServer().context(answer_format="number", max_tokens=32))
    assert deferred == 0 and len(store.dump()["runs"]) == 1 and pending(store, one, plan) == 0


async def test_flops_are_two_x_parameters_x_tokens_and_match_a_direct_runs_ledger(tmp_path: Path) -> None:
    fake = FakeServer()  # "fake-model": a size nobody knows
    store = EvalStore(":memory:")
    plan = EvalPlan(("vote", "filter-vote", "pass@k"), (1, 2))
    await evaluate(store, arithmetic(1), plan, fake.context(answer_format="number"))
    unknown = results(store, plan)
    assert unknown.parameters is None and not any("flops" in r for r in unknown.per_question + unknown.table)
    res = results(store, plan, parameters=494_000_000)
    for row in res.per_question:
        assert row["flops"] == pytest.approx(2 * 494_000_000 * row["tokens"])
    # the whole pool (k = 2) is one direct run with the pool's seed: its ledger's FLOPs are the row's
    record = arithmetic(1).records[0]
    direct = (
        await build_vote_graph(2)
        .compile()
        .ainvoke(
            {"question": record.question},
            context=fake.context(answer_format="number", endpoint={"parameters": 494_000_000}),
        )
    )
    row = next(r for r in res.per_question if r["qid"] == record.qid and r["strategy"] == "vote" and r["budget"] == 2)
    assert row["flops"] == pytest.approx(ledger_totals(direct["ledger"])["flops"])
    paths = write_outputs(res, tmp_path)
    assert "accuracy_vs_flops.png" in paths
    assert (tmp_path / "results.csv").read_text().splitlines()[0].endswith(",method,flops")
    assert "TFLOPs" in format_table(res) and "?" not in format_table(res).splitlines()[2]


async def test_the_probe_samples_are_drawn_beyond_the_pool_and_held_out(fake: FakeServer) -> None:
    questions = arithmetic(1)
    store = EvalStore(":memory:")
    plan = EvalPlan(("vote", "filter-vote"), (1, 3), probe=2)
    await evaluate(store, questions, plan, fake.context(answer_format="number"))
    assert pending(store, questions, plan) == 0
    for record in questions.records:
        assert store.sample_count(record.qid) == 5
        assert sorted(store.judged(record.qid, FILTER_SCORER)) == [0, 1, 2]  # the probe's samples are never judged
    res = results(store, plan)
    assert res.per_question == results(store, EvalPlan(("vote", "filter-vote"), (1, 3))).per_question
    qid = questions.records[0].qid
    assert res.probes[qid] == [s["answer"] for s in store.samples(qid)[3:5]]
    with pytest.raises(ConfigError, match="non-negative"):
        EvalPlan(("vote",), (1,), probe=-1)


async def test_direct_budgets_run_graph_strategies_at_their_own_budgets(fake: FakeServer) -> None:
    questions = arithmetic(1)
    store = EvalStore(":memory:")
    plan = EvalPlan(("vote", "revision"), (1, 2, 4), scorer=JudgeGrade(), direct_budgets=(2,))
    assert plan.budgets_of("vote") == (1, 2, 4) and plan.budgets_of("revision") == (2,)
    await evaluate(store, questions, plan, fake.context(answer_format="number", max_tokens=64))
    assert pending(store, questions, plan) == 0
    configs = {(r["strategy"], r["budget"]) for r in results(store, plan).per_question}
    assert configs == {("vote", 1), ("vote", 2), ("vote", 4), ("revision", 2)}
    assert all(store.runs("revision", b, options_key(plan.run_options("revision", b))) == [] for b in (1, 4))
    with pytest.raises(ConfigError, match="direct budgets"):
        EvalPlan(("revision",), (2,), scorer=JudgeGrade(), direct_budgets=(0,))


async def test_a_store_drawn_without_probe_samples_keeps_its_results_and_says_its_probe_is_not_held_out(
    fake: FakeServer,
) -> None:
    from graphs.evaluation.selection import by_difficulty

    questions = arithmetic(2)
    store = EvalStore(":memory:")
    await evaluate(store, questions, EvalPlan(("vote",), (1, 4)), fake.context(answer_format="number"))
    res = results(store, EvalPlan(("vote",), (1, 4), probe=2))  # as ttc eval asks, before drawing the probe
    assert res.incomplete == [] and res.probes == {} and len(res.per_question) == 2 * len(questions.records)
    assert not any(r["held_out"] for r in by_difficulty(res, probe_size=2, bins=2))
    # one question gets its probe samples: a mix is refused rather than read in-sample for some questions
    one = Dataset("arithmetic", questions.records[:1], "number")
    await evaluate(store, one, EvalPlan(("vote",), (1, 4), probe=2), fake.context(answer_format="number"))
    mixed = results(store, EvalPlan(("vote",), (1, 4), probe=2))
    assert list(mixed.probes) == [questions.records[0].qid]
    with pytest.raises(ConfigError, match="no held-out probe samples"):
        by_difficulty(mixed, probe_size=2)


async def test_a_direct_runs_flops_are_its_own_ledgers() -> None:
    fake = FakeServer(model="Qwen2.5-Coder-0.5B-Instruct")  # packaged: the ledger counts its FLOPs
    store = EvalStore(":memory:")
    plan = EvalPlan(("revision",), (2,), scorer=JudgeGrade())
    await evaluate(store, arithmetic(1), plan, fake.context(answer_format="number", max_tokens=64))
    res = results(store, plan)
    run = store.runs("revision", 2, options_key(plan.run_options("revision", 2)), outputs=True)[0]
    row = next(r for r in res.per_question if r["qid"] == run["qid"])
    assert row["flops"] == ledger_totals(run["output"]["ledger"])["flops"] == pytest.approx(2 * 494e6 * row["tokens"])
