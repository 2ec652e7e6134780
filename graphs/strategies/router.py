"""The compute-optimal router: probe the question, then hand it to the strategy chosen for its
difficulty bin.

Topology::

    START → probe ─(bin of the probe's agreement)→ <strategy>@<budget> → END

``probe`` draws ``policy.probe_size`` samples (in requests of at most ``max_n``, seeded from the
run's seed plus ``policy.probe_seed_offset``: past the routed strategy's samples for a policy fitted
on a held-out probe) and measures their agreement (:func:`graphs.evaluation.selection.agreement`);
each route is a compiled strategy graph added as a subgraph node, so its progress events stream
out and its ledger adds to the probe's. The probe's calls appear in the ledger as ``probe``.
A policy comes from :func:`graphs.evaluation.selection.select_compute_optimal` (``ttc eval`` writes one
per token budget to ``policies.json``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from graphs.compose import QuestionInput, StrategyOutput, StrategyState, question_of
from graphs.evaluation.selection import Policy, agreement
from graphs.registry import StrategySpec, strategies
from nodes.answers import extract_answer
from nodes.budget import Ledger, add_ledgers
from nodes.calls import usage_of
from nodes.context import RunContext, context_of
from nodes.endpoint import RETRY_POLICY, user
from nodes.errors import BadModelOutput, ConfigError
from nodes.propose import propose_prompt
from nodes.types import Score, Verdict

__all__ = ["RouterState", "build_router_graph"]


class Probe(TypedDict):
    answers: list[str | None]
    agreement: float
    difficulty: float
    route: str


class RouterState(StrategyState, total=False):
    """A strategy's state (its subgraph writes into it) plus the probe."""

    probe: Probe


class RouterOutput(StrategyOutput):
    """The routed strategy's output (judge verdicts and verifier scores when it has them) and the probe."""

    probe: Probe
    verdicts: NotRequired[list[Verdict]]
    scores: NotRequired[list[Score]]


def _node_name(route: str) -> str:
    return route.replace("@", "-at-")


def build_router_graph(
    policy: Policy,
    *,
    options: dict[str, dict[str, Any]] | None = None,
    specs: Mapping[str, StrategySpec] | None = None,
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[RouterState, RunContext, QuestionInput, RouterOutput]:
    """Build the router for ``policy``.

    Args:
        policy: difficulty bin edges and one route (strategy, budget) per bin.
        options: keyword arguments of each strategy's builder (e.g. its scorer), by strategy.
        specs: the strategies by name (default every registered one, :func:`graphs.registry.strategies`).
        retry: retry policy of the probe.

    Example:
        >>> from graphs.evaluation.selection import Policy, Route
        >>> policy = Policy("agreement", 4, [0.3], [Route("vote", 2), Route("vote", 8)])
        >>> sorted(build_router_graph(policy).compile().get_graph().nodes)
        ['__end__', '__start__', 'probe', 'vote-at-2', 'vote-at-8']
    """
    if policy.probe != "agreement":
        raise ConfigError(f"a router can only measure agreement at run time, not {policy.probe!r}")
    if policy.probe_size < 1:
        raise ConfigError("the probe needs at least one sample")
    found = specs if specs is not None else strategies()
    unknown = sorted({r.strategy for r in policy.routes if r.strategy not in found})
    if unknown:
        raise ConfigError(f"the policy routes to unknown strategies {unknown}")

    async def probe(state: RouterState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = context_of(runtime)
        question = question_of(state)
        n, most = policy.probe_size, ctx.llm.endpoint.max_n
        prompt = [user(propose_prompt(question, ctx.answer_format))]
        completions = await asyncio.gather(*(
            ctx.llm.chat(prompt, n=min(most, n - first), seed=ctx.seed + policy.probe_seed_offset + first,
                         temperature=ctx.temperature, max_tokens=ctx.max_tokens)
            for first in range(0, n, most)
        ))  # fmt: skip
        texts = [
            t for c, first in zip(completions, range(0, n, most), strict=True) for t in c.texts[: min(most, n - first)]
        ]
        if len(texts) < n:  # a missing sample would read as disagreement and send the question to the wrong bin
            raise BadModelOutput(f"the probe asked for {n} samples and got {len(texts)}")
        answers = [extract_answer(t, ctx.answer_format) for t in texts]
        share = agreement(answers)
        route = policy.route(1.0 - share)
        runtime.stream_writer({"event": "routed", "agreement": share, "route": route.name})
        ledger: Ledger = {}
        for c in completions:
            ledger = add_ledgers(ledger, usage_of("probe", c))
        return {
            "probe": {"answers": answers, "agreement": share, "difficulty": 1.0 - share, "route": route.name},
            "ledger": ledger,
        }

    async def route_of(state: RouterState) -> str:
        return _node_name(state["probe"]["route"])

    builder = StateGraph(RouterState, context_schema=RunContext, input_schema=QuestionInput, output_schema=RouterOutput)
    probe_node: Any = probe
    builder.add_node("probe", probe_node, retry_policy=retry)
    names = []
    for route in dict.fromkeys(policy.routes):
        name = _node_name(route.name)
        names.append(name)
        graph = found[route.strategy].graph(route.budget, (options or {}).get(route.strategy, {}))
        builder.add_node(name, graph.compile(name=name))
        builder.add_edge(name, END)
    builder.add_edge(START, "probe")
    builder.add_conditional_edges("probe", route_of, names)
    return builder
