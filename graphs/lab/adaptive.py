"""Exact theory of adaptive votes: when a stopping rule stops, and how often its winner is right.

An adaptive vote (:mod:`graphs.strategies.adaptive_vote`) draws waves of samples until its
:class:`~graphs.strategies.adaptive_vote.StoppingRule` says stop or the cap is reached, then takes
the plurality of the stated answers. Given where its samples come from, the whole distribution of
its stopping point follows exactly by dynamic programming over the answer counts drawn so far:

- :func:`adaptive_vote_outcome`: samples drawn independently from a categorical answer
  distribution (each wave's composition is multinomial), the theory beside :func:`vote_accuracy`;
- :func:`subset_adaptive_vote`: samples drawn in a uniformly random order from a finite pool
  without replacement (multivariate hypergeometric waves), the expectation over sample orders that
  ``ttc eval`` reports for ``adaptive-vote`` from the same pools as Vote@k.

Both give the accuracy, the stopping distribution ``P(stop after n samples)``, the expected samples
and requests (a wave of ``s`` samples is ``ceil(s / max_n)`` requests), and, with each answer's mean
completion tokens, the expected completion tokens. Ties among the leading answers are split
evenly, as :func:`~graphs.lab.scaling.vote_accuracy` does; a "no answer" sample (key ``None``) is
drawn and paid for but never counts or wins. :func:`simulate_adaptive_vote` is the Monte-Carlo
check, one sequence at a time through the same rule, and :func:`stopping_point` replays one order
exactly as the graph's planner does.

The state is the vector of counts drawn per answer; answers that are interchangeable (same
probability or pool count, same correctness) are merged by sorting their counts, so a pool of
sixteen different wrong answers has seventeen states per wave, not 2^16. Interchangeable answers
are drawn equally often in expectation, so their samples cost their mean tokens: the expected
tokens stay exact. Rules are asked at wave
boundaries only (as the planner does), with the last wave's answers at the end of ``answers``
(which is all :class:`~graphs.strategies.adaptive_vote.WindowRule` reads).

Example:
    >>> from graphs.strategies.adaptive_vote import BetaRule
    >>> out = adaptive_vote_outcome(BetaRule(), {"42": 0.8, "41": 0.2}, correct="42", cap=16)
    >>> round(out.accuracy, 4), round(out.samples, 2)
    (0.9944, 8.02)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from graphs.lab.scaling import Dist, _check_dist, _check_k

if TYPE_CHECKING:
    from graphs.strategies.adaptive_vote import StoppingRule

__all__ = [
    "AdaptiveOutcome",
    "adaptive_vote_outcome",
    "simulate_adaptive_vote",
    "stopping_point",
    "subset_adaptive_vote",
]


@dataclass(frozen=True)
class AdaptiveOutcome:
    """What an adaptive vote does, in expectation.

    Attributes:
        accuracy: probability that the winner is the correct answer.
        samples: expected samples drawn (no-answer samples included).
        requests: expected requests (each wave split into requests of at most ``max_n``).
        tokens: expected completion tokens, when each answer's tokens were given (else None).
        stops: ``P(stop after n samples)`` by ``n``.
    """

    accuracy: float
    samples: float
    requests: float
    tokens: float | None
    stops: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Class:
    label: str | None
    weight: float  # probability (theory) or pool count
    correct: bool
    tokens: float


def _classes(
    weights: Mapping[str | None, float], correct: str | None, tokens: Mapping[str | None, float] | None
) -> list[_Class]:
    out = [
        _Class(key, float(w), key is not None and key == correct, float((tokens or {}).get(key, 0.0)))
        for key, w in weights.items()
        if w > 0
    ]
    # interchangeable answers next to each other, so a state can sort their counts (their tokens
    # differ, but interchangeable answers are drawn equally often in expectation: see _outcome)
    return sorted(out, key=lambda c: (c.label is None, c.correct, c.weight))


def _groups(classes: list[_Class]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of interchangeable classes (``None`` is never merged)."""
    out: list[tuple[int, int]] = []
    for i, c in enumerate(classes):
        prev = classes[i - 1] if i else None
        same = (
            prev is not None
            and prev.label is not None
            and c.label is not None
            and (prev.correct, prev.weight) == (c.correct, c.weight)
        )
        if same:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def _canonical(counts: list[int], groups: list[tuple[int, int]]) -> tuple[int, ...]:
    for start, stop in groups:
        if stop - start > 1:
            counts[start:stop] = sorted(counts[start:stop], reverse=True)
    return tuple(counts)


def _compositions(size: int, caps: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every way to split ``size`` samples over the classes, class ``i`` taking at most ``caps[i]``."""
    if not caps:
        if size == 0:
            yield ()
        return
    rest = sum(caps[1:])
    for first in range(max(0, size - rest), min(size, caps[0]) + 1):
        for tail in _compositions(size - first, caps[1:]):
            yield (first, *tail)


def _outcome(
    rule: StoppingRule, classes: list[_Class], cap: int, max_n: int, pool: bool, with_tokens: bool
) -> AdaptiveOutcome:
    groups = _groups(classes)
    # a group's answers are drawn equally often in expectation, so its samples cost its mean tokens
    mean_tokens = [0.0] * len(classes)
    for start, stop in groups:
        for i in range(start, stop):
            mean_tokens[i] = sum(c.tokens for c in classes[start:stop]) / (stop - start)
    labels = [str(i) if c.label is not None else None for i, c in enumerate(classes)]  # numbers: grouped fast
    stated = [i for i, c in enumerate(classes) if c.label is not None]
    total = sum(c.weight for c in classes)
    decisions: dict[tuple[object, ...], int] = {}

    def decide(counts: tuple[int, ...], wave: tuple[int, ...]) -> int:
        drawn = sum(counts)
        leading = tuple(sorted((counts[i] for i in stated if counts[i]), reverse=True))
        key = (leading, drawn, tuple(sorted((w for i, w in enumerate(wave) if labels[i] and w), reverse=True)),
               any(w for i, w in enumerate(wave) if labels[i] is None))  # fmt: skip
        if key not in decisions:
            last = [labels[i] for i, w in enumerate(wave) for _ in range(w)]
            answers = [None] * (drawn - len(last)) + last  # the rules read the last wave only
            decisions[key] = max(0, rule.more(list(leading), drawn, answers))
        return decisions[key]

    def probability(counts: tuple[int, ...], wave: tuple[int, ...]) -> float:
        size = sum(wave)
        if pool:
            remaining = [int(c.weight) - n for c, n in zip(classes, counts, strict=True)]
            ways = math.prod(math.comb(r, w) for r, w in zip(remaining, wave, strict=True) if w)
            return ways / math.comb(int(total) - sum(counts), size)
        log = math.lgamma(size + 1)
        for c, w in zip(classes, wave, strict=True):
            if w:
                log += w * math.log(c.weight / total) - math.lgamma(w + 1)
        return math.exp(log)

    origin = tuple([0] * len(classes))
    frontier: dict[tuple[tuple[int, ...], int], float] = {(origin, decide(origin, origin)): 1.0}
    accuracy = samples = requests = tokens = 0.0
    stops: dict[int, float] = {}
    while frontier:
        following: dict[tuple[tuple[int, ...], int], float] = {}
        for (counts, size), p in frontier.items():
            drawn = sum(counts)
            size = min(size, cap - drawn)
            if pool:
                size = min(size, int(total) - drawn)
            if size <= 0:
                stops[drawn] = stops.get(drawn, 0.0) + p
                samples += p * drawn
                tokens += p * sum(n * t for n, t in zip(counts, mean_tokens, strict=True))
                top = max((counts[i] for i in stated), default=0)
                tied = [i for i in stated if counts[i] == top] if top else []
                accuracy += p * sum(classes[i].correct for i in tied) / len(tied) if tied else 0.0
                continue
            requests += p * math.ceil(size / max_n)
            caps = [int(c.weight) - n for c, n in zip(classes, counts, strict=True)] if pool else [size] * len(classes)
            for wave in _compositions(size, caps):
                q = probability(counts, wave)
                if q <= 0.0:
                    continue
                after = _canonical([n + w for n, w in zip(counts, wave, strict=True)], groups)
                key = (after, decide(after, wave))
                following[key] = following.get(key, 0.0) + p * q
        frontier = following
    return AdaptiveOutcome(accuracy, samples, requests, tokens if with_tokens else None, dict(sorted(stops.items())))


def adaptive_vote_outcome(
    rule: StoppingRule,
    dist: Dist,
    correct: str,
    cap: int,
    *,
    tokens: Mapping[str | None, float] | None = None,
    max_n: int = 64,
) -> AdaptiveOutcome:
    """The exact outcome of an adaptive vote with at most ``cap`` samples, each drawn independently
    from ``dist`` (answer -> probability, ``None``: no stated answer), ``correct`` the right answer.
    ``tokens`` (answer -> mean completion tokens) adds the expected tokens.

    Example:
        >>> from graphs.strategies.adaptive_vote import SupermajorityRule
        >>> out = adaptive_vote_outcome(SupermajorityRule(), {"a": 0.6, "b": 0.4}, "a", cap=16)
        >>> sorted(out.stops), round(sum(out.stops.values()), 12)
        ([2, 4, 8, 16], 1.0)
    """
    _check_dist(dist)
    _check_k(cap)
    return _outcome(rule, _classes(dist, correct, tokens), cap, max_n, pool=False, with_tokens=tokens is not None)


def subset_adaptive_vote(
    rule: StoppingRule,
    counts: Mapping[str, int],
    correct: str | None,
    cap: int,
    *,
    none: int = 0,
    tokens: Mapping[str | None, float] | None = None,
    max_n: int = 64,
) -> AdaptiveOutcome:
    """The exact expectation of an adaptive vote over the orders of a finite pool: the samples come
    in a uniformly random order (without replacement) and it stops as ``rule`` says or at ``cap``.
    ``counts``: each answer's samples in the pool; ``none``: samples stating no answer; ``correct``:
    the key of the right answer (None when no sample has it); ``tokens``: mean completion tokens of
    each answer's samples (``None`` for the no-answer ones).

    Example:
        >>> from graphs.strategies.adaptive_vote import WindowRule
        >>> out = subset_adaptive_vote(WindowRule(4), {"7": 6, "8": 2}, "7", cap=8)
        >>> round(out.stops[4], 4), round(out.accuracy, 4)
        (0.2143, 1.0)
    """
    _check_k(cap)
    if any(c < 0 for c in counts.values()) or none < 0:
        raise ValueError("pool counts must be non-negative")
    size = sum(counts.values()) + none
    if cap > size:
        raise ValueError(f"the cap {cap} is more than the pool's {size} samples")
    weights: dict[str | None, float] = {key: float(c) for key, c in counts.items()}
    weights[None] = none
    return _outcome(rule, _classes(weights, correct, tokens), cap, max_n, pool=True, with_tokens=tokens is not None)


def stopping_point(rule: StoppingRule, answers: Sequence[str | None], cap: int) -> int:
    """How many of ``answers`` (in this order) an adaptive vote draws before it stops: the
    planner's loop of :func:`graphs.strategies.adaptive_vote.build_adaptive_vote_graph`, without
    the graph (waves trimmed to the cap, the answers so far passed to the rule)."""
    from graphs.strategies.adaptive_vote import answer_counts

    drawn = 0
    while drawn < min(cap, len(answers)):
        size = rule.more(answer_counts(answers[:drawn]), drawn, answers[:drawn])
        if size <= 0:
            break
        drawn = min(cap, len(answers), drawn + size)
    return drawn


def simulate_adaptive_vote(
    rule: StoppingRule,
    dist: Dist,
    correct: str,
    cap: int,
    *,
    trials: int = 20_000,
    seed: int = 0,
) -> AdaptiveOutcome:
    """Monte-Carlo estimate of :func:`adaptive_vote_outcome` (seeded), through :func:`stopping_point`;
    ties among the leaders split evenly."""
    from nodes.answers import group_answers

    _check_dist(dist)
    rng = random.Random(seed)
    # distinct numbers stand for the answers (the rules only compare them), quick to group
    labels = [None if key is None else str(i) for i, key in enumerate(dist)]
    right = next((str(i) for i, key in enumerate(dist) if key == correct), None)
    weights = list(dist.values())
    accuracy = samples = 0.0
    stops: dict[int, float] = {}
    for _ in range(trials):
        answers = rng.choices(labels, weights, k=cap)
        n = stopping_point(rule, answers, cap)
        groups = group_answers(answers[:n])
        top = max((len(g.members) for g in groups), default=0)
        tied = [g.answer for g in groups if len(g.members) == top]
        accuracy += sum(a == right for a in tied) / len(tied) if tied else 0.0
        samples += n
        stops[n] = stops.get(n, 0.0) + 1.0 / trials
    return AdaptiveOutcome(accuracy / trials, samples / trials, float("nan"), None, dict(sorted(stops.items())))
