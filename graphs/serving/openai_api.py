"""An OpenAI-compatible server whose "models" are strategies: ``ttc gateway``.

Any OpenAI client (any language) asks for a strategy by model name, ``<strategy>[-<k>][/<model>]``
(``vote-8/Qwen2.5-Coder-0.5B-Instruct``, ``filter-vote``), or by the extension field ``ttc`` of the
request body (``{"ttc": {"strategy": "adaptive-vote", "k": 16, "options": {"stop": "beta"}}}``).
Every registered strategy is servable, a third party's included. The gateway runs the strategy's
graph against one upstream endpoint (the embedded vLLM by default) and answers with:

- the chosen sample's text as the assistant message, its finish reason;
- ``usage``: the ledger's totals over *every* call the strategy made (proposals, judges, scorers,
  stopped traces), prompt and completion;
- ``ttc``: the decision, votes, per-sample answers, failures, budget report and call counts, and
  ``ignored``: the request fields the gateway accepted but does not apply (``top_p``, ...).

The request's ``temperature``, ``max_tokens`` (or ``max_completion_tokens``) and ``seed`` set the
strategy's sampling. ``stream: true`` sends each progress event as it happens (a chunk whose
``delta.reasoning_content`` is one readable line and whose ``ttc_event`` is the event), then the
answer, then the finish chunk with the report (and ``usage`` when ``stream_options.include_usage``).

Errors are OpenAI-shaped JSON (``{"error": {"message", "type", "param", "code"}}``), all before any
upstream call: 400 for a bad value or unsupported feature, 401 for a wrong API key, 404 for a model
that names no strategy, 422 for a body that is not a chat request. Upstream failures are 502
(permanent), 503 (unreachable, overloaded) or 504 (the run exceeded ``run_timeout``). More than
``max_runs`` runs at once get 429 with ``Retry-After``. A client that disconnects cancels its
run: the graph's tasks and their upstream requests (vLLM aborts a request whose connection closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from graphs.registry import get, strategies
from graphs.serving.strategy import (
    StrategyConfig,
    StrategyEvent,
    StrategyFailed,
    StrategyResult,
    StrategyRunner,
    describe_event,
    failure_status,
    question_of,
)
from nodes.endpoint import LLM, Endpoint
from nodes.errors import ConfigError, EndpointError

__all__ = ["ChatRequest", "GatewaySettings", "create_app"]

_IGNORABLE = ("top_p", "presence_penalty", "frequency_penalty", "user", "logit_bias", "metadata", "store",
              "parallel_tool_calls", "service_level", "stop")  # fmt: skip
"""Standard fields a client may send that the gateway accepts but does not apply (reported back)."""

_UNSUPPORTED = {"tools", "tool_choice", "functions", "function_call", "response_format", "logprobs", "top_logprobs",
                "audio", "modalities", "prediction"}  # fmt: skip
"""Standard fields whose meaning a strategy's text answer cannot honour: a 400 naming them."""


@dataclass
class GatewaySettings:
    """How ``ttc gateway`` serves.

    Attributes:
        endpoint: the upstream endpoint strategies run on (its model is the default upstream model).
        api_key: if set, requests must carry ``Authorization: Bearer <key>`` (never logged).
        max_runs: strategy runs at once; more get 429 with ``Retry-After``.
        run_timeout: seconds one strategy run may take before it is cancelled (504).
        defaults: strategy settings used when a request leaves them out (``StrategyConfig`` fields).
        log: where one line per request goes (None: nowhere).
        http_async_client: the HTTP client upstream requests go through (default one per endpoint
            model; give one for a custom transport, as the tests do).
    """

    endpoint: Endpoint
    api_key: SecretStr | None = None
    max_runs: int = 16
    run_timeout: float = 600.0
    defaults: Mapping[str, Any] = field(default_factory=dict)
    log: Any = sys.stderr
    http_async_client: httpx.AsyncClient | None = None


class ChatRequest(BaseModel):
    """The part of an OpenAI chat-completions request the gateway reads (other fields: see
    :data:`_IGNORABLE`; anything else is a 400 naming it)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    n: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    ttc: dict[str, Any] | None = None


class _Refused(Exception):
    """An OpenAI-style error response, raised before any upstream call."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _upstream_error(exc: BaseException, timeout: float) -> _Refused:
    status = failure_status(exc)
    if status == 504:
        message = f"the strategy did not finish within {timeout:g} s"
    else:
        message = " ".join(str(exc).split()) or type(exc).__name__
    kind = "upstream_error" if status == 502 else "service_unavailable" if status == 503 else "timeout"
    return _Refused(status, message, kind=kind, code=f"upstream_{status}")


@dataclass
class _Gateway:
    settings: GatewaySettings
    active: int = 0
    runners: dict[str, StrategyRunner] = field(default_factory=dict)
    llms: dict[str, LLM] = field(default_factory=dict)
    upstream_models: list[str] = field(default_factory=list)

    # -- requests ---------------------------------------------------------------------------------

    def _check_key(self, request: Request) -> None:
        key = self.settings.api_key
        if key is None:
            return
        given = request.headers.get("authorization", "")
        token = given.removeprefix("Bearer ").strip() if given.startswith("Bearer ") else ""
        if not secrets.compare_digest(token.encode(), key.get_secret_value().encode()):
            raise _Refused(401, "missing or wrong API key (Authorization: Bearer <key>)",
                           kind="authentication_error", code="invalid_api_key")  # fmt: skip

    async def _body(self, request: Request) -> ChatRequest:
        try:
            raw = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _Refused(400, f"the request body is not JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise _Refused(400, "the request body must be a JSON object")
        try:
            body = ChatRequest.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise _Refused(422, f"{where}: {first['msg']}", param=where or None, code="invalid_value") from None
        extra = set(body.model_extra or {})
        if unsupported := sorted(extra & _UNSUPPORTED):
            raise _Refused(400, f"the gateway does not support {', '.join(unsupported)}: a strategy answers with text",
                           param=unsupported[0], code="unsupported_parameter")  # fmt: skip
        if unknown := sorted(extra - set(_IGNORABLE)):
            raise _Refused(400, f"unknown field {unknown[0]!r}", param=unknown[0], code="unknown_parameter")
        if (body.n or 1) != 1:
            raise _Refused(400, "n must be 1: the strategy decides one answer (set its size with the model name, "
                                "e.g. vote-8/<model>, or ttc.k)", param="n")  # fmt: skip
        return body

    def _config(self, body: ChatRequest) -> StrategyConfig:
        """The strategy config the request asks for: the gateway's defaults, then the model name,
        then the ``ttc`` field, then the request's sampling fields."""
        values: dict[str, Any] = dict(self.settings.defaults)
        extension = dict(body.ttc or {})
        split = StrategyConfig.split_model_name(body.model)
        if split is None and "strategy" not in extension:
            raise _Refused(404, f"model {body.model!r} names no strategy: use <strategy>[-<k>][/<model>] "
                                f"(e.g. vote-8/{self.settings.endpoint.model}) or the ttc.strategy field; "
                                f"GET /v1/models lists them", kind="invalid_request_error", param="model",
                           code="model_not_found")  # fmt: skip
        if split is None:
            values["upstream_model"] = body.model
        else:
            strategy, k, model = split
            values.update(strategy=strategy, **({"k": k} if k is not None else {}))
            if model:
                values["upstream_model"] = model
        if "upstream_model" in extension:
            raise _Refused(400, "ttc.upstream_model is set by the model name (<strategy>/<model>)", param="ttc")
        values.update(extension)
        if body.temperature is not None:
            values["temperature"] = body.temperature
        if (max_tokens := body.max_completion_tokens or body.max_tokens) is not None:
            values["max_tokens"] = max_tokens
        if body.seed is not None:
            values["seed"] = body.seed
        try:
            get(values["strategy"])
        except ConfigError as exc:
            raise _Refused(404, str(exc), param="model", code="model_not_found") from None
        try:
            config = StrategyConfig.parse(values)
        except ConfigError as exc:
            raise _Refused(400, str(exc), param="ttc", code="invalid_value") from None
        model = config.upstream_model or self.settings.endpoint.model
        if self.upstream_models and model not in self.upstream_models:
            served = ", ".join(self.upstream_models)
            raise _Refused(404, f"the upstream does not serve model {model!r} (it serves: {served})",
                           param="model", code="model_not_found")  # fmt: skip
        return config

    def _runner(self, config: StrategyConfig) -> StrategyRunner:
        """The compiled graph of the config's structure (strategy, size, options, scorer), shared by
        every request that asks for it; each run brings its own sampling settings."""
        key = config.model_dump_json(include={"strategy", "k", "options", "scorer"})
        runner = self.runners.get(key)
        if runner is None:
            try:
                runner = StrategyRunner(config)
            except ConfigError as exc:
                raise _Refused(400, str(exc), param="ttc", code="invalid_value") from None
            if len(self.runners) >= 256:  # requests choose the structures: keep the newest
                self.runners.pop(next(iter(self.runners)))
            self.runners[key] = runner
        return runner

    def _llm(self, config: StrategyConfig) -> LLM:
        model = config.upstream_model or self.settings.endpoint.model
        if model not in self.llms:
            endpoint = self.settings.endpoint.model_copy(update={"model": model})
            self.llms[model] = LLM(endpoint, http_async_client=self.settings.http_async_client)
        return self.llms[model]

    @contextlib.contextmanager
    def _slot(self) -> Any:
        if self.active >= self.settings.max_runs:
            raise _Refused(429, f"the gateway is running {self.active} strategies, its limit: try again shortly",
                           kind="rate_limit_error", code="too_many_runs", headers={"Retry-After": "1"})  # fmt: skip
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

    def _log(self, line: str) -> None:
        if self.settings.log is not None:
            print(f"ttc gateway: {line}", file=self.settings.log, flush=True)

    # -- endpoints --------------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        try:
            self._check_key(request)
        except _Refused as refused:
            return refused.response()
        upstream = self.settings.endpoint.model
        data = [{"id": f"{name}/{upstream}", "object": "model", "created": 0, "owned_by": "ttc-graphs",
                 "ttc": {"strategy": name, "summary": spec.summary,
                         "options": [o.name for o in spec.options], "scorer": spec.scorer}}
                for name, spec in sorted(strategies().items())]  # fmt: skip
        return JSONResponse({"object": "list", "data": data})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "active_runs": self.active, "max_runs": self.settings.max_runs})

    async def chat(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            self._check_key(request)
            body = await self._body(request)
            config = self._config(body)
            runner = self._runner(config)
            question = question_of(body.messages)
        except ConfigError as exc:
            return _Refused(400, str(exc), param="messages").response()
        except _Refused as refused:
            return refused.response()
        ignored = sorted(set(body.model_extra or {}) & set(_IGNORABLE))
        meta = _Meta(f"chatcmpl-ttc-{uuid.uuid4().hex}", int(time.time()), body.model, ignored)
        try:
            slot = self._slot()
            slot.__enter__()
        except _Refused as refused:
            return refused.response()
        llm = self._llm(config)
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            events = self._stream(runner, config, question, llm, meta, include_usage, started)
            return _EventStream(events, slot)
        try:
            result = await _until_disconnect(request, self._run(runner, config, question, llm))
        except _Disconnected:
            self._log(f"{body.model}: client went away after {time.perf_counter() - started:.1f} s; run cancelled")
            return Response(status_code=499)
        except (StrategyFailed, EndpointError, TimeoutError) as exc:
            failed = _upstream_error(exc, self.settings.run_timeout)
            self._log(f"{body.model}: {failed.status} {failed.message}")
            return failed.response()
        finally:
            slot.__exit__(None, None, None)
        self._log(f"{body.model}: answered {result.answer!r} in {time.perf_counter() - started:.1f} s, "
                  f"{result.usage['calls']} calls, {_total(result)} tokens")  # fmt: skip
        return JSONResponse(_completion(meta, result))

    async def _run(self, runner: StrategyRunner, config: StrategyConfig, question: str, llm: LLM) -> StrategyResult:
        async with asyncio.timeout(self.settings.run_timeout):
            return await runner.ainvoke(question, llm, config=config)

    async def _stream(self, runner: StrategyRunner, config: StrategyConfig, question: str, llm: LLM, meta: _Meta,
                      include_usage: bool, started: float) -> AsyncIterator[str]:  # fmt: skip
        yield _sse(_chunk(meta, {"role": "assistant", "content": ""}))
        # The run goes on in a task of its own, as in a non-streaming request: when the client leaves, the
        # response is cancelled and the task is cancelled *and awaited*, so the graph's node tasks and their
        # upstream requests end too (cancelling the graph's stream in place would leave them running).
        items: asyncio.Queue[StrategyEvent | StrategyResult | BaseException] = asyncio.Queue()

        async def produce() -> None:
            try:
                async with asyncio.timeout(self.settings.run_timeout):
                    async for item in runner.astream(question, llm, config=config):
                        items.put_nowait(item)
            except Exception as exc:
                items.put_nowait(exc)

        task = asyncio.ensure_future(produce())
        result: StrategyResult | None = None
        try:
            while result is None:
                item = await items.get()
                if isinstance(item, (StrategyFailed, EndpointError, TimeoutError)):
                    refused = _upstream_error(item, self.settings.run_timeout)
                    self._log(f"{meta.model}: {refused.status} {refused.message} (streaming)")
                    yield _sse({"error": {"message": refused.message, "type": refused.kind, "param": None,
                                          "code": refused.code}})  # fmt: skip
                    yield "data: [DONE]\n\n"
                    return
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, StrategyResult):
                    result = item
                    continue
                line = describe_event(item)
                yield _sse(_chunk(meta, {"reasoning_content": f"{line}\n"} if line else {}, event=item))
        finally:
            if not task.done():
                task.cancel()
                with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
                    await task
        assert result is not None
        yield _sse(_chunk(meta, {"content": result.text}))
        yield _sse(
            _chunk(meta, {}, finish_reason=result.finish_reason, report={**result.report, "ignored": meta.ignored})
        )
        if include_usage:
            yield _sse({**_chunk(meta, {}), "choices": [], "usage": _usage(result)})
        yield "data: [DONE]\n\n"
        self._log(f"{meta.model}: streamed {result.answer!r} in {time.perf_counter() - started:.1f} s, "
                  f"{result.usage['calls']} calls, {_total(result)} tokens")  # fmt: skip

    async def startup(self) -> None:
        llm = LLM(self.settings.endpoint, http_async_client=self.settings.http_async_client)
        self.llms[self.settings.endpoint.model] = llm
        # unreachable upstream or a model it lacks: fail at start, with one line
        self.upstream_models = await llm.check() or [self.settings.endpoint.model]

    async def shutdown(self) -> None:
        for llm in self.llms.values():
            await llm.aclose()


@dataclass
class _Meta:
    id: str
    created: int
    model: str
    ignored: list[str]


def _total(result: StrategyResult) -> int:
    return result.usage["prompt_tokens"] + result.usage["completion_tokens"]


def _usage(result: StrategyResult) -> dict[str, Any]:
    return {"prompt_tokens": result.usage["prompt_tokens"], "completion_tokens": result.usage["completion_tokens"],
            "total_tokens": _total(result)}  # fmt: skip


def _completion(meta: _Meta, result: StrategyResult) -> dict[str, Any]:
    return {
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": _usage(result),
        "ttc": {**result.report, "ignored": meta.ignored},
    }


def _chunk(meta: _Meta, delta: dict[str, Any], *, finish_reason: str | None = None, event: Any = None,
           report: Any = None) -> dict[str, Any]:  # fmt: skip
    chunk: dict[str, Any] = {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if event is not None:
        chunk["ttc_event"] = event
    if report is not None:
        chunk["ttc"] = report
    return chunk


def _sse(data: Mapping[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


class _EventStream(StreamingResponse):
    """Server-sent events whose run slot is given back however the response ends: finished, failed,
    or cancelled because the client went away (Starlette then cancels the stream, and with it the
    run's graph and upstream requests)."""

    def __init__(self, events: AsyncIterator[str], slot: Any) -> None:
        super().__init__(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:  # a run may send nothing for a while: notice a leaving client now
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                await super().__call__(scope, receive, send)
                group.cancel_scope.cancel()
        finally:
            self._slot.__exit__(None, None, None)
            with contextlib.suppress(Exception):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]


class _Disconnected(Exception):
    pass


async def _until_disconnect(request: Request, work: Awaitable[StrategyResult]) -> StrategyResult:
    """``work``'s result, or :class:`_Disconnected` (with ``work`` cancelled, its requests closed)
    as soon as the client goes away."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if task in done:
        return task.result()
    raise _Disconnected


def create_app(settings: GatewaySettings) -> Starlette:
    """The gateway as an ASGI app (serve it with uvicorn: ``ttc gateway`` does)."""
    gateway = _Gateway(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.startup()
        try:
            yield
        finally:
            await gateway.shutdown()

    routes = [
        Route("/v1/chat/completions", gateway.chat, methods=["POST"]),
        Route("/v1/models", gateway.models, methods=["GET"]),
        Route("/health", gateway.health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    return app
