"""its_hub 1.2.0's strategies over a batch of prompts, for ``benchmarks/peers.py``.

Run by the peers' own venv python (never imported by this project): a JSON request on stdin, a
JSON report on stdout. Each prompt is sent as the one user message, as its_hub's ``ainfer`` does
with a string prompt; ``concurrency`` questions are in flight at once.

Request::

    {"base_url": "http://127.0.0.1:PORT/v1", "model": "...", "algorithm": "self-consistency"
     | "adaptive-self-consistency" | "best-of-n" | "particle-filtering", "prompts": ["..."], "k": 8,
     "temperature": 0.7, "max_tokens": 384, "concurrency": 4, "judge_temperature": 0.1,
     "judge_max_tokens": 256, "answer_pattern": "regex with one group",
     "questions": ["..."], "prm_prompt": "...{question}...{steps}...", "max_steps": 20,
     "step_token": "\n\n", "stop_token": "The answer is"}

``particle-filtering`` is its_hub's ``ParticleFiltering`` with its ``StepGeneration`` (steps end
at ``step_token``, kept in the output; a particle stops at ``stop_token`` or ``max_steps``) and,
as the process reward model, the same self-evaluation this project's ``SelfEvalPRM`` makes (the
``prm_prompt`` template, one token at T = 0 with 20 top logprobs, P(Yes) / (P(Yes) + P(No))),
written here against its_hub's ``AbstractProcessRewardModel``; ``questions`` fill its
``{question}``. The PRM's calls are counted in the reported usage.

Report::

    {"results": [{"text": "...", "samples": 8, "selected": 3, "scores": [...] | null,
                  "usage": {"prompt_tokens", "completion_tokens", "calls"}, "error": null}],
     "seconds": wall seconds of the work, "cpu_seconds": this process's CPU seconds for it}
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time

import httpx
from its_hub import AdaptiveSelfConsistency, BestOfN, LLMJudge, OpenAICompatibleLanguageModel, SelfConsistency
from its_hub.api.reward_models.prm import AbstractProcessRewardModel
from its_hub.core.algorithms.particle_gibbs import ParticleFiltering
from its_hub.core.algorithms.self_consistency import create_regex_projection_function
from its_hub.core.lms.step_generation import StepGeneration


class SelfEvalPRM(AbstractProcessRewardModel):
    """The policy model judging its own last step, as this project's ``SelfEvalPRM`` does."""

    def __init__(self, request: dict, questions: dict[str, str]) -> None:
        self.request, self.questions = request, questions
        self.client = httpx.AsyncClient(base_url=request["base_url"], timeout=600)
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "calls": 0}

    async def _one(self, prompt: str, solution: str) -> float:
        steps = [s for s in solution.split(self.request["step_token"]) if s.strip()] or [solution]
        text = self.request["prm_prompt"].format(question=self.questions.get(prompt, prompt),
                                                 steps=self.request["step_token"].join(steps))  # fmt: skip
        body = {"model": self.request["model"], "messages": [{"role": "user", "content": text}], "max_tokens": 1,
                "temperature": 0.0, "logprobs": True, "top_logprobs": 20}  # fmt: skip
        reply = (await self.client.post("/chat/completions", json=body)).raise_for_status().json()
        for key in ("prompt_tokens", "completion_tokens"):
            self.usage[key] += reply["usage"][key]
        self.usage["calls"] += 1
        yes = no = 0.0
        content = (reply["choices"][0].get("logprobs") or {}).get("content") or [{}]
        for alt in content[0].get("top_logprobs") or []:
            token = str(alt.get("token", "")).strip().lower()
            if alt.get("logprob") is None:
                continue
            if token in ("yes", "y"):
                yes += math.exp(min(alt["logprob"], 0.0))
            elif token in ("no", "n"):
                no += math.exp(min(alt["logprob"], 0.0))
        return yes / (yes + no) if yes + no > 0 else 0.5

    async def ascore(self, prompt_or_messages, steps):  # type: ignore[no-untyped-def]
        prompt = prompt_or_messages if isinstance(prompt_or_messages, str) else str(prompt_or_messages)
        return list(await asyncio.gather(*(self._one(prompt, s) for s in steps)))

    def score(self, prompt_or_messages, steps):  # type: ignore[no-untyped-def]
        return asyncio.run(self.ascore(prompt_or_messages, steps))


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
    if algorithm == "particle-filtering":
        sg = StepGeneration(max_steps=request["max_steps"], step_token=request["step_token"],
                            stop_token=request["stop_token"], temperature=request["temperature"],
                            include_stop_str_in_output=True)  # fmt: skip
        prm = SelfEvalPRM(request, dict(zip(request["prompts"], request["questions"], strict=True)))
        return ParticleFiltering(sg, prm), lm, [lm]
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
        usage = getattr(result, "usage", None)
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
    prm = getattr(algorithm, "prm", None)  # ParticleGibbs keeps its PRM
    if isinstance(prm, SelfEvalPRM):  # its_hub's result has no usage for a particle filter: the PRM's own tally
        await prm.client.aclose()
        return {"results": results, "seconds": seconds, "cpu_seconds": cpu, "prm_usage": prm.usage}
    return {"results": results, "seconds": seconds, "cpu_seconds": cpu}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    report = asyncio.run(main(json.load(sys.stdin)))
    json.dump(report, sys.stdout)
