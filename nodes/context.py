"""Per-run settings every node reads through ``runtime.context``."""

from __future__ import annotations

from dataclasses import dataclass, field

from nodes.answers import AnswerFormat
from nodes.budget import Budget
from nodes.endpoint import LLM
from nodes.errors import ConfigError

__all__ = ["RunContext"]


@dataclass(frozen=True)
class RunContext:
    """What a run needs besides the graph's structure: the endpoint and sampling settings.

    Pass it as ``graph.ainvoke(inputs, context=RunContext(llm=...))``. An app that embeds a
    strategy can use a subclass of it as its own ``context_schema``.

    Attributes:
        llm: the endpoint's client.
        temperature: sampling temperature of proposals and revisions.
        max_tokens: completion limit of proposals, critiques and revisions.
        seed: base seed. A request for samples ``i .. i+n-1`` is sent with seed ``seed + i``;
            vLLM varies the samples of one request itself, so the same settings reproduce the
            same samples (separate requests, ``max_n=1``, give sample ``i`` seed ``seed + i``).
        judge_temperature: temperature of verify calls (0.1 as in Chen et al.).
        judge_max_tokens: completion limit of verify calls.
        answer_format: how final answers are read (see :func:`nodes.answers.extract_answer`).
        budget: optional caps on calls and tokens.
        top_logprobs: how many top logprobs a token proposals ask for (0: none; at most the
            server's limit, vLLM's is 20). With them each candidate carries its token
            confidences (:mod:`nodes.confidence`), which DeepConf weighs.
    """

    llm: LLM
    temperature: float = 0.7
    max_tokens: int = 512
    seed: int = 0
    judge_temperature: float = 0.1
    judge_max_tokens: int = 512
    answer_format: AnswerFormat = "auto"
    budget: Budget = field(default_factory=Budget)
    top_logprobs: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.top_logprobs <= 20:
            raise ConfigError(f"top_logprobs is between 0 and 20, got {self.top_logprobs}")
        if not 0.0 <= self.temperature <= 2.0 or not 0.0 <= self.judge_temperature <= 2.0:
            raise ConfigError("temperatures must be between 0 and 2")
        if self.max_tokens < 1 or self.judge_max_tokens < 1:
            raise ConfigError("max_tokens must be at least 1")
        if self.answer_format not in ("auto", "number", "math", "choice"):
            raise ConfigError(f"unknown answer format {self.answer_format!r} (auto, number, math, choice)")


def context_of(runtime: object) -> RunContext:
    """The run's :class:`RunContext`, or a clear error naming what is missing."""
    ctx = getattr(runtime, "context", None)
    if not isinstance(ctx, RunContext):
        raise ConfigError(
            f"ttc-graphs nodes need context=RunContext(llm=...) when the graph is invoked (got {type(ctx).__name__})"
        )
    return ctx
