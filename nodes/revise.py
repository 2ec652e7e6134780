"""revise: a new candidate written from earlier attempts and their critiques.

The prompt shows the last ``max_attempts`` attempts (oldest first) with their feedback, as in
Snell et al.'s revision model whose context holds the last four attempts.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.errors import NodeError
from langgraph.runtime import Runtime

from nodes.answers import extract_answer
from nodes.budget import ledger_entry
from nodes.calls import failure, usage_of
from nodes.context import RunContext, context_of
from nodes.endpoint import user
from nodes.errors import ConfigError
from nodes.propose import ANSWER_INSTRUCTIONS
from nodes.types import Candidate

__all__ = ["REVISE_PROMPT", "Attempt", "ReviseTask", "revise", "revise_failed", "revise_prompt"]

REVISE_PROMPT = "{question}\n\n{attempts}\n\nWrite a corrected solution that fixes the problems above. {instruction}"
ATTEMPT_BLOCK = "Previous attempt {number}:\n{text}\n\nFeedback on attempt {number}:\n{critique}"


class Attempt(TypedDict):
    """An earlier attempt shown to a revision: the candidate and the feedback on it."""

    candidate: Candidate
    critique: str


class ReviseTask(TypedDict):
    """``attempts`` oldest first; the new candidate gets number ``index``."""

    question: str
    attempts: list[Attempt]
    index: int
    max_attempts: int


def revise_prompt(task: ReviseTask, instruction: str) -> str:
    if not task["attempts"]:
        raise ConfigError(f"revise (sample {task['index']}) needs at least one earlier attempt")
    shown = task["attempts"][-task["max_attempts"] :]
    first_number = len(task["attempts"]) - len(shown) + 1
    blocks = [
        ATTEMPT_BLOCK.format(number=first_number + i, text=a["candidate"]["text"], critique=a["critique"])
        for i, a in enumerate(shown)
    ]
    return REVISE_PROMPT.format(
        question=task["question"].strip(), attempts="\n\n".join(blocks), instruction=instruction
    )


async def revise(task: ReviseTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Write the next attempt; returns ``{"candidates": [new], "ledger": ...}``."""
    ctx = context_of(runtime)
    completion = await ctx.llm.chat(
        [user(revise_prompt(task, ANSWER_INSTRUCTIONS[ctx.answer_format]))],
        n=1,
        seed=ctx.seed + task["index"],
        temperature=ctx.temperature,
        max_tokens=ctx.max_tokens,
    )
    text = completion.texts[0]
    new: Candidate = {
        "index": task["index"],
        "text": text,
        "answer": extract_answer(text, ctx.answer_format),
        "finish_reason": completion.finish_reasons[0],
        "seed": ctx.seed + task["index"],
        "parent": task["attempts"][-1]["candidate"]["index"],
    }
    return {"candidates": [new], "ledger": usage_of("revise", completion)}


def revise_failed(task: ReviseTask, error: NodeError) -> dict[str, Any]:
    """Error handler: a revision that failed for good is a recorded failure of its sample number."""
    return {
        "failures": [failure("revise", [task["index"]], error)],
        "ledger": ledger_entry("revise", requests=1, calls=0),
    }
