"""``ttc eval``: a data set, a plan and a store from the flags; the results, the compute-optimal
selection and their files."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from graphs.cli.parser import strategy_options
from graphs.cli.run import _context, _endpoint
from graphs.evaluation import (
    EvalPlan,
    EvalStore,
    Progress,
    Results,
    evaluate,
    format_table,
    known,
    method_of,
    options_key,
    pending,
    progress_total,
    results,
    store_settings,
    write_outputs,
)
from graphs.evaluation.datasets import Dataset, load
from graphs.evaluation.selection import (
    Selection,
    by_difficulty,
    format_by_difficulty,
    format_selection,
    plot_selection,
    select_compute_optimal,
    write_by_difficulty,
)
from graphs.registry import strategies
from nodes.endpoint import LLM
from nodes.errors import ConfigError
from nodes.server import PACKAGED_MODELS

__all__ = ["format_eval"]


def _eval_dataset(args: argparse.Namespace) -> Dataset:
    options: dict[str, Any] = {}
    if args.subject and args.dataset != "mmlu":
        raise ConfigError("--subject is for --dataset mmlu")
    if args.dataset == "arithmetic":
        options = {"per_level": args.per_level, "levels": args.levels, "seed": args.question_seed}
    elif args.dataset == "mmlu" and args.subject:
        options = {"subjects": args.subject}
    try:
        dataset = load(args.dataset, args.data, **options)
    except ValueError as exc:  # e.g. an unknown arithmetic level
        raise ConfigError(str(exc)) from None
    if args.answer_format is None:
        args.answer_format = dataset.answer_format
    return dataset.select(args.limit, args.question_seed)


def _served_model(args: argparse.Namespace) -> str:
    """The model name the run will use, known before any server starts."""
    if args.base_url or os.environ.get("TTC_BASE_URL"):
        return str(args.model or os.environ.get("TTC_MODEL") or "")
    return PACKAGED_MODELS[args.server_model].served_name


ORACLES_AND_SHARED = ("pass@k", "vote", "filter-vote", "best-of-n", "weighted-best-of-n")
"""Pooled methods whose options are the plan's own (scorer, aggregation), not the strategy's flags."""


def _eval_plan(args: argparse.Namespace) -> EvalPlan:
    unknown = [s for s in args.strategies if s not in known()]
    if unknown:  # before any strategy's options are read
        raise ConfigError(f"unknown strategies {unknown} (known: {', '.join(known())})")
    pooled_scorer = None
    registered = strategies()
    best_of = [s for s in args.strategies if s in registered and registered[s].pooled and registered[s].scorer]
    if best_of:
        pooled_scorer = strategy_options(args, best_of[0])["scorer"]
    return EvalPlan(
        strategies=tuple(args.strategies),
        budgets=tuple(args.budgets),
        scorer=pooled_scorer,
        aggregation=args.aggregation,
        options={s: strategy_options(args, s) for s in args.strategies if method_of(s) not in ORACLES_AND_SHARED},
        subsets=args.subsets,
        logprobs=args.logprobs,
        probe=0 if args.dataset == "humaneval" else args.probe_size,  # code has no answers to agree on
        direct_budgets=tuple(args.direct_budgets or ()),
    )


async def _evaluate(args: argparse.Namespace) -> tuple[dict[str, Any], Results, Selection | None]:
    dataset = _eval_dataset(args)
    plan = _eval_plan(args)
    plan.check_dataset(dataset)
    out = Path(args.out or f"ttc-eval/{dataset.name}")
    with EvalStore(out / "store.sqlite") as store:
        plan = plan.for_store(store)
        args.pool_logprobs = plan.top_logprobs  # what the pool's proposals ask for, and a store setting
        store.check_settings({**store_settings(dataset, _served_model(args), args), "top_logprobs": plan.top_logprobs})
        left = pending(store, dataset, plan)
        if left:
            with _endpoint(args) as endpoint:
                async with LLM(endpoint) as llm:
                    await llm.check()
                    ctx = _context(args, llm)
                    progress = None if args.quiet else Progress(progress_total(dataset, plan))
                    deferred = await evaluate(store, dataset, plan, ctx, concurrency=args.concurrency,
                                              progress=progress)  # fmt: skip
                    if deferred:
                        print(f"ttc: {deferred} direct runs met endpoint failures after their retries and were not "
                              "stored; run the same command again to run them", file=sys.stderr)  # fmt: skip
        elif not args.quiet:
            print(f"ttc: {out / 'store.sqlite'} holds every result already: no LLM calls", file=sys.stderr)
        res = results(store, plan, dataset.records, max_n=args.max_n, parameters=args.params)
    paths = write_outputs(res, out)
    report: dict[str, Any] = {"dataset": res.dataset, "model": res.model, "questions": len(res.questions),
                              "incomplete": res.incomplete, "results": res.table, "out": str(out)}  # fmt: skip
    sel: Selection | None = None
    try:
        options = {f"{s}@{b}": options_key(plan.run_options(s, b)) for s in plan.strategies for b in plan.budgets_of(s)}
        sel = select_compute_optimal(res, probe=args.probe, probe_size=args.probe_size, bins=args.bins,
                                     folds=args.folds, seed=args.question_seed, options=options)  # fmt: skip
    except ConfigError as exc:
        report["selection"] = {"skipped": str(exc)}
    else:
        report["selection"] = sel.to_dict()
        (out / "selection.json").write_text(json.dumps(report["selection"], indent=2))
        (out / "policies.json").write_text(json.dumps(report["selection"]["policies"], indent=2))
        if "accuracy_vs_calls.png" in paths:
            plot_selection(sel, out / "compute_optimal.png")
    try:
        rows = by_difficulty(res, probe=args.probe, probe_size=args.probe_size, bins=args.bins)
    except ConfigError as exc:
        report["by_difficulty"] = {"skipped": str(exc)}
    else:
        report["by_difficulty"] = rows
        write_by_difficulty(rows, out, title=f"{res.dataset}, {res.model}")
    report["files"] = sorted(p.name for p in out.iterdir() if p.is_file())
    return report, res, sel


def format_eval(report: dict[str, Any], res: Results, sel: Selection | None) -> str:
    """The text report of ``ttc eval``: the results table, the compute-optimal selection, the files written."""
    lines = [format_table(res), ""]
    if sel is None:
        lines.append(f"compute-optimal selection skipped: {report['selection']['skipped']}")
    else:
        lines.append(format_selection(sel))
    if isinstance(report.get("by_difficulty"), list):
        lines += ["", format_by_difficulty(report["by_difficulty"])]
    lines.append(f"written to {report['out']}/: {', '.join(report['files'])}")
    return "\n".join(lines)
