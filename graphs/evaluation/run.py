"""Running an evaluation plan into its store, resumably, with a progress line.

Pooled strategies draw each question's pool once through the Vote graph and have every sample
judged by the node kinds the graphs use; other strategies run their graph per question and budget.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from typing import Any, TextIO

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy

from graphs.compose import RECURSION_LIMIT, StrategyState, add_worker
from graphs.evaluation.datasets import Dataset, Record
from graphs.evaluation.plan import FILTER_SCORER, EvalPlan, options_key, store_settings
from graphs.evaluation.store import EvalStore
from graphs.registry import get
from graphs.strategies.vote import build_vote_graph
from nodes.answers import equivalent, group_answers
from nodes.budget import ledger_totals
from nodes.context import RunContext
from nodes.endpoint import RETRY_POLICY
from nodes.errors import ConfigError, PermanentEndpointError
from nodes.kinds import VERIFY, NodeKind, scoring
from nodes.scorers import Scorer
from nodes.types import Candidate

__all__ = ["Progress", "draw_samples", "evaluate", "judge_graph", "judge_kinds", "judge_samples", "progress_total"]

# -- running ------------------------------------------------------------------------------------


class Progress:
    """One status line on stderr: tasks done, running accuracy, tokens and speed.

    On a terminal the line is redrawn in place; otherwise a line is printed at most every
    ``every`` seconds (and at the end), so CI logs stay short.
    """

    def __init__(self, total: int, stream: TextIO | None = None, every: float = 10.0) -> None:
        self.total, self.done, self.every = total, 0, every
        self.stream = stream or sys.stderr
        self.right = self.counted = 0
        self.tokens = 0
        self.started = self.last = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def add(self, *, tokens: int = 0, correct: bool | None = None) -> None:
        self.done += 1
        self.tokens += tokens
        if correct is not None:
            self.counted += 1
            self.right += int(correct)
        now = time.monotonic()
        if self.stream and (self.tty or now - self.last >= self.every or self.done == self.total):
            self.last = now
            self.stream.write(("\r" if self.tty else "") + self.line() + ("" if self.tty else "\n"))
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        width = 24
        filled = width * self.done // max(self.total, 1)
        acc = f"{self.right / self.counted:.3f}" if self.counted else "  -  "
        return (
            f"ttc eval [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} · acc {acc} "
            f"({self.counted} answered) · {self.tokens:,} tokens · {elapsed:,.0f} s"
        )

    def close(self) -> None:
        if self.stream and self.tty:
            self.stream.write("\n")
            self.stream.flush()


ENDPOINT_WIDE = (401, 403, 404)
"""Statuses that say the endpoint itself is wrong (key, model, URL): every question would fail alike."""


async def draw_samples(store: EvalStore, record: Record, m: int, dataset: Dataset, ctx: RunContext) -> int:
    """Draw samples of ``record`` through the Vote graph until the store holds ``m`` (seeds
    continue where the store stopped: sample ``i`` of a run starting at ``n`` has seed
    ``ctx.seed + n + ...``), each question's new samples in one transaction; returns the tokens spent.
    A run with failed samples keeps the prefix it got and tries once more for the rest."""
    have = store.sample_count(record.qid)
    tokens = 0
    for _ in range(2):  # a run with failed samples keeps the prefix it got; one more try for the rest
        if have >= m:
            break
        run_ctx = dataclasses.replace(ctx, seed=ctx.seed + have)
        out = (
            await build_vote_graph(m - have)
            .compile()
            .ainvoke({"question": record.question, "question_id": record.qid}, context=run_ctx)
        )
        got = sorted(out["candidates"], key=lambda c: c["index"])
        contiguous = next((i for i, c in enumerate(got) if c["index"] != i), len(got))
        endpoint_wide = [f for f in out.get("failures") or [] if f["status"] in ENDPOINT_WIDE]
        if not got and endpoint_wide:  # wrong key, model or URL: every other question would fail the same way
            raise PermanentEndpointError(endpoint_wide[0]["message"], status=endpoint_wide[0]["status"])
        t = ledger_totals(out["ledger"])
        tokens += t["prompt_tokens"] + t["completion_tokens"]
        if not contiguous:
            continue
        kept = [(c, await _correct(record, c, dataset, ctx)) for c in got[:contiguous]]
        failed_requests = sum(1 for f in out.get("failures") or [] if f["node"] == "propose")
        store.store_samples(record.qid, have, kept, out["ledger"], failed_requests)
        have += contiguous
    return tokens


async def _correct(record: Record, sample: Candidate, dataset: Dataset, ctx: RunContext) -> bool:
    """A sample is right when its stated answer (read in the run's format) is; code when it passes."""
    if dataset.answer_format == "auto" and "tests" in record.info:
        return await dataset.check(record, sample["text"], ctx)
    return dataset.check_answer(record, sample["answer"])


class _JudgeState(StrategyState, total=False):
    candidate: Candidate


def judge_graph(kind: NodeKind[Any], retry: RetryPolicy) -> CompiledStateGraph[Any, Any, Any, Any]:
    """One call of a judging node kind as the strategy graphs make it: the same node, retry policy
    and failure handler (a graph of one node, so pooled and direct judgements agree call for call)."""
    builder = StateGraph(_JudgeState, context_schema=RunContext)
    add_worker(builder, kind, retry=retry, then=END)
    builder.add_edge(START, kind.name)
    builder.add_edge(kind.name, END)
    return builder.compile(name=f"judge-{kind.name}")


def judge_kinds(scorers: dict[str, Scorer]) -> dict[str, NodeKind[Any]]:
    """The node kind judging for each scorer key: the filter judge is the graphs' ``verify``."""
    return {name: VERIFY if name == FILTER_SCORER else scoring(scorer) for name, scorer in scorers.items()}


async def judge_samples(
    store: EvalStore,
    record: Record,
    samples: list[dict[str, Any]],
    graphs: dict[str, CompiledStateGraph[Any, Any, Any, Any]],
    ctx: RunContext,
) -> int:
    """Judge every one of the question's ``samples`` that a judge has not judged yet."""
    tokens = 0

    async def one(name: str, graph: CompiledStateGraph[Any, Any, Any, Any], sample: dict[str, Any]) -> None:
        nonlocal tokens
        keys = ("index", "text", "answer", "finish_reason", "seed")
        candidate: Candidate = {**{key: sample[key] for key in keys}, "parent": None}  # type: ignore[typeddict-item]
        out = await graph.ainvoke({"question": record.question, "candidate": candidate}, context=ctx)
        failed = out.get("failures") or []
        if failed and failed[0]["transient"]:  # still failing after the retries: left for a resume to judge again
            return
        t = ledger_totals(out.get("ledger"))
        tokens += t["prompt_tokens"] + t["completion_tokens"]
        error = failed[0]["error"] if failed else None
        if out.get("verdicts"):  # the filter judge
            v = out["verdicts"][0]
            value = {"correct": 1.0, "wrong": 0.0}.get(v["verdict"])
            steps: list[float | None] = [] if error else [value]
            store.store_judgement(record.qid, sample["index"], name, steps, value, v["verdict"], v["text"] or None,
                                  error, out.get("ledger") or {})  # fmt: skip
        else:
            s = out["scores"][0]  # the steps are stored too: results aggregate them as asked
            store.store_judgement(record.qid, sample["index"], name, s["steps"], s["score"], s["label"],
                                  s.get("text"), error, out.get("ledger") or {})  # fmt: skip

    jobs = []
    for name, graph in graphs.items():
        done = store.judged(record.qid, name)
        jobs += [one(name, graph, s) for s in samples if s["index"] not in done]
    await asyncio.gather(*jobs)
    return tokens


async def _run_direct(
    store: EvalStore, record: Record, strategy: str, budget: int, plan: EvalPlan, dataset: Dataset, ctx: RunContext
) -> dict[str, Any]:
    options = plan.run_options(strategy, budget)
    graph = get(strategy).build(budget, **options).compile(name=f"{strategy}-{budget}")
    out: dict[str, Any] = await graph.ainvoke(
        {"question": record.question, "question_id": record.qid}, {"recursion_limit": RECURSION_LIMIT}, context=ctx
    )
    if any(f.get("transient") for f in out.get("failures") or []):
        # the endpoint failed (unreachable, overloaded) after the retries, not the strategy: as for a
        # judge call, nothing is stored, and a resume runs it again
        return {"correct": None, "tokens": ledger_totals(out.get("ledger")), "deferred": True}
    correct = dataset.check_answer(record, out.get("answer"))
    store.store_run(strategy, budget, options_key(options), record.qid, out, correct)
    return {"correct": correct, "tokens": ledger_totals(out.get("ledger")), "deferred": False}


async def evaluate(
    store: EvalStore,
    dataset: Dataset,
    plan: EvalPlan,
    ctx: RunContext,
    *,
    concurrency: int = 4,
    progress: Progress | None = None,
) -> int:
    """Run ``plan`` over ``dataset`` into ``store``, skipping whatever the store already holds.

    Questions run ``concurrency`` at a time (the endpoint's own limit bounds the requests in
    flight). Interrupt it at any point and call it again: it ends with the same rows as an
    uninterrupted run. A direct run that met a transient endpoint failure after its retries is
    not stored (the endpoint failed, not the strategy); the count of those is returned, and
    calling it again runs them.
    """
    plan.check_dataset(dataset)
    if concurrency < 1:
        raise ConfigError("concurrency must be positive")
    plan = plan.for_store(store)
    if plan.top_logprobs != ctx.top_logprobs:
        ctx = dataclasses.replace(ctx, top_logprobs=plan.top_logprobs)
    store.check_settings(store_settings(dataset, ctx.llm.endpoint.model, ctx))
    store.add_questions(dataset.records)
    judges = {name: judge_graph(kind, RETRY_POLICY) for name, kind in judge_kinds(plan.scorers()).items()}
    limit = asyncio.Semaphore(concurrency)

    deferred = 0

    async def question(record: Record) -> None:
        nonlocal deferred
        async with limit:
            if plan.pool_size:
                tokens = await draw_samples(store, record, plan.pool_size, dataset, ctx)
                samples = store.samples(record.qid)[: plan.scored_size]  # the held-out probe is not judged
                tokens += await judge_samples(store, record, samples, judges, ctx)
                if progress:
                    progress.add(tokens=tokens, correct=_plurality_correct(samples, record) if samples else None)
            for strategy in plan.direct:
                for budget in plan.budgets_of(strategy):
                    if store.has_run(strategy, budget, options_key(plan.run_options(strategy, budget)), record.qid):
                        if progress:
                            progress.add()
                        continue
                    done = await _run_direct(store, record, strategy, budget, plan, dataset, ctx)
                    deferred += done["deferred"]
                    if progress:
                        t = done["tokens"]
                        progress.add(tokens=t["prompt_tokens"] + t["completion_tokens"], correct=done["correct"])

    try:
        await asyncio.gather(*(question(r) for r in dataset.records))
    finally:
        if progress:
            progress.close()
    return deferred


def _plurality_correct(samples: list[dict[str, Any]], record: Record) -> bool | None:
    """Whether the whole pool's plurality answer is right (for the progress line)."""
    groups = group_answers([s["answer"] for s in samples])
    if not groups:
        return False if samples else None
    best = max(groups, key=lambda g: len(g.members))
    return equivalent(best.answer, record.answer)


def progress_total(dataset: Dataset, plan: EvalPlan) -> int:
    """How many progress steps ``plan`` has on ``dataset`` (a question's pool is one, each direct run one)."""

    return len(dataset.records) * ((1 if plan.pooled else 0) + sum(len(plan.budgets_of(s)) for s in plan.direct))
