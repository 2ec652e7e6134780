"""A LangChain chat model backed by a strategy: agent code written against a chat model gets
test-time compute unchanged (``invoke``, ``ainvoke``, ``astream``, ``batch``, chains, graph nodes).

Each call answers the conversation's last user message (:func:`~graphs.serving.strategy.question_of`)
with one :class:`~graphs.serving.strategy.StrategyRunner` run. The reply's content is the chosen
sample's text, its ``usage_metadata`` the run's ledger (every call: samples, judges, scorers), and
``response_metadata["ttc"]`` the run's report (decision, votes, samples, failures, usage).

Streaming yields the strategy's progress first, as chunks with empty content and one readable
line in ``additional_kwargs["reasoning_content"]`` (the field OpenAI-compatible reasoning models
use, so an agent ignores it and a UI can show it), then one chunk with the answer, the usage and
the report.

Example:
    >>> from nodes import Endpoint
    >>> model = StrategyChatModel(
    ...     config=StrategyConfig(strategy="vote", k=4),
    ...     endpoint=Endpoint(base_url="http://127.0.0.1:8000/v1", model="Qwen2.5-Coder-0.5B-Instruct"),
    ... )
    >>> model.model_name
    'vote-4/Qwen2.5-Coder-0.5B-Instruct'
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import operator
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from typing import Any

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field, PrivateAttr

from graphs.serving.strategy import (
    StrategyConfig,
    StrategyEvent,
    StrategyResult,
    StrategyRunner,
    describe_event,
    question_of,
)
from nodes.endpoint import ENV_BASE_URL, ENV_MODEL, LLM, Endpoint
from nodes.errors import ConfigError

__all__ = ["StrategyChatModel"]

_RUN_SETTINGS = (
    "temperature",
    "max_tokens",
    "seed",
    "judge_temperature",
    "judge_max_tokens",
    "answer_format",
    "max_calls",
    "max_total_tokens",
)
# the StrategyConfig fields a call may set: the run's context, not the graph's structure
_TOOLS = ("tools", "tool_choice", "functions", "function_call", "response_format", "parallel_tool_calls")


def _endpoint_from_env() -> Endpoint:
    endpoint = Endpoint.from_env()
    if endpoint is None:
        raise ConfigError(f"StrategyChatModel needs an endpoint: pass endpoint=Endpoint(...) or set {ENV_BASE_URL} "
                          f"and {ENV_MODEL} (`ttc serve` prints them)")  # fmt: skip
    return endpoint


class StrategyChatModel(BaseChatModel):
    """A chat model whose every reply is a test-time-compute strategy's answer.

    The strategy's graph is compiled once, when the model is made (a bad strategy option raises
    then, as a :class:`~nodes.errors.ConfigError`); each call runs it on a fresh
    :class:`~nodes.endpoint.LLM` client of :attr:`endpoint`, closed when the call ends, so the
    model works from any event loop, thread or ``asyncio.run``. A call's concurrency limit is
    the endpoint's ``max_concurrency``; a ``batch`` of calls has one each. Called inside a
    LangGraph node, the strategy's graph runs as a run of its own, not as a subgraph of the
    caller's (it shares neither its checkpointer nor its stream). A synchronous ``invoke`` made
    where an event loop runs (a notebook cell) runs the strategy in a worker thread; the sync
    ``stream`` gives the reply as one chunk (``astream`` streams the progress).

    Per-call settings: ``temperature``, ``max_tokens``, ``seed``, ``judge_temperature``,
    ``judge_max_tokens``, ``answer_format``, ``max_calls`` and ``max_total_tokens`` passed to
    ``bind`` or ``invoke`` override :attr:`config`'s for that call (others raise a ``ConfigError``).
    Tool calls (``bind_tools``, ``tools=``) and ``stop`` sequences are not supported: a strategy
    answers with text, and its samples must reach their final answer. A failed run (every call
    failed) raises :class:`~graphs.serving.strategy.StrategyFailed`.

    Attributes:
        config: the strategy, its size and options, sampling (default: a vote of 8).
        endpoint: the OpenAI-compatible server (default: ``TTC_BASE_URL``/``TTC_MODEL``; a
            ``ConfigError`` when they are not set). ``config.upstream_model``, when set, replaces
            its model.
        http_async_client: an ``httpx.AsyncClient`` every call sends through (tests pass one on a
            ``MockTransport``); by default each call opens and closes its own connections. A
            client's connections belong to one event loop: pass one only to calls on one loop,
            or one with a transport that holds no connections.

    Example (against ``ttc serve`` or any server in ``TTC_BASE_URL``)::

        model = StrategyChatModel(config=StrategyConfig(strategy="vote", k=8))
        reply = model.invoke("What is 17 + 25?")
        print(reply.content, reply.usage_metadata, reply.response_metadata["ttc"]["votes"])
    """

    model_config = ConfigDict(extra="forbid")

    config: StrategyConfig = Field(default_factory=StrategyConfig)
    endpoint: Endpoint = Field(default_factory=_endpoint_from_env)
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)
    _runner: StrategyRunner = PrivateAttr()

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.config.upstream_model and self.config.upstream_model != self.endpoint.model:
            self.endpoint = self.endpoint.model_copy(update={"model": self.config.upstream_model})
        # Compiled here, not in a validator, so a bad option is the ConfigError itself rather than
        # a pydantic ValidationError wrapping it.
        self._runner = StrategyRunner(self.config)

    @property
    def model_name(self) -> str:
        """The name the OpenAI-compatible gateway gives this model: ``<strategy>-<k>/<upstream model>``."""
        return f"{self.config.strategy}-{self.config.k}/{self.endpoint.model}"

    @property
    def _llm_type(self) -> str:
        return "ttc-strategy"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # LangChain's cache key: everything that changes a reply (never the API key)
        return {**self.config.model_dump(), "base_url": self.endpoint.base_url, "model": self.endpoint.model}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="ttc", ls_model_name=self.model_name, ls_model_type="chat")
        params["ls_temperature"] = kwargs.get("temperature", self.config.temperature)
        params["ls_max_tokens"] = kwargs.get("max_tokens", self.config.max_tokens)
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Not supported: a strategy answers with text and calls no tools."""
        raise NotImplementedError(
            f"{type(self).__name__} ({self.model_name}) calls no tools: a strategy answers with text; "
            "give the agent's tool-calling step a tool-calling model"
        )

    def _config_for(self, stop: list[str] | None, kwargs: Mapping[str, Any]) -> StrategyConfig:
        """A call's config: :attr:`config` with the call's settings."""
        if stop:
            raise ConfigError(f"{self.model_name}: stop sequences are not supported (a strategy's samples must "
                              "reach their final answer)")  # fmt: skip
        if tools := [k for k in _TOOLS if kwargs.get(k) is not None]:
            raise ConfigError(f"{self.model_name}: tool calls are not supported (got {', '.join(tools)})")
        settings = {k: v for k, v in kwargs.items() if k != "stream"}  # LangChain's own flag
        if unknown := sorted(set(settings) - set(_RUN_SETTINGS)):
            raise ConfigError(f"{self.model_name}: unsupported call argument(s) {', '.join(unknown)} "
                              f"(supported: {', '.join(_RUN_SETTINGS)})")  # fmt: skip
        if not settings:
            return self.config
        # sampling and budget only: the run's context changes, the compiled graph stays
        return StrategyConfig.parse({**self.config.model_dump(), **settings})

    def _progress_chunk(self, event: StrategyEvent) -> ChatGenerationChunk:
        line = describe_event(event) or str(event.get("event", "progress"))
        return ChatGenerationChunk(
            message=AIMessageChunk(content="", additional_kwargs={"reasoning_content": line + "\n"})
        )

    def _answer_chunk(self, result: StrategyResult) -> ChatGenerationChunk:
        prompt, completion = result.usage["prompt_tokens"], result.usage["completion_tokens"]
        usage = UsageMetadata(input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion)
        metadata = {"ttc": result.report, "finish_reason": result.finish_reason, "model_name": self.model_name}
        message = AIMessageChunk(content=result.text, usage_metadata=usage, response_metadata=metadata,
                                 chunk_position="last")  # fmt: skip
        return ChatGenerationChunk(message=message)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """The run's progress chunks as they happen, then the answer chunk (usage, report)."""
        config = self._config_for(stop, kwargs)
        question = question_of(messages)
        async with (
            LLM(self.endpoint, http_async_client=self.http_async_client) as llm,
            aclosing(self._runner.astream(question, llm, config=config)) as run,  # closing early cancels the run
        ):
            async for item in run:
                chunk = self._answer_chunk(item) if isinstance(item, StrategyResult) else self._progress_chunk(item)
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # The stream merged, so a reply is the same whether LangChain streamed the call or not.
        chunks = [chunk async for chunk in self._astream(messages, stop, **kwargs)]
        merged: ChatGenerationChunk = functools.reduce(operator.add, chunks)
        return ChatResult(generations=[ChatGeneration(message=message_chunk_to_message(merged.message))])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        def run() -> ChatResult:
            return asyncio.run(self._agenerate(messages, stop, **kwargs))

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run()
        # A loop runs in this thread (a notebook cell, an async app calling invoke): waiting on it
        # would deadlock, so the run gets its own loop in a worker thread.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttc-chat-model") as pool:
            return pool.submit(contextvars.copy_context().run, run).result()
