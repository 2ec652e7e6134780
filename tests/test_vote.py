from __future__ import annotations

import random

from nodes.types import Candidate, Verdict
from nodes.vote import filter_then_vote, plurality_vote, weighted_vote


def cands(*answers: str | None) -> list[Candidate]:
    return [
        {"index": i, "text": f"The answer is {a}", "answer": a, "finish_reason": "stop", "seed": i, "parent": None}
        for i, a in enumerate(answers)
    ]


def test_plurality_counts_equivalent_answers_together() -> None:
    result = plurality_vote(cands("0.5", "3", "\\frac{1}{2}", "3", "1/2"))
    assert result == {
        "answer": "0.5",
        "votes": {"0.5": 3.0, "3": 2.0},
        "supporters": [0, 2, 4],
        "tie": False,
        "voters": 5,
    }


def test_tie_goes_to_first_seen_sample_whatever_the_arrival_order() -> None:
    pool = cands("7", "9", "9", "7", None)
    for seed in range(5):  # parallel branches finish in any order; the index decides
        shuffled = pool[:]
        random.Random(seed).shuffle(shuffled)
        result = plurality_vote(shuffled)
        assert (result["answer"], result["tie"], result["supporters"]) == ("7", True, [0, 3])


def test_no_stated_answer_gives_none() -> None:
    assert plurality_vote(cands(None, None)) == {
        "answer": None,
        "votes": {},
        "supporters": [],
        "tie": False,
        "voters": 0,
    }
    assert plurality_vote([])["answer"] is None


def test_weighted_vote_can_overrule_the_majority() -> None:
    pool = cands("1", "2", "2", "3")
    assert plurality_vote(pool)["answer"] == "2"
    result = weighted_vote(pool, {0: 0.9, 1: 0.3, 2: 0.4, 3: 0.1})
    assert result["answer"] == "1"
    assert result["votes"] == {"1": 0.9, "2": 0.7, "3": 0.1}


def test_weighted_vote_ties_and_missing_weights() -> None:
    pool = cands("1", "2", "2")
    result = weighted_vote(pool, {0: 0.5, 1: 0.5})  # sample 2 has no weight: counts 0
    assert (result["answer"], result["tie"], result["votes"]) == ("1", True, {"1": 0.5, "2": 0.5})


def verdicts(*labels: str) -> list[Verdict]:
    return [{"index": i, "verdict": v, "text": ""} for i, v in enumerate(labels)]  # type: ignore[misc]


def test_filter_keeps_only_correct_verdicts() -> None:
    pool = cands("5", "6", "6", "6", "5")
    result = filter_then_vote(pool, verdicts("correct", "wrong", "wrong", "unparseable", "correct"))
    assert (result["answer"], result["kept"], result["fallback"]) == ("5", [0, 4], False)
    assert result["votes"] == {"5": 2.0}


def test_filter_falls_back_to_all_when_nothing_is_kept() -> None:
    pool = cands("5", "6", "6")
    result = filter_then_vote(pool, verdicts("wrong", "unparseable", "error"))
    assert (result["answer"], result["kept"], result["fallback"]) == ("6", [], True)
    assert result["votes"] == {"5": 1.0, "6": 2.0}


def test_filter_ignores_kept_candidates_without_an_answer() -> None:
    pool = cands(None, "6")
    result = filter_then_vote(pool, verdicts("correct", "wrong"))
    assert (result["answer"], result["fallback"]) == ("6", True)
