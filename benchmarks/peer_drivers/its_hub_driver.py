"""its_hub 1.2.0's strategies over a batch of prompts, for ``benchmarks/peers.py``.

Run by the peers' own venv python (never imported by this project): a JSON request on stdin, a
JSON report on stdout. Each prompt is sent as the one user message, as its_hub's ``ainfer`` does
with a string prompt; ``concurrency`` questions are in flight at once.

Request::

    {"base_url": "http://127.0.0.1:PORT/v1", "model": "...", "algorithm": "self-consistency"
     | "adaptive-self-consistency" | "best-of-n", "prompts": ["..."], "k": 8, "temperature": 0.7,
     "max_tokens": 384, "concurrency": 4, "judge_temperature": 0.1, "judge_max_tokens": 256,
     "answer_pattern": "regex with one group"}

Report::

    {"results": [{"text": "...", "samples": 8, "selected": 3, "scores": [...] | null,
                  "usage": {"prompt_tokens", "completion_tokens", "calls"}, "error": null}],
     "seconds": wall seconds of the work, "cpu_seconds": this process's CPU seconds for it}
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

from its_hub import AdaptiveSelfConsistency, BestOfN, LLMJudge, OpenAICompatibleLanguageModel, SelfConsistency
from its_hub.core.algorithms.self_consistency import create_regex_projection_function


def build(request: dict) -> tuple[object, OpenAICompatibleLanguageModel, list[OpenAICompatibleLanguageModel]]:
    def model(temperature: float, max_tokens: int) -> OpenAICompatibleLanguageModel:
        return OpenAICompatibleLanguageModel(
            endpoint=request["base_url"],
            api_key="none",
            model_name=request["model"],
            temperature=temperature,
            max_completion_tokens=max_tokens,
        )

    lm = model(request["temperature"], request["max_tokens"])
    algorithm = request["algorithm"]
    # its_hub votes on whatever the projection returns; by default the whole stripped reply (so
    # chain-of-thought replies almost never agree). Its documented way for math is a regex
    # projection (``answer_pattern``: the stated number, see benchmarks/peers.py). A reply without
    # a match projects to (None,), which then votes like any other answer.
    projection = create_regex_projection_function(request["answer_pattern"])
    if algorithm == "self-consistency":
        return SelfConsistency(consistency_space_projection_func=projection), lm, [lm]
    if algorithm == "adaptive-self-consistency":
        return AdaptiveSelfConsistency(consistency_space_projection_func=projection), lm, [lm]
    if algorithm == "best-of-n":
        judge_lm = model(request["judge_temperature"], request["judge_max_tokens"])
        return BestOfN(orm=LLMJudge(lm=judge_lm)), lm, [lm, judge_lm]
    raise SystemExit(f"unknown algorithm {algorithm!r}")


async def main(request: dict) -> dict:
    algorithm, lm, lms = build(request)
    limit = asyncio.Semaphore(request["concurrency"])

    async def one(prompt: str) -> dict:
        async with limit:
            try:
                result = await algorithm.ainfer(lm, prompt, budget=request["k"], return_response_only=False)
            except Exception as exc:  # a failed question is reported, not fatal to the batch
                return {"text": "", "samples": 0, "selected": None, "scores": None, "usage": None,
                        "error": f"{type(exc).__name__}: {exc}"[:300]}  # fmt: skip
        usage = result.usage
        counts = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                  "calls": usage.num_calls} if usage else None  # fmt: skip
        return {
            "text": result.the_one.get("content") or "",
            "samples": len(result.responses),
            "selected": result.selected_index,
            "scores": getattr(result, "scores", None),
            "usage": counts,
            "error": None,
        }

    start, cpu = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*(one(p) for p in request["prompts"]))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    for model in lms:
        await model.close()
    return {"results": results, "seconds": seconds, "cpu_seconds": cpu}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    report = asyncio.run(main(json.load(sys.stdin)))
    json.dump(report, sys.stdout)
