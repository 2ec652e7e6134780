"""A strategy that does not ship, built from the public composition layer only.

Critique-and-revise-then-vote (as in ``notebooks/03_compose.ipynb`` and the README's "Write your
own strategy"): ``k`` proposals, a critique of each, one revision of each from that sample and its
critique, and a plurality vote over the revisions (a sample whose critique or revision failed votes
as proposed). The builder below imports only public names of ``graphs.compose``, ``graphs.registry``
and ``nodes``; the tests check what the layer promises a strategy author: the ledger per node kind,
failures recorded with their structured fields while the vote goes on, the budget cap, and
registration into ``ttc run`` and ``ttc eval``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from langgraph.graph import StateGraph
from langgraph.runtime import Runtime

from graphs.compose import (
    BudgetReport,
    QuestionInput,
    StrategyOutput,
    StrategyState,
    add_final,
    add_planner,
    add_worker,
    check_count,
    decided,
    finish,
    plan_judging,
    plan_proposals,
    question_of,
    wave,
    worst_case_tokens,
)
from graphs.registry import StrategySpec, register, strategies
from nodes import CRITIQUE_PROMPT, Budget, Candidate, Critique, RunContext, ledger_totals, plurality_vote
from nodes.kinds import CRITIQUE, PROPOSE, REVISE
from tests.fakes import FakeServer, Request

# -- the strategy (the notebook's and the README's code) ------------------------------------------


class CritiqueVoteOutput(StrategyOutput):
    critiques: list[Critique]


def originals(state: StrategyState) -> list[Candidate]:
    """The proposals (a revision has a parent), in sample order."""
    return sorted((c for c in state.get("candidates") or [] if c["parent"] is None), key=lambda c: c["index"])


def failed(state: StrategyState, node: str) -> set[int]:
    """The sample numbers whose ``node`` call failed for good."""
    return {i for f in state.get("failures") or [] if f["node"] == node for i in f["indices"]}


def final_versions(state: StrategyState) -> list[Candidate]:
    """One voter per proposal: its revision if there is one, else the proposal itself."""
    revision = {c["parent"]: c for c in state.get("candidates") or [] if c["parent"] is not None}
    return [revision.get(c["index"], c) for c in originals(state)]


def plan_revisions(
    state: StrategyState, ctx: RunContext, k: int, feedback: dict[int, str], report: BudgetReport | None
) -> tuple[list[dict[str, Any]], BudgetReport | None]:
    """Revise tasks for the proposals in ``feedback`` not revised yet (sample ``i`` becomes sample
    ``k + i``, its parent ``i``), trimmed to the budget."""
    done = {c["parent"] for c in state.get("candidates") or []} | {i - k for i in failed(state, "revise")}
    question = question_of(state)
    todo = [c for c in originals(state) if c["index"] in feedback and c["index"] not in done]
    if not todo:
        return [], report
    longest = max((question + c["text"] + feedback[c["index"]] for c in todo), key=len)
    per_call = worst_case_tokens(state.get("ledger"), "revise", longest, ctx.max_tokens)
    allowed = ctx.budget.allowance(state.get("ledger"), want=len(todo), tokens_per_call=per_call)
    if allowed < len(todo):
        spent = ledger_totals(state.get("ledger"))
        left = len(todo) - allowed
        report = {"exhausted": True, "note": f"budget ({ctx.budget.describe()}) reached with {left} revisions left "
                  f"({spent['calls']} calls)"}  # fmt: skip
    tasks = [
        {"question": question, "attempts": [{"candidate": c, "critique": feedback[c["index"]]}],
         "index": k + c["index"], "max_attempts": 1}
        for c in todo[:allowed]
    ]  # fmt: skip
    return tasks, report


def build_critique_vote_graph(k: int = 4) -> StateGraph[Any, RunContext, QuestionInput, CritiqueVoteOutput]:
    """propose k → critique each → revise each once → plurality vote over the revisions."""
    check_count(k)

    async def plan(state: StrategyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx, question = runtime.context, question_of(state)
        critiqued = {c["index"] for c in state.get("critiques") or []}
        revised = {c["parent"] for c in state.get("candidates") or []} | {i - k for i in failed(state, "revise")}
        # each sample drawn so far still owes its critique and its revision, unless made
        owed = sum((c["index"] not in critiqued) + (c["index"] not in revised) for c in originals(state))
        proposals, report = plan_proposals(state, ctx, k, calls_per_sample=3, owed=owed)  # revisions are not counted
        if proposals:
            return wave("propose", proposals, **({"budget": report} if report else {}))
        revisions = {c["index"] for c in state.get("candidates") or [] if c["parent"] is not None}
        chosen, report = plan_judging(
            state, ctx, critiqued | revisions, lambda c: CRITIQUE_PROMPT.format(question=question, answer=c["text"]),
            report, kind="critique", calls=lambda c: 2,  # a critique keeps its revision's call in reserve
        )  # fmt: skip
        if chosen:
            tasks = [{"question": question, "candidate": c} for c in chosen]
            return wave("critique", tasks, **({"budget": report} if report else {}))
        bad = failed(state, "critique")  # a failed critique is recorded (empty): that sample votes as proposed
        feedback = {c["index"]: c["text"] for c in state.get("critiques") or [] if c["index"] not in bad}
        tasks, report = plan_revisions(state, ctx, k, feedback, report)
        update = {"budget": report} if report else {}
        return wave("revise", tasks, **update) if tasks else finish("vote", **update)

    async def vote(state: StrategyState) -> dict[str, Any]:
        voters = final_versions(state)
        return decided(state, {**plurality_vote(voters), "voted": [c["index"] for c in voters]})

    builder = StateGraph(
        StrategyState, context_schema=RunContext, input_schema=QuestionInput, output_schema=CritiqueVoteOutput
    )
    add_worker(builder, PROPOSE)
    add_worker(builder, CRITIQUE)
    add_worker(builder, REVISE)
    add_final(builder, "vote", vote)  # the vote leads to END; should it raise, no answer and a failure
    add_planner(builder, plan, ["propose", "critique", "revise"], "vote", first="propose", max_rounds=3 * k + 4)
    return builder


CRITIQUE_VOTE = StrategySpec(
    "critique-vote", build_critique_vote_graph, "k samples, each critiqued and revised once, a vote over the revisions"
)

# -- the fake model -------------------------------------------------------------------------------


def reviser(req: Request) -> str:
    """Proposals say 41; a critique says the answer is one short; a revision adds 1 to its attempt."""
    if "List each mistake" in req.prompt:
        return "The answer is one short."
    attempt = re.search(r"Previous attempt 1:\n.*?The answer is (\d+)", req.prompt, re.S)
    if attempt:
        return f"Corrected. The answer is {int(attempt.group(1)) + 1}."
    return "I add the numbers. The answer is 41."


def is_critique(body: dict[str, Any]) -> bool:
    return "List each mistake" in body["messages"][0]["content"]


def is_revision(body: dict[str, Any]) -> bool:
    return "Previous attempt" in body["messages"][0]["content"]


async def run(fake: FakeServer, k: int = 4, **settings: Any) -> dict[str, Any]:
    graph = build_critique_vote_graph(k).compile()
    return await graph.ainvoke({"question": "What is 20 + 22?"}, context=fake.context(**settings))


# -- the tests ------------------------------------------------------------------------------------


async def test_k_proposals_critiques_and_revisions_then_a_vote_over_the_revisions() -> None:
    fake = FakeServer(reply=reviser)
    out = await run(fake, k=4)
    calls = {kind: usage["calls"] for kind, usage in out["ledger"].items()}
    assert calls == {"propose": 4, "critique": 4, "revise": 4}
    assert out["ledger"]["propose"]["requests"] == 1  # one n=4 request
    candidates = sorted(out["candidates"], key=lambda c: c["index"])
    assert [(c["index"], c["parent"], c["answer"]) for c in candidates] == [
        (0, None, "41"), (1, None, "41"), (2, None, "41"), (3, None, "41"),
        (4, 0, "42"), (5, 1, "42"), (6, 2, "42"), (7, 3, "42"),
    ]  # fmt: skip
    # each revision saw its own sample and that sample's critique, nothing else
    revisions = [b["messages"][0]["content"] for b in fake.requests if is_revision(b)]
    assert len(revisions) == 4
    assert all(p.count("Previous attempt") == 1 and "Feedback on attempt 1:\nThe answer is one short." in p
               for p in revisions)  # fmt: skip
    assert out["answer"] == "42"
    assert out["decision"]["votes"] == {"42": 4.0} and out["decision"]["voted"] == [4, 5, 6, 7]
    assert sorted(c["index"] for c in out["critiques"]) == [0, 1, 2, 3]
    assert out["failures"] == [] and out["budget"] == {"exhausted": False, "note": None}


async def test_a_failed_critique_is_a_structured_failure_and_the_vote_goes_on() -> None:
    def fault(body: dict[str, Any], count: int) -> int | None:
        return 400 if is_critique(body) and body.get("seed") == 1 else None  # the critique of sample 1

    fake = FakeServer(reply=reviser, fault=fault)
    out = await run(fake, k=4)
    [f] = out["failures"]
    assert {key: f[key] for key in ("node", "indices", "status", "transient")} == {
        "node": "critique", "indices": [1], "status": 400, "transient": False,
    }  # fmt: skip
    assert f["error"].startswith("critique: ") and "400" in f["message"]
    assert sum(is_critique(b) for b in fake.requests) == 4  # a 400 is not retried
    # the failed request is counted, costs no call, and its sample is not revised: it votes as proposed
    assert out["ledger"]["critique"]["requests"] == 4 and out["ledger"]["critique"]["calls"] == 3
    assert out["ledger"]["revise"]["calls"] == 3
    assert out["answer"] == "42"
    assert out["decision"]["votes"] == {"41": 1.0, "42": 3.0} and out["decision"]["voted"] == [4, 1, 6, 7]


async def test_a_failed_revision_falls_back_to_its_proposal() -> None:
    def fault(body: dict[str, Any], count: int) -> int | None:
        return 400 if is_revision(body) and body.get("seed") == 4 + 2 else None  # sample 2's revision, number 6

    out = await run(FakeServer(reply=reviser, fault=fault), k=4)
    assert [(f["node"], f["indices"], f["status"]) for f in out["failures"]] == [("revise", [6], 400)]
    assert out["decision"]["voted"] == [4, 5, 2, 7] and out["decision"]["votes"] == {"42": 3.0, "41": 1.0}


@pytest.mark.parametrize("max_calls", [1, 2, 3, 5, 7, 11, 12])
async def test_a_call_cap_is_never_exceeded_and_every_critique_gets_its_revision(max_calls: int) -> None:
    out = await run(FakeServer(reply=reviser), k=4, budget=Budget(max_calls=max_calls))
    ledger = out["ledger"]
    assert ledger_totals(ledger)["calls"] <= max_calls
    proposed = ledger.get("propose", {"calls": 0})["calls"]
    assert proposed == min(4, max_calls // 3)  # three calls a sample, reserved when it is proposed
    assert ledger.get("critique", {"calls": 0})["calls"] == ledger.get("revise", {"calls": 0})["calls"] == proposed
    assert out["budget"]["exhausted"] == (max_calls < 12)
    assert out["answer"] == ("42" if proposed else None)
    if max_calls < 12:  # the note counts proposals, not revisions
        assert f"(max_calls={max_calls}) reached after {proposed} of 4 proposals" in out["budget"]["note"]


def test_register_makes_it_a_strategy_of_ttc_run_and_ttc_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    from graphs import registry
    from graphs.cli import build_parser
    from graphs.evaluation import EvalPlan

    # a fresh registry for this test (the built-ins load again), so the registration does not leak
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_loaded", False)
    assert "critique-vote" not in strategies()
    register(CRITIQUE_VOTE)
    assert strategies()["critique-vote"] is CRITIQUE_VOTE
    assert build_parser().parse_args(["run", "--strategy", "critique-vote", "-k", "3", "q"]).strategy == "critique-vote"
    args = build_parser().parse_args(["eval", "--strategies", "vote,critique-vote", "--budgets", "1,2"])
    assert EvalPlan(tuple(args.strategies), tuple(args.budgets)).direct == ["critique-vote"]
    assert set(CRITIQUE_VOTE.graph(3).compile().get_graph().nodes) >= {"propose", "critique", "revise", "tally", "vote"}
