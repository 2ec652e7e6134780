"""Sequential revisions, and the mix of sequential and parallel compute for a fixed budget.

A *chain* proposes one answer, then repeatedly critiques its last answer and revises it from
the last ``max_attempts`` attempts and their critiques (Self-Refine; Snell et al.'s revision
model sees the last four attempts). :func:`build_mix_graph` spends a budget of ``N`` answers as
``chains`` parallel chains of about ``N / chains`` answers each: ``chains = 1`` is fully
sequential, ``chains = N`` is plain parallel sampling, and the ratio is the graph's topology.

Topology::

    START ─Send×chains→ propose → tally ─Send→ critique → tally ─Send→ revise → tally … → select → END

Chains advance in lock-step (all critiques of a round in parallel, then all revisions). Sample
``index = round · chains + chain``. The budget counts *answers* (proposals and revisions);
each revision also costs one critique call, which the ledger counts under ``critique``.

Selection: ``"vote"`` pools every answer of every chain into one plurality vote (as majority
voting does in Snell et al.); ``"last"`` votes among the chains' final answers; ``"verifier"``
scores every answer, takes a weighted vote inside each chain, then a weighted vote across the
chains' winners weighted by their totals (the hierarchical selection of Snell et al.).
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from graphs.compose import (
    QuestionInput,
    StrategyOutput,
    StrategyState,
    add_final,
    add_planner,
    add_worker,
    decided,
    finish,
    plan_judging,
    plan_proposals,
    wave,
    worst_case_tokens,
)
from nodes.budget import ledger_totals
from nodes.context import RunContext, context_of
from nodes.endpoint import RETRY_POLICY
from nodes.errors import ConfigError
from nodes.kinds import CRITIQUE, PROPOSE, REVISE, NodeKind, scoring
from nodes.scorers import Aggregation, JudgeGrade, Scorer
from nodes.types import Candidate, Critique, Score
from nodes.vote import plurality_vote, weighted_vote

__all__ = ["MixOutput", "Selection", "build_mix_graph", "build_revision_graph", "chain_depths"]

Selection = Literal["vote", "last", "verifier"]


class MixOutput(StrategyOutput):
    """The mix's output: the common keys, the critiques, the verifier's scores and each chain's samples."""

    critiques: list[Critique]
    scores: list[Score]
    chains: list[list[int]]  # sample indices of each chain, in order


class _MixState(StrategyState, total=False):
    chains: list[list[int]]


def chain_depths(budget: int, chains: int) -> list[int]:
    """Answers per chain: ``budget`` split as evenly as possible, longer chains first.

    Example:
        >>> chain_depths(16, 4), chain_depths(10, 4), chain_depths(8, 1)
        ([4, 4, 4, 4], [3, 3, 2, 2], [8])
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"budget must be a positive integer, got {budget!r}")
    if isinstance(chains, bool) or not isinstance(chains, int) or not 1 <= chains <= budget:
        raise ConfigError(f"chains must be an integer from 1 to the budget ({budget}), got {chains!r}")
    return [budget // chains + (1 if c < budget % chains else 0) for c in range(chains)]


def _chains(candidates: list[Candidate], n_chains: int) -> list[list[Candidate]]:
    chains: list[list[Candidate]] = [[] for _ in range(n_chains)]
    for c in sorted(candidates, key=lambda c: c["index"]):
        chains[c["index"] % n_chains].append(c)
    return chains


def build_mix_graph(
    budget: int = 16,
    chains: int = 4,
    *,
    max_attempts: int = 4,
    select: Selection = "vote",
    scorer: Scorer | None = None,
    aggregation: Aggregation = "last",
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[_MixState, RunContext, QuestionInput, MixOutput]:
    """Build the width × depth mix: ``budget`` answers in ``chains`` revision chains.

    Args:
        budget: number of answers (proposals + revisions) to generate: exactly this many.
        chains: parallel chains (width); each gets ``budget / chains`` answers (depth).
        max_attempts: earlier attempts a revision sees (context truncation).
        select: ``"vote"``, ``"last"`` or ``"verifier"`` (see the module docstring).
        scorer: the verifier for ``select="verifier"`` (default :class:`nodes.scorers.JudgeGrade`).
        aggregation: how a process scorer's step scores become one.

    Example:
        >>> graph = build_mix_graph(budget=16, chains=4, select="verifier").compile()
    """
    depths = chain_depths(budget, chains)
    if max_attempts < 1:
        raise ConfigError(f"max_attempts must be at least 1, got {max_attempts!r}")
    if select not in ("vote", "last", "verifier"):
        raise ConfigError(f"unknown selection {select!r} (vote, last, verifier)")
    judge: Scorer = scorer or JudgeGrade()

    async def plan(state: _MixState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = context_of(runtime)
        update: dict[str, Any] = {}
        question = state.get("question") or ""
        proposals, report = plan_proposals(state, ctx, chains)
        if proposals:
            return wave("propose", proposals)
        candidates = state.get("candidates") or []
        critiqued = {c["index"] for c in state.get("critiques") or []}
        failed = {i for f in state.get("failures") or [] for i in f["indices"]}
        critiques: list[dict[str, Any]] = []
        revisions: list[dict[str, Any]] = []
        for number, chain in enumerate(_chains(candidates, chains)):
            if not chain or len(chain) >= depths[number]:
                continue  # finished (or its first proposal failed)
            last = chain[-1]
            next_index = len(chain) * chains + number
            if next_index in failed or last["index"] in failed:
                continue  # a failed critique or revision ends its chain
            if last["index"] not in critiqued:
                critiques.append({"question": question, "candidate": last})
            else:
                by_index = {c["index"]: c["text"] for c in state.get("critiques") or []}
                attempts = [{"candidate": c, "critique": by_index.get(c["index"], "")} for c in chain]
                revisions.append({"question": question, "attempts": attempts, "index": next_index,
                                  "max_attempts": max_attempts})  # fmt: skip
        # Budget: every critique and revision is one call; a round goes ahead as far as it fits.
        wanted = critiques or revisions
        if wanted and report is None:
            kind = "critique" if critiques else "revise"
            prompt = max((question + "".join(str(v) for v in task.values()) for task in wanted), key=len)
            per_call = worst_case_tokens(state.get("ledger"), kind, prompt, ctx.max_tokens)
            allowed = ctx.budget.allowance(state.get("ledger"), want=len(wanted), tokens_per_call=per_call)
            if allowed < len(wanted):
                spent = ledger_totals(state.get("ledger"))
                report = {
                    "exhausted": True,
                    "note": f"budget ({ctx.budget.describe()}) reached with {len(candidates)} of {budget} answers "
                    f"({spent['calls']} calls)",
                }
                wanted = wanted[:allowed]
        elif report is not None:
            wanted = []
        if report:
            update["budget"] = report
        if wanted:
            return wave("critique" if critiques else "revise", wanted, **update)
        if select == "verifier":
            done = {s["index"] for s in state.get("scores") or []}
            chosen, report = plan_judging(state, ctx, done, lambda c: question + c["text"], report, kind="verify")
            if report:
                update["budget"] = report
            if chosen:
                return wave("score", [{"question": question, "candidate": c} for c in chosen], **update)
        return finish("select", **update)

    async def select_node(state: _MixState) -> dict[str, Any]:
        candidates = state.get("candidates") or []
        by_chain = _chains(candidates, chains)
        decision: dict[str, Any]
        if select == "vote":
            decision = dict(plurality_vote(candidates))
        elif select == "last":
            decision = dict(plurality_vote([chain[-1] for chain in by_chain if chain]))
        else:
            weights = {s["index"]: s["score"] or 0.0 for s in state.get("scores") or []}
            winners: list[Candidate] = []
            totals: dict[int, float] = {}
            for chain in by_chain:
                inner = weighted_vote(chain, weights)
                if inner["answer"] is None or not inner["supporters"]:
                    continue
                representative = next(c for c in chain if c["index"] == inner["supporters"][0])
                winners.append(representative)
                totals[representative["index"]] = inner["votes"][inner["answer"]]
            decision = (
                dict(weighted_vote(winners, totals)) if any(totals.values()) else dict(plurality_vote(candidates))
            )
            decision["fallback"] = not any(totals.values())
        decision["chains"] = [[c["index"] for c in chain] for chain in by_chain]
        return decided(state, decision, chains=decision["chains"])

    builder = StateGraph(_MixState, context_schema=RunContext, input_schema=QuestionInput, output_schema=MixOutput)
    kinds: tuple[NodeKind[Any], ...] = (PROPOSE, CRITIQUE, REVISE, scoring(judge, aggregation))
    for kind in kinds:
        add_worker(builder, kind, retry=retry)
    add_final(builder, "select", select_node)
    add_planner(builder, plan, ["propose", "critique", "revise", "score"], "select", first="propose",
                max_rounds=3 * budget + 4)  # fmt: skip
    return builder


def build_revision_graph(
    depth: int = 4, *, chains: int = 1, **kwargs: Any
) -> StateGraph[_MixState, RunContext, QuestionInput, MixOutput]:
    """Sequential revision chains of ``depth`` answers each (``chains`` of them in parallel).

    Example:
        >>> graph = build_revision_graph(depth=4, select="last").compile()
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ConfigError(f"depth must be a positive integer, got {depth!r}")
    return build_mix_graph(depth * chains, chains, **kwargs)


def mix_graph(budget: int = 16, chains: int = 4, **kwargs: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
    """``build_mix_graph(...)`` compiled without a checkpointer."""
    return build_mix_graph(budget, chains, **kwargs).compile(name=f"mix-{chains}x{budget // chains}")
