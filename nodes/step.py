"""step: extend a partial solution by one reasoning step (for step-level search).

The partial solution is sent as a final assistant message that the server continues
(vLLM's ``continue_final_message``), so every request for a prefix shares the prompt's and
prefix's tokens and vLLM's prefix cache reuses them. Generation stops at the step separator,
which is kept in the output (``include_stop_str_in_output``). A step is *final* when the model
ends the solution (end of sequence, not the separator), states an answer, or is cut off at
the token limit (then it is final but ``truncated``: never an answer).
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
from nodes.propose import ANSWER_INSTRUCTIONS

__all__ = ["STEP_INSTRUCTION", "Step", "StepTask", "step", "step_failed", "step_messages"]

STEP_INSTRUCTION = "Solve it step by step. Separate the steps with a blank line."


class StepTask(TypedDict):
    """Extend ``prefix`` (steps so far, each ending in the separator) with ``n`` next steps."""

    question: str
    prefix: str
    n: int
    parent: int  # the id of the search node being extended
    seed: int
    temperature: float | None  # None: the run's temperature
    max_steps: int  # > 1: a greedy roll-out of up to this many steps in one request (lookahead)


class Step(TypedDict):
    parent: int
    text: str  # the new step(s), separator included
    final: bool
    truncated: bool
    answer: str | None


def step_messages(question: str, prefix: str, ctx: RunContext) -> list[dict[str, str]]:
    prompt = f"{question.strip()}\n\n{STEP_INSTRUCTION} {ANSWER_INSTRUCTIONS[ctx.answer_format]}"
    messages = [user(prompt)]
    if prefix:
        messages.append({"role": "assistant", "content": prefix})
    return messages


async def step(task: StepTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """One request for ``n`` next steps of ``prefix``; returns ``{"steps": [...], "ledger": ...}``."""
    ctx = context_of(runtime)
    separator = "\n\n"
    extra: dict[str, Any] = {"include_stop_str_in_output": True}
    if task["prefix"]:
        extra |= {"continue_final_message": True, "add_generation_prompt": False}
    rollout = task["max_steps"] > 1
    completion = await ctx.llm.chat(
        step_messages(task["question"], task["prefix"], ctx),
        n=task["n"],
        seed=task["seed"],
        temperature=ctx.temperature if task["temperature"] is None else task["temperature"],
        max_tokens=ctx.max_tokens if not rollout else ctx.max_tokens * task["max_steps"],
        stop=None if rollout else [separator],
        extra_body=extra,
    )
    steps: list[Step] = []
    for text, finish, stop in zip(completion.texts, completion.finish_reasons, completion.stop_reasons, strict=False):
        if rollout:  # keep at most max_steps steps of the roll-out
            pieces = text.split(separator)
            text = separator.join(pieces[: task["max_steps"]]) + (separator if len(pieces) > task["max_steps"] else "")
        answer = extract_answer(task["prefix"] + text, ctx.answer_format)
        ended = finish == "stop" and not (stop == separator or text.endswith(separator))
        truncated = finish == "length"
        steps.append({"parent": task["parent"], "text": text, "answer": answer, "truncated": truncated,
                      "final": ended or truncated or answer is not None or not text.strip()})  # fmt: skip
    return {"steps": steps, "ledger": usage_of("step", completion)}


def step_failed(task: StepTask, error: NodeError) -> dict[str, Any]:
    """Error handler: a step request that failed for good is a recorded failure of the search node
    it would have extended (which then gets no children)."""
    return {"failures": [failure("step", [task["parent"]], error)], "ledger": ledger_entry("step", requests=1, calls=0)}
