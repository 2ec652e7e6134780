"""The analysis behind the real-samples notebook, kept here so the notebook stays thin.

:func:`analyze_pool` turns a pool's questions into exact curves (Vote@K with ``K`` calls,
Filter-Vote with ``K`` generations = ``2K`` calls, pass@K), bootstrap bands over questions,
the easy/hard split by ``d_V``, per-item scaling laws fitted on small ``K``, and the optimal
``K`` they predict next to the one observed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphs.lab.plots import Band
from graphs.lab.pool import PoolCurves, QuestionPool, bootstrap_band, pool_curves
from graphs.lab.scaling_law import ItemLaw, fit_item_law, predict_task

__all__ = ["PoolReport", "analyze_pool", "markdown_table"]


@dataclass
class PoolReport:
    curves: PoolCurves
    ks: np.ndarray  # generations per vote
    bands: dict[str, Band]  # "Vote", "Vote (easy)", "Vote (hard)", "Filter-Vote", ... over questions
    n_easy: int
    n_hard: int
    n_tie: int
    fit_upto: int
    laws: list[ItemLaw]
    best_observed: int
    best_observed_accuracy: float
    best_predicted: int
    predicted_at_best: float
    rows: list[dict[str, Any]] = field(default_factory=list)

    def x(self, name: str) -> np.ndarray:
        """LLM calls of a series: Filter-Vote spends a judge call per generation."""
        return self.ks * (2 if name.startswith("Filter") else 1)


def _law_for(q: QuestionPool, ks: np.ndarray, observed: np.ndarray) -> ItemLaw:
    counts, _, key = q.counts()
    if key is None:
        return ItemLaw(1e-6, 1e-6, 50.0, mode_correct=False)  # never right: G = 0
    top = max(counts.values())
    mode_correct = counts[key] == top
    ties = sum(1 for c in counts.values() if c == top) if mode_correct else 1
    return fit_item_law(ks, observed, mode_correct=mode_correct, ties=ties)


def analyze_pool(
    questions: Sequence[QuestionPool], *, fit_upto: int = 7, resamples: int = 2000, seed: int = 0
) -> PoolReport:
    """Exact curves, bands, the easy/hard split and the scaling-law prediction for a pool."""
    curves = pool_curves(questions)
    ks = np.asarray(curves.ks)
    easy = curves.easy()
    bands: dict[str, Band] = {}
    judged = not np.isnan(curves.filter_vote).any()
    # Vote is split by d_V, Filter-Vote by d_F; items with d = 0 (a tie for the mode) are neither.
    for name, matrix, filtered in (("Vote", curves.vote, False),
                                   ("Filter-Vote", curves.filter_vote if judged else None, True)):  # fmt: skip
        if matrix is None:
            continue
        bands[name] = bootstrap_band(matrix, resamples=resamples, seed=seed)
        for label, mask in (("easy", curves.easy(filtered)), ("hard", curves.hard(filtered))):
            if mask.any():
                bands[f"{name} ({label})"] = bootstrap_band(matrix[mask], resamples=resamples, seed=seed)
    bands["pass@K"] = bootstrap_band(curves.pass_at, resamples=resamples, seed=seed)

    fit_upto = min(fit_upto, int(ks.max()))
    # odd K only: with random tie-breaking Vote@2m equals Vote@(2m-1), a staircase the law lacks
    fit_cols = (ks <= fit_upto) & (ks % 2 == 1)
    laws = [_law_for(q, ks[fit_cols], curves.vote[i, fit_cols]) for i, q in enumerate(questions)]
    mean_vote = curves.vote.mean(axis=0)
    best = int(np.argmax(mean_vote))
    predicted = predict_task(laws, ks)
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
                "class": "easy" if curves.difficulty[i] < 0 else "hard" if curves.difficulty[i] > 0 else "tie",
                "Vote@1": float(curves.vote[i, 0]),
                f"Vote@{int(ks[-1])}": float(curves.vote[i, -1]),
            }
        )
    return PoolReport(
        curves=curves,
        ks=ks,
        bands=bands,
        n_easy=int(easy.sum()),
        n_hard=int(curves.hard().sum()),
        n_tie=int((curves.difficulty == 0).sum()),
        fit_upto=fit_upto,
        laws=laws,
        best_observed=int(ks[best]),
        best_observed_accuracy=float(mean_vote[best]),
        best_predicted=int(ks[best_pred]),
        predicted_at_best=float(predicted[best_pred]),
        rows=rows,
    )


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
