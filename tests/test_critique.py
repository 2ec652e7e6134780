from __future__ import annotations

import re

from langgraph.runtime import Runtime

from nodes.critique import CRITIQUE_PROMPT, critique
from nodes.types import Candidate
from tests.fakes import FakeServer, Request, arithmetic_truth


def critic(req: Request) -> str:
    """Points at the stated answer when it differs from the true sum."""
    stated = re.search(r"The answer is (-?\d+)", req.prompt)
    truth = arithmetic_truth(req.prompt)
    if stated and truth is not None and int(stated.group(1)) != truth:
        return f"The final sum {stated.group(1)} is wrong; recompute the addition."
    return "No mistake found."


def candidate(index: int, answer: int) -> Candidate:
    return {"index": index, "text": f"The answer is {answer}.", "answer": str(answer), "finish_reason": "stop",
            "seed": 0, "parent": None}  # fmt: skip


async def test_critique_returns_feedback_for_its_candidate() -> None:
    fake = FakeServer(reply=critic)
    ctx = fake.context(max_tokens=50)
    bad = await critique({"question": "What is 2+3?", "candidate": candidate(4, 6)}, Runtime(context=ctx))
    good = await critique({"question": "What is 2+3?", "candidate": candidate(5, 5)}, Runtime(context=ctx))
    assert bad["critiques"] == [{"index": 4, "text": "The final sum 6 is wrong; recompute the addition."}]
    assert good["critiques"] == [{"index": 5, "text": "No mistake found."}]
    assert fake.requests[0]["messages"][0]["content"] == CRITIQUE_PROMPT.format(
        question="What is 2+3?", answer="The answer is 6."
    )
    assert bad["ledger"]["critique"]["requests"] == 1
