"""Compute-optimal strategy selection (Snell et al., section 2 of the algorithms spec).

Each question's difficulty is estimated from a cheap *probe*, binned into quantiles, and per bin
the configuration (strategy, budget) that did best on training questions within a token budget
is chosen. As in the paper, selection is cross-validated: the questions are split into folds
(stratified by difficulty); each fold is scored with the choices made on the others, so every
question is scored exactly once by a policy that never saw it. The baseline is the best single
fixed configuration chosen on the same training folds under the same token budget.

Difficulty probes (higher is harder):

- ``agreement``: 1 − the share of the plurality answer among a question's probe samples (a
  sample with no answer agrees with nothing). It is what :mod:`graphs.strategies.router`
  measures at run time, so a policy fitted on it can be deployed;
- ``oracle``: 1 − the share of right answers among them (Snell's oracle difficulty, pass@1;
  analysis only).

The probe reads the held-out samples ``ttc eval`` draws beyond the largest budget
(:attr:`graphs.evaluation.plan.EvalPlan.probe`), so a question's bin is never read from the
samples it is scored on: a probe inside the pool would put the questions whose own samples happen
to agree in the "easy" bin and credit that bin with their luck. Results without held-out samples
(a plan with ``probe=0``) fall back to the pool's first samples, and say so (``held_out``).

The probe's own cost is reported but, as in the paper, not charged to either side.
:func:`by_difficulty` gives every configuration's results per difficulty bin.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from graphs.evaluation.results import Results
from graphs.lab.pool import bootstrap_band
from nodes.answers import equivalent, group_answers
from nodes.errors import ConfigError

__all__ = [
    "BudgetPoint",
    "Policy",
    "Selection",
    "agreement",
    "assign_bins",
    "bin_edges",
    "by_difficulty",
    "difficulty",
    "format_by_difficulty",
    "select_compute_optimal",
    "write_by_difficulty",
]

Probe = Literal["agreement", "oracle"]


def agreement(answers: Sequence[str | None]) -> float:
    """The share of the plurality answer among ``answers`` (equivalent answers count together).

    Example:
        >>> agreement(["42", "42.0", "41", None])
        0.5
    """
    if not answers:
        raise ValueError("no answers to measure agreement on")
    groups = group_answers(list(answers))
    return max((len(g.members) for g in groups), default=0) / len(answers)


def difficulty(res: Results, qids: Sequence[str], probe: Probe = "agreement", size: int = 4) -> np.ndarray:
    """Each question's difficulty (higher is harder) from ``size`` held-out probe samples, or, for
    results without them, from the pool's first ``size`` samples."""
    if probe not in ("agreement", "oracle"):
        raise ConfigError(f"unknown probe {probe!r} (agreement, oracle)")
    out = np.zeros(len(qids))
    for i, qid in enumerate(qids):
        pool = res.pools.get(qid)
        if pool is None:
            raise ConfigError(f"question {qid!r} has no sample pool: the probe needs a pooled strategy (e.g. vote)")
        if res.probes and qid not in res.probes:
            raise ConfigError(f"question {qid!r} has no held-out probe samples (a store drawn before them): "
                              "run ttc eval again to draw them")  # fmt: skip
        answers = res.probes[qid] if res.probes else pool.answers
        if size > len(answers):
            where = "held-out probe samples" if res.probes else "pool samples (largest budget)"
            raise ConfigError(f"a probe of {size} samples needs {size} {where}, there are {len(answers)}")
        answers = answers[:size]
        if probe == "agreement":
            out[i] = 1.0 - agreement(answers)
        else:
            out[i] = 1.0 - sum(a is not None and equivalent(a, pool.correct) for a in answers) / size
    return out


def by_difficulty(
    res: Results,
    *,
    probe: Probe = "agreement",
    probe_size: int = 4,
    bins: int = 3,
    edges: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Every configuration's results per difficulty bin (quantile bins of the probe over the
    questions, or the given inner ``edges``): rows of ``bin, difficulty_low, difficulty_high,
    strategy, budget, questions, accuracy, accuracy_low, accuracy_high, calls, tokens`` (and ``flops``
    when known), accuracy with a 95% bootstrap interval over the bin's questions.

    With held-out probe samples (``res.probes``) the bins are not read from the samples the
    results are computed from.
    """
    qids = res.complete_questions()
    if not qids:
        raise ConfigError("no question has every result")
    diff = difficulty(res, qids, probe, probe_size)
    inner = np.asarray(edges, dtype=float) if edges is not None else bin_edges(diff, bins)
    labels = assign_bins(diff, inner)
    bin_of = dict(zip(qids, labels.tolist(), strict=True))
    rows = []
    for b in range(len(inner) + 1):
        members = [q for q in qids if bin_of[q] == b]
        if not members:
            continue
        within = diff[labels == b]
        for config in dict.fromkeys((r["strategy"], r["budget"]) for r in res.per_question):
            picked = [
                r for r in res.per_question if (r["strategy"], r["budget"]) == config and bin_of.get(r["qid"]) == b
            ]
            mean, low, high = bootstrap_band(np.array([[r["accuracy"]] for r in picked]), resamples=1000)
            rows.append({
                "bin": b, "difficulty_low": float(within.min()), "difficulty_high": float(within.max()),
                "strategy": config[0], "budget": config[1],
                "questions": len(picked), "accuracy": float(mean[0]), "accuracy_low": float(low[0]),
                "accuracy_high": float(high[0]), "calls": float(np.mean([r["calls"] for r in picked])),
                "tokens": float(np.mean([r["tokens"] for r in picked])),
                **({"flops": float(np.mean([r["flops"] for r in picked]))}
                   if all("flops" in r for r in picked) else {}),
                "held_out": bool(res.probes),
            })  # fmt: skip
    return rows


def bin_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of ``bins`` quantile bins of ``values`` (duplicates merged: tied values, as
    from a probe of a few samples, never straddle an edge, so there may be fewer bins)."""
    if bins < 1:
        raise ConfigError("bins must be positive")
    inner = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]) if bins > 1 else np.array([])
    return np.unique(inner)


def assign_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value: ``i`` when ``edges[i-1] < v <= edges[i]``."""
    return np.searchsorted(edges, values, side="left")


@dataclass(frozen=True)
class Route:
    strategy: str
    budget: int

    @property
    def name(self) -> str:
        return f"{self.strategy}@{self.budget}"


@dataclass
class Policy:
    """Per difficulty bin, the configuration to run: what :func:`graphs.strategies.router.build_router_graph` needs.

    ``edges`` are the inner bin edges of the difficulty probe (``agreement`` of ``probe_size``
    samples); ``routes[i]`` serves bin ``i``. The probe's samples are seeded from the run's seed
    plus ``probe_seed_offset``: the evaluation's largest budget when the policy was fitted on a
    held-out probe, so the probe's samples are not the routed strategy's first ones, as in the
    evaluation. ``answer_format`` and ``options``
    (each route's builder options, as :func:`graphs.evaluation.plan.options_key` describes them)
    record what was evaluated, so a router can run the same.
    """

    probe: str
    probe_size: int
    edges: list[float]
    routes: list[Route]
    token_budget: float | None = None
    answer_format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    probe_seed_offset: int = 0

    def route(self, value: float) -> Route:
        return self.routes[int(assign_bins(np.array([value]), np.array(self.edges))[0])]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Policy:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not a routing policy: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Policy:
        try:
            routes = [Route(r["strategy"], int(r["budget"])) for r in data["routes"]]
            edges = [float(e) for e in data["edges"]]
            policy = cls(data["probe"], int(data["probe_size"]), edges, routes, data.get("token_budget"),
                         data.get("answer_format"), dict(data.get("options") or {}),
                         int(data.get("probe_seed_offset") or 0))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a routing policy: {exc}") from None
        if len(policy.routes) != len(policy.edges) + 1:
            raise ConfigError("a routing policy needs one route per bin (one more than its edges)")
        return policy

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        try:
            return cls.from_json(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read policy {path}: {exc.strerror}") from None


@dataclass
class BudgetPoint:
    """Held-out results at one token budget (mean tokens per question)."""

    token_budget: float
    optimal_accuracy: float
    optimal_tokens: float
    fixed_accuracy: float
    fixed_tokens: float
    fixed_choices: list[str]  # the fixed configuration chosen on each fold
    optimal_choices: list[list[str]]  # per fold, per bin


@dataclass
class Selection:
    probe: str
    probe_size: int
    bins: int
    folds: int
    questions: int
    configs: list[str]
    points: list[BudgetPoint]
    policies: dict[str, Policy] = field(default_factory=dict)  # fitted on all questions, by token budget
    probe_tokens: float = 0.0  # mean tokens per question of the probe (not charged)
    held_out: bool = False  # the probe read held-out samples (not the pool's first ones)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "policies": {k: asdict(v) for k, v in self.policies.items()}}


def _choose(acc: np.ndarray, tokens: np.ndarray, rows: np.ndarray, budget: float) -> int:
    """The configuration with the best mean accuracy over ``rows`` whose mean tokens fit the
    budget (ties: the cheaper); the cheapest one if none fits."""
    mean_acc, mean_tok = acc[rows].mean(axis=0), tokens[rows].mean(axis=0)
    fits = np.flatnonzero(mean_tok <= budget + 1e-9)
    if not len(fits):
        return int(np.argmin(mean_tok))
    return int(min(fits, key=lambda c: (-round(float(mean_acc[c]), 12), float(mean_tok[c]))))


def _fit(
    acc: np.ndarray, tokens: np.ndarray, diff: np.ndarray, train: np.ndarray, bins: int, budget: float
) -> tuple[np.ndarray, list[int], int]:
    """Edges, per-bin choices and the fixed choice fitted on the ``train`` rows."""
    edges = bin_edges(diff[train], bins)
    labels = assign_bins(diff[train], edges)
    fixed = _choose(acc, tokens, train, budget)
    per_bin = []
    for b in range(len(edges) + 1):
        rows = train[labels == b]
        per_bin.append(_choose(acc, tokens, rows, budget) if len(rows) else fixed)
    return edges, per_bin, fixed


def _folds(diff: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold of each question, stratified by difficulty (sorted, ties shuffled, dealt in turn)."""
    rng = random.Random(seed)
    keys = [(d, rng.random()) for d in diff]
    order = sorted(range(len(diff)), key=lambda i: keys[i])
    fold = np.zeros(len(diff), dtype=int)
    for rank, i in enumerate(order):
        fold[i] = rank % folds
    return fold


def select_compute_optimal(
    res: Results,
    *,
    probe: Probe = "agreement",
    probe_size: int = 4,
    bins: int = 3,
    folds: int = 2,
    token_budgets: Sequence[float] | None = None,
    seed: int = 0,
    options: dict[str, str] | None = None,
) -> Selection:
    """Cross-validated compute-optimal selection against the best fixed configuration.

    Args:
        res: an evaluation's results (every configuration on the same questions).
        probe: the difficulty estimate (see the module docs).
        probe_size: samples the ``agreement`` probe reads.
        bins: difficulty quantile bins (Snell et al. use 5).
        folds: cross-validation folds (the paper uses 2).
        token_budgets: mean tokens per question to compare at (default: every configuration's
            mean cost).
        seed: for the fold assignment.
        options: each configuration's builder options by name (``"vote@4"``), recorded in the policies.
    """
    configs, acc = res.matrix("accuracy")
    _, tokens = res.matrix("tokens")
    usable = [i for i, (strategy, _) in enumerate(configs) if strategy != "pass@k"]  # an oracle, not a strategy
    configs, acc, tokens = [configs[i] for i in usable], acc[:, usable], tokens[:, usable]
    if not configs:
        raise ConfigError("no strategy to select from (pass@k is an oracle)")
    qids = res.complete_questions()
    if len(qids) < 2 * folds:
        raise ConfigError(f"compute-optimal selection needs at least {2 * folds} questions with every result")
    if folds < 2:
        raise ConfigError("folds must be at least 2")
    diff = difficulty(res, qids, probe, probe_size)
    budgets = sorted(set(token_budgets)) if token_budgets else sorted({round(float(t), 1) for t in tokens.mean(0)})
    fold = _folds(diff, folds, seed)
    # the router's probe is seeded past every sample a routed strategy draws (the pool, and a direct run's budget)
    offset = (
        max([p.size for p in res.pools.values()] + [int(r["budget"]) for r in res.per_question]) if res.probes else 0
    )
    names = [f"{s}@{b}" for s, b in configs]
    points = []
    everyone = np.arange(len(qids))
    policies = {}
    for budget in budgets:
        opt_acc, opt_tok, fix_acc, fix_tok = (np.zeros(len(qids)) for _ in range(4))
        fixed_names, optimal_names = [], []
        for f in range(folds):
            train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            edges, per_bin, fixed = _fit(acc, tokens, diff, train, bins, budget)
            labels = assign_bins(diff[test], edges)
            chosen = np.array([per_bin[b] for b in labels])
            opt_acc[test], opt_tok[test] = acc[test, chosen], tokens[test, chosen]
            fix_acc[test], fix_tok[test] = acc[test, fixed], tokens[test, fixed]
            fixed_names.append(names[fixed])
            optimal_names.append([names[c] for c in per_bin])
        points.append(BudgetPoint(budget, float(opt_acc.mean()), float(opt_tok.mean()), float(fix_acc.mean()),
                                  float(fix_tok.mean()), fixed_names, optimal_names))  # fmt: skip
        edges, per_bin, _ = _fit(acc, tokens, diff, everyone, bins, budget)
        routes = [Route(*configs[c]) for c in per_bin]
        policies[f"{budget:.1f}"] = Policy(probe, probe_size, [float(e) for e in edges], routes, budget,
                                           res.answer_format, {r.name: (options or {}).get(r.name, "{}")
                                                               for r in routes}, offset)  # fmt: skip
    probe_tokens = 0.0
    vote_rows = [r for r in res.per_question if r["strategy"] == "vote" and r["budget"] == probe_size]
    if vote_rows:
        probe_tokens = float(np.mean([r["tokens"] for r in vote_rows]))
    return Selection(probe, probe_size, bins, folds, len(qids), names, points, policies, probe_tokens, bool(res.probes))


def format_selection(sel: Selection) -> str:
    lines = [
        f"compute-optimal selection: probe {sel.probe} of {sel.probe_size} "
        + ("held-out samples" if sel.held_out else "samples inside the pool (not held out)")
        + f", {sel.bins} bins, {sel.folds}-fold cross-validation over {sel.questions} questions (held-out results)",
        f"{'token budget':>13}{'optimal acc':>13}{'tokens':>9}{'fixed acc':>11}{'tokens':>9}"
        "  fixed choice / per-bin choice (first fold)",
    ]
    for p in sel.points:
        lines.append(
            f"{p.token_budget:>13.0f}{p.optimal_accuracy:>13.3f}{p.optimal_tokens:>9.0f}{p.fixed_accuracy:>11.3f}"
            f"{p.fixed_tokens:>9.0f}  {p.fixed_choices[0]} / {' | '.join(p.optimal_choices[0])}"
        )
    return "\n".join(lines)


def plot_selection(sel: Selection, path: Path, title: str | None = None) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    pts = sel.points
    ax.plot([p.fixed_tokens for p in pts], [p.fixed_accuracy for p in pts], "o-", label="best fixed configuration")
    ax.plot([p.optimal_tokens for p in pts], [p.optimal_accuracy for p in pts], "s-",
            label=f"compute-optimal per {sel.probe} bin")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("tokens per question (held-out mean)")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(title or f"compute-optimal vs fixed, {sel.folds}-fold CV over {sel.questions} questions")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def format_by_difficulty(rows: Sequence[dict[str, Any]]) -> str:
    """Per difficulty bin, the best configuration and the cheapest one, as text."""
    if not rows:
        return "by difficulty: no rows"
    held = "held-out probe" if rows[0]["held_out"] else "probe inside the pool"
    lines = [f"by difficulty ({held}; see by_difficulty.csv):"]
    for b in sorted({r["bin"] for r in rows}):
        inside = [r for r in rows if r["bin"] == b and r["strategy"] != "pass@k"] or [r for r in rows if r["bin"] == b]
        best = max(inside, key=lambda r: (round(r["accuracy"], 12), -r["tokens"]))
        cheap = min(inside, key=lambda r: (r["tokens"], -r["accuracy"]))
        lines.append(
            f"  bin {b}: difficulty {best['difficulty_low']:.2f}-{best['difficulty_high']:.2f}, {best['questions']} "
            f"questions; best {best['strategy']}@{best['budget']} {best['accuracy']:.3f} "
            f"[{best['accuracy_low']:.3f}, {best['accuracy_high']:.3f}] at {best['tokens']:.0f} tokens; "
            f"cheapest {cheap['strategy']}@{cheap['budget']} {cheap['accuracy']:.3f}"
        )
    return "\n".join(lines)


def write_by_difficulty(rows: Sequence[dict[str, Any]], out: Path, *, title: str = "") -> list[Path]:
    """``by_difficulty.csv`` and, with matplotlib, ``by_difficulty.png``: a panel per bin, accuracy
    against FLOPs (tokens when the model's size is unknown) per strategy, with 95% bands."""
    import csv

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "by_difficulty.csv"]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with paths[0].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    try:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return paths
    from graphs.lab.plots import plot_curves

    bins = sorted({r["bin"] for r in rows})
    axis = "flops" if rows and all("flops" in r for r in rows) else "tokens"
    fig, axes = plt.subplots(1, len(bins), figsize=(4.2 * len(bins), 3.8), dpi=110, sharey=True, squeeze=False)
    for ax, b in zip(axes[0], bins, strict=True):
        inside = [r for r in rows if r["bin"] == b]
        xs: dict[str, list[float]] = {}
        series: dict[str, Any] = {}
        for strategy in dict.fromkeys(r["strategy"] for r in inside):
            mine = sorted((r for r in inside if r["strategy"] == strategy), key=lambda r: r[axis])
            xs[strategy] = [r[axis] for r in mine]
            series[strategy] = tuple(
                np.array([r[k] for r in mine]) for k in ("accuracy", "accuracy_low", "accuracy_high")
            )
        first = inside[0]
        plot_curves(xs, series, xlabel="FLOPs per question" if axis == "flops" else "tokens per question", ax=ax,
                    title=f"bin {b}: difficulty {first['difficulty_low']:.2f}-{first['difficulty_high']:.2f} "
                          f"({first['questions']} q)")  # fmt: skip
    held = "held-out probe" if rows and rows[0]["held_out"] else "probe inside the pool"
    fig.suptitle(f"{title}: accuracy by difficulty bin ({held}, 95% bands)", fontsize=10)
    fig.tight_layout()
    paths.append(out / "by_difficulty.png")
    fig.savefig(paths[-1], bbox_inches="tight")
    plt.close(fig)
    return paths
