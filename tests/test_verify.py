from __future__ import annotations

import pytest
from langgraph.runtime import Runtime

from nodes.types import Candidate
from nodes.verify import FILTER_PROMPT, filter_prompt, parse_verdict, verify
from tests.fakes import FakeServer

# The single_step filter prompt of Chen et al., as written in shared/specs/algorithms.md.
SPEC_PROMPT = """[User Question]:{query}
[Answer]:{answer}
Instruction: Review your previous answer and find problems with your answer. Finally, conclude with either ’[[correct]]’ if the above answer is correct or ’[[wrong]]’ if it is incorrect. Think step by step.
Verdict:"""  # noqa: E501


def test_filter_prompt_is_the_papers_verbatim() -> None:
    assert FILTER_PROMPT == SPEC_PROMPT


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Step 1 is fine. [[correct]]", "correct"),
        ("The sum is off by one. [[wrong]]", "wrong"),
        ("[[ Correct ]]", "correct"),
        ("Either [[correct]] or [[wrong]]... after checking: [[wrong]]", "wrong"),
        ("I could say [[wrong]] but it is [[correct]]", "correct"),
        ("The answer looks correct.", "unparseable"),  # no marker: never guessed
        ("[correct]", "unparseable"),
        ("", "unparseable"),
    ],
)
def test_parse_verdict(text: str, label: str) -> None:
    assert parse_verdict(text) == label


def candidate(index: int, text: str) -> Candidate:
    return {"index": index, "text": text, "answer": None, "finish_reason": "stop", "seed": 0, "parent": None}


async def test_verify_judges_the_whole_reply_with_the_judge_settings(fake: FakeServer) -> None:
    ctx = fake.context(judge_temperature=0.1, judge_max_tokens=99, seed=5)
    right = await verify(
        {"question": "What is 2+3?", "candidate": candidate(0, "2+3=5. The answer is 5.")}, Runtime(context=ctx)
    )
    wrong = await verify(
        {"question": "What is 2+3?", "candidate": candidate(1, "The answer is 6.")}, Runtime(context=ctx)
    )
    assert right["verdicts"][0]["verdict"] == "correct"
    assert wrong["verdicts"][0]["verdict"] == "wrong"
    body = fake.requests[0]
    assert body["messages"][0]["content"] == filter_prompt("What is 2+3?", "2+3=5. The answer is 5.")
    assert (body["n"], body["temperature"], body["max_completion_tokens"], body["seed"]) == (1, 0.1, 99, 5)
    assert right["ledger"]["verify"]["calls"] == 1


async def test_unparseable_verdict_is_recorded_as_such() -> None:
    fake = FakeServer(reply=lambda req: "Hmm, it seems plausible.")
    out = await verify(
        {"question": "q", "candidate": candidate(3, "The answer is 1.")}, Runtime(context=fake.context())
    )
    assert out["verdicts"] == [{"index": 3, "verdict": "unparseable", "text": "Hmm, it seems plausible."}]
