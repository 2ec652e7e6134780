"""Plots a reader of the lab notebooks wants: accuracy against LLM calls on a log axis with
confidence bands, per-difficulty curves, and a fitted law over its observations.

Each function draws on a new figure (or the ``ax`` given), saves it when ``path`` is given
(PNG, parent folders created) and returns the figure, so a notebook shows it inline too.
Needs the ``lab`` extra (matplotlib).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Band", "plot_curves", "plot_law"]

Band = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]  # mean, low, high


def _axes(ax: Any) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, new = plt.subplots(figsize=(7, 4.2), dpi=110)
    return fig, new


def _save(fig: Any, path: str | Path | None) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")


def _finish(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str | None, path: str | Path | None) -> Any:
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return fig


def plot_curves(
    x: Mapping[str, Sequence[float] | np.ndarray] | Sequence[float] | np.ndarray,
    series: Mapping[str, Band | np.ndarray],
    *,
    xlabel: str = "LLM calls",
    ylabel: str = "accuracy",
    title: str | None = None,
    marks: Mapping[str, float] | None = None,
    path: str | Path | None = None,
    ax: Any = None,
) -> Any:
    """Curves against a log x-axis, each with an optional shaded band.

    Args:
        x: the x values, shared, or per series name (e.g. Filter-Vote spends 2 calls a sample).
        series: name -> ``(mean, low, high)`` or just the mean.
        marks: label -> x position of a vertical dotted line (e.g. a turning point).
    """
    fig, ax = _axes(ax)
    for name, values in series.items():
        xs = np.asarray(x[name] if isinstance(x, Mapping) else x, dtype=float)
        mean, low, high = values if isinstance(values, tuple) else (values, None, None)
        (line,) = ax.plot(xs, mean, marker="o", markersize=3, linewidth=1.6, label=name)
        if low is not None and high is not None:
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.18, linewidth=0)
    for label, position in (marks or {}).items():
        ax.axvline(position, linestyle=":", color="0.4")
        ax.annotate(label, (position, ax.get_ylim()[1]), rotation=90, va="top", ha="right", fontsize=8, color="0.3")
    return _finish(fig, ax, xlabel, ylabel, title, path)


def plot_law(
    ks_observed: Sequence[float] | np.ndarray,
    observed: np.ndarray,
    ks_predicted: Sequence[float] | np.ndarray,
    predicted: np.ndarray,
    *,
    fit_upto: float,
    best_observed: float | None = None,
    best_predicted: float | None = None,
    title: str | None = None,
    path: str | Path | None = None,
    ax: Any = None,
) -> Any:
    """A fitted task law over its observations, with the fit range shaded."""
    fig, ax = _axes(ax)
    ax.axvspan(min(ks_observed), fit_upto, color="0.85", alpha=0.6, label="fitted on")
    ax.plot(ks_observed, observed, "o", markersize=4, label="observed (exact over subsets)")
    ax.plot(ks_predicted, predicted, "-", linewidth=1.6, label="fitted law, mean over items")
    if best_observed is not None:
        ax.axvline(best_observed, linestyle=":", color="C0", label=f"best K observed = {best_observed:g}")
    if best_predicted is not None:
        ax.axvline(best_predicted, linestyle="--", color="C1", label=f"best K predicted = {best_predicted:g}")
    return _finish(fig, ax, "LLM calls (K)", "Vote accuracy", title, path)
