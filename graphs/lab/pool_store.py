"""A durable sample pool for the lab: the evaluation's store, read question by question.

One sample store serves both the lab and ``ttc eval`` (:class:`graphs.evaluation.EvalStore`): a
pool built here is a store ``ttc eval`` reads, and the other way round.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from graphs.evaluation.datasets import Dataset, Record
from graphs.evaluation.plan import FILTER_SCORER, store_settings
from graphs.evaluation.run import draw_samples, judge_graph, judge_samples
from graphs.evaluation.store import EvalStore
from graphs.lab.pool import QuestionPool
from nodes.answers import AnswerFormat, extract_answer
from nodes.budget import Ledger
from nodes.context import RunContext
from nodes.endpoint import RETRY_POLICY
from nodes.errors import ConfigError
from nodes.kinds import VERIFY

__all__ = ["Pool"]


class Pool(EvalStore):
    """A durable pool of samples: the evaluation's store (:class:`graphs.evaluation.EvalStore`), read
    question by question.

    Samples are drawn as ``ttc eval`` draws its pools (the Vote graph, seeds continuing where the
    pool stopped) and judged by the graphs' ``verify`` node, into the same tables: a pool built here
    is a store ``ttc eval`` can read, and the other way round.

    Args:
        path: the database file (created if missing).

    Example:
        >>> pool = Pool(":memory:")
        >>> pool.add_questions([{"qid": "q1", "question": "What is 2 + 2?", "answer": "4"}])
        >>> pool.size("q1")
        0
    """

    def __init__(self, path: str | Path) -> None:
        _refuse_old_pool(path)
        super().__init__(path)

    def add_questions(self, questions: Iterable[dict[str, Any] | Record]) -> None:
        """Add questions (records, or mappings with ``qid``, ``question``, ``answer`` and any other
        fields as info); a qid already present must have the same question and answer."""
        records = [
            q if isinstance(q, Record)
            else Record(q["qid"], q["question"], str(q["answer"]),
                        {k: v for k, v in q.items() if k not in ("qid", "question", "answer")})
            for q in questions
        ]  # fmt: skip
        super().add_questions(records)

    def qids(self) -> list[str]:
        return [r.qid for r in self.records()]

    def size(self, qid: str) -> int:
        return self.sample_count(qid)

    def question(self, qid: str, limit: int | None = None, *, reextract: bool = True) -> QuestionPool:
        """A question with its first ``limit`` samples (all by default) and their filter verdicts.

        With ``reextract`` the answers are read again from the sample texts with the current
        :func:`nodes.answers.extract_answer` (in the pool's answer format), so an improved
        extractor applies to samples drawn before it; otherwise the answers as stored.
        """
        record = self.record(qid)
        samples = self.samples(qid)[: limit if limit is not None else None]
        fmt: AnswerFormat = self.settings().get("answer_format", "auto")
        answers = [extract_answer(s["text"], fmt) if reextract else s["answer"] for s in samples]
        if [s["index"] for s in samples] != list(range(len(samples))):
            raise ValueError(f"pool {self.path}: samples of {qid!r} are not numbered 0..{len(samples) - 1}")
        labels = {j["index"]: j["label"] for j in self.judgements(qid, FILTER_SCORER)}
        verdicts = [labels.get(s["index"]) for s in samples]
        return QuestionPool(qid, record.question, record.answer, record.info, answers, verdicts)

    def questions(self, limit: int | None = None) -> list[QuestionPool]:
        return [self.question(qid, limit) for qid in self.qids()]

    def ledger(self) -> Ledger:
        """The tokens and calls spent on every sample and filter verdict in the pool."""
        totals = "COALESCE(SUM(calls), 0), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0)"
        fields = ("requests", "calls", "prompt_tokens", "completion_tokens")
        proposed = self._db.execute(f"SELECT COALESCE(SUM(requests), 0), {totals} FROM sample_usage").fetchone()
        judged = self._db.execute(
            f"SELECT COUNT(*), {totals} FROM judgements WHERE scorer = ?", (FILTER_SCORER,)
        ).fetchone()
        return {
            "propose": dict(zip(fields, proposed, strict=True)),  # type: ignore[dict-item]
            "verify": dict(zip(fields, judged, strict=True)),  # type: ignore[dict-item]
        }

    async def extend(
        self,
        m: int,
        context: RunContext,
        *,
        judge: bool = True,
        concurrency: int = 2,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> int:
        """Draw samples until every question has ``m``; returns how many were added.

        A question with ``n < m`` samples gets a Vote run of ``k = m - n`` samples starting at
        sample ``n`` (seeds ``context.seed + n`` onwards; the samples of one ``n``-request share its
        seed, which vLLM varies per sample); with ``judge`` every sample also gets the filter
        judge's verdict (the graphs' ``verify``: seed ``context.seed + index``). A run with failed
        samples stores the ones it got up to the first gap: a question never holds a gap, and a
        later call draws the rest.
        """
        records = self.records()
        dataset = Dataset("pool", records, context.answer_format)
        self.check_settings({**store_settings(dataset, context.llm.endpoint.model, context), "judge": judge})
        judges = {FILTER_SCORER: judge_graph(VERIFY, RETRY_POLICY)} if judge else {}
        limit = asyncio.Semaphore(concurrency)
        added = 0

        async def one(record: Record) -> None:
            nonlocal added
            have = self.size(record.qid)
            async with limit:
                if have < m:
                    await draw_samples(self, record, m, dataset, context)
                if judges:
                    await judge_samples(self, record, self.samples(record.qid)[:m], judges, context)
            now = self.size(record.qid)
            added += now - have
            if progress and now > have:
                progress(record.qid, now, m)

        await asyncio.gather(*(one(r) for r in records))
        return added


def _refuse_old_pool(path: str | Path) -> None:
    """A pool file of the earlier schema (its own tables) cannot be read as a store: say so."""
    if str(path) == ":memory:" or not Path(path).exists():
        return
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(questions)")}
    if "correct" in columns:
        raise ConfigError(f"pool {path} was built by an earlier ttc-graphs (another schema): delete it to rebuild")
