"""The ``ttc`` command: ``ttc run`` answers a question with a strategy graph; ``ttc serve``
runs the embedded vLLM server in the foreground.

With no endpoint configured (``--base-url`` or ``TTC_BASE_URL``), ``ttc run`` starts the
embedded server for the run and stops it afterwards. User mistakes and endpoint failures end
with one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from langgraph.graph import StateGraph

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
from graphs.evaluation.datasets import DATASETS, Dataset, load
from graphs.evaluation.selection import Policy, Selection, format_selection, plot_selection, select_compute_optimal
from graphs.registry import StrategySpec, add_option_flags, get, positive, strategies
from graphs.strategies.router import build_router_graph
from nodes.answers import AnswerFormat
from nodes.budget import Budget, ledger_totals
from nodes.context import RunContext
from nodes.endpoint import LLM, Endpoint
from nodes.errors import ConfigError, EndpointError, ServerError, TTCError
from nodes.machine import DTYPES
from nodes.scorers import JudgeGrade, JudgeVerdict, PoolingPRM, Scorer, SelfEvalPRM
from nodes.server import DEFAULT_MODEL, PACKAGED_MODELS, EmbeddedServer

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the usage is one `ttc run -h` away.
        self.exit(2, f"ttc: error: {message} (see `{self.prog} -h`)\n")


_positive = positive


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"expected a temperature between 0 and 2, got {value}")
    return value


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return names


def _budgets(text: str) -> list[int]:
    return sorted({_positive(n) for n in _names(text)})


def _strategy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scorer",
        choices=sorted(SCORERS),
        help="verifier: default judge-grade for best-of-n, revision and mix; self-eval-prm for searches",
    )
    p.add_argument("--prm-url", help="pooling-prm: the PRM server (vLLM pooling API), e.g. http://gpu:8001")
    p.add_argument("--prm-model", help="pooling-prm: the served PRM's name")
    p.add_argument(
        "--prm-step-tag",
        default="\n\n",
        help="pooling-prm: text closing each step in the PRM input (default a blank line; Qwen2.5-Math-PRM: <extra_0>)",
    )
    add_option_flags(p)  # every registered strategy's options (a shared flag once)


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=_unit_float, default=0.7)
    p.add_argument("--judge-temperature", type=_unit_float, default=0.1)
    p.add_argument("--max-tokens", type=_positive, default=384, help="completion limit per proposal")
    p.add_argument("--judge-max-tokens", type=_positive, default=384, help="completion limit per judge call")
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ttc", description="Test-time-compute strategies as LangGraph graphs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="answer a question with a strategy")
    run.add_argument("question", help="the question to answer")
    run.add_argument("--strategy", "-s", choices=sorted([*strategies(), "router"]), default="filter-vote",
                     help="a strategy, or `router` with --policy (from ttc eval)")  # fmt: skip
    run.add_argument("-k", "-n", type=_positive, default=8, help="number of proposals (default 8)")
    run.add_argument("--policy", help="router: a routing policy file written by `ttc eval` (policies.json)")
    run.add_argument("--policy-budget", help="router: which of the file's token budgets (default the largest)")
    _strategy_args(run)
    run.add_argument("--format", dest="answer_format", choices=["auto", "number", "math", "choice"],
                     help="how the answer is asked for and read (default auto; router: its policy's)")  # fmt: skip
    _sampling_args(run)
    run.add_argument("--max-calls", type=_positive, help="budget cap: most LLM calls")
    run.add_argument("--max-total-tokens", type=_positive, help="budget cap: most prompt+completion tokens")
    _endpoint_args(run)
    run.add_argument("--json", action="store_true", help="print the whole result as JSON")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")

    ev = sub.add_parser("eval", help="run strategies over a data set at a grid of budgets (resumable)")
    ev.add_argument("--dataset", "-d", choices=["arithmetic", *DATASETS], default="arithmetic")
    ev.add_argument("--data", help="data folder laid out like ../shared/data (or TTC_DATA_DIR)")
    ev.add_argument("--subject", action="append", help="mmlu: a subject (repeatable; default all)")
    ev.add_argument("--per-level", type=_positive, default=4, help="arithmetic: questions per level (default 4)")
    ev.add_argument("--levels", type=_names, help="arithmetic: comma-separated levels (default all)")
    ev.add_argument("--limit", type=_positive, help="evaluate this many questions, drawn with --question-seed")
    ev.add_argument("--question-seed", type=int, default=0, help="which questions --limit draws (default 0)")
    ev.add_argument("--strategies", type=_names, default=["vote", "filter-vote"],
                    help=f"comma-separated, from {', '.join(known())} (default vote,filter-vote)")  # fmt: skip
    ev.add_argument("--budgets", type=_budgets, default=[1, 2, 4, 8],
                    help="comma-separated samples per question, k or n of each strategy (default 1,2,4,8)")  # fmt: skip
    ev.add_argument("--out", "-o", help="output folder: store.sqlite, results, plots (default ttc-eval/DATASET)")
    _strategy_args(ev)
    ev.add_argument("--format", dest="answer_format", choices=["auto", "number", "math", "choice"],
                    help="how answers are asked for and read (default: the data set's)")  # fmt: skip
    _sampling_args(ev)
    ev.add_argument("--concurrency", type=_positive, default=4, help="questions in flight at once (default 4)")
    ev.add_argument("--probe", choices=["agreement", "oracle"], default="agreement",
                    help="compute-optimal: difficulty from the first samples' agreement, or oracle pass@1")  # fmt: skip
    ev.add_argument("--probe-size", type=_positive, default=4, help="compute-optimal: samples the probe reads")
    ev.add_argument("--bins", type=_positive, default=3, help="compute-optimal: difficulty bins (default 3)")
    ev.add_argument("--folds", type=_positive, default=2, help="compute-optimal: cross-validation folds (default 2)")
    ev.add_argument("--subsets", type=_positive, default=2000,
                    help="best-of-n: most subsets per budget enumerated (beyond: that many drawn)")  # fmt: skip
    _endpoint_args(ev)
    ev.add_argument("--json", action="store_true", help="print the results as JSON")
    ev.add_argument("--quiet", "-q", action="store_true", help="no progress line on stderr")

    serve = sub.add_parser("serve", help="run the embedded vLLM server until Ctrl-C")
    serve.add_argument("--model", choices=sorted(PACKAGED_MODELS), default=DEFAULT_MODEL)
    serve.add_argument("--port", type=_positive, default=8000)
    _server_args(serve, prefix="")
    return parser


def _server_args(p: argparse.ArgumentParser | argparse._ArgumentGroup, prefix: str) -> None:
    """Overrides of the embedded server's machine-chosen settings (``nodes.machine.choose_settings``)."""
    p.add_argument(f"--{prefix}dtype", choices=("auto", *DTYPES), default="auto",
                   help="embedded server dtype (auto: bf16 where the CPU has native bf16, else fp32)")  # fmt: skip
    p.add_argument(f"--{prefix}bind", default="auto", metavar="auto|all|vllm|CPUS",
                   help="embedded server threads: all CPUs compute, vLLM's binding (reserves a core), or a list "
                        "such as 0-3 (auto: all on a machine of at most 4 CPUs)")  # fmt: skip
    p.add_argument(f"--{prefix}kv-cache", default="auto", metavar="SIZE",
                   help="embedded server KV cache, e.g. 2G (auto: a quarter of free memory, 512M to 4G)")  # fmt: skip
    p.add_argument(f"--{prefix}openmp", choices=("auto", "intel", "gnu"), default="auto",
                   help="embedded server OpenMP runtime (auto: Intel's where intel-openmp is installed)")  # fmt: skip


def _endpoint_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint (default: the embedded vLLM server)")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://gpu:8000/v1 (or TTC_BASE_URL)")
    g.add_argument("--model", help="model name at that endpoint (or TTC_MODEL); API key from TTC_API_KEY")
    g.add_argument("--server-model", choices=sorted(PACKAGED_MODELS), default=DEFAULT_MODEL,
                   help=f"packaged model of the embedded server (default {DEFAULT_MODEL})")  # fmt: skip
    _server_args(g, prefix="server-")
    g.add_argument("--max-concurrency", type=_positive, default=16, help="requests in flight at once")
    g.add_argument("--max-n", type=_positive, default=64, help="most samples per request (1: server lacks n)")
    g.add_argument("--timeout", type=float, default=600.0, help="seconds per request")


@contextlib.contextmanager
def _endpoint(args: argparse.Namespace) -> Iterator[Endpoint]:
    limits = {"max_concurrency": args.max_concurrency, "max_n": args.max_n, "request_timeout": args.timeout}
    endpoint = Endpoint.from_env(base_url=args.base_url, model=args.model, **limits)
    if endpoint is not None:
        yield endpoint
        return
    if args.model:
        raise ConfigError("--model names a model at --base-url; for the embedded server use --server-model")
    server = EmbeddedServer(
        args.server_model, dtype=args.server_dtype, bind=args.server_bind, kv_cache_memory=args.server_kv_cache,
        openmp=args.server_openmp, log=None if args.quiet else sys.stderr,
    )  # fmt: skip
    with server:
        yield server.endpoint(**limits)


SCORERS: dict[str, Callable[[argparse.Namespace], Scorer]] = {
    "judge-verdict": lambda args: JudgeVerdict(),
    "judge-grade": lambda args: JudgeGrade(),
    "self-eval-prm": lambda args: SelfEvalPRM(),
    "pooling-prm": lambda args: PoolingPRM(
        args.prm_url,
        args.prm_model,
        step_tag=args.prm_step_tag,
        api_key=os.environ.get("TTC_PRM_API_KEY") or os.environ.get("TTC_API_KEY"),
    ),
}


def strategy_options(args: argparse.Namespace, strategy: str) -> dict[str, Any]:
    """The builder keyword arguments a strategy takes from the flags (its size comes apart)."""
    spec = get(strategy)
    options = spec.options_from(args)
    if spec.scorer is None or method_of(strategy) in ("vote", "filter-vote"):
        return options
    if args.scorer == "pooling-prm" and not (args.prm_url and args.prm_model):
        raise ConfigError("--scorer pooling-prm needs --prm-url and --prm-model")
    default = "self-eval-prm" if spec.scorer == "process" else "judge-grade"
    return {"scorer": SCORERS[args.scorer or default](args), **options}


def _graph(args: argparse.Namespace) -> StateGraph[Any, Any, Any, Any]:
    """The strategy's graph, with its structural flags."""
    if args.strategy == "router":
        if not args.policy:
            raise ConfigError("--strategy router needs --policy FILE (written by ttc eval)")
        policy = _policy(args.policy, args.policy_budget)
        args.answer_format = args.answer_format or policy.answer_format
        routed = {r.strategy: strategy_options(args, r.strategy) for r in policy.routes}
        for r in policy.routes:
            now = options_key(get(r.strategy).options_at(r.budget, routed[r.strategy]))
            if r.name in policy.options and policy.options[r.name] != now:
                print(f"ttc: note: {r.name} was evaluated with {policy.options[r.name]}, runs with {now}",
                      file=sys.stderr)  # fmt: skip
        return build_router_graph(policy, options=routed)
    if args.policy:
        raise ConfigError("--policy is for --strategy router")
    spec: StrategySpec = get(args.strategy)
    options = strategy_options(args, args.strategy)
    if spec.check:  # the flags as given, before the strategy's defaults at this size
        spec.check(args.k, options)
    return spec.graph(args.k, options)


def _policy(path: str, budget: str | None) -> Policy:
    """One policy from a ``policies.json`` written by ``ttc eval`` (or a single policy's file)."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read policy {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON ({exc.msg})") from None
    if isinstance(data, dict) and "routes" not in data:  # several policies by token budget
        if not data:
            raise ConfigError(f"{path} holds no policy")
        key = budget or max(data, key=float)
        if key not in data:
            raise ConfigError(f"{path} has no policy for budget {key} (it has {', '.join(data)})")
        data = data[key]
    return Policy.from_dict(data)


def _context(args: argparse.Namespace, llm: LLM) -> RunContext:
    fmt: AnswerFormat = args.answer_format or "auto"
    return RunContext(
        llm=llm,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
        judge_temperature=args.judge_temperature,
        judge_max_tokens=args.judge_max_tokens,
        answer_format=fmt,
        budget=Budget(max_calls=getattr(args, "max_calls", None), max_tokens=getattr(args, "max_total_tokens", None)),
    )


def _progress(event: dict[str, Any]) -> str | None:
    if event.get("event") == "proposed":
        answers = ", ".join("—" if a is None else str(a) for a in event["answers"])
        return f"ttc: proposed samples {event['indices'][0]}..{event['indices'][-1]}: {answers}"
    if event.get("event") == "verified":
        return f"ttc: judged sample {event['index']}: {event['verdict']}"
    if event.get("event") == "routed":
        return f"ttc: probe agreement {event['agreement']:.2f}: routed to {event['route']}"
    if event.get("event") == "scored":
        score = "none" if event["score"] is None else f"{event['score']:.3f}"
        return f"ttc: scored sample {event['index']}: {score}"
    return None


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    graph = _graph(args).compile(name=args.strategy)  # flag mistakes end here, before any server starts
    with _endpoint(args) as endpoint:
        result: dict[str, Any] = {}
        async with LLM(endpoint) as llm:
            await llm.check()
            stream: Any = graph.astream(
                {"question": args.question},
                context=_context(args, llm),
                stream_mode=["custom", "values"],
                subgraphs=True,  # the router's strategy runs as a subgraph: show its progress too
            )
            output = set(graph.output_channels)  # the state holds more (e.g. an empty scores list in a vote)
            async for namespace, mode, chunk in stream:
                if mode == "values":
                    if not namespace:
                        result = {key: value for key, value in chunk.items() if key in output}
                elif not args.quiet and (line := _progress(chunk)):
                    print(line, file=sys.stderr, flush=True)
        result["strategy"] = args.strategy
        result["k"] = args.k
        result["endpoint"] = {"base_url": endpoint.base_url, "model": endpoint.model}
        result["tokens"] = ledger_totals(result.get("ledger"))
        return result


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


def _eval_plan(args: argparse.Namespace) -> EvalPlan:
    unknown = [s for s in args.strategies if s not in known()]
    if unknown:  # before any strategy's options are read
        raise ConfigError(f"unknown strategies {unknown} (known: {', '.join(known())})")
    pooled_scorer = None
    best_of = [s for s in args.strategies if method_of(s) in ("best-of-n", "weighted-best-of-n")]
    if best_of:
        pooled_scorer = strategy_options(args, best_of[0])["scorer"]
    return EvalPlan(
        strategies=tuple(args.strategies),
        budgets=tuple(args.budgets),
        scorer=pooled_scorer,
        aggregation=args.aggregation,
        options={s: strategy_options(args, s) for s in args.strategies if not method_of(s)},
        subsets=args.subsets,
    )


async def _evaluate(args: argparse.Namespace) -> tuple[dict[str, Any], Results, Selection | None]:
    dataset = _eval_dataset(args)
    plan = _eval_plan(args)
    plan.check_dataset(dataset)
    out = Path(args.out or f"ttc-eval/{dataset.name}")
    with EvalStore(out / "store.sqlite") as store:
        store.check_settings(store_settings(dataset, _served_model(args), args))
        left = pending(store, dataset, plan)
        if left:
            with _endpoint(args) as endpoint:
                async with LLM(endpoint) as llm:
                    await llm.check()
                    ctx = _context(args, llm)
                    progress = None if args.quiet else Progress(progress_total(dataset, plan))
                    await evaluate(store, dataset, plan, ctx, concurrency=args.concurrency, progress=progress)
        elif not args.quiet:
            print(f"ttc: {out / 'store.sqlite'} holds every result already: no LLM calls", file=sys.stderr)
        res = results(store, plan, dataset.records, max_n=args.max_n)
    paths = write_outputs(res, out)
    report: dict[str, Any] = {"dataset": res.dataset, "model": res.model, "questions": len(res.questions),
                              "incomplete": res.incomplete, "results": res.table, "out": str(out)}  # fmt: skip
    sel: Selection | None = None
    try:
        options = {f"{s}@{b}": options_key(plan.run_options(s, b)) for s in plan.strategies for b in plan.budgets}
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
    report["files"] = sorted(p.name for p in out.iterdir() if p.is_file())
    return report, res, sel


def format_eval(report: dict[str, Any], res: Results, sel: Selection | None) -> str:
    lines = [format_table(res), ""]
    if sel is None:
        lines.append(f"compute-optimal selection skipped: {report['selection']['skipped']}")
    else:
        lines.append(format_selection(sel))
    lines.append(f"written to {report['out']}/: {', '.join(report['files'])}")
    return "\n".join(lines)


def format_result(result: dict[str, Any]) -> str:
    """The human-readable report of ``ttc run``."""
    decision = result.get("decision") or {}
    lines = [
        f"answer: {result.get('answer') if result.get('answer') is not None else '(none: no sample stated an answer)'}"
    ]
    if probe := result.get("probe"):
        lines.append(f"probe: agreement {probe['agreement']:.2f} of {len(probe['answers'])} samples: {probe['route']}")
    votes = decision.get("votes") or {}
    no_answer = sum(1 for c in result.get("candidates") or [] if c["answer"] is None)
    shown = [f"{a} ×{v:g}" for a, v in sorted(votes.items(), key=lambda kv: -kv[1])]
    if no_answer:
        shown.append(f"(no answer) ×{no_answer}")
    lines.append(
        "votes: " + (", ".join(shown) or "none") + (" (tie broken by first seen)" if decision.get("tie") else "")
    )
    if result.get("verdicts") or "kept" in decision:  # a filter-vote (routed to, or run)
        counts: dict[str, int] = {}
        for v in result["verdicts"]:
            counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
        lines.append("verdicts: " + (", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "none"))
        kept = decision.get("kept") or []
        lines.append(
            "filter: no candidate kept, voted among all" if decision.get("fallback") else f"filter: kept samples {kept}"
        )
    if result.get("scores") or "chosen" in decision:  # a best-of-n (routed to, or run)
        shown_scores = ", ".join(
            f"#{s['index']} {'none' if s['score'] is None else format(s['score'], '.3f')}"
            for s in sorted(result["scores"], key=lambda s: s["index"])
        )
        lines.append(f"scores: {shown_scores or 'none'}")
        if decision.get("chosen") is not None:
            lines.append(f"chosen: sample {decision['chosen']}")
        if decision.get("fallback"):
            lines.append("no candidate has a score: plurality vote")
    t = result["tokens"]
    lines.append(
        f"tokens: {t['prompt_tokens']} prompt + {t['completion_tokens']} completion = "
        f"{t['prompt_tokens'] + t['completion_tokens']} in {t['calls']} calls ({t['requests']} requests)"
    )
    for f in result.get("failures") or []:
        lines.append(f"failed: samples {f['indices']}: {f['error']}")
    budget = result.get("budget") or {}
    if budget.get("exhausted"):
        lines.append(f"budget: {budget['note']}")
    return "\n".join(lines)


def _serve(args: argparse.Namespace) -> None:
    server = EmbeddedServer(
        args.model,
        port=args.port,
        dtype=args.dtype,
        bind=args.bind,
        kv_cache_memory=args.kv_cache,
        openmp=args.openmp,
        log=sys.stderr,
    )
    with server:
        print(f"serving {server.model.served_name} at {server.base_url}", flush=True)
        print(
            f"use it with: TTC_BASE_URL={server.base_url} TTC_MODEL={server.model.served_name} ttc run ...", flush=True
        )
        try:
            while server.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("ttc: stopping the server", file=sys.stderr, flush=True)
            return  # Ctrl-C is how a foreground server is meant to stop; `with` stops it
        raise ServerError(f"vLLM stopped unexpectedly (log: {server.log_path})")


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ttc`` with ``argv`` (default the command line); returns the exit status."""

    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the embedded server is stopped on the way out.
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args.command == "serve":
            _serve(args)
            return 0
        if args.command == "eval":
            report, res, sel = asyncio.run(_evaluate(args))
            print(json.dumps(report, indent=2) if args.json else format_eval(report, res, sel))
            return 0
        if not args.question.strip():
            raise ConfigError("the question is empty")
        result = asyncio.run(_run(args))
        if not result.get("candidates") and result.get("failures"):  # nothing came back: the run failed
            first = result["failures"][0]
            raise EndpointError(first["message"], status=first["status"])
    except TTCError as exc:
        print(f"ttc: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        print("ttc: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
