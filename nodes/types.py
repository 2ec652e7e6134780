"""The records nodes write into graph state (plain ``TypedDict`` so they checkpoint and print as JSON)."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

__all__ = ["Candidate", "Critique", "Failure", "Score", "Verdict", "VerdictLabel"]


class Candidate(TypedDict):
    """One sampled solution.

    ``index`` numbers the samples of a run from 0; it is the order a vote uses to break ties
    (first seen wins), so the outcome does not depend on which parallel branch finished first.
    """

    index: int
    text: str
    answer: str | None  # the stated answer, None when the reply states none
    finish_reason: str | None  # "stop", or "length" when cut off at max_tokens
    seed: int | None  # the request's seed (samples of one n-request share it)
    parent: int | None  # for revisions: the candidate this one revises
    tokens: NotRequired[int]  # completion tokens of this sample, when the server said (with logprobs)
    confidences: NotRequired[list[float]]  # each token's confidence (nodes.confidence), when logprobs were asked


VerdictLabel = Literal["correct", "wrong", "unparseable", "error"]


class Verdict(TypedDict):
    """A judge's verdict on candidate ``index``: ``unparseable`` when the reply says neither
    ``[[correct]]`` nor ``[[wrong]]``, ``error`` when the judge call failed."""

    index: int
    verdict: VerdictLabel
    text: str


class Score(TypedDict):
    """A scorer's scores of candidate ``index``: per step (one for outcome scorers), their
    aggregate, and the scorer's label (e.g. the verdict); ``score`` None means "could not tell"."""

    index: int
    steps: list[float | None]
    score: float | None
    label: str | None
    text: NotRequired[str | None]  # the judge's reply, when the scorer is an LLM judge


class Critique(TypedDict):
    """Written feedback on candidate ``index`` (empty when the critique call failed)."""

    index: int
    text: str


class Failure(TypedDict):
    """A call that failed for good (after retries); ``indices`` are the samples (or search nodes) it
    would have made or judged. Build one with :func:`nodes.calls.failure`.

    ``error`` is the one line a person reads (the node, the error class, its message);
    ``message`` the error's own message; ``status`` the HTTP status when the endpoint answered
    with one; ``transient`` whether a retry might have helped (the retries ran out).
    """

    node: str
    indices: list[int]
    error: str
    message: str
    status: int | None
    transient: bool
