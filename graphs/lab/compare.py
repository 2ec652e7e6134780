"""Reading curves honestly: whether a mean curve rises then falls, and a small model against a large
one at equal FLOPs.

:func:`curve_shape` says whether a mean accuracy curve over questions rises and then falls (the
inverse-U of Chen et al.), with paired bootstrap intervals over questions for the rise and the fall.
:func:`equal_flops` sets each configuration of a large model beside the same strategy on a small
model at the largest budget that costs no more FLOPs per question, with a paired bootstrap
interval on the difference (the question of Snell et al. and Large Language Monkeys: can more
test-time compute on a small model replace a larger one?).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CurveShape", "curve_shape", "equal_flops"]


@dataclass(frozen=True)
class CurveShape:
    """The shape of a mean curve over questions.

    ``rise`` is ``mean(peak) − mean(first)``, ``fall`` is ``mean(peak) − mean(last)``, each with a
    95% paired bootstrap interval over questions. The peak is chosen on the same data, which
    flatters both; ``shape`` calls a part significant only when its interval excludes 0.
    """

    peak: float  # the K (or x) of the peak
    peak_value: float
    rise: float
    rise_low: float
    rise_high: float
    fall: float
    fall_low: float
    fall_high: float

    @property
    def shape(self) -> str:
        rises, falls = self.rise_low > 0, self.fall_low > 0
        if rises and falls:
            return "inverse-U (rise and fall both significant)"
        if rises:
            return "rising" + (" then flat" if self.fall > 0 else "")
        if falls:
            return "falling"
        return "flat (no significant rise or fall)"


def curve_shape(
    rows: np.ndarray, ks: Sequence[float] | np.ndarray, *, resamples: int = 2000, seed: int = 0
) -> CurveShape:
    """The shape of the mean of ``rows`` (questions × ``ks``), with paired bootstrap intervals.

    Example:
        >>> rows = np.array([[0.2, 0.6, 0.4], [0.4, 0.8, 0.6], [0.3, 0.7, 0.5]])
        >>> s = curve_shape(rows, [1, 3, 5])
        >>> s.peak, round(s.rise, 3), round(s.fall, 3), s.shape
        (3.0, 0.4, 0.2, 'inverse-U (rise and fall both significant)')
    """
    rows = np.asarray(rows, dtype=float)
    ks = np.asarray(ks)
    if rows.ndim != 2 or rows.shape[1] != len(ks) or rows.shape[0] < 1:
        raise ValueError("rows must be questions × ks")
    mean = rows.mean(axis=0)
    p = int(np.argmax(mean))
    rise, fall = rows[:, p] - rows[:, 0], rows[:, p] - rows[:, -1]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, rows.shape[0], size=(resamples, rows.shape[0]))
    boot_rise, boot_fall = rise[picks].mean(axis=1), fall[picks].mean(axis=1)
    return CurveShape(
        peak=float(ks[p]),
        peak_value=float(mean[p]),
        rise=float(rise.mean()),
        rise_low=float(np.quantile(boot_rise, 0.025)),
        rise_high=float(np.quantile(boot_rise, 0.975)),
        fall=float(fall.mean()),
        fall_low=float(np.quantile(boot_fall, 0.025)),
        fall_high=float(np.quantile(boot_fall, 0.975)),
    )


def equal_flops(
    small: Sequence[Mapping[str, Any]],
    large: Sequence[Mapping[str, Any]],
    *,
    strategies: Sequence[str] | None = None,
    questions: Sequence[str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Each configuration of the large model beside the same strategy on the small one at equal FLOPs.

    Args:
        small, large: per-question rows (``qid, strategy, budget, accuracy, flops``), as
            :attr:`graphs.evaluation.Results.per_question` has them when the models' sizes are known.
        strategies: the strategies to compare (default: those both have).
        questions: the questions to compare on (default: those both have every row for).

    For each large configuration, the small model's configuration of the same strategy is the
    largest budget whose mean FLOPs per question (over ``questions``) do not exceed the large
    one's. Rows: ``strategy, large_budget, large_flops, large_accuracy, small_budget, small_flops,
    small_accuracy, difference`` (small − large) and its paired 95% bootstrap interval over
    questions, ``questions``. No small configuration fits below the large one's FLOPs: no row.
    """

    def table(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], dict[str, Mapping[str, Any]]]:
        out: dict[tuple[str, int], dict[str, Mapping[str, Any]]] = {}
        for r in rows:
            if "flops" not in r:
                raise ValueError(f"{r['strategy']}@{r['budget']} has no FLOPs: the model's size is unknown")
            out.setdefault((r["strategy"], int(r["budget"])), {})[r["qid"]] = r
        return out

    s_tab, l_tab = table(small), table(large)
    names = list(strategies) if strategies is not None else [
        n for n in dict.fromkeys(k[0] for k in l_tab) if any(k[0] == n for k in s_tab)
    ]  # fmt: skip
    if questions is None:
        sets = [set(v) for k, v in {**s_tab, **l_tab}.items() if k[0] in names]
        questions = sorted(set.intersection(*sets)) if sets else []
    qs = list(questions)
    if not qs:
        return []
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(qs), size=(resamples, len(qs)))

    def values(cell: dict[str, Mapping[str, Any]], key: str) -> np.ndarray:
        return np.array([float(cell[q][key]) for q in qs])

    out = []
    for name in names:
        small_budgets = sorted(b for s, b in s_tab if s == name and all(q in s_tab[(s, b)] for q in qs))
        for budget in sorted(b for s, b in l_tab if s == name and all(q in l_tab[(s, b)] for q in qs)):
            big = l_tab[(name, budget)]
            big_flops = float(values(big, "flops").mean())
            fits = [b for b in small_budgets if values(s_tab[(name, b)], "flops").mean() <= big_flops]
            if not fits:
                continue
            mine = s_tab[(name, fits[-1])]
            diff = values(mine, "accuracy") - values(big, "accuracy")
            boot = diff[picks].mean(axis=1)
            out.append({
                "strategy": name, "large_budget": budget, "large_flops": big_flops,
                "large_accuracy": float(values(big, "accuracy").mean()), "small_budget": fits[-1],
                "small_flops": float(values(mine, "flops").mean()),
                "small_accuracy": float(values(mine, "accuracy").mean()), "difference": float(diff.mean()),
                "difference_low": float(np.quantile(boot, 0.025)), "difference_high": float(np.quantile(boot, 0.975)),
                "questions": len(qs),
            })  # fmt: skip
    return out
