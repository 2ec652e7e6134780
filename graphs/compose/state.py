"""The state, input and output schemas every strategy graph shares, and the final decided update."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Annotated, Any, NotRequired, TypedDict

from nodes.budget import Ledger, add_ledgers
from nodes.errors import ConfigError
from nodes.types import Candidate, Critique, Failure, Score, Verdict

__all__ = [
    "BudgetReport",
    "Plan",
    "QuestionInput",
    "StrategyOutput",
    "StrategyState",
    "check_count",
    "decided",
    "question_of",
]


class QuestionInput(TypedDict):
    """What a strategy graph takes: a question and, optionally, an id used in messages."""

    question: str
    question_id: NotRequired[str]


class BudgetReport(TypedDict):
    """Whether a budget cap stopped the graph before it made every call it planned, and why."""

    exhausted: bool
    note: str | None


class Plan(TypedDict):
    """What a planner decided, as plain data (so it checkpoints): ``node`` to run next, with one
    ``Send`` per task (no tasks: go to ``node`` once, e.g. the final vote)."""

    node: str
    tasks: list[dict[str, Any]]


class StrategyState(TypedDict, total=False):
    """The state of a strategy graph. Lists and the ledger have reducers, so parallel ``Send``
    tasks add to them; extend it (``class MyState(StrategyState, total=False): ...``) for more."""

    question: str
    question_id: str
    candidates: Annotated[list[Candidate], operator.add]
    critiques: Annotated[list[Critique], operator.add]
    verdicts: Annotated[list[Verdict], operator.add]
    scores: Annotated[list[Score], operator.add]
    failures: Annotated[list[Failure], operator.add]
    ledger: Annotated[Ledger, add_ledgers]
    rounds: Annotated[int, operator.add]  # planner runs: bounds the wave loop
    plan: Plan  # what the planner decided: the next wave of calls, or the final node
    budget: BudgetReport
    answer: str | None
    decision: dict[str, Any]


class StrategyOutput(TypedDict):
    """What every strategy graph returns (``ttc run`` and ``ttc eval`` read these keys); a
    strategy's own output schema extends it (``verdicts``, ``scores``, ...)."""

    question: str
    answer: str | None
    decision: dict[str, Any]
    candidates: list[Candidate]
    failures: list[Failure]
    ledger: Ledger
    budget: BudgetReport


def decided(state: Mapping[str, Any], decision: Mapping[str, Any], **more: Any) -> dict[str, Any]:
    """The final node's update: the answer, the decision behind it (``decision["answer"]``), the
    budget report, and ``more`` keys.

    Example:
        >>> decided({}, {"answer": "42", "votes": {"42": 3.0}})["budget"]
        {'exhausted': False, 'note': None}
    """
    return {
        "answer": decision["answer"],
        "decision": dict(decision),
        "budget": state.get("budget") or {"exhausted": False, "note": None},
        **more,
    }


def check_count(value: int, name: str = "k") -> int:
    """``value`` if it is a positive integer, else a :class:`~nodes.errors.ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def label(state: Mapping[str, Any]) -> str:
    qid = state.get("question_id")
    return f"question {qid!r}" if qid else "the question"


def question_of(state: Mapping[str, Any]) -> str:
    """The state's question, or a :class:`~nodes.errors.ConfigError` when it is missing or empty."""
    question = state.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{label(state)} is empty: give a question to answer")
    return question
