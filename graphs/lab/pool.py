"""Sample pools: ``M`` samples per question drawn through the real graphs, kept in SQLite.

A pool is built once and extended later (``M`` can grow; each sample records its seed, and an
extension continues the seeds where the pool stopped). Each question's
new samples are written in one transaction when its graph run finishes, so a killed build loses
at most the questions in flight and :meth:`Pool.extend` carries on where it stopped; the
primary key ``(qid, idx)`` makes a duplicate sample impossible.

From a pool, :func:`pool_curves` computes expected Vote@K and Filter-Vote@K for every
``K <= M`` exactly over ``K``-subsets (:mod:`graphs.lab.scaling`), and pass@k with the unbiased
estimator; :func:`bootstrap_band` gives confidence bands over questions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphs.lab.scaling import pass_at_k, subset_filter_vote_accuracy, subset_vote_accuracy
from graphs.sqlite_store import SqliteFile
from graphs.strategies.filter_vote import build_filter_vote_graph
from graphs.strategies.vote import build_vote_graph
from nodes.answers import AnswerFormat, equivalent, extract_answer, group_answers
from nodes.budget import Ledger, add_ledgers
from nodes.context import RunContext

__all__ = ["Pool", "PoolCurves", "QuestionPool", "bootstrap_band", "pool_curves"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    qid TEXT PRIMARY KEY, question TEXT NOT NULL, correct TEXT NOT NULL, info TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS samples (
    qid TEXT NOT NULL REFERENCES questions(qid), idx INTEGER NOT NULL,
    text TEXT NOT NULL, answer TEXT, finish_reason TEXT, seed INTEGER,
    verdict TEXT, verdict_text TEXT,
    PRIMARY KEY (qid, idx)
);
CREATE TABLE IF NOT EXISTS usage (
    qid TEXT NOT NULL, first_idx INTEGER NOT NULL, kind TEXT NOT NULL,
    requests INTEGER, calls INTEGER, prompt_tokens INTEGER, completion_tokens INTEGER
);
"""


@dataclass(frozen=True)
class QuestionPool:
    """One question's samples, in sample order."""

    qid: str
    question: str
    correct: str
    info: dict[str, Any]
    answers: list[str | None]
    verdicts: list[str | None]  # None where the sample was not judged

    @property
    def size(self) -> int:
        return len(self.answers)

    def counts(self, indices: Iterable[int] | None = None) -> tuple[dict[str, int], int, str | None]:
        """(answer -> count, count of no-answer samples, the key of the correct answer if present).

        Equivalent answers count together under their first-seen spelling.
        """
        chosen = list(range(self.size)) if indices is None else list(indices)
        answers = [self.answers[i] for i in chosen]
        groups = group_answers(answers)
        counts = {g.answer: len(g.members) for g in groups}
        correct = next((g.answer for g in groups if equivalent(g.answer, self.correct)), None)
        return counts, sum(a is None for a in answers), correct

    def distribution(self) -> dict[str | None, float]:
        """The empirical answer distribution (``None``: no stated answer)."""
        counts, none, _ = self.counts()
        dist: dict[str | None, float] = {a: c / self.size for a, c in counts.items()}
        if none:
            dist[None] = none / self.size
        return dist


class Pool(SqliteFile):
    """A durable pool of samples in an SQLite file.

    Args:
        path: the database file (created if missing).

    Example:
        >>> pool = Pool(":memory:")
        >>> pool.add_questions([{"qid": "q1", "question": "What is 2 + 2?", "answer": "4"}])
        >>> pool.size("q1")
        0
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, _SCHEMA)

    def add_questions(self, questions: Iterable[dict[str, Any]]) -> None:
        """Add questions (``qid``, ``question``, ``answer`` and any other fields as info); a qid
        already present must have the same question and answer."""
        with self._db:
            for q in questions:
                info = {k: v for k, v in q.items() if k not in ("qid", "question", "answer")}
                row = self._db.execute("SELECT question, correct FROM questions WHERE qid = ?", (q["qid"],)).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO questions (qid, question, correct, info) VALUES (?, ?, ?, ?)",
                        (q["qid"], q["question"], str(q["answer"]), json.dumps(info)),
                    )
                elif row != (q["question"], str(q["answer"])):
                    raise ValueError(f"question {q['qid']!r} is already in the pool with another text or answer")

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Record the sampling settings on first use; refuse to mix samples drawn otherwise."""
        if conflict := self._settings_conflict(settings):
            key, stored, given = conflict
            raise ValueError(f"pool {self.path} was built with {key}={stored}, not {given}")

    def qids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT qid FROM questions ORDER BY rowid")]

    def size(self, qid: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM samples WHERE qid = ?", (qid,)).fetchone()[0])

    def question(self, qid: str, limit: int | None = None, *, reextract: bool = True) -> QuestionPool:
        """A question with its first ``limit`` samples (all by default).

        With ``reextract`` the answers are read again from the sample texts with the current
        :func:`nodes.answers.extract_answer` (in the pool's answer format), so an improved
        extractor applies to samples drawn before it; otherwise the answers as stored.
        """
        row = self._db.execute("SELECT question, correct, info FROM questions WHERE qid = ?", (qid,)).fetchone()
        if row is None:
            raise KeyError(qid)
        rows = self._db.execute(
            "SELECT idx, answer, verdict, text FROM samples WHERE qid = ? ORDER BY idx LIMIT ?", (qid, limit or -1)
        ).fetchall()
        if reextract:
            setting = self._db.execute("SELECT value FROM settings WHERE key = 'answer_format'").fetchone()
            fmt: AnswerFormat = json.loads(setting[0]) if setting else "auto"
            rows = [(idx, extract_answer(text, fmt), verdict, text) for idx, _, verdict, text in rows]
        if [r[0] for r in rows] != list(range(len(rows))):
            raise ValueError(f"pool {self.path}: samples of {qid!r} are not numbered 0..{len(rows) - 1}")
        return QuestionPool(qid, row[0], row[1], json.loads(row[2]), [r[1] for r in rows], [r[2] for r in rows])

    def questions(self, limit: int | None = None) -> list[QuestionPool]:
        return [self.question(qid, limit) for qid in self.qids()]

    def ledger(self) -> Ledger:
        """The tokens and calls spent on every sample in the pool."""
        total: Ledger = {}
        sums = "SUM(requests), SUM(calls), SUM(prompt_tokens), SUM(completion_tokens)"
        for kind, req, calls, pt, ct in self._db.execute(f"SELECT kind, {sums} FROM usage GROUP BY kind"):
            total = add_ledgers(total, {kind: {"requests": req, "calls": calls, "prompt_tokens": pt,
                                               "completion_tokens": ct}})  # fmt: skip
        return total

    def _store(self, qid: str, first: int, out: dict[str, Any]) -> None:
        verdicts = {v["index"]: v for v in out.get("verdicts") or []}
        with self._db:  # one transaction: all of this run's samples, or none
            for c in sorted(out["candidates"], key=lambda c: c["index"]):
                v = verdicts.get(c["index"])
                self._db.execute(
                    "INSERT INTO samples (qid, idx, text, answer, finish_reason, seed, verdict, verdict_text)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (qid, first + c["index"], c["text"], c["answer"], c["finish_reason"], c["seed"],
                     v["verdict"] if v else None, v["text"] if v else None),
                )  # fmt: skip
            for kind, u in out["ledger"].items():
                self._db.execute(
                    "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (qid, first, kind, u["requests"], u["calls"], u["prompt_tokens"], u["completion_tokens"]),
                )

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

        Samples are drawn through the Filter-Vote graph (with ``judge``: every sample also gets
        the judge's verdict) or the Vote graph. A question with ``n < m`` samples gets a run of
        ``k = m - n`` samples starting at sample ``n`` (seeds ``context.seed + n`` onwards; the
        samples of one ``n``-request share its seed, which vLLM varies per sample). A run with
        failed samples stores the ones it got up to the first gap: a question never holds a
        gap, and a later call draws the rest.
        """
        self.check_settings({"model": context.llm.endpoint.model, "temperature": context.temperature,
                             "max_tokens": context.max_tokens, "seed": context.seed, "judge": judge,
                             "answer_format": context.answer_format})  # fmt: skip
        limit = asyncio.Semaphore(concurrency)
        added = 0

        async def one(qid: str) -> None:
            nonlocal added
            have = self.size(qid)
            if have >= m:
                return
            async with limit:
                q = self.question(qid, limit=0)
                builder = build_filter_vote_graph if judge else build_vote_graph
                ctx = dataclasses.replace(context, seed=context.seed + have)
                out = await builder(m - have).compile().ainvoke({"question": q.question, "question_id": qid},
                                                                 context=ctx)  # fmt: skip
                # keep the samples up to the first gap, so indices stay contiguous
                got = sorted(c["index"] for c in out["candidates"])
                contiguous = next((i for i, idx in enumerate(got) if idx != i), len(got))
                out["candidates"] = [c for c in out["candidates"] if c["index"] < contiguous]
                self._store(qid, have, out)
                added += contiguous
                if progress:
                    progress(qid, have + contiguous, m)

        await asyncio.gather(*(one(qid) for qid in self.qids()))
        return added


@dataclass(frozen=True)
class PoolCurves:
    """Per-question exact curves over ``ks`` (rows: questions, columns: ks)."""

    qids: list[str]
    ks: list[int]
    vote: np.ndarray  # Vote@K, K generations
    filter_vote: np.ndarray  # Filter-Vote with K generations (2K LLM calls); NaN without verdicts
    pass_at: np.ndarray  # pass@K
    difficulty: np.ndarray  # d_V of each question's empirical distribution
    difficulty_filter: np.ndarray  # d_F: d_V of the kept samples' distribution (NaN without verdicts)

    def easy(self, filtered: bool = False) -> np.ndarray:
        """Easy items: ``d < 0`` (ties, ``d = 0``, are neither easy nor hard)."""
        d = self.difficulty_filter if filtered else self.difficulty
        return np.asarray(d < 0)

    def hard(self, filtered: bool = False) -> np.ndarray:
        d = self.difficulty_filter if filtered else self.difficulty
        return np.asarray(d > 0)


def pool_curves(questions: Sequence[QuestionPool], ks: Sequence[int] | None = None) -> PoolCurves:
    """Exact Vote@K, Filter-Vote@K and pass@K for each question, over ``K``-subsets of its pool.

    ``ks`` defaults to every K up to the smallest pool size.
    """
    if not questions:
        raise ValueError("no questions")
    m = min(q.size for q in questions)
    ks = list(ks) if ks is not None else list(range(1, m + 1))
    if not ks or min(ks) < 1 or max(ks) > m:
        raise ValueError(f"ks must lie in 1..{m} (the smallest pool)")
    vote = np.zeros((len(questions), len(ks)))
    filt = np.full((len(questions), len(ks)), np.nan)
    pas = np.zeros((len(questions), len(ks)))
    diff = np.zeros(len(questions))
    diff_f = np.full(len(questions), np.nan)
    for i, q in enumerate(questions):
        counts, none, key = q.counts()
        wrong_best = max((c for a, c in counts.items() if a != key), default=0)
        diff[i] = (wrong_best - (counts[key] if key else 0)) / q.size
        correct_n = counts[key] if key else 0
        judged = all(v is not None for v in q.verdicts)
        if judged:
            kept_idx = [j for j, v in enumerate(q.verdicts) if v == "correct"]
            unkept_idx = [j for j, v in enumerate(q.verdicts) if v != "correct"]
            kept, kept_none, _ = q.counts(kept_idx)
            unkept, unkept_none, _ = q.counts(unkept_idx)
            kept, unkept = _rekey(kept, counts), _rekey(unkept, counts)
            if kept:  # d_F: the same difference on the judge-kept samples (else the fall-back decides)
                best_kept_wrong = max((c for a, c in kept.items() if a != key), default=0)
                diff_f[i] = (best_kept_wrong - kept.get(key, 0) if key else best_kept_wrong) / sum(kept.values())
            else:
                diff_f[i] = diff[i]
        for j, k in enumerate(ks):
            vote[i, j] = subset_vote_accuracy(counts, key, k, none=none) if key else 0.0
            pas[i, j] = pass_at_k(q.size, correct_n, k)
            if judged:
                filt[i, j] = (
                    subset_filter_vote_accuracy(kept, unkept, key, k, kept_none=kept_none, unkept_none=unkept_none)
                    if key
                    else 0.0
                )
    return PoolCurves([q.qid for q in questions], ks, vote, filt, pas, diff, diff_f)


def _rekey(part: dict[str, int], whole: dict[str, int]) -> dict[str, int]:
    """Spell a subset's answers as the whole pool's groups spell them."""
    out: dict[str, int] = {}
    for answer, count in part.items():
        key = next((w for w in whole if equivalent(w, answer)), answer)
        out[key] = out.get(key, 0) + count
    return out


def bootstrap_band(
    rows: np.ndarray, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over questions (rows) and a percentile bootstrap band, resampling questions.

    Returns ``(mean, low, high)``, each with one value per column.
    """
    rng = np.random.default_rng(seed)
    n = rows.shape[0]
    picks = rng.integers(0, n, size=(resamples, n))
    means = rows[picks].mean(axis=1)
    alpha = (1 - level) / 2
    return rows.mean(axis=0), np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)
