"""The evaluation's outputs: CSV and JSON tables, the plots, the text table."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from graphs.evaluation.results import Results

__all__ = ["format_table", "plot_results", "write_outputs"]


def write_outputs(res: Results, out: Path) -> dict[str, Path]:
    """``results.csv``, ``results.json``, ``per_question.csv`` and the two plots (with matplotlib)."""
    import csv

    out.mkdir(parents=True, exist_ok=True)
    paths = {"results.csv": out / "results.csv", "results.json": out / "results.json",
             "per_question.csv": out / "per_question.csv"}  # fmt: skip
    flops = bool(res.table) and any("flops" in r for r in res.table)  # a row without: its FLOPs are unknown
    columns = ["strategy", "budget", "questions", "accuracy", "accuracy_low", "accuracy_high", "calls", "tokens",
               "method", *(["flops"] if flops else [])]  # fmt: skip
    with paths["results.csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(res.table)
    with paths["per_question.csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["qid", "strategy", "budget", "accuracy", "calls", "tokens", "method",
                                               *(["flops"] if flops else [])], extrasaction="ignore")  # fmt: skip
        writer.writeheader()
        writer.writerows(res.per_question)
    paths["results.json"].write_text(json.dumps(
        {"dataset": res.dataset, "model": res.model, "parameters": res.parameters, "questions": len(res.questions),
         "incomplete": res.incomplete, "results": res.table}, indent=2))  # fmt: skip
    try:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:  # a notebook's (or an app's) backend is left as it is
            matplotlib.use("Agg")
    except ImportError:
        return paths
    axes = [("calls", "LLM calls per question"), ("tokens", "tokens per question")]
    if flops:
        axes.append(("flops", "FLOPs per question (2 × parameters × tokens)"))
    for axis, label in axes:
        paths[f"accuracy_vs_{axis}.png"] = plot_results(res, axis, label, out / f"accuracy_vs_{axis}.png")
    return paths


def plot_results(res: Results, axis: str, label: str, path: Path) -> Path:
    """Accuracy against ``axis`` (``calls``, ``tokens`` or ``flops``) per strategy, with bands, saved to ``path``."""

    import matplotlib.pyplot as plt

    from graphs.lab.plots import plot_curves

    xs: dict[str, np.ndarray] = {}
    series: dict[str, Any] = {}
    for strategy in dict.fromkeys(r["strategy"] for r in res.table):
        rows = [r for r in res.table if r["strategy"] == strategy and axis in r]  # FLOPs may be unknown for some
        if not rows:
            continue
        xs[strategy] = np.array([r[axis] for r in rows])
        series[strategy] = tuple(np.array([r[key] for r in rows]) for key in ("accuracy", "accuracy_low",
                                                                             "accuracy_high"))  # fmt: skip
    title = f"{res.dataset}, {res.model}: accuracy against {axis} (95% bootstrap over questions)"
    fig = plot_curves(xs, series, xlabel=label, title=title, path=path)
    plt.close(fig)
    return path


def format_table(res: Results) -> str:
    """The results table as text, one row per strategy and budget, with 95% intervals."""

    lines = [f"{res.dataset} · {res.model} · {len(res.questions)} questions"
             + (f" ({len(res.incomplete)} incomplete, left out of pooled rows)" if res.incomplete else ""),
             f"{'strategy':<20}{'budget':>7}{'accuracy':>10}{'95% CI':>16}{'calls':>9}{'tokens':>10}"
             f"{'TFLOPs':>9}  n"]  # fmt: skip
    for r in res.table:
        ci = f"[{r['accuracy_low']:.3f}, {r['accuracy_high']:.3f}]"
        tflops = f"{r['flops'] / 1e12:>9.2f}" if "flops" in r else f"{'?':>9}"
        lines.append(f"{r['strategy']:<20}{r['budget']:>7}{r['accuracy']:>10.3f}{ci:>16}{r['calls']:>9.1f}"
                     f"{r['tokens']:>10.0f}{tflops}  {r['questions']}")  # fmt: skip
    return "\n".join(lines)
