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
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from langgraph.graph import StateGraph

from graphs import STRATEGIES
from nodes.answers import AnswerFormat
from nodes.budget import Budget, ledger_totals
from nodes.context import RunContext
from nodes.endpoint import LLM, Endpoint
from nodes.errors import ConfigError, ServerError, TTCError
from nodes.scorers import JudgeGrade, JudgeVerdict, PoolingPRM, Scorer, SelfEvalPRM
from nodes.server import DEFAULT_MODEL, PACKAGED_MODELS, EmbeddedServer

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the usage is one `ttc run -h` away.
        self.exit(2, f"ttc: error: {message} (see `{self.prog} -h`)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"expected a temperature between 0 and 2, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ttc", description="Test-time-compute strategies as LangGraph graphs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="answer a question with a strategy")
    run.add_argument("question", help="the question to answer")
    run.add_argument("--strategy", "-s", choices=sorted(STRATEGIES), default="filter-vote")
    run.add_argument("-k", "-n", type=_positive, default=8, help="number of proposals (default 8)")
    run.add_argument(
        "--scorer",
        choices=sorted(SCORERS),
        help="verifier: default judge-grade for best-of-n, revision and mix; self-eval-prm for searches",
    )
    run.add_argument("--prm-url", help="pooling-prm: the PRM server (vLLM pooling API), e.g. http://gpu:8001")
    run.add_argument("--prm-model", help="pooling-prm: the served PRM's name")
    run.add_argument("--beam-width", type=_positive, default=4, help="beam-search, lookahead, dvts: M (default 4)")
    run.add_argument("--lookahead", type=_positive, default=3, help="lookahead: roll-out steps (default 3)")
    run.add_argument("--max-rounds", type=_positive, help="searches: round limit (default 40; rebase 25)")
    run.add_argument("--rebase-temperature", type=float, default=0.2, help="rebase: balance temperature T_b")
    run.add_argument("--chains", type=_positive, help="mix: parallel revision chains (default about sqrt(k))")
    run.add_argument("--select", choices=["vote", "last", "verifier"], default="vote",
                     help="revision / mix: how the answer is chosen (default vote)")  # fmt: skip
    run.add_argument("--max-attempts", type=_positive, default=4, help="revision / mix: attempts a revision sees")
    run.add_argument("--aggregation", choices=["last", "min", "prod", "mean"], default="last",
                     help="how a process scorer's step scores become one (default last)")  # fmt: skip
    run.add_argument("--format", dest="answer_format", choices=["auto", "number", "math", "choice"], default="auto",
                     help="how the final answer is asked for and read (default auto)")  # fmt: skip
    run.add_argument("--temperature", type=_unit_float, default=0.7)
    run.add_argument("--judge-temperature", type=_unit_float, default=0.1)
    run.add_argument("--max-tokens", type=_positive, default=384, help="completion limit per proposal")
    run.add_argument("--judge-max-tokens", type=_positive, default=384, help="completion limit per judge call")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--max-calls", type=_positive, help="budget cap: most LLM calls")
    run.add_argument("--max-total-tokens", type=_positive, help="budget cap: most prompt+completion tokens")
    _endpoint_args(run)
    run.add_argument("--json", action="store_true", help="print the whole result as JSON")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")

    serve = sub.add_parser("serve", help="run the embedded vLLM server until Ctrl-C")
    serve.add_argument("--model", choices=sorted(PACKAGED_MODELS), default=DEFAULT_MODEL)
    serve.add_argument("--port", type=_positive, default=8000)
    return parser


def _endpoint_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint (default: the embedded vLLM server)")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://gpu:8000/v1 (or TTC_BASE_URL)")
    g.add_argument("--model", help="model name at that endpoint (or TTC_MODEL); API key from TTC_API_KEY")
    g.add_argument("--server-model", choices=sorted(PACKAGED_MODELS), default=DEFAULT_MODEL,
                   help=f"packaged model of the embedded server (default {DEFAULT_MODEL})")  # fmt: skip
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
    with EmbeddedServer(args.server_model, log=None if args.quiet else sys.stderr) as server:
        yield server.endpoint(**limits)


SCORERS: dict[str, Callable[[argparse.Namespace], Scorer]] = {
    "judge-verdict": lambda args: JudgeVerdict(),
    "judge-grade": lambda args: JudgeGrade(),
    "self-eval-prm": lambda args: SelfEvalPRM(),
    "pooling-prm": lambda args: PoolingPRM(
        args.prm_url, args.prm_model, api_key=os.environ.get("TTC_PRM_API_KEY") or os.environ.get("TTC_API_KEY")
    ),
}


def _graph(args: argparse.Namespace) -> StateGraph[Any, Any, Any, Any]:
    """The strategy's graph, with its structural flags."""
    searches = ("beam-search", "lookahead", "dvts", "rebase")
    if args.scorer == "pooling-prm" and not (args.prm_url and args.prm_model):
        raise ConfigError("--scorer pooling-prm needs --prm-url and --prm-model")
    scorer = SCORERS[args.scorer or ("self-eval-prm" if args.strategy in searches else "judge-grade")](args)
    if args.strategy in searches:
        limits: dict[str, Any] = {"scorer": scorer, **({"max_rounds": args.max_rounds} if args.max_rounds else {})}
        if args.strategy == "rebase":
            return STRATEGIES["rebase"](args.k, temperature=args.rebase_temperature, **limits)
        if args.beam_width > args.k:
            raise ConfigError(f"--beam-width {args.beam_width} exceeds -k {args.k}")
        if args.strategy == "lookahead":
            return STRATEGIES["lookahead"](args.k, args.beam_width, args.lookahead, **limits)
        return STRATEGIES[args.strategy](args.k, args.beam_width, **limits)
    scoring = {"scorer": scorer, "aggregation": args.aggregation}
    if args.strategy in ("best-of-n", "weighted-best-of-n"):
        return STRATEGIES[args.strategy](args.k, **scoring)
    if args.strategy in ("revision", "mix"):
        revising = {"select": args.select, "max_attempts": args.max_attempts, **scoring}
        if args.strategy == "revision":
            return STRATEGIES["revision"](args.k, **revising)
        chains = args.chains or max(1, round(math.sqrt(args.k)))
        if chains > args.k:
            raise ConfigError(f"--chains {chains} exceeds the budget -k {args.k}")
        return STRATEGIES["mix"](args.k, chains, **revising)
    return STRATEGIES[args.strategy](args.k)


def _context(args: argparse.Namespace, llm: LLM) -> RunContext:
    fmt: AnswerFormat = args.answer_format
    return RunContext(
        llm=llm,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
        judge_temperature=args.judge_temperature,
        judge_max_tokens=args.judge_max_tokens,
        answer_format=fmt,
        budget=Budget(max_calls=args.max_calls, max_tokens=args.max_total_tokens),
    )


def _progress(event: dict[str, Any]) -> str | None:
    if event.get("event") == "proposed":
        answers = ", ".join("—" if a is None else str(a) for a in event["answers"])
        return f"ttc: proposed samples {event['indices'][0]}..{event['indices'][-1]}: {answers}"
    if event.get("event") == "verified":
        return f"ttc: judged sample {event['index']}: {event['verdict']}"
    if event.get("event") == "scored":
        score = "none" if event["score"] is None else f"{event['score']:.3f}"
        return f"ttc: scored sample {event['index']}: {score}"
    return None


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    with _endpoint(args) as endpoint:
        graph = _graph(args).compile(name=args.strategy)
        result: dict[str, Any] = {}
        async with LLM(endpoint) as llm:
            await llm.check()
            stream: Any = graph.astream(
                {"question": args.question}, context=_context(args, llm), stream_mode=["custom", "values"]
            )
            async for mode, chunk in stream:
                if mode == "values":
                    result = chunk
                elif not args.quiet and (line := _progress(chunk)):
                    print(line, file=sys.stderr, flush=True)
        result["strategy"] = args.strategy
        result["k"] = args.k
        result["endpoint"] = {"base_url": endpoint.base_url, "model": endpoint.model}
        result["tokens"] = ledger_totals(result.get("ledger"))
        return result


def format_result(result: dict[str, Any]) -> str:
    """The human-readable report of ``ttc run``."""
    decision = result.get("decision") or {}
    lines = [
        f"answer: {result.get('answer') if result.get('answer') is not None else '(none: no sample stated an answer)'}"
    ]
    votes = decision.get("votes") or {}
    no_answer = sum(1 for c in result.get("candidates") or [] if c["answer"] is None)
    shown = [f"{a} ×{v:g}" for a, v in sorted(votes.items(), key=lambda kv: -kv[1])]
    if no_answer:
        shown.append(f"(no answer) ×{no_answer}")
    lines.append(
        "votes: " + (", ".join(shown) or "none") + (" (tie broken by first seen)" if decision.get("tie") else "")
    )
    if "verdicts" in result:
        counts: dict[str, int] = {}
        for v in result["verdicts"]:
            counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
        lines.append("verdicts: " + (", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "none"))
        kept = decision.get("kept") or []
        lines.append(
            "filter: no candidate kept, voted among all" if decision.get("fallback") else f"filter: kept samples {kept}"
        )
    if "scores" in result:
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
    with EmbeddedServer(args.model, port=args.port, log=sys.stderr) as server:
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
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the embedded server is stopped on the way out.
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args.command == "serve":
            _serve(args)
            return 0
        if not args.question.strip():
            raise ConfigError("the question is empty")
        result = asyncio.run(_run(args))
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
