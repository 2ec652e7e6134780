"""``ttc gateway`` (graphs.serving.openai_api) driven by the real ``openai`` client over real HTTP
(uvicorn on a free port), with the fake upstream at the transport seam: replies are computed from
the prompt, so the ledger, the vote and every error path can be checked exactly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
import uvicorn

from graphs import registry
from graphs.registry import StrategySpec
from graphs.serving.openai_api import GatewaySettings, create_app
from graphs.strategies import build_vote_graph
from nodes import Endpoint
from tests.fakes import FakeServer

QUESTION = "What is 17 + 25?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread; yields its ``/v1`` base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


class Upstream:
    """The fake upstream, optionally held (requests wait until released) and watched for cancellation."""

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        self.hold: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiting = 0
        self.cancelled = 0
        self.usage = [0, 0]  # prompt and completion tokens of every reply the upstream sent

    def totals(self) -> tuple[int, int]:
        return self.usage[0], self.usage[1]

    def release(self) -> None:
        """Let held requests go on (from the gateway's loop, where they wait)."""
        hold, self.hold = self.hold, None
        assert hold is not None and self.loop is not None
        self.loop.call_soon_threadsafe(hold.set)

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.loop = asyncio.get_running_loop()
        if self.hold is not None and request.url.path.endswith("/chat/completions"):
            self.waiting += 1
            try:
                await self.hold.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            finally:
                self.waiting -= 1
        response = self.fake.handler(request)
        if response.status_code == 200 and request.url.path.endswith("/chat/completions"):
            usage = json.loads(response.content)["usage"]
            self.usage[0] += usage["prompt_tokens"]
            self.usage[1] += usage["completion_tokens"]
        return response

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


@pytest.fixture
def upstream(fake: FakeServer) -> Upstream:
    return Upstream(fake)


@pytest.fixture
def gateway(upstream: Upstream) -> Iterator[Callable[..., Any]]:
    """``gateway(**settings)`` → the base URL of a running gateway on the fake upstream."""
    stack = contextlib.ExitStack()

    def start(**settings: Any) -> str:
        endpoint = Endpoint(base_url="http://fake.test/v1", model="fake-model", **settings.pop("endpoint", {}))
        app = create_app(GatewaySettings(endpoint=endpoint, http_async_client=upstream.client(), log=None, **settings))
        return stack.enter_context(running(app))

    with stack:
        yield start


def client(base_url: str, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=kwargs.pop("api_key", "none"), max_retries=0, **kwargs)


# -- answers and usage -----------------------------------------------------------------------------------------


def test_vote_by_model_name_answers_with_the_chosen_text_and_the_whole_ledger(
    gateway: Any, fake: FakeServer, upstream: Upstream
) -> None:
    base = gateway()
    response = client(base).chat.completions.create(
        model="vote-6/fake-model", messages=[{"role": "user", "content": QUESTION}]
    )
    assert response.choices[0].message.content == "Adding up step by step gives 42. The answer is 42."
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "vote-6/fake-model"
    report = response.model_extra["ttc"]
    assert report["strategy"] == "vote" and report["k"] == 6
    assert report["answer"] == "42" and report["votes"] == {"42": 4, "43": 2}
    assert sum(b.get("n") or 1 for b in fake.requests) == 6
    prompt, completion = upstream.totals()
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (prompt, completion)
    assert response.usage.total_tokens == prompt + completion


def test_judge_calls_are_in_the_usage(gateway: Any, upstream: Upstream) -> None:
    base = gateway()
    response = client(base).chat.completions.create(
        model="filter-vote-4/fake-model", messages=[{"role": "user", "content": QUESTION}]
    )
    report = response.model_extra["ttc"]
    assert report["usage"]["calls"] == 8  # 4 samples, 4 judgements
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == upstream.totals()


def test_the_ttc_field_chooses_a_strategy_and_its_options(gateway: Any, fake: FakeServer) -> None:
    base = gateway()
    response = client(base).chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": QUESTION}],
        extra_body={"ttc": {"strategy": "adaptive-vote", "k": 16, "options": {"stop": "supermajority"}}},
    )
    report = response.model_extra["ttc"]
    assert report["strategy"] == "adaptive-vote" and report["options"] == {"stop": "supermajority"}
    assert report["answer"] == "42"
    assert sum(b.get("n") or 1 for b in fake.requests) < 16  # the supermajority stopped before the cap


def test_temperature_max_tokens_and_seed_reach_the_upstream(gateway: Any, fake: FakeServer) -> None:
    base = gateway()
    client(base).chat.completions.create(
        model="vote-3/fake-model",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0.3,
        max_tokens=77,
        seed=1234,
        top_p=0.9,
    )
    (body,) = fake.requests
    assert body["temperature"] == 0.3
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 77
    assert body["seed"] == 1234


def test_ignored_fields_are_reported(gateway: Any) -> None:
    base = gateway()
    response = client(base).chat.completions.create(
        model="vote-2/fake-model", messages=[{"role": "user", "content": QUESTION}], top_p=0.5, user="me"
    )
    assert response.model_extra["ttc"]["ignored"] == ["top_p", "user"]


async def test_async_client_and_concurrent_requests(gateway: Any, fake: FakeServer) -> None:
    base = await asyncio.to_thread(gateway)
    async with openai.AsyncOpenAI(base_url=base, api_key="none", max_retries=0) as aclient:
        questions = [f"What is {a} + {a}?" for a in range(1, 9)]
        responses = await asyncio.gather(
            *(
                aclient.chat.completions.create(model="vote-3/fake-model", messages=[{"role": "user", "content": q}])
                for q in questions
            )
        )
    assert [r.model_extra["ttc"]["answer"] for r in responses] == [str(2 * a) for a in range(1, 9)]


def test_streaming_sends_progress_then_the_answer_then_usage(gateway: Any, upstream: Upstream) -> None:
    base = gateway()
    stream = client(base).chat.completions.create(
        model="filter-vote-3/fake-model",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    kinds = []
    for c in chunks:
        if not c.choices:
            kinds.append("usage")
        elif c.choices[0].finish_reason:
            kinds.append("finish")
        elif c.choices[0].delta.content:
            kinds.append("answer")
        elif (c.model_extra or {}).get("ttc_event"):
            kinds.append(c.model_extra["ttc_event"]["event"])
    assert kinds == ["proposed", "verified", "verified", "verified", "answer", "finish", "usage"]
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks[:5])
    assert "proposed samples 0..2: 42, 42, 43" in reasoning and "judged sample 2: wrong" in reasoning
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert answer == "Adding up step by step gives 42. The answer is 42."
    assert chunks[-2].model_extra["ttc"]["votes"] == {"42": 2}
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == upstream.totals()


def test_streaming_without_include_usage_sends_no_usage_chunk(gateway: Any) -> None:
    base = gateway()
    chunks = list(
        client(base).chat.completions.create(
            model="vote-2/fake-model", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    )
    assert all(c.choices for c in chunks) and chunks[-1].choices[0].finish_reason == "stop"


def test_models_lists_every_strategy_and_a_registered_one_is_served(
    gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "_registered", dict(registry.strategies()))

    def twice(k: int) -> Any:
        return build_vote_graph(2 * k)

    registry.register(StrategySpec("vote-twice", twice, summary="a vote over 2k samples"))
    base = gateway()
    listed = [m.id for m in client(base).models.list()]
    assert {"vote/fake-model", "filter-vote/fake-model", "vote-twice/fake-model"} <= set(listed)
    assert len(listed) == len(registry.strategies())
    response = client(base).chat.completions.create(
        model="vote-twice-2/fake-model", messages=[{"role": "user", "content": QUESTION}]
    )
    assert sum(response.model_extra["ttc"]["votes"].values()) == 4


def test_conversation_context_reaches_the_prompt(gateway: Any, fake: FakeServer) -> None:
    base = gateway()
    client(base).chat.completions.create(
        model="vote-1/fake-model",
        messages=[
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ],
    )
    prompt = fake.requests[0]["messages"][-1]["content"]
    assert "System: Answer with a number." in prompt and f"User: {QUESTION}" in prompt


# -- refusals: OpenAI-style errors, before any upstream call ---------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "status", "says"),
    [
        ({"model": "gpt-4o"}, openai.NotFoundError, 404, "names no strategy"),
        ({"model": "vote-8/other-model"}, openai.NotFoundError, 404, "does not serve model 'other-model'"),
        ({"model": "fake-model", "extra_body": {"ttc": {"strategy": "nope"}}}, openai.NotFoundError, 404, "nope"),
        ({"model": "vote-0/fake-model"}, openai.BadRequestError, 400, "k"),
        (
            {"extra_body": {"ttc": {"options": {"stop": "never"}}}, "model": "adaptive-vote/fake-model"},
            openai.BadRequestError,
            400,
            "stop must be one of",
        ),
        ({"extra_body": {"ttc": {"options": {"width": 3}}}}, openai.BadRequestError, 400, "has no option 'width'"),
        ({"extra_body": {"ttc": {"scorer": "judge-grade"}}}, openai.BadRequestError, 400, "takes no scorer"),
        ({"n": 3}, openai.BadRequestError, 400, "n must be 1"),
        ({"temperature": 3.5}, openai.UnprocessableEntityError, 422, "temperature"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
            openai.BadRequestError,
            400,
            "does not support tools",
        ),
        ({"extra_body": {"frobnicate": 1}}, openai.BadRequestError, 400, "unknown field 'frobnicate'"),
        ({"messages": [{"role": "system", "content": "hi"}]}, openai.BadRequestError, 400, "no user message"),
        ({"messages": []}, openai.UnprocessableEntityError, 422, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            openai.BadRequestError,
            400,
            "only text",
        ),
    ],
)
def test_bad_requests_get_openai_errors_and_cost_nothing(
    gateway: Any, fake: FakeServer, kwargs: dict[str, Any], error: type[Exception], status: int, says: str
) -> None:
    base = gateway()
    request = {"model": "vote-2/fake-model", "messages": [{"role": "user", "content": QUESTION}], **kwargs}
    with pytest.raises(error) as raised:
        client(base).chat.completions.create(**request)
    assert raised.value.status_code == status  # type: ignore[attr-defined]
    body = raised.value.body  # type: ignore[attr-defined]
    assert says in body["message"] and "\n" not in body["message"]
    assert fake.requests == []


def test_a_body_that_is_not_json_is_a_400(gateway: Any, fake: FakeServer) -> None:
    base = gateway()
    response = httpx.post(
        f"{base}/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "not JSON" in response.json()["error"]["message"]
    assert fake.requests == []


def test_api_key_is_checked_and_never_echoed(gateway: Any, fake: FakeServer) -> None:
    from pydantic import SecretStr

    base = gateway(api_key=SecretStr("s3cret-key"))
    with pytest.raises(openai.AuthenticationError) as raised:
        client(base, api_key="wrong").chat.completions.create(
            model="vote-2/fake-model", messages=[{"role": "user", "content": QUESTION}]
        )
    assert "s3cret" not in json.dumps(raised.value.body)
    with pytest.raises(openai.AuthenticationError):
        client(base, api_key="wrong").models.list()
    assert fake.requests == []
    ok = client(base, api_key="s3cret-key").chat.completions.create(
        model="vote-2/fake-model", messages=[{"role": "user", "content": QUESTION}]
    )
    assert ok.choices[0].message.content


# -- upstream failures, limits, timeouts, disconnects ----------------------------------------------------------


def test_a_permanent_upstream_error_is_a_502_with_one_line(gateway: Any, fake: FakeServer) -> None:
    fake.fault = lambda body, count: 401
    base = gateway()
    with pytest.raises(openai.InternalServerError) as raised:
        client(base).chat.completions.create(
            model="vote-4/fake-model", messages=[{"role": "user", "content": QUESTION}]
        )
    assert raised.value.status_code == 502
    assert "401" in raised.value.body["message"]  # type: ignore[index]
    assert len(fake.requests) == 1  # permanent: not retried


def test_an_overloaded_upstream_is_a_503_after_retries(gateway: Any, fake: FakeServer) -> None:
    fake.fault = lambda body, count: 503
    base = gateway()
    with pytest.raises(openai.InternalServerError) as raised:
        client(base, timeout=60).chat.completions.create(
            model="vote-2/fake-model", messages=[{"role": "user", "content": QUESTION}]
        )
    assert raised.value.status_code == 503
    assert len(fake.requests) == 4  # the retry policy's attempts


def test_a_failed_sample_mid_vote_still_answers(gateway: Any, fake: FakeServer) -> None:
    fake.fault = lambda body, count: 400 if "17 + 25" in json.dumps(body) and body.get("seed") == 1 else None
    base = gateway(endpoint={"max_n": 1})
    response = client(base).chat.completions.create(
        model="vote-4/fake-model", messages=[{"role": "user", "content": QUESTION}], seed=0
    )
    report = response.model_extra["ttc"]
    assert report["answer"] == "42" and len(report["failures"]) == 1 and report["failures"][0]["indices"] == [1]


def test_over_the_run_limit_is_a_429_with_retry_after(gateway: Any, upstream: Upstream) -> None:
    base = gateway(max_runs=1)
    upstream.hold = asyncio.Event()
    first: dict[str, Any] = {}

    def ask() -> None:
        first["response"] = client(base, timeout=30).chat.completions.create(
            model="vote-2/fake-model", messages=[{"role": "user", "content": QUESTION}]
        )

    thread = threading.Thread(target=ask)
    thread.start()
    deadline = time.monotonic() + 10
    while upstream.waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(openai.RateLimitError) as raised:
        client(base).chat.completions.create(
            model="vote-2/fake-model", messages=[{"role": "user", "content": QUESTION}]
        )
    assert raised.value.response.headers["retry-after"] == "1"
    upstream.release()
    thread.join(10)
    assert first["response"].choices[0].message.content


def test_a_run_over_its_timeout_is_a_504_and_is_cancelled(gateway: Any, upstream: Upstream) -> None:
    base = gateway(run_timeout=0.5)
    upstream.hold = asyncio.Event()
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as raised:
        client(base, timeout=20).chat.completions.create(
            model="vote-2/fake-model", messages=[{"role": "user", "content": QUESTION}]
        )
    assert raised.value.status_code == 504 and time.monotonic() - started < 10
    assert "did not finish within 0.5 s" in raised.value.body["message"]  # type: ignore[index]
    _wait_for(lambda: upstream.cancelled == 1)


def _wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_a_client_that_disconnects_cancels_its_run(gateway: Any, upstream: Upstream) -> None:
    base = gateway()
    upstream.hold = asyncio.Event()
    body = {"model": "vote-3/fake-model", "messages": [{"role": "user", "content": QUESTION}]}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection, mid-run
        httpx.post(f"{base}/chat/completions", json=body, timeout=httpx.Timeout(30, read=1.0))
    _wait_for(lambda: upstream.cancelled == 1)
    _wait_for(lambda: httpx.get(base.removesuffix("/v1") + "/health").json()["active_runs"] == 0)


def test_a_streaming_client_that_disconnects_cancels_its_run(gateway: Any, upstream: Upstream) -> None:
    base = gateway()
    upstream.hold = asyncio.Event()
    body = {"model": "vote-3/fake-model", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    with httpx.Client(timeout=30) as http, http.stream("POST", f"{base}/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: a dropped line iterator would close the response here
        assert next(lines).startswith("data: ")  # the role chunk: the run is under way
        _wait_for(lambda: upstream.waiting == 1)
    # the connection is closed here, mid-run
    _wait_for(lambda: upstream.cancelled == 1)
    _wait_for(lambda: httpx.get(base.removesuffix("/v1") + "/health").json()["active_runs"] == 0)


# -- the command -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "status", "says"),
    [
        (["--run-timeout", "0"], 2, "--run-timeout must be positive"),
        (["--max-runs", "0"], 2, "expected a positive integer"),
        (["--base-url", "http://127.0.0.1:9/v1", "--model", "m"], 1, "could not be reached"),
        (["--base-url", "ftp://x", "--model", "m"], 2, "base URL must start with http"),
    ],
)
def test_the_command_fails_with_one_line(
    argv: list[str], status: int, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from graphs.cli import main

    try:
        code = main(["gateway", *argv])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err.strip()
    assert code == status and says in err and len(err.splitlines()) == 1, err
