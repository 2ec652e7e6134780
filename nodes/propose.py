"""propose: sample candidate solutions to a question.

One request asks for ``n`` samples (vLLM's ``n``), which is far cheaper on a server than
``n`` separate requests; graphs split ``k`` samples into requests of at most
``Endpoint.max_n`` and fan them out with ``Send``, so a server without ``n`` gets ``k``
parallel single-sample requests instead.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.errors import NodeError
from langgraph.runtime import Runtime

from nodes.answers import AnswerFormat, extract_answer
from nodes.budget import ledger_entry
from nodes.calls import failure, usage_of
from nodes.context import RunContext, context_of
from nodes.endpoint import user
from nodes.types import Candidate

__all__ = ["ANSWER_INSTRUCTIONS", "PROPOSE_PROMPT", "ProposeTask", "propose", "propose_failed", "propose_prompt"]

ANSWER_INSTRUCTIONS: dict[AnswerFormat, str] = {
    "auto": "Think step by step, then end your reply with 'The answer is X', where X is your final answer.",
    "number": "Think step by step, then end your reply with 'The answer is N', where N is the number.",
    "math": "Think step by step, then put your final answer in \\boxed{}.",
    "choice": "Think step by step, then end your reply with 'The answer is (X)', "
    "where X is the letter of the correct option.",
}
"""How the prompt asks for a final answer; the wording ends with what the answer *is* because
small models otherwise copy the placeholder ("The answer is N")."""

PROPOSE_PROMPT = "{question}\n\n{instruction}"


class ProposeTask(TypedDict):
    """The ``Send`` payload of one propose request: samples ``first_index .. first_index+n-1``."""

    question: str
    first_index: int
    n: int


def propose_prompt(question: str, fmt: AnswerFormat) -> str:
    """The propose prompt: the question and how to state the answer in format ``fmt``."""

    return PROPOSE_PROMPT.format(question=question.strip(), instruction=ANSWER_INSTRUCTIONS[fmt])


async def propose(task: ProposeTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Sample ``task["n"]`` candidates with one request; seed ``ctx.seed + first_index``."""
    ctx = context_of(runtime)
    first, n = task["first_index"], task["n"]
    seed = ctx.seed + first
    completion = await ctx.llm.chat(
        [user(propose_prompt(task["question"], ctx.answer_format))],
        n=n,
        seed=seed,
        temperature=ctx.temperature,
        max_tokens=ctx.max_tokens,
    )
    candidates: list[Candidate] = [
        {
            "index": first + i,
            "text": text,
            "answer": extract_answer(text, ctx.answer_format),
            "finish_reason": reason,
            "seed": seed,
            "parent": None,
        }
        for i, (text, reason) in enumerate(zip(completion.texts[:n], completion.finish_reasons[:n], strict=True))
    ]
    update: dict[str, Any] = {"candidates": candidates, "ledger": usage_of("propose", completion)}
    if len(candidates) < n:
        # Every requested index must be accounted for, or the graph would ask for it again.
        missing = list(range(first + len(candidates), first + n))
        update["failures"] = [failure("propose", missing, f"server returned {len(candidates)} of {n} samples")]
    runtime.stream_writer(
        {"event": "proposed", "indices": [c["index"] for c in candidates], "answers": [c["answer"] for c in candidates]}
    )
    return update


def propose_failed(task: ProposeTask, error: NodeError) -> dict[str, Any]:
    """Error handler: a request that failed for good becomes a recorded failure of its samples."""
    indices = range(task["first_index"], task["first_index"] + task["n"])
    return {"failures": [failure("propose", indices, error)], "ledger": ledger_entry("propose", requests=1, calls=0)}
