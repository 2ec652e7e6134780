"""critique: written feedback on one candidate, for a later revise step (Self-Refine's FEEDBACK)."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.errors import NodeError
from langgraph.runtime import Runtime

from nodes.budget import ledger_entry
from nodes.calls import failure, usage_of
from nodes.context import RunContext, context_of
from nodes.endpoint import user
from nodes.types import Candidate, Critique

__all__ = ["CRITIQUE_PROMPT", "CritiqueTask", "critique", "critique_failed"]

CRITIQUE_PROMPT = (
    "[User Question]:{question}\n"
    "[Answer]:{answer}\n"
    "Instruction: Check the answer above step by step. List each mistake you find and say how to fix it. "
    "Do not write a new solution. If there is no mistake, say so."
)


class CritiqueTask(TypedDict):
    """The ``Send`` payload of one critique: the question and the candidate to critique."""

    question: str
    candidate: Candidate


async def critique(task: CritiqueTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Ask for feedback on ``task["candidate"]``; returns ``{"critiques": [...], "ledger": ...}``."""
    ctx = context_of(runtime)
    candidate = task["candidate"]
    completion = await ctx.llm.chat(
        [user(CRITIQUE_PROMPT.format(question=task["question"], answer=candidate["text"]))],
        n=1,
        seed=ctx.seed + candidate["index"],
        temperature=ctx.judge_temperature,
        max_tokens=ctx.max_tokens,
    )
    result: Critique = {"index": candidate["index"], "text": completion.texts[0]}
    return {"critiques": [result], "ledger": usage_of("critique", completion)}


def critique_failed(task: CritiqueTask, error: NodeError) -> dict[str, Any]:
    """Error handler: a critique that failed for good is a recorded failure and an empty critique
    (the revision still sees the attempt, with no feedback), so the graph goes on."""
    index = task["candidate"]["index"]
    empty: Critique = {"index": index, "text": ""}
    return {
        "critiques": [empty],
        "failures": [failure("critique", [index], error)],
        "ledger": ledger_entry("critique", requests=1, calls=0),
    }
