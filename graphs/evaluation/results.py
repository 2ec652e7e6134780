"""From a store to results: exact expectations over subsets of each question's pool for the pooled
strategies, direct runs as they are, bootstrap confidence intervals over questions."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphs.evaluation.datasets import Record
from graphs.evaluation.plan import FILTER_SCORER, EvalPlan, method_of, options_key, scorer_key
from graphs.evaluation.store import EvalStore
from graphs.lab.adaptive import subset_adaptive_vote
from graphs.lab.pool import QuestionPool, bootstrap_band, pool_curves
from graphs.lab.scaling import pass_at_k
from graphs.strategies.adaptive_vote import make_rule
from nodes.answers import equivalent, group_answers
from nodes.budget import flops, ledger_totals
from nodes.confidence import ConfidenceMeasure, keep_most_confident, trace_confidence
from nodes.endpoint import known_parameters
from nodes.errors import ConfigError
from nodes.scorers import aggregate
from nodes.types import Candidate, Score

__all__ = ["Results", "prefix_accuracy", "results", "subset_confidence_accuracy", "subset_selection_accuracy"]

# -- results ------------------------------------------------------------------------------------


@dataclass
class Results:
    """Per-question and per-configuration results of a store.

    ``per_question`` rows: ``qid, strategy, budget, accuracy, calls, tokens, method`` and, when the
    model's size is known (``parameters``), ``flops`` (2 × parameters × tokens); ``table`` rows add
    ``accuracy_low, accuracy_high`` (95% bootstrap over questions) and ``questions``. ``pools`` holds
    each question's pool (for difficulty).
    """

    dataset: str
    model: str
    questions: list[str]
    per_question: list[dict[str, Any]]
    table: list[dict[str, Any]]
    incomplete: list[str]  # questions left out of the pooled results (fewer samples than the pool size)
    pools: dict[str, QuestionPool]  # the samples pooled results are computed from
    answer_format: str | None = None
    parameters: int | None = None  # the model's weights: FLOPs = 2 × parameters × tokens (None: unknown)
    probes: dict[str, list[str | None]] = field(default_factory=dict)  # held-out probe samples' answers

    def matrix(self, key: str = "accuracy") -> tuple[list[tuple[str, int]], np.ndarray]:
        """``(configurations, values)`` with one row per question that has every configuration."""
        configs = sorted({(r["strategy"], r["budget"]) for r in self.per_question})
        by = {(r["qid"], r["strategy"], r["budget"]): r[key] for r in self.per_question}
        rows = self.complete_questions()
        return configs, np.array([[by[(q, s, b)] for s, b in configs] for q in rows], dtype=float).reshape(
            len(rows), len(configs)
        )

    def complete_questions(self) -> list[str]:
        """The questions that have a result for every configuration."""
        configs = {(r["strategy"], r["budget"]) for r in self.per_question}
        have = Counter(r["qid"] for r in self.per_question)
        return [q for q in self.questions if have[q] == len(configs)]


def _subsets(m: int, k: int, limit: int, seed: str) -> Iterator[tuple[int, ...]]:
    """Every ``k``-subset of ``range(m)`` in order, or ``limit`` random ones (fixed seed)."""
    if math.comb(m, k) <= limit:
        yield from itertools.combinations(range(m), k)
        return
    rng = random.Random(seed)
    for _ in range(limit):
        yield tuple(sorted(rng.sample(range(m), k)))


def _expected_vote(candidates: Sequence[Candidate], weights: dict[int, float], right: Callable[[str], bool]) -> float:
    """Probability that a (weighted) vote's answer is right when the samples come in random
    order: among the tied top answers, the first seen wins, so each wins with probability
    proportional to its number of samples (as :func:`nodes.vote.weighted_vote` decides)."""
    groups = group_answers([c["answer"] for c in candidates])
    if not groups:
        return 0.0
    totals = [sum(weights.get(candidates[m]["index"], 0.0) for m in g.members) for g in groups]
    tied = [g for g, t in zip(groups, totals, strict=True) if t == max(totals)]
    return sum(len(g.members) for g in tied if right(g.answer)) / sum(len(g.members) for g in tied)


def subset_confidence_accuracy(
    candidates: Sequence[Candidate],
    k: int,
    *,
    reference: str,
    measure: ConfidenceMeasure = "bottom10",
    keep: float = 10.0,
    window: int = 2048,
    limit: int = 2000,
    seed: str = "",
) -> float:
    """Expected accuracy of offline DeepConf (:func:`graphs.strategies.deepconf.confidence_vote`)
    with ``k`` of the candidates: over every ``k``-subset (or ``limit`` drawn with a fixed seed)
    and the order of each, which splits ties among the leaders by their samples as the vote's
    first-seen rule does. Candidates carry their token ``confidences``."""
    confidence = [trace_confidence(c.get("confidences") or [], measure, window=window) for c in candidates]
    # each sample's answer group, found once (grouping compares answers, which is slow for math)
    group = [-1] * len(candidates)
    groups = group_answers([c["answer"] for c in candidates])
    for g, members in enumerate(groups):
        for i in members.members:
            group[i] = g
    right = [equivalent(g.answer, reference) for g in groups]
    total, count = 0.0, 0
    for subset in _subsets(len(candidates), k, limit, seed):
        answered = [i for i in subset if group[i] >= 0]
        scores = [confidence[i] for i in answered]
        if any(s is not None for s in scores):
            voters = [i for i, kept in zip(answered, keep_most_confident(scores, keep), strict=True) if kept]
            weight = {i: confidence[i] or 0.0 for i in voters}
        else:  # no logprobs: the plurality vote
            voters, weight = answered, dict.fromkeys(answered, 1.0)
        total += _expected_grouped_vote(voters, weight, group, right)
        count += 1
    return total / count


def _expected_grouped_vote(voters: list[int], weight: dict[int, float], group: list[int], right: list[bool]) -> float:
    """:func:`_expected_vote` for samples whose answer groups are known: the tied leaders win in
    proportion to their samples (the first-seen rule in a random order)."""
    totals: dict[int, list[float]] = {}
    for i in voters:
        entry = totals.setdefault(group[i], [])
        entry.append(weight[i])
    if not totals:
        return 0.0
    sums = {g: math.fsum(ws) for g, ws in totals.items()}
    best = max(sums.values())
    tied = [g for g, t in sums.items() if t == best]
    return sum(len(totals[g]) for g in tied if right[g]) / sum(len(totals[g]) for g in tied)


def subset_selection_accuracy(
    candidates: Sequence[Candidate],
    scores: Sequence[Score],
    correct: Sequence[bool],
    k: int,
    *,
    weighted: bool,
    reference: str | None,
    limit: int = 2000,
    seed: str = "",
) -> float:
    """Expected accuracy of (weighted) Best-of-N with ``k`` of the candidates in random order.

    The expectation is over ``k``-subsets (enumerated, or ``limit`` drawn with a fixed seed) and
    over the order of each subset, which decides ties exactly as the graphs do
    (:func:`graphs.strategies.best_of_n.select_best`, :func:`~graphs.strategies.best_of_n.select_weighted`): the
    best-scored candidate, or the answer with the largest summed score, and a plurality vote when
    nothing has a score. A chosen answer is right when it is equivalent to ``reference`` (for
    code, with ``reference`` None: when the chosen sample passed its tests).
    """
    position = {c["index"]: i for i, c in enumerate(candidates)}

    def right(answer: str) -> bool:
        if reference is None:  # code: each sample is its own answer "#<index>"
            return correct[position[int(answer[1:])]]
        return equivalent(answer, reference)

    by_index = {s["index"]: s["score"] for s in scores}
    total, count = 0.0, 0
    for subset in _subsets(len(candidates), k, limit, seed):
        chosen = [candidates[i] for i in subset]
        scored = {c["index"]: v for c in chosen if (v := by_index.get(c["index"])) is not None}
        answered = [
            (c["answer"], scored[c["index"]]) for c in chosen if c["answer"] is not None and c["index"] in scored
        ]
        if weighted and any(scored.values()):
            total += _expected_vote(chosen, scored, right)
        elif not weighted and answered:
            best = max(v for _, v in answered)
            tied = [a for a, v in answered if v == best]
            total += sum(right(a) for a in tied) / len(tied)
        else:  # nothing scored: the plurality vote
            total += _expected_vote(chosen, {c["index"]: 1.0 for c in chosen}, right)
        count += 1
    return total / count


def results(
    store: EvalStore,
    plan: EvalPlan,
    records: Sequence[Record] | None = None,
    *,
    max_n: int = 64,
    parameters: int | None = None,
) -> Results:
    """Results of every configuration of ``plan`` on ``records`` (default: every question in the store).

    Pooled costs are expectations over subsets: a budget ``k`` costs its share of the proposal
    requests (prompt tokens per request × ``ceil(k / max_n)`` requests, plus ``k`` samples'
    completion tokens) plus ``k`` samples' judgements. FLOPs are ``2 × parameters × tokens``, with
    ``parameters`` the store's model's (known for packaged models) unless given; a direct run's
    are its own ledger's when it counted them. A reward model on another server (``pooling-prm``)
    has a size of its own, so the rows that use it have no FLOPs (unknown, not guessed).

    A question counts when its pool holds the samples and judgements the budgets need; its
    held-out probe answers (``probes``) are there when the ``plan.probe`` samples beyond them
    are too (a store drawn without them has none: :func:`graphs.evaluation.selection.difficulty`
    then says so).
    """
    settings = store.settings()
    parameters = parameters or known_parameters(str(settings.get("model", "")))
    records = list(records) if records is not None else store.records()
    per_question: list[dict[str, Any]] = []
    incomplete: list[str] = []
    pools: dict[str, QuestionPool] = {}
    probes: dict[str, list[str | None]] = {}
    m = plan.scored_size
    ks = sorted(b for b in plan.budgets if b <= m)
    scorers = plan.scorers()
    for record in records if m else []:
        code = "tests" in record.info
        drawn = store.samples(record.qid)[: plan.pool_size]
        samples = drawn[:m]
        judgements = {name: [j for j in store.judgements(record.qid, name) if j["index"] < m] for name in scorers}
        if [x["index"] for x in samples] != list(range(m)) or any(
            [j["index"] for j in js] != list(range(m)) for js in judgements.values()
        ):
            incomplete.append(record.qid)
            continue
        if plan.probe and [x["index"] for x in drawn] == list(range(plan.pool_size)):  # else: no held-out probe
            probes[record.qid] = [s["answer"] for s in drawn[m:]]
        # code has no answer to vote on: each sample is its own answer, right when it passed its tests
        answers = [f"#{s['index']}" if code else s["answer"] for s in samples]
        verdicts: list[str | None] = [j["label"] or "error" for j in judgements.get(FILTER_SCORER, [])] or [None] * m
        pool = QuestionPool(record.qid, record.question, record.answer, record.info, answers, verdicts)
        pools[record.qid] = pool
        curves = pool_curves([pool], ks) if not code else None
        usage = store.usage(record.qid)
        prompt_per_request = usage["prompt_tokens"] / max(usage["requests"], 1)
        completion_per_sample = usage["completion_tokens"] / max(usage["calls"], 1)

        # per sample, on average: a judgement's calls and tokens, by scorer
        judge_calls = {name: sum(j["calls"] for j in js) / m for name, js in judgements.items()}
        judge_tokens = {name: sum(j["prompt_tokens"] + j["completion_tokens"] for j in js) / m
                        for name, js in judgements.items()}  # fmt: skip
        candidates: list[Candidate] = [
            {"index": s["index"], "text": s["text"], "answer": answers[s["index"]],
             "finish_reason": s["finish_reason"], "seed": s["seed"], "parent": None}
            for s in samples
        ]  # fmt: skip
        for c, s in zip(candidates, samples, strict=True):
            if s.get("confidences") is not None:
                c["confidences"] = s["confidences"]
        correct = [bool(s["correct"]) for s in samples]
        adaptive = any(method_of(s) == "adaptive-vote" for s in plan.pooled)
        counts, none, key = pool.counts() if adaptive else ({}, 0, None)
        per_answer = _answer_tokens(samples, answers, completion_per_sample) if adaptive else {}
        for j, k in enumerate(ks):
            for strategy in plan.pooled:
                method = method_of(strategy)
                judged = {"filter-vote": FILTER_SCORER}.get(method or "")
                calls = k * (1 + (judge_calls[judged] if judged else 0.0))
                tokens = prompt_per_request * math.ceil(k / max_n) + completion_per_sample * k
                if method == "pass@k":
                    accuracy = pass_at_k(m, sum(correct), k)
                elif method == "adaptive-vote":
                    options = plan.run_options(strategy, k)
                    rule = make_rule(options.get("stop", "beta"), options.get("threshold"), options.get("window"))
                    outcome = subset_adaptive_vote(rule, counts, key, k, none=none, max_n=max_n, tokens=per_answer)
                    accuracy, calls = outcome.accuracy, outcome.samples
                    tokens = prompt_per_request * outcome.requests + (outcome.tokens or 0.0)
                elif method == "deepconf":
                    if any(c.get("confidences") is None for c in candidates):
                        raise ConfigError(f"{strategy}: the pool's samples have no token confidences (drawn without "
                                          "logprobs): evaluate it into another --out")  # fmt: skip
                    options = plan.run_options(strategy, k)
                    accuracy = subset_confidence_accuracy(
                        candidates, k, reference=record.answer, measure=options.get("measure", "bottom10"),
                        keep=options.get("keep", 10.0), window=options.get("window", 2048), limit=plan.subsets,
                        seed=f"{record.qid}-{k}",
                    )  # fmt: skip
                elif method in ("vote", "filter-vote"):
                    assert curves is not None
                    accuracy = float((curves.vote if method == "vote" else curves.filter_vote)[0, j])
                else:
                    assert plan.scorer is not None
                    judged = scorer_key(plan.scorer)
                    scores: list[Score] = [
                        {"index": s["index"], "steps": js["steps"], "label": js["label"],
                         "score": aggregate(js["steps"], plan.aggregation) if js["steps"] else None}
                        for s, js in zip(samples, judgements[judged], strict=True)
                    ]  # fmt: skip
                    accuracy = subset_selection_accuracy(
                        candidates, scores, correct, k, weighted=method == "weighted-best-of-n",
                        reference=None if code else record.answer, limit=plan.subsets, seed=f"{record.qid}-{k}",
                    )  # fmt: skip
                if judged:
                    calls = k * (1 + judge_calls[judged])
                    tokens += k * judge_tokens[judged]
                row = {"qid": record.qid, "strategy": strategy, "budget": k, "accuracy": accuracy, "calls": calls,
                       "tokens": tokens, "method": "pool"}  # fmt: skip
                # a reward model on another server has a size of its own: its tokens' FLOPs are unknown
                if parameters is not None and not (judged and judged != FILTER_SCORER and _remote(plan.scorer)):
                    row["flops"] = flops(parameters, tokens)
                per_question.append(row)
    wanted = {r.qid for r in records}
    for strategy in plan.direct:
        for budget in plan.budgets_of(strategy):
            options = plan.run_options(strategy, budget)
            for run in store.runs(strategy, budget, options_key(options), outputs=True):
                if run["qid"] in wanted:
                    tokens = float(run["prompt_tokens"] + run["completion_tokens"])
                    row = {"qid": run["qid"], "strategy": strategy, "budget": budget,
                           "accuracy": float(run["correct"]), "calls": float(run["calls"]), "tokens": tokens,
                           "method": "direct"}  # fmt: skip
                    counted = ledger_totals((run["output"] or {}).get("ledger")).get("flops")
                    if counted is not None:  # the run's own ledger, model by model
                        row["flops"] = float(counted)
                    elif parameters is not None and not _remote(options.get("scorer")):
                        row["flops"] = flops(parameters, tokens)
                    per_question.append(row)
    return Results(
        dataset=str(settings.get("dataset", "")),
        model=str(settings.get("model", "")),
        questions=[r.qid for r in records],
        per_question=per_question,
        table=_table(per_question, plan),
        incomplete=incomplete,
        pools=pools,
        answer_format=settings.get("answer_format"),
        parameters=parameters,
        probes=probes,
    )


def _remote(scorer: object) -> bool:
    """Whether a scorer is a reward model on a server of its own (its size is not the policy's)."""
    return getattr(scorer, "name", None) == "pooling-prm"


def _answer_tokens(
    samples: Sequence[dict[str, Any]], answers: Sequence[str | None], default: float
) -> dict[str | None, float]:
    """Each answer's mean completion tokens in the pool (keys as :meth:`QuestionPool.counts` spells
    them, ``None`` for no answer); a sample without its own count (drawn without logprobs) counts
    the pool's mean."""
    tokens = [float(s["tokens"]) if s.get("tokens") is not None else default for s in samples]
    out: dict[str | None, float] = {}
    for g in group_answers(list(answers)):
        out[g.answer] = sum(tokens[i] for i in g.members) / len(g.members)
    none = [t for t, a in zip(tokens, answers, strict=True) if a is None]
    if none:
        out[None] = sum(none) / len(none)
    return out


def _table(per_question: list[dict[str, Any]], plan: EvalPlan) -> list[dict[str, Any]]:
    table = []
    order = {s: i for i, s in enumerate(plan.strategies)}
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in per_question:
        groups.setdefault((r["strategy"], r["budget"]), []).append(r)
    for (strategy, budget), rows in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        acc = np.array([[r["accuracy"]] for r in rows])
        mean, low, high = bootstrap_band(acc, resamples=1000)
        table.append({
            "strategy": strategy, "budget": budget, "questions": len(rows),
            "accuracy": float(mean[0]), "accuracy_low": float(low[0]), "accuracy_high": float(high[0]),
            "calls": float(np.mean([r["calls"] for r in rows])), "tokens": float(np.mean([r["tokens"] for r in rows])),
            "method": rows[0]["method"],
            **({"flops": float(np.mean([r["flops"] for r in rows]))} if all("flops" in r for r in rows) else {}),
        })  # fmt: skip
    return table


def prefix_accuracy(pool: QuestionPool, k: int) -> bool:
    """Whether a vote over the pool's first ``k`` samples is right: what a direct Vote run with
    the same seed returns (the samples of one request are the pool's first ones)."""
    counts, _, key = pool.counts(range(k))
    if not counts or key is None:
        return False
    top = max(counts.values())
    winner = next(a for a in counts if counts[a] == top)  # ties: the first seen
    return winner == key
