"""The budget ledger: what every LLM call cost, per node kind, and optional caps.

A ledger is a plain mapping ``{node kind: {"requests", "calls", "prompt_tokens",
"completion_tokens"}}`` so that it lives in graph state, survives checkpoints and prints as
JSON. Graph state declares it with the :func:`add_ledgers` reducer, so the entries written by
parallel branches (langgraph ``Send``) add up instead of overwriting each other.

``calls`` counts generated samples (one request with ``n=8`` is 1 request and 8 calls: the unit
of "LM calls" in Chen et al.); ``requests`` counts HTTP requests. Token counts come from the
``usage`` field of the server's responses, never from a local tokenizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

from nodes.errors import ConfigError

__all__ = ["Budget", "KindUsage", "Ledger", "add_ledgers", "ledger_entry", "ledger_totals"]


class KindUsage(TypedDict):
    requests: int
    calls: int
    prompt_tokens: int
    completion_tokens: int


Ledger = dict[str, KindUsage]
_FIELDS = ("requests", "calls", "prompt_tokens", "completion_tokens")


def _zero() -> KindUsage:
    return {"requests": 0, "calls": 0, "prompt_tokens": 0, "completion_tokens": 0}


def add_ledgers(left: Ledger | None, right: Ledger | None) -> Ledger:
    """Reducer: the sum of two ledgers (neither argument is modified)."""
    out: Ledger = {kind: {**usage} for kind, usage in (left or {}).items()}
    for kind, usage in (right or {}).items():
        acc = out.setdefault(kind, _zero())
        for field in _FIELDS:
            acc[field] += usage[field]  # type: ignore[literal-required]
    return out


def ledger_entry(
    kind: str, *, requests: int = 1, calls: int = 1, prompt_tokens: int = 0, completion_tokens: int = 0
) -> Ledger:
    """A one-kind ledger, as a node returns it in its state update."""
    return {
        kind: {
            "requests": requests,
            "calls": calls,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }
    }


def ledger_totals(ledger: Ledger | None) -> KindUsage:
    """The sum over all node kinds, plus nothing else."""
    total = _zero()
    for usage in (ledger or {}).values():
        for field in _FIELDS:
            total[field] += usage[field]  # type: ignore[literal-required]
    return total


@dataclass(frozen=True)
class Budget:
    """Optional caps on a run's compute.

    Args:
        max_calls: most LLM calls (generated samples, over all node kinds). Never exceeded.
        max_tokens: most prompt + completion tokens. Before each wave of calls the graph trims
            the wave to what fits if every call used the average prompt seen so far for its node
            kind (the prompt's length in characters before the first call) plus its whole
            completion limit: an estimate, so a prompt longer than the average can overshoot
            the cap by a little.

    When a cap stops a graph early it decides with the samples it has and says so in its
    output (``budget["exhausted"]``).

    Example:
        >>> Budget(max_calls=6).allowance({}, want=8, tokens_per_call=100)
        6
    """

    max_calls: int | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"budget {name} must be a positive integer, got {value!r}")

    @property
    def capped(self) -> bool:
        return self.max_calls is not None or self.max_tokens is not None

    def allowance(self, ledger: Ledger | None, *, want: int, tokens_per_call: int) -> int:
        """How many of ``want`` further calls may be issued now (0 when the budget is spent)."""
        totals = ledger_totals(ledger)
        allowed = want
        if self.max_calls is not None:
            allowed = min(allowed, self.max_calls - totals["calls"])
        if self.max_tokens is not None:
            spent = totals["prompt_tokens"] + totals["completion_tokens"]
            allowed = min(allowed, math.floor((self.max_tokens - spent) / max(tokens_per_call, 1)))
        return max(allowed, 0)

    def describe(self) -> str:
        parts = []
        if self.max_calls is not None:
            parts.append(f"max_calls={self.max_calls}")
        if self.max_tokens is not None:
            parts.append(f"max_tokens={self.max_tokens}")
        return ", ".join(parts) or "unlimited"
