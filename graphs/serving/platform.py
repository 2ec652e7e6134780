"""The strategies as graphs LangGraph Server serves: ``langgraph.json`` names the ones below.

Each graph is one async node around :class:`~graphs.serving.strategy.StrategyRunner`: it reads
the run's :class:`ServerContext` (endpoint, size, options, sampling, budget), builds a
:class:`~graphs.serving.strategy.StrategyConfig` from it, runs the strategy on the endpoint,
re-emits the strategy's progress events on the ``custom`` stream and ends with the answer, the
chosen text, the run's usage and its report. So a client of the server picks the strategy by
graph (assistant) id and everything else per run::

    async for part in client.runs.stream(None, "vote", input={"question": "What is 17 + 25?"},
                                         context={"k": 3}, stream_mode=["custom", "values"]):
        ...

Input: ``{"question": str}`` or ``{"messages": [...]}`` (chat messages, OpenAI or LangChain
style; the last user message is the question, earlier ones are context, as in
:func:`~graphs.serving.strategy.question_of`), or both (the question then follows the
messages). The graph appends the question and the reply to ``messages``, so runs on one thread
form a conversation. Output: ``answer``, ``text``, ``finish_reason``, ``usage``, ``report``
(see :class:`~graphs.serving.strategy.StrategyResult`) and ``messages``.

The endpoint is the run's ``base_url``/``model``, else the server's ``TTC_BASE_URL``/``TTC_MODEL``.
API keys never travel in a run's context: the server's ``TTC_API_KEY`` (or ``OPENAI_API_KEY``) is
sent only to the server's own ``TTC_BASE_URL``, so a run cannot lead the key to another host.

A registered strategy of another package is served the same way: a module of its own holds
``critique_vote = platform_graph("critique-vote")`` and ``langgraph.json`` names it.

Example:
    >>> graph = platform_graph("vote")
    >>> graph.name, sorted(graph.get_context_jsonschema()["properties"])[:4]
    ('vote', ['answer_format', 'base_url', 'judge_max_tokens', 'judge_temperature'])
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from pydantic import SecretStr
from typing_extensions import TypedDict

from graphs.registry import get
from graphs.serving.strategy import StrategyConfig, StrategyResult, StrategyRunner, question_of
from nodes.answers import AnswerFormat
from nodes.endpoint import ENV_BASE_URL, ENV_MODEL, LLM, Endpoint
from nodes.errors import ConfigError

__all__ = [
    "OpenLLM",
    "PlatformInput",
    "PlatformOutput",
    "PlatformState",
    "ServerContext",
    "adaptive_vote",
    "beam_search",
    "best_of_n",
    "build_platform_graph",
    "deepconf",
    "deepconf_online",
    "dvts",
    "filter_vote",
    "lookahead",
    "mcts",
    "mix",
    "particle_filter",
    "platform_graph",
    "rebase",
    "revision",
    "vote",
    "weighted_best_of_n",
]

_DEFAULTS = StrategyConfig.model_fields  # ServerContext's defaults are StrategyConfig's: one source


@dataclass(frozen=True)
class ServerContext:
    """A run's settings, sent as ``context`` with the run (every field optional).

    The server keeps only these keys of a run's ``context`` (it drops unknown ones silently, so
    check their spelling). Values are checked when the run starts: a bad one ends the run with a
    :class:`~nodes.errors.ConfigError` that names it.

    Attributes:
        base_url: the OpenAI-compatible endpoint (None: the server's ``TTC_BASE_URL``).
        model: its model (None: the server's ``TTC_MODEL``).
        k: the strategy's size: samples (k or n) it may draw.
        options: the strategy's builder options by name (``{"stop": "beta"}`` for adaptive-vote),
            as :meth:`graphs.registry.StrategySpec.parse_options` takes them.
        scorer: the verifier of a strategy that takes one (None: its kind's default).
        answer_format: how answers are asked for and read (auto, number, math, choice).
        temperature: sampling temperature of proposals.
        max_tokens: completion limit of each proposal.
        seed: the run's base seed.
        judge_temperature: temperature of judge calls.
        judge_max_tokens: completion limit of judge calls.
        max_calls: budget cap on LLM calls (None: none).
        max_total_tokens: budget cap on prompt + completion tokens (None: none).
    """

    base_url: str | None = None
    model: str | None = None
    k: int = _DEFAULTS["k"].default
    options: dict[str, Any] = field(default_factory=dict)
    scorer: str | None = None
    answer_format: AnswerFormat = _DEFAULTS["answer_format"].default
    temperature: float = _DEFAULTS["temperature"].default
    max_tokens: int = _DEFAULTS["max_tokens"].default
    seed: int = _DEFAULTS["seed"].default
    judge_temperature: float = _DEFAULTS["judge_temperature"].default
    judge_max_tokens: int = _DEFAULTS["judge_max_tokens"].default
    max_calls: int | None = None
    max_total_tokens: int | None = None

    def config(self, strategy: str) -> StrategyConfig:
        """The :class:`StrategyConfig` of a run of ``strategy``; a ConfigError names a bad value."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("base_url", "model")}
        try:
            return StrategyConfig.parse({**values, "strategy": strategy, "upstream_model": self.model})
        except ConfigError as exc:
            raise ConfigError(f"{strategy}: bad run context: {exc}") from None

    def endpoint(self, strategy: str) -> Endpoint:
        """The run's endpoint: the context's, else the server's environment; the server's API key
        goes only to the server's own base URL."""
        server_url = os.environ.get(ENV_BASE_URL)
        url = self.base_url or server_url
        model = self.model or os.environ.get(ENV_MODEL)
        if not url or not model:
            raise ConfigError(
                f"{strategy}: no endpoint: pass base_url and model in the run's context, "
                f"or set {ENV_BASE_URL} and {ENV_MODEL} where the server runs"
            )
        try:
            endpoint = Endpoint.from_env(base_url=url, model=model)
        except ConfigError as exc:
            raise ConfigError(f"{strategy}: bad run context: {exc}") from None
        assert endpoint is not None  # a URL was given
        if server_url is None or endpoint.base_url != server_url.rstrip("/"):
            endpoint = endpoint.model_copy(update={"api_key": SecretStr("EMPTY")})
        return endpoint


class PlatformInput(TypedDict, total=False):
    """A run's input: a question, chat messages, or both (the question follows the messages)."""

    question: str
    messages: Annotated[list[AnyMessage], add_messages]


class PlatformOutput(TypedDict, total=False):
    """A run's output (see :class:`~graphs.serving.strategy.StrategyResult`)."""

    answer: str | None
    text: str
    finish_reason: str
    usage: dict[str, int]
    report: dict[str, Any]
    messages: Annotated[list[AnyMessage], add_messages]


class PlatformState(PlatformInput, PlatformOutput, total=False):
    """The graph's state: its input and its output (a thread keeps ``messages`` across runs)."""


OpenLLM = Callable[[Endpoint], LLM]
"""How a graph opens a run's endpoint: a new :class:`~nodes.endpoint.LLM` per call (the graph
closes the connections the run opened when the run ends)."""


@lru_cache(maxsize=64)
def _runner(config_json: str) -> StrategyRunner:
    """One compiled runner per distinct config (a config's options are a dict, so the key is its JSON)."""
    return StrategyRunner(StrategyConfig.model_validate_json(config_json))


def build_platform_graph(
    strategy: str, *, open_llm: OpenLLM = LLM
) -> StateGraph[PlatformState, ServerContext, PlatformInput, PlatformOutput]:
    """Build the LangGraph Server graph of a registered strategy: one node, named after it.

    Args:
        strategy: a registered strategy's name (:func:`graphs.registry.strategies`).
        open_llm: opens a run's endpoint (tests pass one onto a fake server).

    Returns:
        An uncompiled ``StateGraph``; :func:`platform_graph` compiles it.

    Example:
        >>> builder = build_platform_graph("filter-vote")
        >>> list(builder.nodes)
        ['filter-vote']
    """
    get(strategy)  # an unknown name fails here, when the server loads its graphs

    async def run_strategy(state: PlatformState, runtime: Runtime[ServerContext]) -> dict[str, Any]:
        ctx = runtime.context if runtime.context is not None else ServerContext()
        if not isinstance(ctx, ServerContext):
            raise ConfigError(f"{strategy}: the run's context is a ServerContext, got {type(ctx).__name__}")
        config = ctx.config(strategy)
        endpoint = ctx.endpoint(strategy)
        conversation: list[Any] = list(state.get("messages") or [])
        asked = (state.get("question") or "").strip()
        if asked:
            conversation.append(HumanMessage(asked))
        if not conversation:
            raise ConfigError(f"{strategy}: the input needs a question or messages")
        try:
            question = question_of(conversation)
        except ConfigError as exc:
            raise ConfigError(f"{strategy}: {exc}") from None
        try:
            runner = _runner(config.model_dump_json())
        except ConfigError as exc:  # options that cannot work at this size
            raise ConfigError(f"{strategy}: bad run context: {exc}") from None
        result: StrategyResult | None = None
        async with open_llm(endpoint) as llm:
            async for item in runner.astream(question, llm):  # a run of its own (see StrategyRunner.astream)
                if isinstance(item, StrategyResult):
                    result = item
                else:
                    runtime.stream_writer(item)
        assert result is not None
        new = [HumanMessage(asked)] if asked else []
        return {
            "question": "",  # consumed: the next run on this thread does not ask it again
            "answer": result.answer,
            "text": result.text,
            "finish_reason": result.finish_reason,
            "usage": result.usage,
            "report": result.report,
            "messages": [*new, AIMessage(result.text)],
        }

    builder = StateGraph(
        PlatformState, context_schema=ServerContext, input_schema=PlatformInput, output_schema=PlatformOutput
    )
    builder.add_node(strategy, run_strategy)
    builder.add_edge(START, strategy)
    builder.add_edge(strategy, END)
    return builder


def platform_graph(
    strategy: str, *, open_llm: OpenLLM = LLM
) -> CompiledStateGraph[PlatformState, ServerContext, PlatformInput, PlatformOutput]:
    """The compiled LangGraph Server graph of a registered strategy (see :func:`build_platform_graph`).

    The server gives it its checkpointer and store; in-process it runs as it is:

    Example:
        >>> import asyncio
        >>> graph = platform_graph("vote")
        >>> asyncio.run(graph.ainvoke({"question": "What is 6 x 7?"},
        ...     context=ServerContext(base_url="http://127.0.0.1:8000/v1", model="m", k=8)))  # doctest: +SKIP
        {'answer': '42', 'text': '...', 'finish_reason': 'stop', 'usage': {...}, 'report': {...}, 'messages': [...]}
    """
    return build_platform_graph(strategy, open_llm=open_llm).compile(name=strategy)


# The built-ins, as langgraph.json names them (graph id = the strategy's name).
vote = platform_graph("vote")
adaptive_vote = platform_graph("adaptive-vote")
deepconf = platform_graph("deepconf")
deepconf_online = platform_graph("deepconf-online")
filter_vote = platform_graph("filter-vote")
best_of_n = platform_graph("best-of-n")
weighted_best_of_n = platform_graph("weighted-best-of-n")
beam_search = platform_graph("beam-search")
lookahead = platform_graph("lookahead")
dvts = platform_graph("dvts")
rebase = platform_graph("rebase")
particle_filter = platform_graph("particle-filter")
mcts = platform_graph("mcts")
revision = platform_graph("revision")
mix = platform_graph("mix")
