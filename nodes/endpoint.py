"""The OpenAI-compatible endpoint: configuration, the one client per endpoint, error mapping.

:class:`Endpoint` is plain configuration (read once at the edge, from flags or the
environment). :class:`LLM` owns the single ``httpx`` client of an endpoint and the
concurrency limit shared by every node of a run. :func:`post` (and :meth:`LLM.check`'s GET)
turn timeouts, transport errors and HTTP error statuses into :mod:`nodes.errors` classes, by
the one status table :func:`nodes.errors.transient_status`. Retrying is not done here: graphs
attach ``RetryPolicy(retry_on=is_transient)`` to their LLM nodes (see :data:`RETRY_POLICY`),
and nothing below retries on its own, so retries never multiply.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from langchain_core.messages import BaseMessage, convert_to_openai_messages
from langgraph.errors import NodeTimeoutError
from langgraph.types import RetryPolicy
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from nodes.collector import many_calls
from nodes.errors import (
    BadModelOutput,
    ConfigError,
    EndpointError,
    PermanentEndpointError,
    TransientEndpointError,
    transient_status,
)
from nodes.transport import ShardedTransport

__all__ = [
    "LLM",
    "RETRY_POLICY",
    "Completion",
    "Endpoint",
    "Message",
    "is_transient",
    "known_parameters",
    "post",
    "read_json",
    "status_error",
    "user",
]

ENV_BASE_URL = "TTC_BASE_URL"
ENV_MODEL = "TTC_MODEL"
ENV_API_KEY = "TTC_API_KEY"


class Endpoint(BaseModel):
    """Where and how to reach an OpenAI-compatible server.

    Attributes:
        base_url: e.g. ``http://127.0.0.1:8000/v1``.
        model: the served model name.
        api_key: sent as a bearer token; never printed (``SecretStr``).
        request_timeout: seconds for one HTTP request.
        max_concurrency: requests in flight at once, shared by the whole run.
        max_n: most samples per request (``n``); 1 for servers that ignore ``n``.
        parameters: the served model's number of weights, for the ledger's FLOPs (2 × parameters
            per prompt or completion token). Packaged models are known by their served name;
            for another model, leave it None and FLOPs are not counted.
    """

    model_config = ConfigDict(frozen=True)

    base_url: str
    model: str
    api_key: SecretStr = Field(default=SecretStr("EMPTY"), repr=False)
    request_timeout: float = Field(default=600.0, gt=0)
    max_concurrency: int = Field(default=16, ge=1)
    max_n: int = Field(default=64, ge=1)
    parameters: int | None = Field(default=None, gt=0)

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base URL must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @property
    def model_parameters(self) -> int | None:
        """``parameters`` as given, else a packaged model's (by its served name), else None (unknown).

        Example:
            >>> Endpoint(base_url="http://h/v1", model="Qwen2.5-Coder-0.5B-Instruct").model_parameters
            494000000
            >>> Endpoint(base_url="http://h/v1", model="my-7b", parameters=7_600_000_000).model_parameters
            7600000000
        """
        return self.parameters if self.parameters is not None else known_parameters(self.model)

    @classmethod
    def from_env(cls, *, base_url: str | None = None, model: str | None = None, **kwargs: Any) -> Endpoint | None:
        """The endpoint named by arguments or ``TTC_BASE_URL``/``TTC_MODEL``/``TTC_API_KEY``.

        Returns None when no base URL is configured (the caller then uses the embedded server).
        ``OPENAI_API_KEY`` is used when ``TTC_API_KEY`` is not set.
        """
        url = base_url or os.environ.get(ENV_BASE_URL)
        if not url:
            return None
        name = model or os.environ.get(ENV_MODEL)
        if not name:
            raise ConfigError(f"an endpoint at {url} needs a model name: pass --model or set {ENV_MODEL}")
        key = os.environ.get(ENV_API_KEY) or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        try:
            return cls(base_url=url, model=name, api_key=SecretStr(key), **kwargs)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ConfigError(_first_error(exc)) from None


@functools.cache
def known_parameters(model: str) -> int | None:
    """The number of weights of a packaged model, by its served name (None for any other model).

    Example:
        >>> known_parameters("Qwen2.5-Coder-1.5B-Instruct"), known_parameters("gpt-4o")
        (1540000000, None)
    """
    from nodes.server import PACKAGED_MODELS  # the table of packaged models (that module imports this one)

    return next((m.parameters for m in PACKAGED_MODELS.values() if m.served_name == model), None)


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)


Message = BaseMessage | Mapping[str, Any]
"""A chat message: an OpenAI-style mapping (``{"role": "user", "content": "..."}``), or a
LangChain message."""


def user(content: str) -> dict[str, str]:
    """The OpenAI-style user message of ``content``."""
    return {"role": "user", "content": content}


@dataclass
class Completion:
    """The choices of one chat request and the usage the server reported for it."""

    texts: list[str]
    finish_reasons: list[str | None]
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[Any] = field(default_factory=list)
    stop_reasons: list[Any] = field(default_factory=list)  # vLLM: the matched stop string, None at EOS
    parameters: int | None = None  # the model's weights, for FLOPs (None: unknown)


@dataclass
class _LoopClients:
    """An event loop's clients of one endpoint: httpx connections cannot cross loops."""

    http: httpx.AsyncClient
    limit: asyncio.Semaphore


class LLM:
    """The client of one endpoint: its HTTP connections and one concurrency limit shared by the run.

    Args:
        endpoint: where to send requests.
        http_async_client: an ``httpx.AsyncClient`` to use (tests pass one with a
            ``MockTransport``); by default one is made per event loop, and closed by :meth:`aclose`.

    Example:
        >>> LLM(Endpoint(base_url="http://127.0.0.1:8000/v1", model="m"))
        LLM(base_url='http://127.0.0.1:8000/v1', model='m')
    """

    def __init__(self, endpoint: Endpoint, *, http_async_client: httpx.AsyncClient | None = None) -> None:
        self.endpoint = endpoint
        self._http_async_client = http_async_client
        self._headers = {
            "Authorization": f"Bearer {endpoint.api_key.get_secret_value()}",
            "Content-Type": "application/json",
        }
        # One client and one concurrency limit per event loop: httpx connections and asyncio
        # primitives cannot cross loops, and a notebook or a test suite may run several loops over
        # one LLM.
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"LLM(base_url={self.endpoint.base_url!r}, model={self.endpoint.model!r})"

    def _new_clients(self) -> _LoopClients:
        connections = self.endpoint.max_concurrency * 2
        http = self._http_async_client or httpx.AsyncClient(
            timeout=self.endpoint.request_timeout,
            # small pools: one httpcore pool slows down with its size (see nodes/transport.py)
            transport=ShardedTransport(max_connections=connections),
            limits=httpx.Limits(max_connections=connections),  # a proxy from the environment has its own pool
        )
        return _LoopClients(http, asyncio.Semaphore(self.endpoint.max_concurrency))

    async def aclose(self) -> None:
        """Close the HTTP connections this event loop opened (a client it did not get passed)."""
        clients = self._per_loop.pop(asyncio.get_running_loop(), None)
        if clients is not None and self._http_async_client is None:
            await clients.http.aclose()

    async def __aenter__(self) -> LLM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _for_loop(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        clients = self._per_loop.get(loop)
        if clients is None:
            clients = self._per_loop[loop] = self._new_clients()
        return clients

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        n: int = 1,
        seed: int | None = None,
        temperature: float = 0.7,
        max_tokens: int = 512,
        stop: list[str] | None = None,
        **extra: Any,
    ) -> Completion:
        """One chat-completions request; raises :mod:`nodes.errors` classes on failure.

        The request goes straight through the endpoint's ``httpx`` client, and the reply is read
        with one ``json.loads``. LangChain's message objects and callbacks, and the OpenAI SDK's
        request options and per-choice pydantic models, cost more than the call itself on a fast
        server (``benchmarks/``: about 0.5 ms a call for the SDK's ``post`` alone). ``extra`` passes
        OpenAI parameters (``logprobs``, ``top_logprobs``) and ``extra_body`` (vLLM's own, e.g.
        ``continue_final_message``).
        """
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": [_message_dict(m) for m in messages],
            "n": n,
            "temperature": temperature,
            "max_completion_tokens": max_tokens,
            **{k: v for k, v in extra.items() if k != "extra_body"},
            **(extra.get("extra_body") or {}),
        }
        if seed is not None:
            body["seed"] = seed
        if stop:
            body["stop"] = stop
        clients = self._for_loop()
        url = self.endpoint.base_url
        with many_calls:  # see nodes/collector.py
            async with clients.limit:
                response = await post(
                    clients.http,
                    f"{url}/chat/completions",
                    base_url=url,
                    content=json.dumps(body),
                    headers=self._headers,
                    timeout=self.endpoint.request_timeout,  # also on a client the caller passed
                )
        data = read_json(response, f"endpoint {url}")
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise BadModelOutput(f"endpoint {url} returned no choices")
        choices = sorted(choices, key=lambda c: c.get("index") or 0)
        usage = data.get("usage") or {}
        return Completion(
            texts=[str((c.get("message") or {}).get("content") or "") for c in choices],
            finish_reasons=[c.get("finish_reason") for c in choices],
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            logprobs=[c.get("logprobs") for c in choices],
            stop_reasons=[c.get("stop_reason") for c in choices],
            parameters=self.endpoint.model_parameters,
        )

    async def chat_stream(
        self,
        messages: Sequence[Message],
        *,
        on_token: Callable[[dict[str, Any]], bool] | None = None,
        seed: int | None = None,
        temperature: float = 0.7,
        max_tokens: int = 512,
        prompt_tokens: int = 0,
        **extra: Any,
    ) -> Completion:
        """One streamed chat request of one sample; ``on_token`` sees each generated token's
        logprobs entry (``{"token", "logprob", "top_logprobs"}``, with ``logprobs``/``top_logprobs``
        in ``extra``) and returns True to stop it. Stopping closes the connection, which makes vLLM
        abort the request (it stops generating); the Completion's finish reason is then
        ``"stopped"``. Cancelling the awaiting task closes it the same way.

        Usage comes from the server's own counters when it streams them (``stream_options``
        ``include_usage``, and vLLM's ``continuous_usage_stats`` so a stopped stream knows them
        too); otherwise the completion tokens are the tokens received and the prompt tokens
        ``prompt_tokens`` (what a non-streamed request of the same prompt reported).
        """
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": [_message_dict(m) for m in messages],
            "temperature": temperature,
            "max_completion_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            **{k: v for k, v in extra.items() if k != "extra_body"},
            **(extra.get("extra_body") or {}),
        }
        if seed is not None:
            body["seed"] = seed
        clients = self._for_loop()
        url = self.endpoint.base_url
        parts: list[str] = []
        entries: list[Any] = []
        finish: str | None = None
        stop_reason: Any = None
        usage: dict[str, Any] = {}
        async with clients.limit:
            try:
                async with clients.http.stream(
                    "POST", f"{url}/chat/completions", content=json.dumps(body), headers=self._headers,
                    timeout=self.endpoint.request_timeout,
                ) as response:  # fmt: skip
                    if response.status_code >= 400:
                        await response.aread()
                        raise status_error(response.status_code, _response_message(response), base_url=url)
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        try:
                            chunk = json.loads(data)
                        except json.JSONDecodeError as exc:
                            raise BadModelOutput(f"endpoint {url} streamed invalid JSON") from exc
                        if isinstance(chunk, dict) and "error" in chunk:
                            raise status_error(502, _said(chunk) or "error in stream", base_url=url)
                        usage = (chunk.get("usage") if isinstance(chunk, dict) else None) or usage
                        stopped = False
                        for choice in chunk.get("choices") or [] if isinstance(chunk, dict) else []:
                            parts.append(str((choice.get("delta") or {}).get("content") or ""))
                            finish = choice.get("finish_reason") or finish
                            stop_reason = choice.get("stop_reason", stop_reason)
                            for entry in (choice.get("logprobs") or {}).get("content") or []:
                                entries.append(entry)
                                stopped = stopped or bool(on_token and on_token(entry))
                        if stopped:
                            finish = "stopped"
                            break
            except httpx.TimeoutException as exc:
                raise TransientEndpointError(f"endpoint {url} timed out", base_url=url) from exc
            except httpx.TransportError as exc:
                raise TransientEndpointError(f"endpoint {url} could not be reached", base_url=url) from exc
        received = len(entries) if entries else 0
        return Completion(
            texts=["".join(parts)],
            finish_reasons=[finish],
            prompt_tokens=int(usage.get("prompt_tokens") or prompt_tokens),
            completion_tokens=max(int(usage.get("completion_tokens") or 0), received),
            logprobs=[{"content": entries}],
            stop_reasons=[stop_reason],
            parameters=self.endpoint.model_parameters,
        )

    async def models(self) -> list[str]:
        """The model names ``GET {base_url}/models`` lists, through the endpoint's own client (its
        failures mapped as :func:`post` maps them)."""
        clients = self._for_loop()
        url = self.endpoint.base_url
        async with clients.limit:
            response = await _send(
                clients.http,
                "GET",
                f"{url}/models",
                base_url=url,
                headers={"Authorization": self._headers["Authorization"]},
                timeout=self.endpoint.request_timeout,
            )
        data = read_json(response, f"endpoint {url}/models")
        listed = data.get("data") if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise BadModelOutput(f"endpoint {url}/models answered without a list of models")
        return [str(m["id"]) for m in listed if isinstance(m, dict) and m.get("id") is not None]

    async def check(self) -> list[str]:
        """Fail fast with one clear line if the endpoint is unreachable or lacks the model; returns
        the models it lists (:meth:`models`). A server that lists no models is taken at its word.
        """
        models = await self.models()
        url = self.endpoint.base_url
        if models and self.endpoint.model not in models:
            raise PermanentEndpointError(
                f"endpoint {url} does not serve model {self.endpoint.model!r} (it serves: {', '.join(models)})",
                base_url=url,
                status=404,
            )
        return models


async def post(
    client: httpx.AsyncClient, url: str, *, base_url: str, who: str = "endpoint", **kwargs: Any
) -> httpx.Response:
    """POST to ``url`` (``kwargs`` as ``httpx`` takes them); a timeout or transport error raises
    :class:`TransientEndpointError`, an HTTP error status :func:`status_error`'s error. ``who``
    names the server in the one-line message (``"PRM endpoint"``); ``base_url`` goes on the error."""
    return await _send(client, "POST", url, base_url=base_url, who=who, **kwargs)


async def _send(
    client: httpx.AsyncClient, method: str, url: str, *, base_url: str, who: str = "endpoint", **kwargs: Any
) -> httpx.Response:
    """One request, its failures mapped to :mod:`nodes.errors` classes (see :func:`post`)."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransientEndpointError(f"{who} {base_url} timed out", base_url=base_url) from exc
    except httpx.TransportError as exc:
        raise TransientEndpointError(f"{who} {base_url} could not be reached", base_url=base_url) from exc
    if response.status_code >= 400:
        raise status_error(response.status_code, _response_message(response), base_url=base_url, who=who)
    return response


def status_error(status: int, detail: str, *, base_url: str, who: str = "endpoint") -> EndpointError:
    """The error of an HTTP error status, in one line: :class:`TransientEndpointError` if
    :func:`nodes.errors.transient_status` says so, :class:`PermanentEndpointError` otherwise.

    Example:
        >>> status_error(429, "slow down", base_url="http://gpu:8000/v1")
        TransientEndpointError('endpoint http://gpu:8000/v1 answered HTTP 429: slow down')
    """
    message = f"{who} {base_url} answered HTTP {status}: {_one_line(detail)}"
    if transient_status(status):
        return TransientEndpointError(message, base_url=base_url, status=status)
    return PermanentEndpointError(message, base_url=base_url, status=status)


def read_json(response: httpx.Response, where: str) -> Any:
    """The JSON of a successful response; :class:`BadModelOutput` naming ``where`` if it is not JSON."""
    try:
        return json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadModelOutput(f"{where} answered with invalid JSON") from exc


def _said(body: object) -> str | None:
    """What an error body says: its ``error.message`` (OpenAI, vLLM), ``message`` or ``detail``."""
    if not isinstance(body, dict):
        return None
    inner = body.get("error", body)
    for found in (inner.get("message") if isinstance(inner, dict) else None, body.get("message"), body.get("detail")):
        if found:
            return str(found)
    return None


def _response_message(response: httpx.Response) -> str:
    """What an error response says, else the start of its text."""
    try:
        body = json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    return _said(body) or response.text[:200] or response.reason_phrase


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _message_dict(message: Message) -> dict[str, Any]:
    """A message as the OpenAI API takes it: an OpenAI-style mapping as it is, a LangChain
    message by langchain-core's public :func:`~langchain_core.messages.convert_to_openai_messages`."""
    if isinstance(message, BaseMessage):
        converted = convert_to_openai_messages(message)  # one message in, one dict out
        return converted if isinstance(converted, dict) else converted[0]
    return dict(message)


def is_transient(exc: BaseException) -> bool:
    """The retry predicate of every LLM node: only failures that may go away on retry.

    Besides this package's :class:`TransientEndpointError` and langgraph's node timeout, it knows
    the OpenAI SDK's and ``httpx``'s own errors, for code that calls them directly; an SDK status
    error is judged by the same table, :func:`nodes.errors.transient_status`.
    """
    if isinstance(exc, TransientEndpointError | NodeTimeoutError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return transient_status(exc.status_code)
    return isinstance(exc, openai.APITimeoutError | openai.APIConnectionError | httpx.TransportError)


RETRY_POLICY = RetryPolicy(
    initial_interval=1.0, backoff_factor=2.0, max_interval=30.0, max_attempts=4, jitter=True, retry_on=is_transient
)
"""The retry policy graphs attach to LLM nodes: 4 attempts, exponential backoff with jitter."""
