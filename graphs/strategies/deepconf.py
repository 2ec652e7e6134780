"""DeepConf (Fu et al., 2025, "Deep Think with Confidence"): votes weighted by the model's own token
confidence, offline and online, over any OpenAI-compatible endpoint that returns top logprobs.

Each sample carries its tokens' confidences (:mod:`nodes.confidence`: the negative mean of the
top-``k`` logprobs, ``k = 20``), and a trace's confidence is one of ``mean``, ``lowest`` (the lowest
mean over a sliding group of ``window`` tokens), ``bottom10`` (the mean of the lowest 10% of
groups) or ``tail`` (the last ``window`` tokens).

**Offline** (``deepconf``)::

    START ─Send→ propose (k samples with logprobs) → tally → vote → END

keeps the ``keep`` percent most confident traces (DeepConf-low: 10, DeepConf-high: 90) and votes
among them with their confidences as weights (:func:`confidence_vote`).

**Online** (``deepconf-online``)::

    START ─Send→ propose (warm-up) → tally ─Send→ propose_streamed (a wave) → tally … → vote → END

``warmup`` traces are drawn whole; the threshold is the ``100 − keep`` percentile of their lowest
group confidences. Later traces are streamed in waves of ``wave``; a trace stops (its request is
closed, so vLLM aborts it) as soon as a group of ``window`` tokens falls below the threshold, and
a wave stops its other traces once the vote reaches consensus: the leading answer holds
``consensus`` (τ) of the weight. Sampling ends at consensus or after ``k`` traces (or the budget).
The vote counts the warm-up traces at or above the threshold and the later traces that finished,
weighted by their lowest group confidence, as the reference code does; a stopped trace counts
for nothing, though its tokens are in the ledger.

Defaults are the paper's (``k`` 20 logprobs, window 2048, τ 0.95, warm-up 16, ``keep`` 10). A
window longer than a trace makes the trace one group, so with short answers (a few hundred tokens)
the online rule never stops a trace unless the window is made shorter.

Where this differs from the reference code (``facebookresearch/deepconf``): it stops traces from
the client, through the stream, instead of a logits processor inside vLLM; it checks consensus as
each trace of a wave finishes (the reference launches all traces at once and has no consensus
stop); a trace that states no answer never counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from graphs.compose import (
    RECURSION_LIMIT,
    QuestionInput,
    StrategyOutput,
    StrategyState,
    add_final,
    add_planner,
    add_worker,
    check_count,
    decided,
    finish,
    plan_proposals,
    proposals_issued,
    question_of,
    wave,
)
from nodes.budget import ledger_totals
from nodes.confidence import MEASURES, ConfidenceMeasure, keep_most_confident, percentile, trace_confidence
from nodes.context import RunContext, context_of
from nodes.endpoint import RETRY_POLICY
from nodes.errors import ConfigError
from nodes.kinds import PROPOSE, PROPOSE_STREAMED
from nodes.propose import StreamTask
from nodes.types import Candidate
from nodes.vote import VoteResult, plurality_vote, weighted_vote

__all__ = [
    "ConfidenceVoteResult",
    "build_deepconf_graph",
    "build_deepconf_online_graph",
    "check_deepconf",
    "confidence_vote",
    "deepconf_graph",
    "deepconf_online_graph",
    "online_threshold",
]


class ConfidenceVoteResult(VoteResult):
    confidences: dict[int, float | None]  # each sample's trace confidence (None: no logprobs)
    kept: list[int]  # the samples that voted
    fallback: bool  # True when no sample had a confidence and the vote was a plain plurality


def confidence_vote(
    candidates: Sequence[Candidate],
    *,
    measure: ConfidenceMeasure = "bottom10",
    keep: float = 10.0,
    window: int = 2048,
) -> ConfidenceVoteResult:
    """DeepConf's offline vote: among the samples that state an answer, keep the ``keep`` percent
    most confident (:func:`nodes.confidence.keep_most_confident`) and vote with their confidences
    as weights (ties: the first seen). Without any confidence, a plurality vote.

    Example:
        >>> cs = [{"index": i, "answer": a, "confidences": c} for i, (a, c) in
        ...       enumerate([("1", [9.0, 9.0]), ("2", [1.0, 2.0]), ("2", [1.5, 1.0])])]
        >>> r = confidence_vote(cs, measure="mean", keep=34); r["answer"], r["kept"]
        ('1', [0])
        >>> confidence_vote(cs, measure="mean", keep=100)["answer"]
        '1'
    """
    answered = [c for c in candidates if c["answer"] is not None]
    confidences = {c["index"]: trace_confidence(c.get("confidences") or [], measure, window=window) for c in candidates}
    scores = [confidences[c["index"]] for c in answered]
    if not any(s is not None for s in scores):
        return {**plurality_vote(candidates), "confidences": confidences, "kept": [], "fallback": True}
    chosen = [c for c, k in zip(answered, keep_most_confident(scores, keep), strict=True) if k]
    result = weighted_vote(chosen, {c["index"]: confidences[c["index"]] or 0.0 for c in chosen})
    return {**result, "confidences": confidences, "kept": sorted(c["index"] for c in chosen), "fallback": False}


def check_deepconf(measure: str = "bottom10", keep: float = 10.0, window: int = 2048, top_logprobs: int = 20) -> None:
    """Raise :class:`ConfigError` for options DeepConf cannot run with."""
    if measure not in MEASURES:
        raise ConfigError(f"unknown confidence measure {measure!r} ({', '.join(MEASURES)})")
    if not 0 < keep <= 100:
        raise ConfigError(f"keep is the percent of traces kept, in (0, 100], got {keep}")
    check_count(window, "window")
    if not 1 <= top_logprobs <= 20:
        raise ConfigError(f"top_logprobs is between 1 and 20, got {top_logprobs}")


def build_deepconf_graph(
    k: int = 16,
    *,
    measure: ConfidenceMeasure = "bottom10",
    keep: float = 10.0,
    window: int = 2048,
    top_logprobs: int = 20,
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[StrategyState, RunContext, QuestionInput, StrategyOutput]:
    """Build offline DeepConf: ``k`` samples with token logprobs, the ``keep`` percent most confident
    by ``measure`` vote, weighted by confidence (see the module docstring).

    Example:
        >>> graph = build_deepconf_graph(8, measure="tail", keep=90).compile()
    """
    check_count(k)
    check_deepconf(measure, keep, window, top_logprobs)

    async def plan(state: StrategyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        tasks, report = plan_proposals(state, context_of(runtime), k)
        extra = {"budget": report} if report else {}
        return (
            wave("propose", [{**t, "top_logprobs": top_logprobs} for t in tasks], **extra)
            if tasks
            else finish("vote", **extra)
        )

    async def vote(state: StrategyState) -> dict[str, Any]:
        result = confidence_vote(state.get("candidates") or [], measure=measure, keep=keep, window=window)
        return decided(state, result)

    builder = StateGraph(
        StrategyState, context_schema=RunContext, input_schema=QuestionInput, output_schema=StrategyOutput
    )
    add_worker(builder, PROPOSE, retry=retry)
    add_final(builder, "vote", vote)
    add_planner(builder, plan, ["propose"], "vote", first="propose")
    return builder


def deepconf_graph(k: int = 16, **options: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
    """``build_deepconf_graph(k, **options)`` compiled without a checkpointer."""
    return build_deepconf_graph(k, **options).compile(name=f"deepconf-k{k}")


def online_threshold(warmup: Sequence[Candidate], keep: float, window: int) -> float | None:
    """The online stopping threshold: the ``100 − keep`` percentile of the warm-up traces' lowest
    group confidences (linear, as ``numpy.percentile``); None without any confidence.

    Example:
        >>> ws = [{"confidences": [c]} for c in (1.0, 2.0, 3.0, 4.0, 5.0)]
        >>> online_threshold(ws, keep=90, window=4), online_threshold(ws, keep=10, window=4)
        (1.4, 4.6)
    """
    lowest = sorted(
        x for c in warmup if (x := trace_confidence(c.get("confidences") or [], "lowest", window=window)) is not None
    )
    return percentile(lowest, 100.0 - keep) if lowest else None


def _online_votes(
    candidates: Sequence[Candidate], warmup: int, threshold: float, window: int
) -> tuple[list[Candidate], dict[int, float]]:
    """The traces that vote online and their weights: warm-up traces at or above the threshold,
    later traces that finished (not stopped), each weighted by its lowest group confidence."""
    voters: list[Candidate] = []
    weights: dict[int, float] = {}
    for c in sorted(candidates, key=lambda c: c["index"]):
        weight = trace_confidence(c.get("confidences") or [], "lowest", window=window)
        if c["answer"] is None or weight is None:
            continue
        if (c["index"] < warmup and weight >= threshold) or (
            c["index"] >= warmup and c["finish_reason"] not in ("stopped", "cancelled")
        ):
            voters.append(c)
            weights[c["index"]] = weight
    return voters, weights


def build_deepconf_online_graph(
    k: int = 64,
    *,
    warmup: int | None = None,
    keep: float = 10.0,
    window: int = 2048,
    consensus: float = 0.95,
    wave_size: int = 4,
    top_logprobs: int = 20,
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[StrategyState, RunContext, QuestionInput, StrategyOutput]:
    """Build online DeepConf: ``warmup`` whole traces (default: 16, at most ``k``) set the threshold,
    then waves of ``wave_size`` streamed traces, each stopped when its confidence falls, until
    consensus ``consensus`` or ``k`` traces (see the module docstring).

    Example:
        >>> graph = build_deepconf_online_graph(16, warmup=4, window=64).compile()
    """
    check_count(k)
    warmup = min(16, k) if warmup is None else check_count(warmup, "warmup")
    check_count(wave_size, "wave_size")
    check_deepconf("lowest", keep, window, top_logprobs)
    if warmup > k:
        raise ConfigError(f"the warm-up ({warmup} traces) is more than the budget of {k} traces")
    if not 0.5 < consensus <= 1.0:
        raise ConfigError(f"consensus is a share above 0.5, got {consensus}")

    async def plan(state: StrategyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = context_of(runtime)
        candidates = state.get("candidates") or []
        drawn = proposals_issued(state)
        if drawn < warmup:
            tasks, report = plan_proposals(state, ctx, warmup)
            extra = {"budget": report} if report else {}
            return (
                wave("propose", [{**t, "top_logprobs": top_logprobs} for t in tasks], **extra)
                if tasks
                else finish("vote", **extra)
            )
        threshold = online_threshold([c for c in candidates if c["index"] < warmup], keep, window)
        if threshold is None or drawn >= k:
            return finish("vote")
        voters, weights = _online_votes(candidates, warmup, threshold, window)
        votes = weighted_vote(voters, weights)["votes"]
        total = sum(votes.values())
        if total > 0 and max(votes.values()) / total >= consensus:
            return finish("vote")
        tasks, report = plan_proposals(state, ctx, min(k, drawn + wave_size))
        if not tasks:
            return finish("vote", **({"budget": report} if report else {}))
        spent = ledger_totals(state.get("ledger"))
        stream: StreamTask = {
            "question": question_of(state), "first_index": tasks[0]["first_index"], "n": sum(t["n"] for t in tasks),
            "top_logprobs": top_logprobs, "threshold": threshold, "window": window, "consensus": consensus,
            "votes": votes, "prompt_tokens": spent["prompt_tokens"] // max(spent["requests"], 1),
        }  # fmt: skip
        return wave("propose_streamed", [stream])

    async def vote(state: StrategyState) -> dict[str, Any]:
        candidates = state.get("candidates") or []
        threshold = online_threshold([c for c in candidates if c["index"] < warmup], keep, window)
        if threshold is None:  # no confidences came back: a plain vote
            return decided(state, {**plurality_vote(candidates), "threshold": None, "fallback": True})
        voters, weights = _online_votes(candidates, warmup, threshold, window)
        result = weighted_vote(voters, weights)
        stopped = [c["index"] for c in candidates if c["finish_reason"] == "stopped"]
        cancelled = [c["index"] for c in candidates if c["finish_reason"] == "cancelled"]
        return decided(state, {**result, "threshold": threshold, "kept": sorted(weights), "stopped": stopped,
                               "cancelled": cancelled, "fallback": False})  # fmt: skip

    builder = StateGraph(
        StrategyState, context_schema=RunContext, input_schema=QuestionInput, output_schema=StrategyOutput
    )
    add_worker(builder, PROPOSE, retry=retry)
    add_worker(builder, PROPOSE_STREAMED, name="propose_streamed", retry=retry)
    add_final(builder, "vote", vote)
    add_planner(builder, plan, ["propose", "propose_streamed"], "vote", first="propose", max_rounds=k + 2)
    return builder


def deepconf_online_graph(k: int = 64, **options: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
    """``build_deepconf_online_graph(k, **options)`` compiled without a checkpointer."""
    graph = build_deepconf_online_graph(k, **options).compile(name=f"deepconf-online-k{k}")
    return graph.with_config(recursion_limit=RECURSION_LIMIT)
