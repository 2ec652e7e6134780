"""Verifiers and reward models: scores differ between right and wrong solutions, and cost is counted."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import httpx
import pytest

from graphs.cli import build_parser, strategy_options
from nodes import BadModelOutput, PermanentEndpointError
from nodes.scorers import (
    JudgeGrade,
    JudgeVerdict,
    PoolingPRM,
    ReferenceMatch,
    SelfEvalPRM,
    UnitTests,
    _yes_probability,
    aggregate,
    split_steps,
)
from tests.fakes import FakeServer, Request, arithmetic_truth, default_reply


def grader(req: Request) -> str:
    truth = arithmetic_truth(req.prompt)
    stated = re.findall(r"The answer is (-?\d+)", req.prompt)
    return "Checked. Grade: 9" if stated and truth is not None and int(stated[-1]) == truth else "Grade: 2"


def step_checker(req: Request) -> str:
    """Yes unless the last step shown contains 'wrong'."""
    shown = req.prompt.split("Solution so far:\n", 1)[1].split("\n\nIs the last step")[0]
    return "No" if "wrong" in shown.split("\n\n")[-1] else "Yes"


async def test_judge_verdict_scores_right_above_wrong() -> None:
    ctx = FakeServer(reply=default_reply).context()
    right = await JudgeVerdict().score("What is 2+3?", "The answer is 5.", ctx)
    wrong = await JudgeVerdict().score("What is 2+3?", "The answer is 6.", ctx)
    assert (right.steps, right.label, wrong.steps, wrong.label) == ([1.0], "correct", [0.0], "wrong")
    assert right.usage["verify"]["calls"] == 1


async def test_judge_verdict_unparseable_is_none() -> None:
    ctx = FakeServer(reply=lambda req: "Looks fine.").context()
    scored = await JudgeVerdict().score("q", "a", ctx)
    assert (scored.steps, scored.label) == ([None], "unparseable")


async def test_judge_grade_maps_grades_to_scores() -> None:
    ctx = FakeServer(reply=grader).context()
    right = await JudgeGrade().score("What is 2+3?", "The answer is 5.", ctx)
    wrong = await JudgeGrade().score("What is 2+3?", "The answer is 6.", ctx)
    assert right.steps == [pytest.approx(8 / 9)] and wrong.steps == [pytest.approx(1 / 9)]
    silent = await JudgeGrade().score("q", "a", FakeServer(reply=lambda req: "No idea").context())
    assert (silent.steps, silent.label) == ([None], "unparseable")


async def test_self_eval_prm_scores_each_step_from_logprobs() -> None:
    fake = FakeServer(reply=step_checker)
    solution = "Step one is fine.\n\nStep two goes wrong here.\n\nStep three is fine."
    scored = await SelfEvalPRM().score("What is 2+3?", solution, fake.context())
    assert scored.steps == [pytest.approx(0.9), pytest.approx(0.1), pytest.approx(0.9)]
    usage = scored.usage["verify"]
    assert (usage["requests"], usage["calls"], usage["completion_tokens"]) == (3, 3, 3)
    bodies = fake.requests
    assert all(b["logprobs"] is True and b["top_logprobs"] == 20 and b["max_completion_tokens"] == 1 for b in bodies)
    assert aggregate(scored.steps, "min") == pytest.approx(0.1) and aggregate(scored.steps, "last") == pytest.approx(
        0.9
    )


@pytest.mark.parametrize(
    ("logprobs", "expected"),
    [
        ({"content": [{"top_logprobs": [{"token": "Yes", "logprob": None}, {"token": "No", "logprob": -2.0}]}]}, 0.0),
        ({"content": [{"top_logprobs": [{"token": "Yes", "logprob": -0.1}, {"token": "No", "logprob": None}]}]}, 1.0),
        ({"content": [{"top_logprobs": [{"token": "Yes", "logprob": "x"}, "junk", None]}]}, None),
        ({"content": ["junk"]}, None),
        ({"content": [{"top_logprobs": [{"token": " yes", "logprob": 0.3}, {"token": "no", "logprob": 0.0}]}]}, 0.5),
    ],
)
def test_self_eval_prm_reads_garbage_logprobs_as_unknown(logprobs: dict[str, Any], expected: float | None) -> None:
    """A server's -inf arrives as JSON null; a positive logprob is rounding. Neither crashes the scorer."""
    assert _yes_probability(logprobs) == (expected if expected is None else pytest.approx(expected))


async def test_reference_match() -> None:
    ctx = FakeServer().context()
    assert (await ReferenceMatch("0.5").score("q", "so \\boxed{\\frac{1}{2}}", ctx)).steps == [1.0]
    assert (await ReferenceMatch("0.5").score("q", "The answer is 2.", ctx)).steps == [0.0]
    assert (await ReferenceMatch("0.5").score("q", "no idea", ctx)).steps == [0.0]


async def test_unit_tests_run_the_fenced_code() -> None:
    tests = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
    scorer = UnitTests(tests, entry_point="add", prompt="def add(a, b):\n")
    ctx = FakeServer().context()
    good = await scorer.score("q", "Here:\n```python\ndef add(a, b):\n    return a + b\n```\n", ctx)
    bad = await scorer.score("q", "```python\ndef add(a, b):\n    return a * b\n```", ctx)
    body_only = await scorer.score("q", "    return a + b\n", ctx)  # a HumanEval-style completion
    assert (good.steps, bad.steps, body_only.steps) == ([1.0], [0.0], [1.0])
    assert bad.label is not None and bad.label.startswith("failed")


def test_aggregate_and_split() -> None:
    assert aggregate([], "last") is None
    assert aggregate([0.5, 0.5], "mean") == 0.5
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate([1.0], "max")  # type: ignore[arg-type]
    assert split_steps("a\n\nb\n\n\n\nc\n\n") == ["a", "b", "c"]


def pooling_server(request: httpx.Request) -> httpx.Response:
    """A fake vLLM pooling server: a token is a word; P(correct) is 0.9 at words with 'good'."""
    import json as _json

    body = _json.loads(request.content)
    if request.url.path == "/tokenize":
        return httpx.Response(200, json={"count": len(body["prompt"].split()), "tokens": []})
    assert request.url.path == "/pooling" and body["task"] == "token_classify"
    rows = [[0.1, 0.9] if "good" in w else [0.8, 0.2] for w in body["input"].split()]
    return httpx.Response(200, json={"data": [{"index": 0, "data": rows}], "usage": {"prompt_tokens": len(rows)}})


async def test_pooling_prm_reads_step_scores_at_the_end_of_each_step() -> None:
    prm = PoolingPRM("http://prm.test/v1", "prm", transport=httpx.MockTransport(pooling_server))
    scored = await prm.score(
        "What is 2+3?", "First step is good\n\nthen a bad one\n\nfinally good", FakeServer().context()
    )
    assert scored.steps == [pytest.approx(0.9), pytest.approx(0.2), pytest.approx(0.9)]
    assert scored.usage["verify"]["calls"] == 1 and scored.usage["verify"]["prompt_tokens"] > 0


async def test_pooling_prm_errors_are_classified() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "The model does not support Pooling API"})

    prm = PoolingPRM("http://prm.test", "prm", transport=httpx.MockTransport(refuse))
    with pytest.raises(PermanentEndpointError, match="HTTP 404"):
        await prm.score("q", "a step", FakeServer().context())


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (httpx.Response(200, json={"data": [{"data": [[None, None]] * 40}]}), "step 1 with .None, None.: not finite"),
        (httpx.Response(200, text=json.dumps({"data": [{"data": [[0.5, math.inf]] * 40}]})), "step 1 .*not finite"),
        (httpx.Response(200, json={"object": "list", "data": []}), "without per-token scores"),
        (httpx.Response(200, text="<html>proxy</html>"), "answered with invalid JSON"),
        (httpx.Response(200, json=[1, 2]), "answered list, not an object"),
    ],
)
async def test_pooling_prm_garbage_is_one_clear_error(answer: httpx.Response, match: str) -> None:
    """A broken classification head (NaN arrives as JSON null) or a wrong body fails the candidate in one line."""

    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/tokenize" and answer.status_code == 200 and "<html>" not in answer.text:
            return httpx.Response(200, json={"count": 3, "tokens": []})
        return answer

    prm = PoolingPRM("http://prm.test", "prm", transport=httpx.MockTransport(reply))
    with pytest.raises(BadModelOutput, match=match) as caught:
        await prm.score("q", "a step\n\nanother", FakeServer().context())
    assert "\n" not in str(caught.value) and "http://prm.test" in str(caught.value)


def test_cli_passes_the_prm_step_tag() -> None:
    args = build_parser().parse_args(
        ["run", "--strategy", "best-of-n", "--scorer", "pooling-prm", "--prm-url", "http://gpu:8001",
         "--prm-model", "prm", "--prm-step-tag", "<extra_0>", "q"]
    )  # fmt: skip
    scorer = strategy_options(args, "best-of-n")["scorer"]
    assert isinstance(scorer, PoolingPRM) and scorer.step_tag == "<extra_0>" and scorer.base_url == "http://gpu:8001"
    default = build_parser().parse_args(["run", "--scorer", "pooling-prm", "--prm-url", "u", "--prm-model", "m", "q"])
    assert strategy_options(default, "best-of-n")["scorer"].step_tag == "\n\n"


@pytest.mark.parametrize(
    ("reply", "steps", "label"),
    [("Checks out.\n**Grade:** 7", [6 / 9], "7"), ("grade = 10", [1.0], "10"), ("Grade: N", [None], "unparseable")],
)
async def test_judge_grade_reads_markdown_and_refuses_the_placeholder(
    reply: str, steps: list[float | None], label: str
) -> None:
    scored = await JudgeGrade().score("q", "a", FakeServer(reply=lambda req: reply).context())
    assert (scored.steps, scored.label, scored.text) == (steps, label, reply)
