"""score: a verifier's or reward model's score of one candidate, as a node kind.

The scorer (:mod:`nodes.scorers`) is part of the graph's structure, not of the run's context, so
the node is made for one: ``score_node(JudgeGrade(), "last")``. Step scores are aggregated with
``last | min | prod | mean`` (:func:`nodes.scorers.aggregate`).
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.errors import NodeError
from langgraph.runtime import Runtime

from nodes.calls import failure
from nodes.context import RunContext, context_of
from nodes.scorers import Aggregation, Scorer, aggregate
from nodes.types import Candidate, Score

__all__ = ["ScoreNode", "ScoreTask", "score_failed", "score_node"]


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
        record: Score = {
            "index": candidate["index"],
            "steps": scored.steps,
            "score": aggregate(scored.steps, self.aggregation),
            "label": scored.label,
        }
        if scored.text is not None:
            record["text"] = scored.text
        runtime.stream_writer({"event": "scored", "index": record["index"], "score": record["score"]})
        return {"scores": [record], "ledger": scored.usage}


def score_node(scorer: Scorer, aggregation: Aggregation = "last") -> ScoreNode:
    """The score node of ``scorer``, aggregating step scores with ``aggregation``."""
    return ScoreNode(scorer, aggregation)


def score_failed(task: ScoreTask, error: NodeError) -> dict[str, Any]:
    """Error handler: a scoring that failed for good is a ``None`` score (it weighs nothing) and a
    recorded failure."""
    index = task["candidate"]["index"]
    record: Score = {"index": index, "steps": [], "score": None, "label": "error"}
    return {"scores": [record], "failures": [failure("score", [index], error)]}
