"""The analysis behind the real-samples notebook, kept here so the notebook stays thin.

:func:`analyze_pool` turns a pool's questions into exact curves (Vote@K with ``K`` calls,
Filter-Vote with ``K`` generations = ``2K`` calls, pass@K), bootstrap bands over questions,
the easy/hard split by ``d_V`` (Filter-Vote: ``d_F``), per-item scaling laws fitted on small ``K``,
and the optimal ``K`` they predict next to the one observed. The split and the laws are
cross-fitted by default: estimated on one fold of each question's samples, measured on the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from graphs.lab.plots import Band
from graphs.lab.pool import PoolCurves, QuestionPool, bootstrap_band, bootstrap_ratio_band, pool_curves
from graphs.lab.scaling_law import ItemLaw, fit_item_law, predict_task

__all__ = ["Difficulty", "PoolReport", "analyze_pool", "markdown_table"]


Difficulty = Literal["cross-fit", "in-sample"]
"""How the easy/hard split and the scaling law see a question's samples.

- ``cross-fit`` (the default): each pool is cut into two interleaved folds; a question's class
  (``d_V``, ``d_F``) and its law are estimated on one fold and its curves measured on the other, then
  the folds swap roles and both count. The split curves reach ``K = M/2``.
- ``in-sample``: class, law and curves from the same samples (as in Chen et al.'s code). At ``K = M``
  an easy question's Vote is 1 and a hard one's 0 by construction, not by measurement.
"""


@dataclass
class PoolReport:
    curves: PoolCurves  # the whole pools
    ks: np.ndarray  # generations per vote (the whole pools)
    bands: dict[str, Band]  # "Vote", "Vote (easy)", "Vote (hard)", "Filter-Vote", ... over questions
    difficulty: Difficulty  # how the split and the law were estimated
    n_easy: float  # questions per class (cross-fit: the mean over the two folds' estimates)
    n_hard: float
    n_tie: float
    fit_upto: int
    laws: list[ItemLaw]  # per item (cross-fit: per item and fold)
    law_ks: np.ndarray  # where the law is checked
    law_observed: np.ndarray  # the observed Vote curve it predicts (cross-fit: on the held-out folds)
    best_observed: int
    best_observed_accuracy: float
    best_predicted: int
    predicted_at_best: float
    rows: list[dict[str, Any]] = field(default_factory=list)

    def x(self, name: str) -> np.ndarray:
        """LLM calls of a series: Filter-Vote spends a judge call per generation (split series under
        cross-fitting are shorter: they reach half the pool)."""
        return self.ks[: len(self.bands[name][0])] * (2 if name.startswith("Filter") else 1)


def _law_for(q: QuestionPool, ks: np.ndarray, observed: np.ndarray) -> ItemLaw:
    counts, _, key = q.counts()
    if key is None:
        return ItemLaw(1e-6, 1e-6, 50.0, mode_correct=False)  # never right: G = 0
    top = max(counts.values())
    mode_correct = counts[key] == top
    ties = sum(1 for c in counts.values() if c == top) if mode_correct else 1
    return fit_item_law(ks, observed, mode_correct=mode_correct, ties=ties)


def _fit_columns(ks: np.ndarray, fit_upto: int) -> np.ndarray:
    # odd K only: with random tie-breaking Vote@2m equals Vote@(2m-1), a staircase the law lacks
    return np.asarray((ks <= fit_upto) & (ks % 2 == 1))


def analyze_pool(
    questions: Sequence[QuestionPool],
    *,
    fit_upto: int = 7,
    difficulty: Difficulty = "cross-fit",
    fit_laws: bool = True,
    resamples: int = 2000,
    seed: int = 0,
) -> PoolReport:
    """Exact curves, bands, the easy/hard split and the scaling-law prediction for a pool.

    Args:
        questions: the pools (every one of at least 2 samples; curves reach the smallest).
        fit_upto: the law is fitted on odd ``K`` up to this.
        difficulty: ``cross-fit`` or ``in-sample`` (see :data:`Difficulty`).
        fit_laws: without, no law is fitted (``laws`` is empty and the prediction is the observation).
        resamples, seed: of the bootstrap over questions.
    """
    if difficulty not in ("cross-fit", "in-sample"):
        raise ValueError(f"difficulty must be cross-fit or in-sample, got {difficulty!r}")
    curves = pool_curves(questions)
    ks = np.asarray(curves.ks)
    bands: dict[str, Band] = {}
    judged = not np.isnan(curves.filter_vote).any()
    series = (("Vote", "vote", False), ("Filter-Vote", "filter_vote", True))
    for name, attr, _ in series:
        if name == "Vote" or judged:
            bands[name] = bootstrap_band(getattr(curves, attr), resamples=resamples, seed=seed)
    bands["pass@K"] = bootstrap_band(curves.pass_at, resamples=resamples, seed=seed)

    if difficulty == "in-sample":
        # Vote is split by d_V, Filter-Vote by d_F; items with d = 0 (a tie for the mode) are neither.
        for name, attr, filtered in series:
            if name not in bands:
                continue
            for label, mask in (("easy", curves.easy(filtered)), ("hard", curves.hard(filtered))):
                if mask.any():
                    bands[f"{name} ({label})"] = bootstrap_band(getattr(curves, attr)[mask], resamples=resamples,
                                                                seed=seed)  # fmt: skip
        n_easy, n_hard = float(curves.easy().sum()), float(curves.hard().sum())
        fit_upto = min(fit_upto, int(ks.max()))
        cols = _fit_columns(ks, fit_upto)
        laws = [_law_for(q, ks[cols], curves.vote[i, cols]) for i, q in enumerate(questions)] if fit_laws else []
        law_ks, law_observed = ks, curves.vote.mean(axis=0)
        classes = [_label(d) for d in curves.difficulty]
    else:
        if ks.max() < 2:
            raise ValueError("cross-fitting needs pools of at least 2 samples")
        half = np.arange(1, int(ks.max()) // 2 + 1)
        folds = [pool_curves([q.part(f) for q in questions], [int(k) for k in half]) for f in (0, 1)]
        for name, attr, filtered in series:
            if name not in bands:
                continue
            for label in ("easy", "hard"):
                # the class from fold f, the curve from the other fold
                masks = [(folds[f].easy if label == "easy" else folds[f].hard)(filtered) for f in (0, 1)]
                values = sum(masks[f][:, None] * getattr(folds[1 - f], attr) for f in (0, 1))
                weights = (masks[0].astype(float) + masks[1]).astype(float)
                if weights.sum() > 0:
                    bands[f"{name} ({label})"] = bootstrap_ratio_band(np.asarray(values), weights,
                                                                      resamples=resamples, seed=seed)  # fmt: skip
        n_easy = float(np.mean([f.easy().sum() for f in folds]))
        n_hard = float(np.mean([f.hard().sum() for f in folds]))
        fit_upto = min(fit_upto, int(half.max()))
        cols = _fit_columns(half, fit_upto)
        laws = (
            [_law_for(q.part(f), half[cols], folds[f].vote[i, cols]) for f in (0, 1) for i, q in enumerate(questions)]
            if fit_laws
            else []
        )
        law_ks, law_observed = half, np.mean([f.vote.mean(axis=0) for f in folds], axis=0)
        classes = ["/".join(_label(folds[f].difficulty[i]) for f in (0, 1)) for i in range(len(questions))]

    best = int(np.argmax(law_observed))
    predicted = predict_task(laws, law_ks) if laws else law_observed
    best_pred = int(np.argmax(predicted))
    rows = []
    for i, q in enumerate(questions):
        counts, none, key = q.counts()
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
        rows.append(
            {
                "qid": q.qid,
                "level": q.info.get("level", ""),
                "correct": q.correct,
                "p(correct)": (counts[key] if key else 0) / q.size,
                "top answers": ", ".join(f"{a} ×{c}" for a, c in top) + (f", none ×{none}" if none else ""),
                "d_V": float(curves.difficulty[i]),
                "d_F": float(curves.difficulty_filter[i]),
                "class" + (" (folds 1/2)" if difficulty == "cross-fit" else ""): classes[i],
                "Vote@1": float(curves.vote[i, 0]),
                f"Vote@{int(ks[-1])}": float(curves.vote[i, -1]),
            }
        )
    return PoolReport(
        curves=curves,
        ks=ks,
        bands=bands,
        difficulty=difficulty,
        n_easy=n_easy,
        n_hard=n_hard,
        n_tie=len(questions) - n_easy - n_hard,
        fit_upto=fit_upto,
        laws=laws,
        law_ks=law_ks,
        law_observed=law_observed,
        best_observed=int(law_ks[best]),
        best_observed_accuracy=float(law_observed[best]),
        best_predicted=int(law_ks[best_pred]),
        predicted_at_best=float(predicted[best_pred]),
        rows=rows,
    )


def _label(d: float) -> str:
    return "easy" if d < 0 else "hard" if d > 0 else "tie"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows of equal keys as a Markdown table (floats to 3 decimals)."""
    if not rows:
        return ""
    keys = list(rows[0])

    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)
