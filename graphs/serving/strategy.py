"""A registered strategy as one call from chat messages to an answer: what every door shares.

The OpenAI-compatible gateway (:mod:`graphs.serving.openai_api`), the LangChain chat model
(:mod:`graphs.serving.chat_model`) and the LangGraph Server graphs (:mod:`graphs.serving.platform`)
all go through :class:`StrategyRunner`: a :class:`StrategyConfig` (strategy, size, options,
sampling) compiled once into the strategy's graph, run per question on an endpoint, streaming the
graph's progress events and ending with a :class:`StrategyResult` whose usage is the run's
ledger, every call included (judges, scorers, stopped traces).

Example:
    >>> config = StrategyConfig.from_model_name("vote-8/Qwen2.5-Coder-0.5B-Instruct")
    >>> config.strategy, config.k, config.upstream_model
    ('vote', 8, 'Qwen2.5-Coder-0.5B-Instruct')
    >>> question_of([{"role": "user", "content": "What is 2 + 2?"}])
    'What is 2 + 2?'
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables.config import var_child_runnable_config
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from graphs.compose import RECURSION_LIMIT
from graphs.registry import SCORERS, get, make_scorer, strategies
from nodes.answers import AnswerFormat, equivalent
from nodes.budget import Budget, KindUsage, ledger_totals
from nodes.context import RunContext
from nodes.endpoint import LLM
from nodes.errors import ConfigError, EndpointError, PermanentEndpointError, TransientEndpointError

__all__ = [
    "StrategyConfig",
    "StrategyEvent",
    "StrategyFailed",
    "StrategyResult",
    "StrategyRunner",
    "describe_event",
    "failure_status",
    "question_of",
    "result_of",
]

_SIZED = re.compile(r"^(?P<name>.+)-(?P<k>\d+)$")


class StrategyConfig(BaseModel):
    """Which strategy to run and how: the part of a request that is not the question.

    Attributes:
        strategy: a registered strategy's name (:func:`graphs.registry.strategies`).
        k: its size: samples (k or n) it may draw.
        options: its builder options by name or flag (``{"stop": "beta"}``), checked by
            :meth:`graphs.registry.StrategySpec.parse_options`.
        scorer: the verifier of a strategy that takes one (default its kind's).
        answer_format: how answers are asked for and read.
        temperature: sampling temperature of proposals (0 to 2).
        max_tokens: completion limit of each proposal.
        seed: the run's base seed.
        judge_temperature: temperature of judge calls.
        judge_max_tokens: completion limit of judge calls.
        max_calls: budget cap on LLM calls (None: none).
        max_total_tokens: budget cap on prompt + completion tokens (None: none).
        upstream_model: the endpoint's model, when the request names one (``vote-8/<model>``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = "vote"
    k: int = Field(default=8, ge=1, le=1024)
    options: dict[str, Any] = Field(default_factory=dict)
    scorer: str | None = None
    answer_format: AnswerFormat = "auto"
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=1)
    seed: int = 0
    judge_temperature: float = Field(default=0.1, ge=0.0, le=2.0)
    judge_max_tokens: int = Field(default=384, ge=1)
    max_calls: int | None = Field(default=None, ge=1)
    max_total_tokens: int | None = Field(default=None, ge=1)
    upstream_model: str | None = None

    @field_validator("strategy")
    @classmethod
    def _known(cls, name: str) -> str:
        get(name)  # a ConfigError (a ValueError) names the known ones
        return name

    @field_validator("scorer")
    @classmethod
    def _scorer(cls, name: str | None) -> str | None:
        if name is not None and name not in SCORERS:
            raise ValueError(f"unknown scorer {name!r} (known: {', '.join(SCORERS)})")
        return name

    @model_validator(mode="after")
    def _sampled(self) -> StrategyConfig:
        if self.temperature == 0 and self.k > 1:
            raise ValueError(f"temperature 0 would make the {self.k} samples one greedy sample (and vLLM refuses n > 1 "
                             "at temperature 0): use a temperature above 0, or k 1")  # fmt: skip
        return self

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> StrategyConfig:
        """A config from plain values, or a :class:`~nodes.errors.ConfigError` with the first problem."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = str(first.get("ctx", {}).get("error") or first["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"{where}: {message}" if where else message) from None

    @staticmethod
    def split_model_name(name: str) -> tuple[str, int | None, str | None] | None:
        """``"vote-8/<model>"`` → ``("vote", 8, "<model>")``; ``"filter-vote"`` → ``("filter-vote",
        None, None)``; None when the name does not start with a registered strategy (a size is
        ``-<k>`` after the strategy's name; the model is everything after the first ``/``)."""
        head, _, model = name.partition("/")
        known = strategies()
        if head in known:
            return head, None, model or None
        if (m := _SIZED.match(head)) and m["name"] in known:
            return m["name"], int(m["k"]), model or None
        return None

    @classmethod
    def from_model_name(cls, name: str, **values: Any) -> StrategyConfig:
        """The config a model name such as ``vote-8/<upstream model>`` asks for, over ``values``."""
        split = cls.split_model_name(name)
        if split is None:
            raise ConfigError(f"model {name!r} names no strategy: use <strategy>[-<k>][/<upstream model>], "
                              f"e.g. vote-8/{name} (strategies: {', '.join(sorted(strategies()))})")  # fmt: skip
        strategy, k, model = split
        values = {**values, "strategy": strategy, **({"k": k} if k is not None else {})}
        if model:
            values["upstream_model"] = model
        return cls.parse(values)

    def build_options(self) -> dict[str, Any]:
        """The builder options: :attr:`options` parsed by the strategy, and its scorer."""
        spec = get(self.strategy)
        options = spec.parse_options(self.options)
        if spec.scorer is not None:
            options["scorer"] = make_scorer(self.scorer, spec.scorer)
        elif self.scorer is not None:
            raise ConfigError(f"{self.strategy} takes no scorer")
        return options

    def context(self, llm: LLM) -> RunContext:
        """The run's context on ``llm``."""
        return RunContext(
            llm=llm, temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed,
            judge_temperature=self.judge_temperature, judge_max_tokens=self.judge_max_tokens,
            answer_format=self.answer_format, budget=Budget(max_calls=self.max_calls, max_tokens=self.max_total_tokens),
        )  # fmt: skip


def _content(message: BaseMessage | Mapping[str, Any]) -> tuple[str, str]:
    """(role, text) of a chat message; text parts of a list content are joined."""
    if isinstance(message, BaseMessage):
        role = {"human": "user", "ai": "assistant"}.get(message.type, message.type)
        content: Any = message.content
    else:
        if not isinstance(message, Mapping):
            raise ConfigError(f"a message is an object with role and content, got {type(message).__name__}")
        role, content = str(message.get("role", "")), message.get("content")
    if content is None:
        return role, ""
    if isinstance(content, str):
        return role, content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise ConfigError(f"only text content is supported, got a {kind!r} part")
        return role, "\n".join(parts)
    raise ConfigError(f"message content must be text, got {type(content).__name__}")


def question_of(messages: Sequence[BaseMessage | Mapping[str, Any]]) -> str:
    """The question a strategy answers, from chat messages.

    The last user message is the question. Earlier messages (a system prompt, earlier turns) come
    before it as context, one ``Role: text`` paragraph each, so a strategy's prompts see the whole
    conversation; a :class:`~nodes.errors.ConfigError` when there is no user message or it is empty.

    >>> question_of([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}])
    'System: Be brief.\\n\\nUser: 2+2?'
    """
    turns = [_content(m) for m in messages]
    last = max((i for i, (role, _) in enumerate(turns) if role == "user"), default=None)
    if last is None:
        raise ConfigError("the messages hold no user message")
    question = turns[last][1].strip()
    if not question:
        raise ConfigError("the last user message is empty")
    before = [f"{role.capitalize()}: {text.strip()}" for role, text in turns[:last] if text.strip()]
    after = [f"{role.capitalize()}: {text.strip()}" for role, text in turns[last + 1 :] if text.strip()]
    if not before and not after:
        return question
    return "\n\n".join([*before, f"User: {question}", *after])


StrategyEvent = dict[str, Any]
"""A progress event a strategy's nodes write (``{"event": "proposed", ...}``; see
:func:`describe_event`), with ``"namespace"`` added for events of a subgraph (the router's)."""


def describe_event(event: Mapping[str, Any]) -> str | None:
    """One line a person reads for a progress event (None for events with no line)."""
    kind = event.get("event")
    if kind == "proposed":
        answers = ", ".join("—" if a is None else str(a) for a in event.get("answers", []))
        indices = event.get("indices") or [0]
        return f"proposed samples {indices[0]}..{indices[-1]}: {answers}"
    if kind == "verified":
        return f"judged sample {event['index']}: {event['verdict']}"
    if kind == "routed":
        return f"probe agreement {event['agreement']:.2f}: routed to {event['route']}"
    if kind == "scored":
        score = "none" if event.get("score") is None else f"{event['score']:.3f}"
        return f"scored sample {event['index']}: {score}"
    return None


class StrategyFailed(EndpointError):
    """The strategy produced no candidate because its calls failed: the first failure's message.

    ``status`` is the endpoint's HTTP status when it answered with one; ``transient`` whether
    retrying later might help (timeouts, connection errors, 429 and 5xx)."""

    def __init__(self, message: str, *, status: int | None, transient: bool, failures: list[dict[str, Any]]) -> None:
        super().__init__(message, status=status)
        self.transient = transient
        self.failures = failures


@dataclass
class StrategyResult:
    """What a strategy run answered and what it cost.

    Attributes:
        answer: the decided answer (None when no sample stated one).
        text: the chosen sample's full text (the message a chat client shows): the best-of-n's
            choice, else the first sample whose answer is the decided one, else the first sample.
        finish_reason: that sample's finish reason (``"stop"``, ``"length"``).
        usage: the ledger's totals over every call: ``prompt_tokens``, ``completion_tokens``,
            ``calls``, ``requests``.
        report: the decision, the votes, per-sample answers, failures and the budget note, as JSON.
        state: the graph's output state.
    """

    answer: str | None
    text: str
    finish_reason: str
    usage: KindUsage
    report: dict[str, Any]
    state: dict[str, Any] = field(repr=False)


def _chosen(state: Mapping[str, Any]) -> dict[str, Any] | None:
    candidates = sorted(state.get("candidates") or [], key=lambda c: c["index"])
    if not candidates:
        return None
    decision = state.get("decision") or {}
    if (chosen := decision.get("chosen")) is not None:
        for c in candidates:
            if c["index"] == chosen:
                return dict(c)
    answer = state.get("answer")
    if answer is not None:
        for c in candidates:
            if c["answer"] is not None and (c["answer"] == answer or equivalent(c["answer"], str(answer))):
                return dict(c)
    return dict(candidates[0])


def result_of(config: StrategyConfig, state: Mapping[str, Any]) -> StrategyResult:
    """The :class:`StrategyResult` of a run's output ``state``; :class:`StrategyFailed` when no
    sample came back and calls failed."""
    totals = ledger_totals(state.get("ledger"))
    failures = list(state.get("failures") or [])
    chosen = _chosen(state)
    if chosen is None and failures:
        first = failures[0]
        raise StrategyFailed(first["message"], status=first.get("status"),
                             transient=bool(first.get("transient")), failures=failures)  # fmt: skip
    decision = dict(state.get("decision") or {})
    report = {
        "strategy": config.strategy,
        "k": config.k,
        "options": dict(config.options),
        "answer": state.get("answer"),
        "decision": decision,
        "votes": decision.get("votes") or {},
        "samples": [
            {"index": c["index"], "answer": c["answer"], "finish_reason": c.get("finish_reason")}
            for c in sorted(state.get("candidates") or [], key=lambda c: c["index"])
        ],
        "chosen": None if chosen is None else chosen["index"],
        "failures": [{"node": f["node"], "indices": f["indices"], "error": f["error"]} for f in failures],
        "budget": dict(state.get("budget") or {}),
        "usage": dict(totals),
    }
    return StrategyResult(
        answer=state.get("answer"),
        text="" if chosen is None else chosen["text"],
        finish_reason=(chosen or {}).get("finish_reason") or "stop",
        usage=totals,
        report=report,
        state=dict(state),
    )


class StrategyRunner:
    """A :class:`StrategyConfig`'s graph, compiled once (flag mistakes raise here, before any call),
    run per question on an endpoint.

    Example (against a running endpoint)::

        runner = StrategyRunner(StrategyConfig(strategy="vote", k=8))
        async with LLM(endpoint) as llm:
            result = await runner.ainvoke("What is 17 + 25?", llm)
        print(result.answer, result.usage)
    """

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config
        spec = get(config.strategy)
        options = config.build_options()
        if spec.check:
            spec.check(config.k, options)
        self.graph: Any = spec.graph(config.k, options).compile(name=config.strategy)
        self._output = set(self.graph.output_channels)

    async def astream(
        self, question: str, llm: LLM, *, config: StrategyConfig | None = None
    ) -> AsyncGenerator[StrategyEvent | StrategyResult]:
        """The run's progress events as the nodes write them, then its :class:`StrategyResult`
        (or :class:`StrategyFailed`). Closing the iterator early cancels the run's requests.

        ``config`` gives this run other sampling settings (temperature, max tokens, seed, budget);
        its structure (strategy, k, options, scorer) must be the runner's.

        The run is a graph run of its own wherever it is called from: called in another graph's
        node (a door's, an agent's), the strategy's graph would otherwise become that graph's
        subgraph (langgraph passes the node's config on in a context variable), inherit its
        checkpointer (a checkpoint per step of every sample) and stream under its namespace. So
        each step of the run goes in a task whose context has no parent config, while the items
        reach the caller in its own context (a node's stream writer works there)."""
        config = self._same_graph(config)
        if not question.strip():
            raise ConfigError("the question is empty")
        steps = self._stream(question, llm, config)
        apart = contextvars.copy_context()
        apart.run(var_child_runnable_config.set, None)

        async def step() -> StrategyEvent | StrategyResult:
            return await anext(steps)

        try:
            while True:
                try:
                    item = await asyncio.create_task(step(), context=apart)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            await asyncio.create_task(steps.aclose(), context=apart)

    async def _stream(
        self, question: str, llm: LLM, config: StrategyConfig
    ) -> AsyncGenerator[StrategyEvent | StrategyResult]:
        state: dict[str, Any] = {}
        stream: Any = self.graph.astream(
            {"question": question},
            context=config.context(llm),
            stream_mode=["custom", "values"],
            config={"recursion_limit": RECURSION_LIMIT},
            subgraphs=True,
        )
        async for namespace, mode, chunk in stream:
            if mode == "values":
                if not namespace:
                    state = {key: value for key, value in chunk.items() if key in self._output}
            elif isinstance(chunk, dict):
                yield {**chunk, "namespace": list(namespace)} if namespace else dict(chunk)
        yield result_of(config, state)

    def _same_graph(self, config: StrategyConfig | None) -> StrategyConfig:
        if config is None:
            return self.config
        structure = {"strategy", "k", "options", "scorer"}
        if config.model_dump(include=structure) != self.config.model_dump(include=structure):
            raise ConfigError("a run's config may change sampling settings, not the strategy, k, options or scorer")
        return config

    async def ainvoke(self, question: str, llm: LLM, *, config: StrategyConfig | None = None) -> StrategyResult:
        """Run to the end: the :class:`StrategyResult` (``config``: as in :meth:`astream`)."""
        result: StrategyResult | None = None
        async for item in self.astream(question, llm, config=config):
            if isinstance(item, StrategyResult):
                result = item
        assert result is not None
        return result


def failure_status(exc: BaseException) -> int:
    """The HTTP status a door answers an upstream failure with: 504 for a timeout, 503 when the
    endpoint is unreachable or overloaded (transient), 502 for a permanent upstream error."""
    if isinstance(exc, TimeoutError):
        return 504
    transient = getattr(exc, "transient", isinstance(exc, TransientEndpointError))
    if isinstance(exc, PermanentEndpointError) or not transient:
        return 502
    return 503
