from __future__ import annotations

import re

import pytest
from langgraph.runtime import Runtime

from nodes.errors import ConfigError
from nodes.revise import Attempt, ReviseTask, revise
from tests.fakes import FakeServer, Request, arithmetic_truth


def reviser(req: Request) -> str:
    """Fixes the answer if the feedback says it is wrong; reports how many attempts it saw."""
    seen = re.findall(r"Previous attempt (\d+):", req.prompt)
    truth = arithmetic_truth(req.prompt)
    if "is wrong" in req.prompt.rsplit("Feedback on attempt", 1)[-1]:
        return f"Saw attempts {','.join(seen)}. The answer is {truth}."
    stated = re.findall(r"The answer is (-?\d+)", req.prompt)
    return f"Saw attempts {','.join(seen)}. The answer is {stated[-1]}."


def attempt(index: int, answer: int, feedback: str) -> Attempt:
    return {"candidate": {"index": index, "text": f"The answer is {answer}.", "answer": str(answer),
                          "finish_reason": "stop", "seed": 0, "parent": None}, "critique": feedback}  # fmt: skip


async def test_revise_uses_the_feedback_and_links_its_parent() -> None:
    fake = FakeServer(reply=reviser)
    task: ReviseTask = {"question": "What is 2+3?", "attempts": [attempt(0, 6, "The sum is wrong.")], "index": 1,
                        "max_attempts": 4}  # fmt: skip
    out = await revise(task, Runtime(context=fake.context(seed=7)))
    (new,) = out["candidates"]
    assert (new["index"], new["answer"], new["parent"], new["seed"]) == (1, "5", 0, 8)
    assert out["ledger"]["revise"]["calls"] == 1


async def test_context_is_truncated_to_the_last_attempts() -> None:
    fake = FakeServer(reply=reviser)
    attempts = [attempt(i, 6 + i, "Looks fine.") for i in range(6)]
    task: ReviseTask = {"question": "What is 2+3?", "attempts": attempts, "index": 6, "max_attempts": 4}
    out = await revise(task, Runtime(context=fake.context()))
    prompt = fake.requests[0]["messages"][0]["content"]
    assert "The answer is 7." not in prompt and "The answer is 8." in prompt  # attempts 1 and 2 dropped
    assert out["candidates"][0]["text"] == "Saw attempts 3,4,5,6. The answer is 11."
    assert out["candidates"][0]["parent"] == 5


async def test_revise_needs_an_attempt() -> None:
    fake = FakeServer(reply=reviser)
    with pytest.raises(ConfigError, match="sample 0"):
        await revise({"question": "q", "attempts": [], "index": 0, "max_attempts": 4}, Runtime(context=fake.context()))
    assert fake.requests == []
