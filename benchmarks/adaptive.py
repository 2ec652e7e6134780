"""Adaptive votes and DeepConf on the embedded model, measured (issue 14).

Three steps, each resumable, all on one running server (``ttc serve``, or ``--base-url``):

1. **pools**: ``ttc eval`` draws 16 samples a question with their top-20 token logprobs into a
   store per data set (GSM8K, ``--questions`` of them, and graded arithmetic), the same pools
   Vote@k is computed from;
2. **direct runs**: online DeepConf runs as a graph per question (it streams and stops traces, so
   it cannot come from a pool), into the same store;
3. **its_hub**: its ``AdaptiveSelfConsistency`` (doubling 2, 4, 8, 16 until 75% agree) beside
   this project's ``adaptive-vote`` with the same rule (``--stop supermajority``) and with the
   Beta rule, on the first ``--peer-questions`` GSM8K questions, taking turns chunk by chunk
   (:func:`benchmarks.peers.take_turns`); tokens from vLLM's own counters.

Then :func:`report` computes every row from the stores, with no LLM call: Vote@1..16 and pass@k
(exact over subsets), each adaptive rule at cap 16 (exact expectations over sample orders:
accuracy, expected samples and tokens), offline DeepConf (over subsets), online DeepConf (direct)
and the peer pair, with 95% bootstrap intervals over questions, and writes a markdown table and a
plot of accuracy against mean tokens to ``benchmarks/results/``.

``python -m benchmarks.adaptive [--questions 100] [--peer-questions 32] [--steps pools,direct,its_hub,report]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.peers import (
    IN_FLIGHT,
    Settings,
    Tally,
    graph_side,
    its_hub_side,
    peer_python,
    take_turns,
)
from graphs.cli import amain
from graphs.evaluation import EvalPlan, EvalStore, results
from graphs.evaluation.datasets import Dataset
from graphs.lab.pool import bootstrap_band
from graphs.strategies import build_adaptive_vote_graph

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks" / "results" / "adaptive"
CAP = 16
BUDGETS = ",".join(str(k) for k in range(1, CAP + 1))
ONLINE = {"warmup": 4, "keep": 90.0, "window": 64, "consensus": 0.95, "wave_size": 4}
ONLINE_FLAGS = ["--warmup", "4", "--keep", "90", "--conf-window", "64", "--consensus", "0.95", "--wave", "4"]
RULES: list[tuple[str, dict[str, Any]]] = [
    ("adaptive beta (0.95)", {"stop": "beta"}),
    ("adaptive dirichlet (0.95)", {"stop": "dirichlet"}),
    ("adaptive esc (window 8)", {"stop": "esc"}),
    ("adaptive esc (window 4)", {"stop": "esc", "window": 4}),
    ("adaptive supermajority (0.75)", {"stop": "supermajority"}),
    ("adaptive beta (0.99)", {"stop": "beta", "threshold": 0.99}),
]
DEEPCONF: list[tuple[str, dict[str, Any]]] = [
    ("deepconf bottom10, keep 10%", {"measure": "bottom10", "keep": 10.0}),
    ("deepconf tail, keep 10%", {"measure": "tail", "keep": 10.0}),
    ("deepconf lowest (w 64), keep 90%", {"measure": "lowest", "keep": 90.0, "window": 64}),
    ("deepconf mean, keep 100%", {"measure": "mean", "keep": 100.0}),
]
SETS = {"gsm8k": ["-d", "gsm8k", "--data", "{data}"], "arithmetic": ["-d", "arithmetic", "--per-level", "8"]}


def data_dir() -> str:
    return os.environ.get("TTC_DATA_DIR") or str(ROOT.parent / "shared" / "data")


def eval_args(name: str, questions: int) -> list[str]:
    args = [a.format(data=data_dir()) for a in SETS[name]]
    return [*args, *(["--limit", str(questions)] if name == "gsm8k" else []), "--out", str(OUT / name), "--quiet"]


async def pools(questions: int) -> None:
    for name in SETS:
        await amain(["eval", *eval_args(name, questions), "--strategies", "vote,pass@k", "--budgets", BUDGETS,
                     "--logprobs", "20"])  # fmt: skip


async def direct(questions: int, sets: Sequence[str] = tuple(SETS)) -> None:
    for name in sets:
        await amain(["eval", *eval_args(name, questions), "--strategies", "deepconf-online", "--budgets", str(CAP),
                     *ONLINE_FLAGS])  # fmt: skip


# -- its_hub beside adaptive-vote -----------------------------------------------------------------


def adaptive_side(options: dict[str, Any]) -> Any:
    graph = build_adaptive_vote_graph(CAP, **options).compile()
    return graph_side(graph, CAP, lambda o: f"The answer is {o['answer']}." if o.get("answer") is not None else "")


def its_hub(peer_questions: int, base_url: str, model: str) -> None:
    with EvalStore(OUT / "gsm8k" / "store.sqlite") as store:
        settings = store.settings()
        records = store.records()[:peer_questions]
    dataset = Dataset("gsm8k", records, "number")
    sides = [
        ("adaptive-vote supermajority", adaptive_side({"stop": "supermajority"})),
        ("its_hub AdaptiveSelfConsistency", its_hub_side(peer_python(), "adaptive-self-consistency", CAP)),
        ("adaptive-vote beta", adaptive_side({"stop": "beta"})),
    ]
    run = Settings(model, base_url, int(settings["max_tokens"]), float(settings["temperature"]))

    def save(tallies: list[Tally]) -> None:  # after every chunk: a failure later keeps the turns measured
        (OUT / "its_hub.json").write_text(json.dumps({t.name: t.summary() for t in tallies}, indent=1))

    save(take_turns(sides, run, dataset, IN_FLIGHT, print, on_chunk=save))


# -- the report -------------------------------------------------------------------------------------


def _rows(store: EvalStore, plan: EvalPlan) -> list[dict[str, Any]]:
    return [{**row, "label": f"{row['strategy']}@{row['budget']}"} for row in results(store, plan).table]


def report(name: str) -> tuple[list[dict[str, Any]], str]:
    with EvalStore(OUT / name / "store.sqlite") as store:
        ks = tuple(range(1, CAP + 1))
        rows = _rows(store, EvalPlan(("vote", "pass@k"), ks))
        for label, options in RULES:
            part = _rows(store, EvalPlan(("adaptive-vote",), ks, options={"adaptive-vote": options}))
            rows += [{**r, "label": f"{label}, cap {r['budget']}"} for r in part]
        for label, options in DEEPCONF:
            part = _rows(store, EvalPlan(("deepconf",), (4, 8, CAP), options={"deepconf": options}))
            rows += [{**r, "label": f"{label} @{r['budget']}"} for r in part]
        online = EvalPlan(("deepconf-online",), (CAP,), options={"deepconf-online": ONLINE})
        runs = results(store, online)
        if runs.table:
            rows += [{**r, "label": f"deepconf online (warm-up 4, keep 90%, w 64) @{r['budget']}"} for r in runs.table]
            ran = [store.record(q) for q in sorted({r["qid"] for r in runs.per_question})]
            if len(ran) < len(store.records()):  # the pooled rows again, on the questions online DeepConf ran
                same = results(store, EvalPlan(("vote",), (4, 8, CAP)), ran).table
                beta = EvalPlan(("adaptive-vote",), (CAP,), options={"adaptive-vote": {"stop": "beta"}})
                same += results(store, beta, ran).table
                same += results(store, EvalPlan(("deepconf",), (CAP,), options={"deepconf": DEEPCONF[0][1]}), ran).table
                rows += [{**r, "label": f"{r['strategy']}@{r['budget']} (the {len(ran)} questions online ran on)"}
                         for r in same]  # fmt: skip
            outputs = store.runs("deepconf-online", CAP, _online_key(online), outputs=True)
            stopped = sum(len(o["output"]["decision"].get("stopped") or []) for o in outputs)
            cancelled = sum(len(o["output"]["decision"].get("cancelled") or []) for o in outputs)
            traces = sum(len(o["output"]["candidates"]) for o in outputs)
            note = f"online DeepConf: {traces} traces, {stopped} stopped for low confidence, {cancelled} at consensus"
        else:
            note = "online DeepConf: no direct runs in the store"
    return rows, note


def _online_key(plan: EvalPlan) -> str:
    from graphs.evaluation import options_key

    return options_key(plan.run_options("deepconf-online", CAP))


def peer_rows() -> list[dict[str, Any]]:
    path = OUT / "its_hub.json"
    if not path.exists():
        return []
    rows = []
    for name, side in json.loads(path.read_text()).items():
        right = np.array([[float(a["correct"])] for a in side["answers"]])
        mean, low, high = bootstrap_band(right, resamples=1000)
        tokens = (side["server"]["prompt_tokens"] + side["server"]["generation_tokens"]) / side["questions"]
        rows.append({"label": f"{name} (cap 16, vLLM's counters)", "accuracy": float(mean[0]),
                     "accuracy_low": float(low[0]), "accuracy_high": float(high[0]), "tokens": tokens,
                     "calls": side["server"]["sequences"] / side["questions"], "questions": side["questions"],
                     "seconds": side["seconds"]})  # fmt: skip
    return rows


def markdown(rows: Sequence[dict[str, Any]], title: str, note: str = "") -> str:
    lines = [f"### {title}", "", "| configuration | accuracy | 95% CI | samples | tokens | questions |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['label']} | {r['accuracy']:.3f} | [{r['accuracy_low']:.3f}, {r['accuracy_high']:.3f}] "
                     f"| {r['calls']:.2f} | {r['tokens']:.0f} | {r['questions']} |")  # fmt: skip
    return "\n".join(lines + ([f"\n{note}"] if note else []))


def plot(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    vote = [r for r in rows if r["label"].startswith("vote@")]
    ax.plot([r["tokens"] for r in vote], [r["accuracy"] for r in vote], "o-", color="k", label="Vote@1..16")
    ax.fill_between([r["tokens"] for r in vote], [r["accuracy_low"] for r in vote],
                    [r["accuracy_high"] for r in vote], color="k", alpha=0.1)  # fmt: skip
    for r in rows:
        if r["label"].startswith(("vote@", "pass@")) or (", cap" in r["label"] and r["budget"] != CAP):
            continue
        ax.errorbar(r["tokens"], r["accuracy"], yerr=[[r["accuracy"] - r["accuracy_low"]],
                    [r["accuracy_high"] - r["accuracy"]]], fmt="s", capsize=3, label=r["label"])  # fmt: skip
    ax.set_xlabel("mean tokens per question (prompt + completion)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report() -> Path:
    parts = []
    for name in SETS:
        if not (OUT / name / "store.sqlite").exists():
            continue
        rows, note = report(name)
        extra = peer_rows() if name == "gsm8k" else []
        shown = [r for r in rows if r["label"].startswith(("vote@", "pass@")) or ", cap 16" in r["label"]
                 or any(f"@{k}" in r["label"] for k in (4, 8, 16)) or "online ran" in r["label"]]  # fmt: skip
        parts.append(markdown(shown + extra, f"{name}, Qwen2.5-Coder-0.5B (cap 16)", note))
        plot(rows + extra, OUT / f"{name}-accuracy-vs-tokens.png", f"{name}: adaptive votes and DeepConf (cap 16)")
        (OUT / f"{name}-rows.json").write_text(json.dumps(rows + extra, indent=1))
    path = OUT / "results.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adaptive")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--peer-questions", type=int, default=32)
    parser.add_argument("--steps", default="pools,direct,its_hub,report")
    parser.add_argument("--sets", default="gsm8k,arithmetic", help="data sets of the direct step")
    args = parser.parse_args(argv)
    steps = args.steps.split(",")
    base_url, model = os.environ.get("TTC_BASE_URL"), os.environ.get("TTC_MODEL")
    if not base_url or not model:
        sys.exit("set TTC_BASE_URL and TTC_MODEL to the running server (ttc serve prints them)")
    if "pools" in steps:
        asyncio.run(pools(args.questions))
    if "direct" in steps:
        asyncio.run(direct(args.questions, args.sets.split(",")))
    if "its_hub" in steps:
        its_hub(args.peer_questions, base_url, model)
    if "report" in steps:
        print(write_report().read_text())


if __name__ == "__main__":
    main()
