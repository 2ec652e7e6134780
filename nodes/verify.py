"""verify: an LLM judge's verdict on one candidate, with the filter prompt of Chen et al.

The prompt is the paper's ``single_step`` filter prompt verbatim (including its typographic
quotes). The verdict is the *last* of the markers ``[[correct]]`` / ``[[wrong]]`` in the reply
(a judge may quote both while reasoning and conclude with one); a reply with neither is
recorded as ``unparseable``, never guessed.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict

from langgraph.errors import NodeError
from langgraph.runtime import Runtime

from nodes.budget import ledger_entry
from nodes.calls import failure, usage_of
from nodes.context import RunContext, context_of
from nodes.endpoint import user
from nodes.types import Candidate, Verdict, VerdictLabel

__all__ = ["FILTER_PROMPT", "VerifyTask", "filter_prompt", "parse_verdict", "verify", "verify_failed"]

FILTER_PROMPT = (
    "[User Question]:{query}\n"
    "[Answer]:{answer}\n"
    "Instruction: Review your previous answer and find problems with your answer. Finally, conclude with "
    "either \u2019[[correct]]\u2019 if the above answer is correct or \u2019[[wrong]]\u2019 if it is incorrect. "
    "Think step by step.\n"
    "Verdict:"
)

_MARKER = re.compile(r"\[\[\s*(correct|wrong)\s*\]\]", re.IGNORECASE)


class VerifyTask(TypedDict):
    """The ``Send`` payload of one judge call."""

    question: str
    candidate: Candidate


def filter_prompt(question: str, answer: str) -> str:
    """The filter judge's prompt for ``answer`` (a whole reply) to ``question``."""

    return FILTER_PROMPT.format(query=question, answer=answer)


def parse_verdict(text: str) -> VerdictLabel:
    """``correct`` / ``wrong`` from the last marker in ``text``, else ``unparseable``.

    Example:
        >>> parse_verdict("The sum is right. [[correct]]"), parse_verdict("Looks fine to me.")
        ('correct', 'unparseable')
    """
    markers = _MARKER.findall(text or "")
    if not markers:
        return "unparseable"
    return "correct" if markers[-1].lower() == "correct" else "wrong"


async def verify(task: VerifyTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Judge one candidate (its whole reply, as the paper does)."""
    ctx = context_of(runtime)
    candidate = task["candidate"]
    completion = await ctx.llm.chat(
        [user(filter_prompt(task["question"], candidate["text"]))],
        n=1,
        seed=ctx.seed + candidate["index"],
        temperature=ctx.judge_temperature,
        max_tokens=ctx.judge_max_tokens,
    )
    text = completion.texts[0]
    verdict: Verdict = {"index": candidate["index"], "verdict": parse_verdict(text), "text": text}
    runtime.stream_writer({"event": "verified", "index": verdict["index"], "verdict": verdict["verdict"]})
    return {"verdicts": [verdict], "ledger": usage_of("verify", completion)}


def verify_failed(task: VerifyTask, error: NodeError) -> dict[str, Any]:
    """Error handler: a judge call that failed for good is an ``error`` verdict (not kept)."""
    index = task["candidate"]["index"]
    verdict: Verdict = {"index": index, "verdict": "error", "text": ""}
    return {
        "verdicts": [verdict],
        "failures": [failure("verify", [index], error)],
        "ledger": ledger_entry("verify", requests=1, calls=0),
    }
