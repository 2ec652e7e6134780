"""The evaluation harness behind ``ttc eval``: strategies over a data set at a grid of budgets.

Every sample, verdict, score and token count goes into an SQLite store as soon as it exists,
so an interrupted evaluation resumes where it stopped when the same command runs again: a
question's samples are written in one transaction, each judgement and each strategy run in its
own, and primary keys make a duplicate row impossible.

Strategies come in two kinds.

- **Pooled** (``vote``, ``filter-vote``, ``best-of-n``, ``weighted-best-of-n``, and ``pass@k``
  as an oracle): as in search-and-learn, each question is sampled *once* with ``M`` = the
  largest budget, through the Vote graph, and every sample is judged once by each scorer the
  strategies need. Accuracy at every budget ``k <= M`` is then the expectation over all
  ``k``-subsets of the pool: exact for Vote, Filter-Vote and pass@k (:mod:`graphs.scaling`),
  by enumeration of the subsets (or a fixed-seed sample of them when there are too many) for
  the Best-of-N family, whose choice is made by the same functions the graphs use. The cost of
  a budget is the expected cost of its subset: calls, and tokens from the servers' usage.
- **Direct** (the searches, ``revision`` and ``mix``): one graph run per question and budget.

:func:`results` turns a store into per-question and per-configuration results, with bootstrap
confidence intervals over questions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import json
import math
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from graphs import STRATEGIES
from graphs._sqlite import SqliteFile
from graphs.datasets import Dataset, Record
from graphs.pool import QuestionPool, bootstrap_band, pool_curves
from graphs.scaling import pass_at_k
from graphs.vote import build_vote_graph
from nodes._calls import error_line
from nodes.answers import equivalent, group_answers
from nodes.budget import Ledger, ledger_totals
from nodes.context import RunContext
from nodes.endpoint import RETRY_POLICY, is_transient
from nodes.errors import ConfigError, PermanentEndpointError
from nodes.propose import ANSWER_INSTRUCTIONS, PROPOSE_PROMPT
from nodes.scorers import GRADE_PROMPT, STEP_PROMPT, Aggregation, JudgeVerdict, Scorer, aggregate
from nodes.types import Candidate, Score
from nodes.verify import filter_prompt

__all__ = [
    "DIRECT",
    "POOLED",
    "EvalPlan",
    "EvalStore",
    "Results",
    "evaluate",
    "pending",
    "results",
    "store_settings",
]

POOLED = ("vote", "filter-vote", "best-of-n", "weighted-best-of-n", "pass@k")
"""Strategies computed from one pool of samples per question (``pass@k`` is an oracle: it
counts a question solved when any of ``k`` samples is right)."""
DIRECT = ("beam-search", "lookahead", "dvts", "rebase", "revision", "mix")
"""Strategies run as one graph per question and budget."""
CODE_STRATEGIES = ("best-of-n", "pass@k")  # code has no answer to vote on

_SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    qid TEXT PRIMARY KEY, position INTEGER NOT NULL, question TEXT NOT NULL, reference TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS samples (
    qid TEXT NOT NULL, idx INTEGER NOT NULL, text TEXT NOT NULL, answer TEXT, finish_reason TEXT,
    seed INTEGER, correct INTEGER NOT NULL, PRIMARY KEY (qid, idx)
);
CREATE TABLE IF NOT EXISTS sample_usage (
    qid TEXT NOT NULL, first_idx INTEGER NOT NULL, requests INTEGER NOT NULL, calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, PRIMARY KEY (qid, first_idx)
);
CREATE TABLE IF NOT EXISTS judgements (
    qid TEXT NOT NULL, idx INTEGER NOT NULL, scorer TEXT NOT NULL, score REAL, steps TEXT NOT NULL,
    label TEXT, text TEXT, error TEXT, requests INTEGER NOT NULL, calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, PRIMARY KEY (qid, idx, scorer)
);
CREATE TABLE IF NOT EXISTS runs (
    strategy TEXT NOT NULL, budget INTEGER NOT NULL, options TEXT NOT NULL, qid TEXT NOT NULL, answer TEXT,
    correct INTEGER NOT NULL, requests INTEGER NOT NULL, calls INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, output TEXT NOT NULL, PRIMARY KEY (strategy, budget, options, qid)
);
"""


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def prompts_fingerprint() -> str:
    """A hash of the propose prompt, so a store never mixes samples asked for with other wording."""
    return _hash(PROPOSE_PROMPT + json.dumps(ANSWER_INSTRUCTIONS, sort_keys=True))


SCORER_PROMPTS = {"judge-verdict": filter_prompt("{question}", "{answer}"), "judge-grade": GRADE_PROMPT,
                  "self-eval-prm": STEP_PROMPT}  # fmt: skip


def scorer_key(scorer: Scorer) -> str:
    """How a scorer's judgements are filed: its name and a hash of its prompt (or, for a reward
    model, of its settings: server, model, step tag), so a reworded or different judge judges
    again (into its own rows) while the samples and the other judges' rows stay valid."""
    prompt = SCORER_PROMPTS.get(scorer.name)
    if prompt is None:
        fields: dict[str, Any] = (
            {f.name: getattr(scorer, f.name) for f in dataclasses.fields(scorer)}
            if dataclasses.is_dataclass(scorer)
            else {}
        )
        prompt = json.dumps({k: v for k, v in fields.items() if k not in ("api_key", "transport")}, default=repr,
                            sort_keys=True)  # fmt: skip
    return f"{scorer.name}#{_hash(prompt)}"


def options_key(options: dict[str, Any]) -> str:
    """A direct run's builder options as stored with it (scorers by :func:`scorer_key`), so a run
    with other options is a different run."""
    described = {k: scorer_key(v) if k == "scorer" else v for k, v in sorted(options.items())}
    return json.dumps(described, default=repr, sort_keys=True)


def direct_options(strategy: str, budget: int, options: dict[str, Any]) -> dict[str, Any]:
    """A direct strategy's builder options at a budget: a budget below the beam width searches
    with width = budget, and ``mix`` has about ``sqrt(budget)`` chains unless told otherwise.
    The evaluation and the router both use this, so a route runs what was evaluated."""
    out = dict(options)
    if strategy == "mix":
        out.setdefault("chains", max(1, round(math.sqrt(budget))))
    if "beam_width" in out:
        out["beam_width"] = min(out["beam_width"], budget)
    return out


FILTER_SCORER = scorer_key(JudgeVerdict())  # Filter-Vote keeps the samples this judge calls correct


class EvalStore(SqliteFile):
    """The SQLite file of one evaluation: its settings, questions and every call's result.

    Example:
        >>> store = EvalStore(":memory:")
        >>> store.check_settings({"model": "m"})
        >>> store.check_settings({"model": "other"})
        Traceback (most recent call last):
        ...
        nodes.errors.ConfigError: store :memory: was made with model="m", not "other": use another --out
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, _SCHEMA)

    # -- settings and questions ----------------------------------------------------------------

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Record the settings on first use; refuse a later run with different ones."""
        if conflict := self._settings_conflict(settings):
            key, stored, given = conflict
            raise ConfigError(f"store {self.path} was made with {key}={stored}, not {given}: use another --out")

    def settings(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM settings")}

    def add_questions(self, records: Sequence[Record]) -> None:
        with self._db:
            for position, r in enumerate(records):
                row = self._db.execute("SELECT question, reference FROM questions WHERE qid = ?", (r.qid,)).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT OR IGNORE INTO questions VALUES (?, ?, ?, ?, ?)",
                        (r.qid, position, r.question, r.answer, json.dumps(r.info)),
                    )
                elif row != (r.question, r.answer):
                    raise ConfigError(f"store {self.path}: question {r.qid!r} is stored with another text or answer")

    def records(self) -> list[Record]:
        rows = self._db.execute("SELECT qid, question, reference, info FROM questions ORDER BY position, qid")
        return [Record(qid, q, ref, json.loads(info)) for qid, q, ref, info in rows]

    # -- samples -----------------------------------------------------------------------------

    def sample_count(self, qid: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM samples WHERE qid = ?", (qid,)).fetchone()[0])

    def samples(self, qid: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT idx, text, answer, finish_reason, seed, correct FROM samples WHERE qid = ? ORDER BY idx", (qid,)
        )
        keys = ("index", "text", "answer", "finish_reason", "seed", "correct")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def store_samples(
        self, qid: str, first: int, samples: Sequence[tuple[Candidate, bool]], usage: Ledger, failed_requests: int = 0
    ) -> None:
        """One propose run's samples (numbered from ``first``) and its usage, in one transaction;
        ``requests`` counts the requests that returned (a failed one carries no tokens)."""
        total = ledger_totals(usage)
        total["requests"] -= failed_requests
        with self._db:
            for c, correct in samples:
                self._db.execute(
                    "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (qid, first + c["index"], c["text"], c["answer"], c["finish_reason"], c["seed"], int(correct)),
                )
            self._db.execute(
                "INSERT OR IGNORE INTO sample_usage VALUES (?, ?, ?, ?, ?, ?)",
                (qid, first, total["requests"], total["calls"], total["prompt_tokens"], total["completion_tokens"]),
            )

    # -- judgements --------------------------------------------------------------------------

    def judged(self, qid: str, scorer: str) -> set[int]:
        rows = self._db.execute("SELECT idx FROM judgements WHERE qid = ? AND scorer = ?", (qid, scorer))
        return {r[0] for r in rows}

    def store_judgement(
        self, qid: str, idx: int, scorer: str, steps: list[float | None], score: float | None,
        label: str | None, text: str | None, error: str | None, usage: Ledger,
    ) -> None:  # fmt: skip
        t = ledger_totals(usage)
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO judgements (qid, idx, scorer, score, steps, label, text, error, requests, calls,"
                " prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (qid, idx, scorer, score, json.dumps(steps), label, text, error, t["requests"], t["calls"],
                 t["prompt_tokens"], t["completion_tokens"]),
            )  # fmt: skip

    def judgements(self, qid: str, scorer: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT idx, score, steps, label, calls, prompt_tokens, completion_tokens FROM judgements"
            " WHERE qid = ? AND scorer = ? ORDER BY idx",
            (qid, scorer),
        )
        keys = ("index", "score", "steps", "label", "calls", "prompt_tokens", "completion_tokens")
        return [{**dict(zip(keys, row, strict=True)), "steps": json.loads(row[2])} for row in rows]

    # -- direct runs -------------------------------------------------------------------------

    def has_run(self, strategy: str, budget: int, options: str, qid: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM runs WHERE strategy = ? AND budget = ? AND options = ? AND qid = ?",
            (strategy, budget, options, qid),
        ).fetchone()
        return row is not None

    def store_run(self, strategy: str, budget: int, options: str, qid: str, out: dict[str, Any], correct: bool) -> None:
        t = ledger_totals(out.get("ledger"))
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO runs (strategy, budget, options, qid, answer, correct, requests, calls,"
                " prompt_tokens, completion_tokens, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (strategy, budget, options, qid, out.get("answer"), int(correct), t["requests"], t["calls"],
                 t["prompt_tokens"], t["completion_tokens"], json.dumps(out, default=str)),
            )  # fmt: skip

    def runs(self, strategy: str, budget: int, options: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT qid, answer, correct, calls, prompt_tokens, completion_tokens FROM runs"
            " WHERE strategy = ? AND budget = ? AND options = ?",
            (strategy, budget, options),
        )
        keys = ("qid", "answer", "correct", "calls", "prompt_tokens", "completion_tokens")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def usage(self, qid: str) -> dict[str, int]:
        row = self._db.execute(
            "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(calls), 0), COALESCE(SUM(prompt_tokens), 0),"
            " COALESCE(SUM(completion_tokens), 0) FROM sample_usage WHERE qid = ?",
            (qid,),
        ).fetchone()
        return dict(zip(("requests", "calls", "prompt_tokens", "completion_tokens"), row, strict=True))

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, sorted (to compare two stores)."""
        tables = ("settings", "questions", "samples", "sample_usage", "judgements", "runs")
        return {t: sorted(self._db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalPlan:
    """What to evaluate.

    Attributes:
        strategies: names from :data:`POOLED` and :data:`DIRECT`.
        budgets: samples per question (``k`` or ``n`` of each strategy), e.g. ``(1, 2, 4, 8)``.
        scorer: the verifier of the Best-of-N family and of the direct strategies that use one.
        aggregation: how a process scorer's step scores become one.
        options: structural keyword arguments of the direct strategies' builders, by strategy.
        subsets: the most subsets enumerated per budget for Best-of-N; beyond it, that many are
            drawn with a fixed seed.
    """

    strategies: tuple[str, ...]
    budgets: tuple[int, ...]
    scorer: Scorer | None = None
    aggregation: Aggregation = "last"
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    subsets: int = 2000

    def __post_init__(self) -> None:
        if not self.strategies:
            raise ConfigError("no strategies to evaluate")
        unknown = [s for s in self.strategies if s not in POOLED + DIRECT]
        if unknown:
            raise ConfigError(f"unknown strategies {unknown} (known: {', '.join(POOLED + DIRECT)})")
        if len(set(self.strategies)) != len(self.strategies):
            raise ConfigError("a strategy is listed twice")
        if not self.budgets or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.budgets):
            raise ConfigError(f"budgets must be positive integers, got {list(self.budgets)}")
        if len(set(self.budgets)) != len(self.budgets):
            raise ConfigError("a budget is listed twice")
        if self.aggregation not in ("last", "min", "prod", "mean"):
            raise ConfigError(f"unknown aggregation {self.aggregation!r} (last, min, prod, mean)")
        if self.needs_scorer and self.scorer is None:
            raise ConfigError("best-of-n and weighted-best-of-n need a scorer")
        if self.subsets < 1:
            raise ConfigError("subsets must be positive")

    @property
    def pooled(self) -> list[str]:
        return [s for s in self.strategies if s in POOLED]

    @property
    def direct(self) -> list[str]:
        return [s for s in self.strategies if s in DIRECT]

    @property
    def pool_size(self) -> int:
        """Samples per question in the pool: the largest budget (0 without pooled strategies)."""
        return max(self.budgets) if self.pooled else 0

    @property
    def needs_scorer(self) -> bool:
        return any(s in ("best-of-n", "weighted-best-of-n") for s in self.strategies)

    def scorers(self) -> dict[str, Scorer]:
        """The scorers every pooled sample is judged by, by name."""
        out: dict[str, Scorer] = {}
        if "filter-vote" in self.strategies:
            out[FILTER_SCORER] = JudgeVerdict()
        if self.needs_scorer and self.scorer is not None:
            out[scorer_key(self.scorer)] = self.scorer
        return out

    def run_options(self, strategy: str, budget: int) -> dict[str, Any]:
        """The builder options of a strategy at a budget (what its graph is built with)."""
        if strategy in ("vote", "filter-vote", "pass@k"):
            return {}
        options = dict(self.options.get(strategy, {}))
        if self.scorer is not None:
            options.setdefault("scorer", self.scorer)
        if strategy in ("best-of-n", "weighted-best-of-n"):
            options.setdefault("aggregation", self.aggregation)
        return direct_options(strategy, budget, options)

    def check_dataset(self, dataset: Dataset) -> None:
        """Whether the plan can run on ``dataset`` (checked before any call is made)."""
        if dataset.answer_format == "auto" and any(s not in CODE_STRATEGIES for s in self.strategies):
            raise ConfigError(f"{dataset.name} is code: ttc eval runs only {', '.join(CODE_STRATEGIES)} on it")
        for strategy in self.direct:
            chains = self.options.get(strategy, {}).get("chains")
            if chains and chains > min(self.budgets):
                raise ConfigError(f"{strategy}: {chains} chains exceed the budget {min(self.budgets)}")


def store_settings(dataset: Dataset, model: str, sampling: Any) -> dict[str, Any]:
    """What a store's samples depend on: the data set, the model, the sampling settings (read
    from ``sampling``, a :class:`RunContext` or anything with its attributes) and the prompts.
    Budgets and strategies may grow between runs of one store; these may not change."""
    keys = ("temperature", "max_tokens", "judge_temperature", "judge_max_tokens", "seed", "answer_format")
    return {"dataset": dataset.name, "model": model, **{k: getattr(sampling, k) for k in keys},
            "prompts": prompts_fingerprint()}  # fmt: skip


def pending(store: EvalStore, dataset: Dataset, plan: EvalPlan) -> int:
    """How many (question, stage) tasks of ``plan`` the store does not hold yet."""
    m, scorers, left = plan.pool_size, plan.scorers(), 0
    for r in dataset.records:
        if m and (
            store.sample_count(r.qid) < m or any(len([i for i in store.judged(r.qid, s) if i < m]) < m for s in scorers)
        ):
            left += 1
        left += sum(
            not store.has_run(s, b, options_key(plan.run_options(s, b)), r.qid)
            for s in plan.direct
            for b in plan.budgets
        )
    return left


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


def _retrying() -> AsyncRetrying:
    """Transient endpoint errors are retried as the graphs' retry policy does; others are not."""
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(RETRY_POLICY.max_attempts),
        wait=wait_exponential_jitter(multiplier=RETRY_POLICY.initial_interval, max=RETRY_POLICY.max_interval),
        reraise=True,
    )


_ENDPOINT_WIDE = re.compile(r"answered HTTP (401|403|404)\b")


async def _sample(store: EvalStore, record: Record, m: int, dataset: Dataset, ctx: RunContext) -> int:
    """Draw samples until the question has ``m`` (seeds continue where the store stopped);
    returns the tokens spent."""
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
        endpoint_wide = [f["error"] for f in out.get("failures") or [] if _ENDPOINT_WIDE.search(f["error"])]
        if not got and endpoint_wide:  # wrong key, model or URL: every other question would fail the same way
            raise PermanentEndpointError(endpoint_wide[0].split(": ", 2)[-1])
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


async def _judge_all(
    store: EvalStore, record: Record, samples: list[dict[str, Any]], scorers: dict[str, Scorer], ctx: RunContext
) -> int:
    """Judge every one of the question's ``samples`` that a scorer has not judged yet."""
    tokens = 0
    failures: list[str] = []

    async def one(name: str, scorer: Scorer, sample: dict[str, Any]) -> None:
        nonlocal tokens
        try:
            async for attempt in _retrying():
                with attempt:
                    scored = await scorer.score(record.question, sample["text"], ctx)
        except Exception as exc:
            if is_transient(exc):  # still failing after the retries: left for a resume to judge again
                failures.append(error_line(exc))
                return
            # recorded as the graphs record a failed judge call: it weighs nothing
            store.store_judgement(record.qid, sample["index"], name, [], None, "error", None, error_line(exc), {})
            return
        t = ledger_totals(scored.usage)
        tokens += t["prompt_tokens"] + t["completion_tokens"]
        value = aggregate(scored.steps, "last")  # the steps are stored too: results aggregate them as asked
        store.store_judgement(
            record.qid, sample["index"], name, scored.steps, value, scored.label, scored.text, None, scored.usage
        )

    jobs = []
    for name, scorer in scorers.items():
        done = store.judged(record.qid, name)
        jobs += [one(name, scorer, s) for s in samples if s["index"] not in done]
    await asyncio.gather(*jobs)
    return tokens


async def _run_direct(
    store: EvalStore, record: Record, strategy: str, budget: int, plan: EvalPlan, dataset: Dataset, ctx: RunContext
) -> dict[str, Any]:
    options = plan.run_options(strategy, budget)
    graph = STRATEGIES[strategy](budget, **options).compile(name=f"{strategy}-{budget}")
    out: dict[str, Any] = await graph.ainvoke({"question": record.question, "question_id": record.qid}, context=ctx)
    correct = dataset.check_answer(record, out.get("answer"))
    store.store_run(strategy, budget, options_key(options), record.qid, out, correct)
    return {"correct": correct, "tokens": ledger_totals(out.get("ledger"))}


async def evaluate(
    store: EvalStore,
    dataset: Dataset,
    plan: EvalPlan,
    ctx: RunContext,
    *,
    concurrency: int = 4,
    progress: Progress | None = None,
) -> None:
    """Run ``plan`` over ``dataset`` into ``store``, skipping whatever the store already holds.

    Questions run ``concurrency`` at a time (the endpoint's own limit bounds the requests in
    flight). Interrupt it at any point and call it again: it ends with the same rows as an
    uninterrupted run.
    """
    plan.check_dataset(dataset)
    if concurrency < 1:
        raise ConfigError("concurrency must be positive")
    store.check_settings(store_settings(dataset, ctx.llm.endpoint.model, ctx))
    store.add_questions(dataset.records)
    scorers = plan.scorers()
    limit = asyncio.Semaphore(concurrency)

    async def question(record: Record) -> None:
        async with limit:
            if plan.pool_size:
                tokens = await _sample(store, record, plan.pool_size, dataset, ctx)
                samples = store.samples(record.qid)
                tokens += await _judge_all(store, record, samples, scorers, ctx)
                if progress:
                    progress.add(tokens=tokens, correct=_plurality_correct(samples, record) if samples else None)
            for strategy in plan.direct:
                for budget in plan.budgets:
                    if store.has_run(strategy, budget, options_key(plan.run_options(strategy, budget)), record.qid):
                        if progress:
                            progress.add()
                        continue
                    done = await _run_direct(store, record, strategy, budget, plan, dataset, ctx)
                    if progress:
                        t = done["tokens"]
                        progress.add(tokens=t["prompt_tokens"] + t["completion_tokens"], correct=done["correct"])

    try:
        await asyncio.gather(*(question(r) for r in dataset.records))
    finally:
        if progress:
            progress.close()


def _plurality_correct(samples: list[dict[str, Any]], record: Record) -> bool | None:
    """Whether the whole pool's plurality answer is right (for the progress line)."""
    groups = group_answers([s["answer"] for s in samples])
    if not groups:
        return False if samples else None
    best = max(groups, key=lambda g: len(g.members))
    return equivalent(best.answer, record.answer)


def progress_total(dataset: Dataset, plan: EvalPlan) -> int:
    return len(dataset.records) * ((1 if plan.pooled else 0) + len(plan.direct) * len(plan.budgets))


# -- results ------------------------------------------------------------------------------------


@dataclass
class Results:
    """Per-question and per-configuration results of a store.

    ``per_question`` rows: ``qid, strategy, budget, accuracy, calls, tokens, method``;
    ``table`` rows add ``accuracy_low, accuracy_high`` (95% bootstrap over questions) and
    ``questions``. ``probe`` holds each question's first samples' answers (for difficulty).
    """

    dataset: str
    model: str
    questions: list[str]
    per_question: list[dict[str, Any]]
    table: list[dict[str, Any]]
    incomplete: list[str]  # questions left out of the pooled results (fewer samples than the pool size)
    pools: dict[str, QuestionPool]
    answer_format: str | None = None

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
    (:func:`graphs.best_of_n.select_best`, :func:`~graphs.best_of_n.select_weighted`): the
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


def results(store: EvalStore, plan: EvalPlan, records: Sequence[Record] | None = None, *, max_n: int = 64) -> Results:
    """Results of every configuration of ``plan`` on ``records`` (default: every question in the store).

    Pooled costs are expectations over subsets: a budget ``k`` costs its share of the proposal
    requests (prompt tokens per request × ``ceil(k / max_n)`` requests, plus ``k`` samples'
    completion tokens) plus ``k`` samples' judgements.
    """
    settings = store.settings()
    records = list(records) if records is not None else store.records()
    per_question: list[dict[str, Any]] = []
    incomplete: list[str] = []
    pools: dict[str, QuestionPool] = {}
    m = plan.pool_size
    ks = sorted(b for b in plan.budgets if b <= m)
    scorers = plan.scorers()
    for record in records if m else []:
        code = "tests" in record.info
        samples = store.samples(record.qid)[:m]
        judgements = {name: [j for j in store.judgements(record.qid, name) if j["index"] < m] for name in scorers}
        if [x["index"] for x in samples] != list(range(m)) or any(
            [j["index"] for j in js] != list(range(m)) for js in judgements.values()
        ):
            incomplete.append(record.qid)
            continue
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
        correct = [bool(s["correct"]) for s in samples]
        for j, k in enumerate(ks):
            for strategy in plan.pooled:
                judged = {"filter-vote": FILTER_SCORER}.get(strategy)
                if strategy == "pass@k":
                    accuracy = pass_at_k(m, sum(correct), k)
                elif strategy in ("vote", "filter-vote"):
                    assert curves is not None
                    accuracy = float((curves.vote if strategy == "vote" else curves.filter_vote)[0, j])
                else:
                    assert plan.scorer is not None
                    judged = scorer_key(plan.scorer)
                    scores: list[Score] = [
                        {"index": s["index"], "steps": js["steps"], "label": js["label"],
                         "score": aggregate(js["steps"], plan.aggregation) if js["steps"] else None}
                        for s, js in zip(samples, judgements[judged], strict=True)
                    ]  # fmt: skip
                    accuracy = subset_selection_accuracy(
                        candidates, scores, correct, k, weighted=strategy == "weighted-best-of-n",
                        reference=None if code else record.answer, limit=plan.subsets, seed=f"{record.qid}-{k}",
                    )  # fmt: skip
                calls = k * (1 + (judge_calls[judged] if judged else 0.0))
                tokens = prompt_per_request * math.ceil(k / max_n) + completion_per_sample * k
                tokens += k * judge_tokens[judged] if judged else 0.0
                per_question.append({"qid": record.qid, "strategy": strategy, "budget": k, "accuracy": accuracy,
                                     "calls": calls, "tokens": tokens, "method": "pool"})  # fmt: skip
    wanted = {r.qid for r in records}
    for strategy in plan.direct:
        for budget in plan.budgets:
            for run in store.runs(strategy, budget, options_key(plan.run_options(strategy, budget))):
                if run["qid"] in wanted:
                    per_question.append({"qid": run["qid"], "strategy": strategy, "budget": budget,
                                         "accuracy": float(run["correct"]), "calls": float(run["calls"]),
                                         "tokens": float(run["prompt_tokens"] + run["completion_tokens"]),
                                         "method": "direct"})  # fmt: skip
    return Results(
        dataset=str(settings.get("dataset", "")),
        model=str(settings.get("model", "")),
        questions=[r.qid for r in records],
        per_question=per_question,
        table=_table(per_question, plan),
        incomplete=incomplete,
        pools=pools,
        answer_format=settings.get("answer_format"),
    )


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


def write_outputs(res: Results, out: Path) -> dict[str, Path]:
    """``results.csv``, ``results.json``, ``per_question.csv`` and the two plots (with matplotlib)."""
    import csv

    out.mkdir(parents=True, exist_ok=True)
    paths = {"results.csv": out / "results.csv", "results.json": out / "results.json",
             "per_question.csv": out / "per_question.csv"}  # fmt: skip
    columns = ["strategy", "budget", "questions", "accuracy", "accuracy_low", "accuracy_high", "calls", "tokens",
               "method"]  # fmt: skip
    with paths["results.csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(res.table)
    with paths["per_question.csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["qid", "strategy", "budget", "accuracy", "calls", "tokens", "method"])
        writer.writeheader()
        writer.writerows(res.per_question)
    paths["results.json"].write_text(json.dumps(
        {"dataset": res.dataset, "model": res.model, "questions": len(res.questions), "incomplete": res.incomplete,
         "results": res.table}, indent=2))  # fmt: skip
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        return paths
    for axis, label in (("calls", "LLM calls per question"), ("tokens", "tokens per question")):
        paths[f"accuracy_vs_{axis}.png"] = plot_results(res, axis, label, out / f"accuracy_vs_{axis}.png")
    return paths


def plot_results(res: Results, axis: str, label: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from graphs.plots import plot_curves

    xs: dict[str, np.ndarray] = {}
    series: dict[str, Any] = {}
    for strategy in dict.fromkeys(r["strategy"] for r in res.table):
        rows = [r for r in res.table if r["strategy"] == strategy]
        xs[strategy] = np.array([r[axis] for r in rows])
        series[strategy] = tuple(np.array([r[key] for r in rows]) for key in ("accuracy", "accuracy_low",
                                                                             "accuracy_high"))  # fmt: skip
    title = f"{res.dataset}, {res.model}: accuracy against {axis} (95% bootstrap over questions)"
    fig = plot_curves(xs, series, xlabel=label, title=title, path=path)
    plt.close(fig)
    return path


def format_table(res: Results) -> str:
    lines = [f"{res.dataset} · {res.model} · {len(res.questions)} questions"
             + (f" ({len(res.incomplete)} incomplete, left out of pooled rows)" if res.incomplete else ""),
             f"{'strategy':<20}{'budget':>7}{'accuracy':>10}{'95% CI':>16}{'calls':>9}{'tokens':>10}  n"]  # fmt: skip
    for r in res.table:
        ci = f"[{r['accuracy_low']:.3f}, {r['accuracy_high']:.3f}]"
        lines.append(f"{r['strategy']:<20}{r['budget']:>7}{r['accuracy']:>10.3f}{ci:>16}{r['calls']:>9.1f}"
                     f"{r['tokens']:>10.0f}  {r['questions']}")  # fmt: skip
    return "\n".join(lines)
