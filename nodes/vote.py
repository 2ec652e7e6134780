"""vote: plurality and weighted votes over candidates' stated answers.

Equivalent answers count together (:func:`nodes.answers.group_answers`); candidates that state
no answer do not vote. **Tie rule:** among answers with the top count (or weight), the one
first seen in sample order wins (the lowest sample ``index``), as ``collections.Counter`` does
in Chen et al.'s code. Samples are exchangeable, so this equals breaking ties uniformly at
random, which is what the exact theory in :mod:`graphs.lab.scaling` assumes; and since order is by
sample index rather than completion time, a run's outcome is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from langgraph.errors import NodeError

from nodes.answers import group_answers
from nodes.calls import failure
from nodes.types import Candidate, Verdict

__all__ = ["VoteResult", "filter_then_vote", "plurality_vote", "vote", "vote_failed", "weighted_vote"]


class VoteResult(TypedDict):
    answer: str | None  # first-seen spelling of the winning answer; None if no sample stated one
    votes: dict[str, float]  # each distinct answer (first-seen spelling) -> count or weight
    supporters: list[int]  # sample indices whose answer is the winner
    tie: bool  # whether the top count was shared and the tie rule decided
    voters: int  # samples that stated an answer


def weighted_vote(candidates: Sequence[Candidate], weights: Mapping[int, float]) -> VoteResult:
    """The answer with the largest total weight (a missing weight counts 0).

    Example:
        >>> cs = [{"index": i, "answer": a} for i, a in enumerate(["1", "2", "2"])]
        >>> weighted_vote(cs, {0: 0.9, 1: 0.3, 2: 0.4})["answer"]
        '1'
    """
    ordered = sorted(candidates, key=lambda c: c["index"])
    groups = group_answers([c["answer"] for c in ordered])
    if not groups:
        return {"answer": None, "votes": {}, "supporters": [], "tie": False, "voters": 0}
    # fsum: the exactly rounded total, the same in any order, so a tie is a tie whatever the sample order
    totals = [math.fsum(float(weights.get(ordered[m]["index"], 0.0)) for m in g.members) for g in groups]
    best = max(totals)
    tied = [i for i, t in enumerate(totals) if t == best]
    # groups are in first-seen order, so tied[0] is the first-seen of the tied answers
    winner = groups[tied[0]]
    return {
        "answer": winner.answer,
        "votes": {g.answer: t for g, t in zip(groups, totals, strict=True)},
        "supporters": [ordered[m]["index"] for m in winner.members],
        "tie": len(tied) > 1,
        "voters": sum(len(g.members) for g in groups),
    }


def plurality_vote(candidates: Sequence[Candidate]) -> VoteResult:
    """The most common stated answer; ties go to the first seen in sample order.

    Example:
        >>> cs = [{"index": i, "answer": a} for i, a in enumerate(["7", "0.5", "7", "1/2", None])]
        >>> r = plurality_vote(cs); r["answer"], r["votes"], r["tie"]
        ('7', {'7': 2.0, '0.5': 2.0}, True)
    """
    return weighted_vote(candidates, {c["index"]: 1.0 for c in candidates})


class FilterVoteResult(VoteResult):
    kept: list[int]  # indices the judge kept
    fallback: bool  # True when nothing was kept and the vote used all candidates


def filter_then_vote(candidates: Sequence[Candidate], verdicts: Sequence[Verdict]) -> FilterVoteResult:
    """Filter-Vote: a plurality vote among the candidates judged ``correct`` (that state an
    answer); if none is kept, a plurality vote among all candidates."""
    correct = {v["index"] for v in verdicts if v["verdict"] == "correct"}
    kept = [c for c in candidates if c["index"] in correct and c["answer"] is not None]
    fallback = not kept
    result = plurality_vote(list(candidates) if fallback else kept)
    return {**result, "kept": sorted(c["index"] for c in kept), "fallback": fallback}


async def vote(state: Mapping[str, Any]) -> dict[str, Any]:
    """Node: plurality vote over ``state["candidates"]``."""
    result = plurality_vote(state.get("candidates") or [])
    return {"answer": result["answer"], "decision": result}


def vote_failed(state: Mapping[str, Any], error: NodeError) -> dict[str, Any]:
    """Error handler of a final vote or selection node: the run ends with no answer, the decision
    says why, and the failure is recorded (the samples and the ledger stay in the output)."""
    recorded = failure(error.node if isinstance(error, NodeError) else "vote", [], error)
    decision: dict[str, Any] = {
        "answer": None,
        "votes": {},
        "supporters": [],
        "tie": False,
        "voters": 0,
        "error": recorded["error"],
    }
    return {
        "answer": None,
        "decision": decision,
        "budget": state.get("budget") or {"exhausted": False, "note": None},
        "failures": [recorded],
    }
