"""Verifiers and reward models: scores differ between right and wrong solutions, and cost is counted."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable
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
    """A fake vLLM pooling server: a token is a word; P(correct) is 0.9 at words with 'good'.

    It takes one input or a list, answers a list's results in reverse order (each with its
    ``index``), and counts one more prompt token per input than it scores (a BOS token).
    """
    body = json.loads(request.content)
    if request.url.path == "/tokenize":
        return httpx.Response(200, json={"count": len(body["prompt"].split()), "tokens": []})
    assert request.url.path == "/pooling" and body["task"] == "token_classify"
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = [
        {"index": i, "data": [[0.1, 0.9] if "good" in w else [0.8, 0.2] for w in text.split()]}
        for i, text in enumerate(inputs)
    ]
    usage = {"prompt_tokens": sum(len(d["data"]) + 1 for d in data)}
    return httpx.Response(200, json={"data": data[::-1], "usage": usage})


async def test_pooling_prm_reads_step_scores_at_the_end_of_each_step() -> None:
    prm = PoolingPRM("http://prm.test/v1", "prm", transport=httpx.MockTransport(pooling_server))
    scored = await prm.score(
        "What is 2+3?", "First step is good\n\nthen a bad one\n\nfinally good", FakeServer().context()
    )
    assert scored.steps == [pytest.approx(0.9), pytest.approx(0.2), pytest.approx(0.9)]
    assert scored.usage == {"verify": {"requests": 1, "calls": 1, "prompt_tokens": 3 + 10 + 1, "completion_tokens": 0}}


QUESTION = "What is 2+3?"  # 3 tokens to the fake pooling server
SOLUTIONS = ["First step is good\n\nthen a bad one", "start is good\n\nend is good", "all bad here"]  # 8, 6, 3 tokens
STEPS = [[pytest.approx(0.9), pytest.approx(0.2)], [pytest.approx(0.9)] * 2, [pytest.approx(0.2)]]


class Recorder:
    """Wraps a fake server's handler, keeping each request's path and body."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        self.handler = handler
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.path, json.loads(request.content)))
        return self.handler(request)

    def inputs(self) -> list[Any]:
        """The input of each ``/pooling`` request."""
        return [body["input"] for path, body in self.seen if path == "/pooling"]

    def tokenized(self) -> int:
        return sum(path == "/tokenize" for path, _ in self.seen)


async def test_pooling_prm_scores_a_wave_with_one_request_and_splits_its_usage_exactly() -> None:
    server = Recorder(pooling_server)
    prm = PoolingPRM("http://prm.test/v1", "prm", transport=httpx.MockTransport(server))
    ctx = FakeServer().context()
    wave = await prm.score_many(QUESTION, SOLUTIONS, ctx)
    assert [s.steps for s in wave] == STEPS  # in the solutions' order, though the server answered in reverse
    (batch,) = server.inputs()
    assert isinstance(batch, list) and len(batch) == 3 and server.tokenized() == 5
    # the server reported 29 prompt tokens for 11 + 9 + 6 scored ones: shared in proportion, in whole tokens
    assert [s.usage for s in wave] == [
        {"verify": {"requests": 1, "calls": 1, "prompt_tokens": 12, "completion_tokens": 0}},
        {"verify": {"requests": 0, "calls": 1, "prompt_tokens": 10, "completion_tokens": 0}},
        {"verify": {"requests": 0, "calls": 1, "prompt_tokens": 7, "completion_tokens": 0}},
    ]
    assert sum(s.usage["verify"]["prompt_tokens"] for s in wave) == 29
    alone = [await prm.score(QUESTION, solution, ctx) for solution in SOLUTIONS]
    assert [s.steps for s in alone] == [s.steps for s in wave] and server.inputs()[1:] == batch
    assert await prm.score_many(QUESTION, [], ctx) == [] and len(server.inputs()) == 4  # nothing to score: no request


@pytest.mark.parametrize("status", [400, 422])
async def test_pooling_prm_sends_one_request_a_solution_to_a_server_that_rejects_a_list(status: int) -> None:
    def one_input(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/pooling" and isinstance(json.loads(request.content)["input"], list):
            return httpx.Response(status, json={"error": {"message": "input must be a string"}})
        return pooling_server(request)

    server = Recorder(one_input)
    prm = PoolingPRM("http://prm.test", "prm", transport=httpx.MockTransport(server))
    wave = await prm.score_many(QUESTION, SOLUTIONS, FakeServer().context())
    assert [s.steps for s in wave] == STEPS
    batch, *singles = server.inputs()
    assert isinstance(batch, list) and sorted(batch) == sorted(singles)
    assert server.tokenized() == 5  # the step prefixes were not tokenized again
    assert [s.usage["verify"] for s in wave] == [
        {"requests": 1, "calls": 1, "prompt_tokens": tokens, "completion_tokens": 0} for tokens in (12, 10, 7)
    ]


async def test_pooling_prm_fails_a_wave_that_fails_one_solution_at_a_time() -> None:
    def too_long(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/pooling" and "all bad" in request.content.decode():
            return httpx.Response(400, json={"error": {"message": "input is longer than the model's context"}})
        return pooling_server(request)

    server = Recorder(too_long)
    prm = PoolingPRM("http://prm.test", "prm", transport=httpx.MockTransport(server))
    with pytest.raises(PermanentEndpointError, match="answered HTTP 400: input is longer"):
        await prm.score_many(QUESTION, SOLUTIONS, FakeServer().context())
    assert len(server.inputs()) == 1 + 3
    with pytest.raises(PermanentEndpointError, match="HTTP 400"):  # one solution: its error, nothing else to try
        await prm.score(QUESTION, SOLUTIONS[2], FakeServer().context())
    assert len(server.inputs()) == 1 + 3 + 1


def counting_clients(monkeypatch: pytest.MonkeyPatch) -> list[httpx.AsyncClient]:
    """Every ``httpx.AsyncClient`` made from now on."""
    made: list[httpx.AsyncClient] = []

    class Counted(httpx.AsyncClient):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            made.append(self)

    monkeypatch.setattr(httpx, "AsyncClient", Counted)
    return made


async def test_pooling_prms_of_one_server_share_one_client_until_it_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = FakeServer().context()
    made = counting_clients(monkeypatch)
    transport = httpx.MockTransport(pooling_server)
    first = PoolingPRM("http://prm.test/v1", "prm", transport=transport)
    second = PoolingPRM("http://prm.test", "prm", step_tag=" good\n\n", transport=transport)  # the same server
    elsewhere = PoolingPRM("http://other.test", "prm", transport=transport)
    assert (await second.score(QUESTION, SOLUTIONS[2], ctx)).steps != (
        await first.score(QUESTION, SOLUTIONS[2], ctx)
    ).steps
    await first.score_many(QUESTION, SOLUTIONS, ctx)
    assert len(made) == 1 and not made[0].is_closed
    await elsewhere.score(QUESTION, SOLUTIONS[0], ctx)
    assert len(made) == 2  # another server, another client
    async with second:
        pass
    assert made[0].is_closed and not made[1].is_closed  # closed for both scorers of the server
    await first.score(QUESTION, SOLUTIONS[0], ctx)
    assert len(made) == 3  # a call after the close opens a new one
    await first.aclose()
    await elsewhere.aclose()
    assert all(client.is_closed for client in made)


def test_each_event_loop_has_its_own_pooling_prm_client(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = FakeServer().context()
    made = counting_clients(monkeypatch)
    prm = PoolingPRM("http://prm.test", "prm", transport=httpx.MockTransport(pooling_server))

    async def twice() -> None:
        await prm.score(QUESTION, SOLUTIONS[0], ctx)
        await prm.score(QUESTION, SOLUTIONS[1], ctx)

    asyncio.run(twice())
    asyncio.run(twice())
    assert len(made) == 2  # httpx connections cannot cross event loops


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
