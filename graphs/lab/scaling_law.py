"""The per-item scaling law of Chen et al. (``analysis.py``) and the optimal number of calls.

For an item whose correct answer is the mode of its answer distribution,
``G(K) = 1 − exp(−a1·K − a2·√K − a3)``; otherwise ``G(K) = exp(−a1·K − a2·√K − a3)``. When the
correct answer ties with ``c`` answers for the mode, ``c·G`` is fitted and divided by ``c``.
The fit is least squares with ``a1, a2 ≥ 1e−6`` and ``a3`` free (``scipy.optimize.minimize``,
start ``[1, 1, 1]``), as in the authors' code. The task curve is the mean over items, and the
predicted optimal ``K`` is its argmax on a grid. Needs the ``lab`` extra (scipy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ItemLaw", "fit_item_law", "optimal_k", "predict_task"]


@dataclass(frozen=True)
class ItemLaw:
    a1: float
    a2: float
    a3: float
    mode_correct: bool  # the correct answer is (one of) the most likely answer(s)
    ties: int = 1  # how many answers share the mode with the correct one (c)

    def __call__(self, k: np.ndarray | Sequence[float] | float) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        e = np.exp(-self.a1 * k - self.a2 * np.sqrt(k) - self.a3)
        g = 1.0 - e if self.mode_correct else e
        out: np.ndarray = np.clip(g / self.ties, 0.0, 1.0)
        return out


def fit_item_law(
    ks: Sequence[float] | np.ndarray, accuracy: Sequence[float] | np.ndarray, *, mode_correct: bool, ties: int = 1
) -> ItemLaw:
    """Fit one item's law to its accuracies at ``ks`` (least squares, bounds as in the paper)."""
    from scipy.optimize import minimize

    k = np.asarray(ks, dtype=float)
    target = np.asarray(accuracy, dtype=float) * ties

    def loss(a: np.ndarray) -> float:
        e = np.exp(np.clip(-a[0] * k - a[1] * np.sqrt(k) - a[2], -700, 700))
        g = 1.0 - e if mode_correct else e
        return float(np.sum((g - target) ** 2))

    result = minimize(loss, x0=np.ones(3), bounds=[(1e-6, None), (1e-6, None), (None, None)])
    a1, a2, a3 = (float(v) for v in result.x)
    return ItemLaw(a1, a2, a3, mode_correct, ties)


def predict_task(laws: Sequence[ItemLaw], ks: Sequence[float] | np.ndarray) -> np.ndarray:
    """``Ĝ(K) = mean_x G_x(K)``."""
    out: np.ndarray = np.mean([law(np.asarray(ks, dtype=float)) for law in laws], axis=0)
    return out


def optimal_k(laws: Sequence[ItemLaw], grid: Sequence[int] | np.ndarray) -> int:
    """The ``K`` of ``grid`` that maximises the predicted task accuracy."""
    grid = np.asarray(grid)
    return int(grid[int(np.argmax(predict_task(laws, grid)))])
