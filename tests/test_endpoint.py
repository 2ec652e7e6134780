from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage
from langgraph.errors import NodeTimeoutError

from nodes import LLM, Endpoint, PermanentEndpointError, TransientEndpointError, is_transient
from nodes.errors import ConfigError
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
