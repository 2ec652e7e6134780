"""score: a verifier's or reward model's score of one candidate, as a node kind.

The scorer (:mod:`nodes.scorers`) is part of the graph's structure, not of the run's context, so
the node is made for one: ``score_node(JudgeGrade(), "last")``. Step scores are aggregated with
``last | min | prod | mean`` (:func:`nodes.scorers.aggregate`).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

from langgraph.errors import NodeError
from langgraph.runtime import Runtime

from nodes.budget import Ledger, add_ledgers
from nodes.calls import failure
from nodes.context import RunContext, context_of
from nodes.scorers import Aggregation, Scored, Scorer, aggregate
from nodes.types import Candidate, Score

__all__ = [
    "ScoreNode",
    "ScoreTask",
    "ScoreWaveNode",
    "ScoreWaveTask",
    "score_failed",
    "score_node",
    "score_wave_failed",
]


class ScoreTask(TypedDict):
    """The ``Send`` payload of one scoring: the question and the candidate to score."""

    question: str
    candidate: Candidate


class ScoreNode:
    """The score node of one scorer: ``await node(task, runtime)`` scores ``task["candidate"]``."""

    def __init__(self, scorer: Scorer, aggregation: Aggregation = "last") -> None:
        if aggregation not in ("last", "min", "prod", "mean"):
            raise ValueError(f"unknown aggregation {aggregation!r} (last, min, prod, mean)")
        self.scorer = scorer
        self.aggregation = aggregation

    def __repr__(self) -> str:
        return f"ScoreNode({self.scorer.name!r}, {self.aggregation!r})"

    async def __call__(self, task: ScoreTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = context_of(runtime)
        candidate = task["candidate"]
        scored = await self.scorer.score(task["question"], candidate["text"], ctx)
        record = self.record(candidate, scored)
        runtime.stream_writer({"event": "scored", "index": record["index"], "score": record["score"]})
        return {"scores": [record], "ledger": scored.usage}

    def record(self, candidate: Candidate, scored: Scored) -> Score:
        """The score record of ``candidate`` from what the scorer said."""
        record: Score = {
            "index": candidate["index"],
            "steps": scored.steps,
            "score": aggregate(scored.steps, self.aggregation),
            "label": scored.label,
        }
        if scored.text is not None:
            record["text"] = scored.text
        return record


class ScoreWaveTask(TypedDict):
    """The ``Send`` payload of a wave scored at once: the question and its candidates."""

    question: str
    candidates: list[Candidate]


class ScoreWaveNode(ScoreNode):
    """The score node of a wave: one call of the scorer's ``score_many`` for every candidate (a
    process reward model served by vLLM's pooling API scores a list in one request), or the
    candidates scored one by one, concurrently, by a scorer without it."""

    async def __call__(self, task: ScoreWaveTask, runtime: Runtime[RunContext]) -> dict[str, Any]:  # type: ignore[override]
        ctx = context_of(runtime)
        question, candidates = task["question"], task["candidates"]
        many = getattr(self.scorer, "score_many", None)
        texts = [c["text"] for c in candidates]
        if many is not None:
            scored: list[Scored] = await many(question, texts, ctx)
        else:
            scored = list(await asyncio.gather(*(self.scorer.score(question, t, ctx) for t in texts)))
        records = [self.record(c, s) for c, s in zip(candidates, scored, strict=True)]
        ledger: Ledger = {}
        for s, r in zip(scored, records, strict=True):
            ledger = add_ledgers(ledger, s.usage)
            runtime.stream_writer({"event": "scored", "index": r["index"], "score": r["score"]})
        return {"scores": records, "ledger": ledger}


def score_node(scorer: Scorer, aggregation: Aggregation = "last") -> ScoreNode:
    """The score node of ``scorer``, aggregating step scores with ``aggregation``."""
    return ScoreNode(scorer, aggregation)


def score_failed(task: ScoreTask, error: NodeError) -> dict[str, Any]:
    """Error handler: a scoring that failed for good is a ``None`` score (it weighs nothing) and a
    recorded failure."""
    index = task["candidate"]["index"]
    record: Score = {"index": index, "steps": [], "score": None, "label": "error"}
    return {"scores": [record], "failures": [failure("score", [index], error)]}


def score_wave_failed(task: ScoreWaveTask, error: NodeError) -> dict[str, Any]:
    """Error handler: a wave whose scoring failed for good gives each candidate a ``None`` score
    and records one failure naming them all."""
    indices = [c["index"] for c in task["candidates"]]
    records: list[Score] = [{"index": i, "steps": [], "score": None, "label": "error"} for i in indices]
    return {"scores": records, "failures": [failure("score", indices, error)]}
