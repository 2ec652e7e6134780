"""A question's sample pool, and the exact curves computed from pools.

Pools are kept in SQLite by :class:`graphs.lab.pool_store.Pool` (the evaluation's store). From a pool,
:func:`pool_curves` computes expected Vote@K and Filter-Vote@K for every ``K <= M`` exactly over ``K``-subsets
(:mod:`graphs.lab.scaling`), and pass@k with the unbiased estimator; :func:`bootstrap_band` gives confidence
bands over questions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphs.lab.scaling import pass_at_k, subset_filter_vote_accuracy, subset_vote_accuracy
from nodes.answers import equivalent, group_answers

__all__ = ["PoolCurves", "QuestionPool", "bootstrap_band", "bootstrap_ratio_band", "pool_curves"]


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

    def part(self, index: int, parts: int = 2) -> QuestionPool:
        """The samples whose position is ``index`` modulo ``parts`` (a fold of the pool, for held-out
        estimates: the samples are exchangeable, and interleaving keeps the folds alike).

        Example:
            >>> q = QuestionPool("q", "?", "4", {}, ["4", "5", "4", None], [None] * 4)
            >>> q.part(0).answers, q.part(1).answers
            (['4', '4'], ['5', None])
        """
        if not 0 <= index < parts:
            raise ValueError(f"part {index} of {parts}")
        return dataclasses.replace(self, answers=self.answers[index::parts], verdicts=self.verdicts[index::parts])

    def distribution(self) -> dict[str | None, float]:
        """The empirical answer distribution (``None``: no stated answer)."""
        counts, none, _ = self.counts()
        dist: dict[str | None, float] = {a: c / self.size for a, c in counts.items()}
        if none:
            dist[None] = none / self.size
        return dist


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


def bootstrap_ratio_band(
    values: np.ndarray, weights: np.ndarray, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Σ values / Σ weights`` over questions (rows), with a percentile bootstrap band resampling questions.

    For a mean over a class whose members are (question, fold) pairs: row ``i`` of ``values`` sums
    question ``i``'s curves over its folds in the class, ``weights[i]`` counts them. A resample
    with no member in the class is left out of the band.
    """
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    picks = rng.integers(0, n, size=(resamples, n))
    totals, counts = values[picks].sum(axis=1), weights[picks].sum(axis=1)
    ok = counts > 0
    means = totals[ok] / counts[ok][:, None]
    alpha = (1 - level) / 2
    mean = values.sum(axis=0) / weights.sum()
    return mean, np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)
