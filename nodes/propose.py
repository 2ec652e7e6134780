"""propose: sample candidate solutions to a question.

One request asks for ``n`` samples (vLLM's ``n``), which is far cheaper on a server than
``n`` separate requests; graphs split ``k`` samples into requests of at most
``Endpoint.max_n`` and fan them out with ``Send``, so a server without ``n`` gets ``k``
parallel single-sample requests instead.
"""

from __future__ import annotations

import asyncio
from typing import Any, NotRequired, TypedDict

from langgraph.errors import NodeError
from langgraph.runtime import Runtime

from nodes.answers import AnswerFormat, equivalent, extract_answer
from nodes.budget import Ledger, add_ledgers, ledger_entry
from nodes.calls import failure, usage_of
from nodes.confidence import GroupMonitor, token_confidences, trace_confidence
from nodes.context import RunContext, context_of
from nodes.endpoint import Completion, is_transient, user
from nodes.types import Candidate

__all__ = [
    "ANSWER_INSTRUCTIONS",
    "PROPOSE_PROMPT",
    "ProposeTask",
    "StreamTask",
    "propose",
    "propose_failed",
    "propose_prompt",
    "propose_streamed",
    "propose_streamed_failed",
]

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
    top_logprobs: NotRequired[int]  # ask for this many top logprobs a token (default: the context's)


def propose_prompt(question: str, fmt: AnswerFormat) -> str:
    """The propose prompt: the question and how to state the answer in format ``fmt``."""

    return PROPOSE_PROMPT.format(question=question.strip(), instruction=ANSWER_INSTRUCTIONS[fmt])


async def propose(task: ProposeTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Sample ``task["n"]`` candidates with one request; seed ``ctx.seed + first_index``. With
    top logprobs asked (the task's ``top_logprobs``, else ``ctx.top_logprobs``), each candidate
    carries its token confidences and its token count."""
    ctx = context_of(runtime)
    first, n = task["first_index"], task["n"]
    seed = ctx.seed + first
    top = task.get("top_logprobs", ctx.top_logprobs)
    logprobs: dict[str, Any] = {"logprobs": True, "top_logprobs": top} if top else {}
    completion = await ctx.llm.chat(
        [user(propose_prompt(task["question"], ctx.answer_format))],
        n=n,
        seed=seed,
        temperature=ctx.temperature,
        max_tokens=ctx.max_tokens,
        **logprobs,
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
    if top:
        for c, logprobs in zip(candidates, completion.logprobs, strict=False):
            confidences = token_confidences(logprobs, top)
            c["confidences"], c["tokens"] = [round(x, 4) for x in confidences], len(confidences)
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


class StreamTask(TypedDict):
    """The ``Send`` payload of one wave of streamed samples ``first_index .. first_index+n-1``
    (DeepConf online, :func:`propose_streamed`)."""

    question: str
    first_index: int
    n: int
    top_logprobs: int  # top logprobs a token, its confidence's k
    threshold: float  # a sample stops once a group's mean confidence falls below this
    window: int  # group size in tokens
    consensus: float  # the wave stops once the leader holds this share of the weight (> 1: never)
    votes: dict[str, float]  # the weight each answer holds before this wave
    prompt_tokens: int  # the prompt's tokens, for a server that streams no usage


async def propose_streamed(task: StreamTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Stream ``task["n"]`` samples at once, one request each (seed ``ctx.seed + index``), with
    their token logprobs. A sample whose confidence falls (a group of ``window`` tokens with mean
    below ``threshold``) is stopped at once: its request is closed, which makes vLLM abort it, and
    it comes back with ``finish_reason`` ``"stopped"`` and the tokens it had. When a sample
    finishes, its answer joins the vote with its lowest group confidence as weight; once the
    leader holds ``consensus`` of the weight, the wave's other samples are stopped the same way
    (``"cancelled"``). Every request's tokens go into the ledger, stopped ones included. A failed
    sample is a recorded failure; if every sample of the wave failed transiently, the node raises
    so its retry policy retries the wave.
    """
    ctx = context_of(runtime)
    first, n, top = task["first_index"], task["n"], task["top_logprobs"]
    halt = asyncio.Event()
    votes = dict(task["votes"])
    prompt = [user(propose_prompt(task["question"], ctx.answer_format))]

    async def one(index: int) -> tuple[Candidate, Completion]:
        monitor = GroupMonitor(task["threshold"], task["window"])

        def on_token(entry: dict[str, Any]) -> bool:
            confidence = token_confidences({"content": [entry]}, top)
            return (bool(confidence) and monitor.add(confidence[0])) or halt.is_set()

        completion = await ctx.llm.chat_stream(
            prompt, on_token=on_token, seed=ctx.seed + index, temperature=ctx.temperature, max_tokens=ctx.max_tokens,
            prompt_tokens=task["prompt_tokens"], logprobs=True, top_logprobs=top,
        )  # fmt: skip
        confidences = token_confidences(completion.logprobs[0], top)
        stopped = completion.finish_reasons[0] == "stopped"
        reason = ("stopped" if monitor.low else "cancelled") if stopped else completion.finish_reasons[0]
        text = completion.texts[0]
        candidate: Candidate = {
            "index": index, "text": text, "answer": None if stopped else extract_answer(text, ctx.answer_format),
            "finish_reason": reason, "seed": ctx.seed + index, "parent": None,
            "confidences": [round(x, 4) for x in confidences], "tokens": completion.completion_tokens,
        }  # fmt: skip
        weight = trace_confidence(confidences, "lowest", window=task["window"])
        if candidate["answer"] is not None and weight is not None:
            key = next((a for a in votes if equivalent(a, candidate["answer"])), candidate["answer"])
            votes[key] = votes.get(key, 0.0) + weight
            total = sum(votes.values())
            if total > 0 and max(votes.values()) / total >= task["consensus"]:
                halt.set()
        return candidate, completion

    results = await asyncio.gather(*(one(first + i) for i in range(n)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if not isinstance(error, Exception):
            raise error  # a cancellation or an exit goes through
    if errors and len(errors) == n and all(is_transient(e) for e in errors):
        raise errors[0]  # nothing came back and a retry may help: the retry policy retries the wave
    done = [r for r in results if not isinstance(r, BaseException)]
    update: dict[str, Any] = {
        "candidates": [c for c, _ in done],
        "ledger": _sum(usage_of("propose", completion) for _, completion in done),
    }
    if errors:
        failed = [first + i for i, r in enumerate(results) if isinstance(r, BaseException)]
        update["failures"] = [failure("propose", [i], e) for i, e in zip(failed, errors, strict=True)]
        update["ledger"] = add_ledgers(update["ledger"], ledger_entry("propose", requests=len(errors), calls=0))
    runtime.stream_writer(
        {"event": "proposed", "indices": [c["index"] for c, _ in done], "answers": [c["answer"] for c, _ in done],
         "finish_reasons": [c["finish_reason"] for c, _ in done]}
    )  # fmt: skip
    return update


def propose_streamed_failed(task: StreamTask, error: NodeError) -> dict[str, Any]:
    """Error handler: a wave that failed for good becomes a recorded failure of its samples."""
    indices = range(task["first_index"], task["first_index"] + task["n"])
    return {
        "failures": [failure("propose", indices, error)],
        "ledger": ledger_entry("propose", requests=task["n"], calls=0),
    }


def _sum(ledgers: Any) -> Ledger:
    total: Ledger = {}
    for ledger in ledgers:
        total = add_ledgers(total, ledger)
    return total
