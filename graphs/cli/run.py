"""``ttc run``: a strategy graph (or the router) from the flags, run on the endpoint with progress lines."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langgraph.graph import StateGraph

from graphs.cli.parser import strategy_options
from graphs.compose import RECURSION_LIMIT
from graphs.evaluation import (
    options_key,
)
from graphs.evaluation.selection import Policy
from graphs.registry import StrategySpec, get
from graphs.strategies.router import build_router_graph
from nodes.answers import AnswerFormat
from nodes.budget import Budget, ledger_totals
from nodes.context import RunContext
from nodes.endpoint import LLM, Endpoint
from nodes.errors import ConfigError
from nodes.server import EmbeddedServer

__all__ = ["format_result"]


@contextlib.contextmanager
def _endpoint(args: argparse.Namespace) -> Iterator[Endpoint]:
    limits = {"max_concurrency": args.max_concurrency, "max_n": args.max_n, "request_timeout": args.timeout,
              "parameters": args.params}  # fmt: skip
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
        top_logprobs=getattr(args, "pool_logprobs", 0),
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
                config={"recursion_limit": RECURSION_LIMIT},
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
    if "confidences" in decision or "threshold" in decision:  # deepconf, offline or online
        confidences = decision.get("confidences") or {}
        shown_conf = ", ".join(f"#{i} {c:.2f}" for i, c in sorted(confidences.items(), key=lambda kv: int(kv[0]))
                               if c is not None)  # fmt: skip
        if shown_conf:
            lines.append(f"confidence: {shown_conf}")
        if decision.get("threshold") is not None:
            lines.append(f"threshold: {decision['threshold']:.3f} (from the warm-up)")
        if decision.get("stopped") or decision.get("cancelled"):
            lines.append(f"stopped early: samples {decision.get('stopped') or []} (low confidence), "
                         f"{decision.get('cancelled') or []} (consensus reached)")  # fmt: skip
        lines.append("confidence: none came back, plurality vote" if decision.get("fallback")
                     else f"voted: samples {decision.get('kept') or []}")  # fmt: skip
    elif result.get("verdicts") or "kept" in decision:  # a filter-vote (routed to, or run)
        counts: dict[str, int] = {}
        for v in result.get("verdicts") or []:
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
        f"{t['prompt_tokens'] + t['completion_tokens']} in {t['calls']} calls ({t['requests']} requests), "
        + (f"{t['flops'] / 1e12:.3g} TFLOPs" if "flops" in t else "FLOPs unknown (--params gives the model's size)")
    )
    for f in result.get("failures") or []:
        lines.append(f"failed: samples {f['indices']}: {f['error']}")
    budget = result.get("budget") or {}
    if budget.get("exhausted"):
        lines.append(f"budget: {budget['note']}")
    return "\n".join(lines)
