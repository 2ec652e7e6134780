from __future__ import annotations

from typing import Any

from langgraph.types import RetryPolicy

from graphs.strategies.best_of_n import build_best_of_n_graph
from nodes import Budget, is_transient
from nodes.scorers import JudgeVerdict, SelfEvalPRM
from tests.fakes import FakeServer, Request, default_reply
from tests.test_scorers import grader

FAST_RETRY = RetryPolicy(
    initial_interval=0.001, max_interval=0.001, max_attempts=2, jitter=False, retry_on=is_transient
)


def minority_right(req: Request) -> str:
    """Right (42) on every third sample only; the grader must find it."""
    if "Grade: <your grade" in req.prompt:
        return grader(req)
    return f"The answer is {42 if req.sample % 3 == 0 else 41}."


async def run(fake: FakeServer, n: int, **kwargs: Any) -> dict[str, Any]:
    budget = kwargs.pop("budget", None)
    graph = build_best_of_n_graph(n, retry=FAST_RETRY, **kwargs).compile()
    ctx = fake.context(**({"budget": budget} if budget else {}))
    return await graph.ainvoke({"question": "What is 20+22?"}, context=ctx)


async def test_best_of_n_picks_the_best_scored_candidate() -> None:
    fake = FakeServer(reply=minority_right)
    out = await run(fake, 6)
    assert out["answer"] == "42" and out["decision"]["chosen"] == 0
    assert sorted(s["index"] for s in out["scores"]) == list(range(6))
    assert {s["index"]: round(s["score"], 3) for s in out["scores"]}[1] == round(1 / 9, 3)
    assert out["ledger"]["propose"]["calls"] == 6 and out["ledger"]["verify"]["calls"] == 6


async def test_weighted_best_of_n_sums_scores_of_equivalent_answers() -> None:
    # 41 is stated 4 times with grade 2 (4 x 1/9 = 0.44); 42 twice with grade 9 (2 x 8/9 = 1.78)
    out = await run(FakeServer(reply=minority_right), 6, weighted=True)
    assert out["answer"] == "42"
    assert round(out["decision"]["votes"]["42"], 3) == round(16 / 9, 3)
    assert round(out["decision"]["votes"]["41"], 3) == round(4 / 9, 3)


async def test_unscored_candidates_fall_back_to_the_vote() -> None:
    fake = FakeServer(reply=lambda req: "Hmm." if "conclude with either" in req.prompt else "The answer is 7.")
    out = await run(fake, 3, scorer=JudgeVerdict())
    assert out["answer"] == "7" and out["decision"]["fallback"]
    assert [s["label"] for s in out["scores"]] == ["unparseable"] * 3


async def test_process_scorer_budget_counts_one_call_per_step() -> None:
    def stepwise(req: Request) -> str:
        if "Is the last step" in req.prompt:
            return "Yes"
        return "First add the tens.\n\nThen the ones.\n\nThe answer is 42."

    fake = FakeServer(reply=stepwise)
    out = await run(fake, 4, scorer=SelfEvalPRM(), budget=Budget(max_calls=10))  # 4 proposals + 2 x 3 steps
    assert out["ledger"]["propose"]["calls"] == 4 and out["ledger"]["verify"]["calls"] == 6
    assert len(out["scores"]) == 2 and out["budget"]["exhausted"]
    assert out["answer"] == "42"


def test_drawing() -> None:
    mermaid = build_best_of_n_graph(4).compile().get_graph().draw_mermaid()
    for edge in ("tally -.-> propose", "tally -.-> score", "score --> tally", "tally -.-> select"):
        assert edge in mermaid


async def test_judge_of_the_default_reply_is_used_by_default() -> None:
    out = await run(FakeServer(reply=default_reply), 3, scorer=JudgeVerdict())
    assert out["answer"] == "42" and [s["label"] for s in sorted(out["scores"], key=lambda s: s["index"])] == [
        "correct", "correct", "wrong"]  # fmt: skip


def good_or_bad(req: Request) -> str:
    """Samples 0 and 2 reason well (the fake PRM scores words with 'good' high), the others do not."""
    if req.sample % 2 == 0:
        return "A good first step\n\nthen a good second step. The answer is 42."
    return "A bad guess\n\nThe answer is 41."


async def test_a_reward_model_that_takes_a_wave_scores_it_in_one_request() -> None:
    import httpx

    from nodes.scorers import PoolingPRM
    from tests.test_scorers import Recorder, pooling_server

    server = Recorder(pooling_server)
    async with PoolingPRM("http://prm.test/v1", "prm", transport=httpx.MockTransport(server)) as prm:
        out = await run(FakeServer(reply=good_or_bad), 4, scorer=prm, aggregation="min")
    (batch,) = server.inputs()  # the four candidates in one /pooling request
    assert isinstance(batch, list) and len(batch) == 4
    assert out["answer"] == "42" and sorted(s["index"] for s in out["scores"]) == [0, 1, 2, 3]
    assert out["ledger"]["verify"]["calls"] == 4 and out["ledger"]["verify"]["requests"] == 1


async def test_a_wave_whose_scoring_fails_leaves_every_candidate_unscored_and_decides_by_vote() -> None:
    import httpx

    from nodes.scorers import PoolingPRM

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "bad key"}})

    async with PoolingPRM("http://prm.test/v1", "prm", transport=httpx.MockTransport(refuse)) as prm:
        out = await run(FakeServer(reply=good_or_bad), 4, scorer=prm)
    (failure,) = out["failures"]
    assert failure["node"] == "score" and failure["indices"] == [0, 1, 2, 3] and failure["status"] == 401
    assert not failure["transient"] and out["decision"]["fallback"] and out["answer"] in ("41", "42")
