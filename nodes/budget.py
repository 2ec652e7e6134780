"""The budget ledger: what every LLM call cost, per node kind, and optional caps.

A ledger is a plain mapping ``{node kind: {"requests", "calls", "prompt_tokens",
"completion_tokens"}}`` so that it lives in graph state, survives checkpoints and prints as
JSON. Graph state declares it with the :func:`add_ledgers` reducer, so the entries written by
parallel branches (langgraph ``Send``) add up instead of overwriting each other.

``calls`` counts generated samples (one request with ``n=8`` is 1 request and 8 calls: the unit
of "LM calls" in Chen et al.); ``requests`` counts HTTP requests. Token counts come from the
``usage`` field of the server's responses, never from a local tokenizer.

``flops`` is the inference compute, ``2 × parameters × (prompt + completion tokens)`` of each call
(the convention of Snell et al. and of Large Language Monkeys: a forward pass costs about two
FLOPs per weight per token; attention is left out). It is present only when every call's model
size is known (:attr:`nodes.endpoint.Endpoint.model_parameters`): a sum that includes a call of
unknown size has no ``flops`` (it is unknown, never undercounted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NotRequired, TypedDict

from nodes.errors import ConfigError

__all__ = ["Budget", "KindUsage", "Ledger", "add_ledgers", "flops", "ledger_entry", "ledger_totals"]


class KindUsage(TypedDict):
    requests: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    flops: NotRequired[int]  # absent: some call's model size is unknown


Ledger = dict[str, KindUsage]
_FIELDS = ("requests", "calls", "prompt_tokens", "completion_tokens")


def _zero() -> KindUsage:
    return {"requests": 0, "calls": 0, "prompt_tokens": 0, "completion_tokens": 0}


def flops(parameters: int, tokens: float) -> int:
    """Inference FLOPs of ``tokens`` prompt and completion tokens through a model of ``parameters``
    weights: ``2 × parameters × tokens``.

    Example:
        >>> flops(494_000_000, 1_000) / 1e12  # Qwen2.5-Coder-0.5B, a thousand tokens: about 1 TFLOP
        0.988
    """
    return round(2 * parameters * tokens)


def _flops_known(usage: KindUsage) -> bool:
    return "flops" in usage or usage["prompt_tokens"] + usage["completion_tokens"] == 0


def _add(acc: KindUsage, usage: KindUsage) -> None:
    known = _flops_known(acc) and _flops_known(usage)
    for field in _FIELDS:
        acc[field] += usage[field]  # type: ignore[literal-required]
    if known:
        acc["flops"] = acc.get("flops", 0) + usage.get("flops", 0)
    else:
        acc.pop("flops", None)


def add_ledgers(left: Ledger | None, right: Ledger | None) -> Ledger:
    """Reducer: the sum of two ledgers (neither argument is modified)."""
    out: Ledger = {kind: {**usage} for kind, usage in (left or {}).items()}
    for kind, usage in (right or {}).items():
        _add(out.setdefault(kind, _zero()), usage)
    return out


def ledger_entry(
    kind: str,
    *,
    requests: int = 1,
    calls: int = 1,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    parameters: int | None = None,
) -> Ledger:
    """A one-kind ledger, as a node returns it in its state update.

    With the model's ``parameters`` the entry carries its FLOPs; without, its FLOPs are unknown
    (unless it has no tokens).

    Example:
        >>> ledger_entry("propose", calls=2, prompt_tokens=50, completion_tokens=150, parameters=135_000_000)
        {'propose': {'requests': 1, 'calls': 2, 'prompt_tokens': 50, 'completion_tokens': 150, 'flops': 54000000000}}
    """
    usage: KindUsage = {
        "requests": requests,
        "calls": calls,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
    }
    if parameters is not None:
        usage["flops"] = flops(parameters, prompt_tokens + completion_tokens)
    return {kind: usage}


def ledger_totals(ledger: Ledger | None) -> KindUsage:
    """The sum over all node kinds (``flops`` only when every call's is known)."""
    total = _zero()
    for usage in (ledger or {}).values():
        _add(total, usage)
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
