from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.errors import NodeTimeoutError

from nodes import (
    LLM,
    BadModelOutput,
    Endpoint,
    PermanentEndpointError,
    TransientEndpointError,
    collector,
    is_transient,
    user,
)
from nodes.endpoint import status_error
from nodes.errors import ConfigError, transient_status
from nodes.transport import ShardedTransport
from tests.fakes import FakeServer


@pytest.mark.parametrize(("status", "transient"), [(429, True), (500, True), (503, True), (400, False),
                                                   (401, False), (404, False), (422, False)])  # fmt: skip
async def test_http_errors_are_classified(status: int, transient: bool) -> None:
    fake = FakeServer(fault=lambda body, count: status)
    with pytest.raises(TransientEndpointError if transient else PermanentEndpointError) as info:
        await fake.llm().chat([HumanMessage("hi")])
    assert info.value.status == status
    assert str(info.value) == f"endpoint http://fake.test/v1 answered HTTP {status}: injected HTTP {status}"
    assert is_transient(info.value) is transient
    assert len(fake.requests) == 1  # the SDK itself never retries (max_retries=0)


async def test_connection_errors_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    llm = LLM(Endpoint(base_url="http://fake.test/v1", model="m"),
              http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(refuse)))  # fmt: skip
    with pytest.raises(TransientEndpointError, match="could not be reached"):
        await llm.chat([HumanMessage("hi")])
    with pytest.raises(TransientEndpointError, match="could not be reached"):
        await llm.check()


async def test_a_request_has_the_endpoint_timeout_and_a_timeout_is_transient() -> None:
    seen: list[dict[str, Any]] = []

    def slow(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        raise httpx.ReadTimeout("no reply in time", request=request)

    llm = LLM(Endpoint(base_url="http://fake.test/v1", model="m", request_timeout=123.0),
              http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(slow)))  # fmt: skip
    with pytest.raises(TransientEndpointError) as info:
        await llm.chat([{"role": "user", "content": "hi"}])
    assert str(info.value) == "endpoint http://fake.test/v1 timed out"
    assert seen == [{"connect": 123.0, "read": 123.0, "write": 123.0, "pool": 123.0}]  # not the client's 5 s


async def test_an_error_without_a_json_body_is_still_one_line() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>\n<h1>Bad   gateway</h1>\n</html>")

    llm = LLM(Endpoint(base_url="http://fake.test/v1", model="m"),
              http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(broken)))  # fmt: skip
    with pytest.raises(TransientEndpointError) as info:
        await llm.chat([{"role": "user", "content": "hi"}])
    assert str(info.value) == "endpoint http://fake.test/v1 answered HTTP 502: <html> <h1>Bad gateway</h1> </html>"


@pytest.mark.parametrize(("status", "transient"), [(400, False), (401, False), (403, False), (404, False),
                                                   (408, True), (409, True), (422, False), (425, True), (429, True),
                                                   (500, True), (501, False), (502, True), (503, True), (504, True),
                                                   (505, False), (599, True)])  # fmt: skip
def test_one_status_table_decides_for_the_endpoint_errors_and_the_sdk_errors(status: int, transient: bool) -> None:
    assert transient_status(status) is transient
    error = status_error(status, "detail", base_url="http://x/v1")
    assert isinstance(error, TransientEndpointError if transient else PermanentEndpointError)
    assert is_transient(error) is transient
    response = httpx.Response(status, request=httpx.Request("POST", "http://x/v1/chat/completions"))
    assert is_transient(openai.APIStatusError("detail", response=response, body=None)) is transient


def test_transient_predicate_covers_timeouts_and_sdk_errors() -> None:
    request = httpx.Request("POST", "http://x")
    assert is_transient(NodeTimeoutError("propose", 1.0, kind="run", run_timeout=1.0))
    assert is_transient(openai.APITimeoutError(request=request))
    assert not is_transient(ValueError("bad"))
    assert not is_transient(PermanentEndpointError("404"))


async def test_check_names_a_missing_model() -> None:
    fake = FakeServer(model="served")
    llm = LLM(Endpoint(base_url="http://fake.test/v1", model="other"),
              http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)))  # fmt: skip
    with pytest.raises(PermanentEndpointError, match="does not serve model 'other' \\(it serves: served\\)"):
        await llm.check()


async def test_check_lists_the_models_with_the_endpoint_client() -> None:
    seen: list[httpx.Request] = []

    def models(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": [{"id": "other"}, {"id": "m"}]})

    llm = LLM(Endpoint(base_url="http://fake.test/v1", model="m", api_key="sk-1", request_timeout=7.0),
              http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(models)))  # fmt: skip
    await llm.check()
    (request,) = seen
    assert (request.method, str(request.url)) == ("GET", "http://fake.test/v1/models")
    assert request.headers["Authorization"] == "Bearer sk-1" and request.extensions["timeout"]["read"] == 7.0


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (httpx.Response(401, json={"error": {"message": "bad key"}}), PermanentEndpointError,
         "endpoint http://fake.test/v1 answered HTTP 401: bad key"),
        (httpx.Response(404, text="Not Found"), PermanentEndpointError,
         "endpoint http://fake.test/v1 answered HTTP 404: Not Found"),
        (httpx.Response(503, json={"detail": "loading"}), TransientEndpointError,
         "endpoint http://fake.test/v1 answered HTTP 503: loading"),
        (httpx.ReadTimeout("slow"), TransientEndpointError, "endpoint http://fake.test/v1 timed out"),
        (httpx.Response(200, text="<html>proxy</html>"), BadModelOutput,
         "endpoint http://fake.test/v1/models answered with invalid JSON"),
        (httpx.Response(200, json={"object": "list"}), BadModelOutput,
         "endpoint http://fake.test/v1/models answered without a list of models"),
    ],
)  # fmt: skip
async def test_check_fails_in_one_line(
    answer: httpx.Response | Exception, error: type[Exception], message: str
) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    llm = LLM(Endpoint(base_url="http://fake.test/v1", model="m"),
              http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(reply)))  # fmt: skip
    with pytest.raises(error) as info:
        await llm.check()
    assert type(info.value) is error and str(info.value) == message


async def test_check_takes_a_server_that_lists_no_models_at_its_word() -> None:
    empty = httpx.MockTransport(lambda request: httpx.Response(200, json={"object": "list", "data": []}))
    await LLM(
        Endpoint(base_url="http://fake.test/v1", model="m"), http_async_client=httpx.AsyncClient(transport=empty)
    ).check()


async def test_langchain_messages_are_sent_as_openai_messages() -> None:
    fake = FakeServer()
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("What is 1+1?"),
        AIMessage("2"),
        {"role": "user", "content": "Sure?"},
    ]
    await fake.llm().chat(messages)
    assert fake.requests[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 1+1?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "Sure?"},
    ]


async def test_completion_carries_per_choice_finish_reasons() -> None:
    fake = FakeServer()
    original = fake.handler

    def mixed(request: httpx.Request) -> httpx.Response:
        response = original(request)
        data: dict[str, Any] = response.json()
        if "choices" in data:
            data["choices"][1]["finish_reason"] = "length"
        return httpx.Response(200, json=data)

    fake.handler = mixed  # type: ignore[method-assign]
    completion = await fake.llm().chat([HumanMessage("What is 1+1?")], n=3)
    assert completion.finish_reasons == ["stop", "length", "stop"]


def test_api_key_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_API_KEY", "sk-secret-123")
    endpoint = Endpoint.from_env(base_url="http://gpu:8000/v1", model="m")
    assert endpoint is not None
    assert endpoint.api_key.get_secret_value() == "sk-secret-123"
    for text in (repr(endpoint), str(endpoint), endpoint.model_dump_json(), repr(LLM(endpoint))):
        assert "sk-secret-123" not in text


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTC_BASE_URL", raising=False)
    assert Endpoint.from_env() is None  # nothing configured: the embedded server
    monkeypatch.setenv("TTC_BASE_URL", "http://gpu:8000/v1/")
    monkeypatch.setenv("TTC_MODEL", "Qwen")
    endpoint = Endpoint.from_env(max_concurrency=4)
    assert endpoint is not None
    assert (endpoint.base_url, endpoint.model, endpoint.max_concurrency) == ("http://gpu:8000/v1", "Qwen", 4)
    monkeypatch.delenv("TTC_MODEL")
    with pytest.raises(ConfigError, match="needs a model name"):
        Endpoint.from_env()
    with pytest.raises(ConfigError, match="http:// or https://"):
        Endpoint.from_env(base_url="gpu:8000", model="m")


# Many requests in flight: small connection pools (nodes/transport.py), fewer collections (nodes/collector.py).


class Body(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


class MockPools:
    """Pools of ``httpx.MockTransport`` for :class:`ShardedTransport`, recording how many requests
    each holds at once; a request waits until ``gate`` is set."""

    def __init__(self) -> None:
        self.limits: list[httpx.Limits] = []
        self.now: list[int] = []
        self.most: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()

    def __call__(self, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
        i = len(self.limits)
        self.limits.append(limits)
        self.now.append(0)
        self.most.append(0)

        async def handle(request: httpx.Request) -> httpx.Response:
            self.now[i] += 1
            self.most[i] = max(self.most[i], self.now[i])
            await asyncio.sleep(0)
            await self.gate.wait()
            self.now[i] -= 1
            if request.url.path == "/fail":
                raise httpx.ConnectError("refused", request=request)
            if request.url.path == "/stream":  # a body read as it comes, as from a real connection
                return httpx.Response(200, stream=Body(b'{"pool": %d}' % i))
            return httpx.Response(200, json={"pool": i})

        return httpx.MockTransport(handle)

    async def burst(self, client: httpx.AsyncClient, count: int) -> list[int]:
        """``count`` requests at once; the pool each went to."""
        self.gate.clear()

        async def one() -> int:
            return int((await client.get("http://fake.test/")).json()["pool"])

        tasks = [asyncio.ensure_future(one()) for _ in range(count)]
        while sum(self.now) < count:
            await asyncio.sleep(0)
        self.gate.set()
        return await asyncio.gather(*tasks)


async def test_requests_in_flight_spread_over_small_pools_made_as_needed() -> None:
    pools = MockPools()
    async with httpx.AsyncClient(transport=ShardedTransport(max_connections=24, shard_size=8, pool=pools)) as client:
        assert sorted(set(await pools.burst(client, 20))) == [0, 1, 2]
        assert [(lim.max_connections, lim.max_keepalive_connections) for lim in pools.limits] == [(8, 8)] * 3
        assert max(pools.most) == 8
        await pools.burst(client, 24)  # every connection was given back: 24 at once fit in the same pools
        assert len(pools.limits) == 3 and max(pools.most) == 8
        await pools.burst(client, 25)  # past max_connections: the last one waits in the least busy pool
        assert len(pools.limits) == 3 and max(pools.most) == 9


async def test_a_streamed_response_holds_its_connection_until_closed() -> None:
    pools = MockPools()
    transport = ShardedTransport(max_connections=4, shard_size=1, pool=pools)
    async with httpx.AsyncClient(transport=transport) as client:
        async with client.stream("GET", "http://fake.test/stream") as first:
            assert (await client.get("http://fake.test/")).json() == {"pool": 1}  # pool 0 is still held
            assert await first.aread() == b'{"pool": 0}'
        assert sorted(await pools.burst(client, 2)) == [0, 1]  # and free once the stream is closed
        assert transport.pools == 2


async def test_a_failed_request_gives_its_connection_back() -> None:
    pools = MockPools()
    transport = ShardedTransport(max_connections=4, shard_size=1, pool=pools)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://fake.test/fail")
        assert (await client.get("http://fake.test/")).json() == {"pool": 0}
        assert transport.pools == 1


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_many_calls_under_way_collect_garbage_less_often_until_a_quiet_spell(
    thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector, "MANY", 3)
    gc.set_threshold(700, 10, 10)
    calls = collector._ManyCalls()
    with calls, calls:
        assert gc.get_threshold() == (700, 10, 10)  # two under way: not many
        with calls:
            assert gc.get_threshold() == (collector.THRESHOLD, 10, 10)
    assert gc.get_threshold()[0] == collector.THRESHOLD  # none under way, but not for QUIET seconds yet
    with calls:
        assert gc.get_threshold()[0] == collector.THRESHOLD
    monkeypatch.setattr(collector, "QUIET", 0.0)
    with calls:
        assert gc.get_threshold() == (700, 10, 10)  # the first call after a quiet spell puts it back


def test_many_calls_leave_a_threshold_set_on_purpose_alone(thresholds: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "MANY", 1)
    monkeypatch.setattr(collector, "QUIET", 0.0)
    calls = collector._ManyCalls()
    for mine in (0, 50_000):  # the collector off, or already collecting less often
        gc.set_threshold(mine, 10, 10)
        with calls:
            assert gc.get_threshold() == (mine, 10, 10)
    monkeypatch.setattr(collector, "MANY", 2)
    gc.set_threshold(700, 10, 10)
    with calls, calls:
        gc.set_threshold(2_000, 10, 10)  # changed meanwhile by someone else: not put back over theirs
    with calls:
        assert gc.get_threshold() == (2_000, 10, 10)


async def test_llm_calls_under_way_count_as_many(thresholds: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "MANY", 8)
    gc.set_threshold(700, 10, 10)
    fake = FakeServer()
    seen: list[int] = []  # the threshold as each request arrives
    go = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(gc.get_threshold()[0])
        await go.wait()
        return fake.handler(request)

    llm = LLM(Endpoint(base_url="http://fake.test/v1", model="m", max_concurrency=4),
              http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))  # fmt: skip
    calls = [asyncio.ensure_future(llm.chat([user(f"What is {i} + 1?")])) for i in range(8)]
    while len(seen) < 4:
        await asyncio.sleep(0)
    # 4 requests in flight and 4 calls waiting for the endpoint's limit: 8 under way
    assert seen == [700] * 4 and gc.get_threshold()[0] == collector.THRESHOLD
    go.set()
    await asyncio.gather(*calls)
    monkeypatch.setattr(collector, "QUIET", 0.0)
    await llm.chat([user("What is 1 + 1?")])
    assert gc.get_threshold()[0] == 700  # the first call after a quiet spell put it back
