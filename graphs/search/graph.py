"""The step-level tree search shared by beam search, lookahead, DVTS and REBASE: a search is a
:class:`Policy` given to :func:`build_search_graph`.

One graph, one loop of rounds; a *policy* decides which nodes to expand and how many children
each gets, and which children survive. Each round is two waves of parallel ``Send`` tasks:

    tally ─Send→ step (n next steps of a prefix, one request) → tally ─Send→ reward → tally → …

``reward`` scores a child's last step with the process scorer (for lookahead, after a greedy
roll-out of up to ``lookahead`` more steps). Finished children (end of solution, a stated answer,
or cut off at the token limit) leave the search for good and are never expanded again; a
truncated one never becomes an answer. The search ends when the policy has nothing left to
expand, at the round limit, or when a budget cap is reached; the answer is the weighted
Best-of-N over the finished solutions that state an answer (``â = argmax_a Σ reward``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Protocol, TypedDict

from langgraph.errors import NodeError
from langgraph.graph import StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from graphs.compose import (
    BudgetReport,
    QuestionInput,
    add_final,
    add_planner,
    add_worker,
    check_count,
    decided,
    question_of,
)
from nodes.budget import Ledger, add_ledgers, ledger_totals
from nodes.calls import failure
from nodes.context import RunContext, context_of
from nodes.endpoint import RETRY_POLICY
from nodes.errors import ConfigError
from nodes.kinds import STEP, NodeKind
from nodes.scorers import Scorer, SelfEvalPRM
from nodes.step import Step, StepTask, step
from nodes.types import Candidate, Failure
from nodes.vote import plurality_vote, weighted_vote

__all__ = [
    "Decide",
    "Expansion",
    "Node",
    "Policy",
    "SearchOutput",
    "SearchView",
    "build_search_graph",
    "check_beam_width",
    "reward_of",
    "weighted_by_reward",
]


class Node(TypedDict):
    """A node of the search tree: a partial (or finished) solution and its last step's reward."""

    id: int
    parent: int | None
    prefix: str  # the solution so far (steps with their separators)
    depth: int
    subtree: int  # DVTS: which independent subtree it belongs to
    round: int  # the search round that made it (0: the root's first children)
    reward: float | None  # score of its last step (after the roll-out, for lookahead)
    final: bool
    truncated: bool
    answer: str | None


class Expansion(TypedDict):
    """Expand search node ``node`` with ``children`` next steps."""

    node: int
    children: int


@dataclass(frozen=True)
class SearchView:
    """What a policy may read besides the newest children: the whole tree, the round and the run's seed.

    Attributes:
        tree: every node so far, by id (0 is the root, the empty solution); read-only.
        round: the round the expansions will be made in (the root's first children are round 0).
        seed: the run's seed (``RunContext.seed``). A policy that draws at random derives its
            generator from it and the round (``random.Random(f"{seed}:{round}")``), so a run is
            reproducible and a resumed checkpoint draws what the interrupted run would have.
    """

    tree: Mapping[int, Node]
    round: int
    seed: int

    def children(self, node: int) -> list[Node]:
        """The children of ``node``, oldest first."""
        return sorted((n for n in self.tree.values() if n["parent"] == node), key=lambda n: n["id"])


class Policy(Protocol):
    """What distinguishes the searches."""

    @property
    def name(self) -> str: ...

    def first(self, width: int) -> int:
        """Children of the root (the empty solution)."""
        ...

    def expand(self, fresh: list[Node], completed: list[Node], width: int, view: SearchView) -> list[Expansion]:
        """Given the children just scored (finished ones included), every finished node so far and
        a view of the whole tree, which unfinished nodes (of any depth) to expand next and with
        how many children each; none ends the search."""
        ...


Decide = Callable[[list[Node], SearchView], Mapping[str, Any]]
"""How a search's answer is chosen from its finished solutions that state an answer: returns a
decision with at least ``answer`` (a :class:`nodes.vote.VoteResult`'s keys are the convention)."""


def reward_of(node: Node) -> float:
    """A node's reward for ranking; an unscored node ranks last."""
    return node["reward"] if node["reward"] is not None else float("-inf")


def _candidates(finished: list[Node]) -> list[Candidate]:
    return [
        {"index": n["id"], "text": n["prefix"], "answer": n["answer"], "finish_reason": "stop", "seed": None,
         "parent": n["parent"]}
        for n in finished
    ]  # fmt: skip


def weighted_by_reward(finished: list[Node], view: SearchView) -> Mapping[str, Any]:
    """The default :data:`Decide`: weighted Best-of-N, ``â = argmax_a Σ reward`` over the finished
    solutions (a plurality vote if no reward is positive)."""
    candidates = _candidates(finished)
    weights = {n["id"]: n["reward"] or 0.0 for n in finished}
    if any(weights.values()):
        return weighted_vote(candidates, weights)
    return plurality_vote(candidates)


class SearchOutput(TypedDict):
    """What a search graph returns: the decision, the finished solutions as candidates, every tree node."""

    question: str
    answer: str | None
    decision: dict[str, Any]
    candidates: list[Candidate]
    nodes: list[Node]
    failures: list[Failure]
    ledger: Ledger
    budget: BudgetReport
    rounds: int


class _RewardTask(TypedDict):
    question: str
    node: Node
    lookahead: int
    seed: int


class _SearchState(TypedDict, total=False):
    question: str
    question_id: str
    tree: dict[str, Node]  # str keys: JSON-safe for checkpoints; written by tally only
    nodes: list[Node]  # the output: every node, by id
    frontier: list[int]  # children awaiting scoring, or scored nodes awaiting expansion
    phase: str  # "expand" | "reward"
    steps: Annotated[list[Step], operator.add]
    rewards: Annotated[list[dict[str, Any]], operator.add]
    used_steps: int
    used_rewards: int
    failures: Annotated[list[Failure], operator.add]
    ledger: Annotated[Ledger, add_ledgers]
    rounds: Annotated[int, operator.add]
    plan: dict[str, Any]  # what the tally decided (see graphs.compose.add_planner)
    budget: BudgetReport
    answer: str | None
    decision: dict[str, Any]
    candidates: list[Candidate]
    stopped: str


@dataclass(frozen=True)
class _Limits:
    width: int
    max_rounds: int
    lookahead: int


def _plan(node: str, tasks: list[Any]) -> dict[str, Any]:
    return {"node": node, "tasks": tasks}


def build_search_graph(
    policy: Policy,
    width: int,
    *,
    scorer: Scorer | None = None,
    max_rounds: int = 40,
    lookahead: int = 0,
    decide: Decide = weighted_by_reward,
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[Any, RunContext, QuestionInput, SearchOutput]:
    """Build a step-level tree search: ``policy`` decides what to expand, ``scorer`` (a process
    scorer, default :class:`nodes.scorers.SelfEvalPRM`) scores each new step, ``decide`` picks the
    answer from the finished solutions.

    Args:
        policy: which nodes to expand and with how many children (see :class:`Policy`).
        width: the search's width ``n`` (the policy reads it).
        scorer: the process reward model.
        max_rounds: the round limit (each round is one wave of steps and one of rewards).
        lookahead: greedy roll-out steps before a new step is scored (0: score it as it is).
        decide: the answer from the finished solutions (default :func:`weighted_by_reward`).
        retry: retry policy of the LLM nodes.

    Example:
        >>> from graphs.search import BeamPolicy
        >>> graph = build_search_graph(BeamPolicy(beam_width=2), 4).compile()
    """
    check_count(width, "n")
    check_count(max_rounds, "max_rounds")
    if lookahead < 0:
        raise ConfigError(f"lookahead must be 0 or more, got {lookahead!r}")
    prm: Scorer = scorer or SelfEvalPRM()
    limits = _Limits(width, max_rounds, lookahead)

    async def tally(state: _SearchState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = context_of(runtime)
        question = question_of(state)
        nodes = {int(k): Node(**v) for k, v in (state.get("tree") or {}).items()}  # copies: state stays as it was
        update: dict[str, Any] = {}
        phase = state.get("phase")

        if phase is None:  # the root: a first wave of steps from the empty solution
            root: Node = {"id": 0, "parent": None, "prefix": "", "depth": 0, "subtree": 0, "round": -1,
                          "reward": None, "final": False, "truncated": False, "answer": None}  # fmt: skip
            nodes[0] = root
            return update | _expand(state, ctx, nodes, [{"node": 0, "children": policy.first(width)}], limits)

        if phase == "expand":  # new steps arrived: make children, score them
            new_steps = (state.get("steps") or [])[state.get("used_steps", 0) :]
            children: list[Node] = []
            for s in sorted(new_steps, key=lambda s: (s["parent"], s["text"])):
                parent = nodes[s["parent"]]
                child_id = max(nodes) + 1
                subtree = parent["subtree"] if parent["parent"] is not None else len(children)
                child: Node = {"id": child_id, "parent": parent["id"], "prefix": parent["prefix"] + s["text"],
                               "depth": parent["depth"] + 1, "subtree": subtree, "round": _round(state),
                               "reward": None,
                               "final": s["final"], "truncated": s["truncated"], "answer": s["answer"]}  # fmt: skip
                nodes[child_id] = child
                children.append(child)
            update["used_steps"] = len(state.get("steps") or [])
            if not children:
                return update | _finish(state, nodes, "no step could be generated")
            tasks = [
                {"question": question, "node": c, "lookahead": 0 if c["final"] else limits.lookahead,
                 "seed": ctx.seed + c["id"]}
                for c in children
            ]  # fmt: skip
            allowed = _allowance(state, ctx, len(tasks), per_task=1 + limits.lookahead)
            if allowed < len(tasks):
                update["budget"] = _report(state, ctx, "scoring")
                tasks = tasks[:allowed]
            update.update(phase="reward", frontier=[c["id"] for c in children], tree=_dump(nodes))
            if not tasks:
                return update | _finish(state, nodes, "budget")
            update["plan"] = _plan("reward", tasks)
            return update

        # phase == "reward": apply the scores, let the policy pick what to expand next
        for r in (state.get("rewards") or [])[state.get("used_rewards", 0) :]:
            nodes[r["node"]]["reward"] = r["reward"]
        update["used_rewards"] = len(state.get("rewards") or [])
        fresh = [nodes[i] for i in state.get("frontier") or []]
        completed = [n for n in nodes.values() if n["final"]]
        if (state.get("rounds") or 0) >= 2 * limits.max_rounds:
            return update | _finish(state, nodes, f"round limit {limits.max_rounds}")
        if state.get("budget"):
            return update | _finish(state, nodes, "budget")
        view = SearchView(MappingProxyType(nodes), _round(state), ctx.seed)
        expansions = [e for e in policy.expand(fresh, completed, width, view) if e["children"] > 0]
        if any(e["node"] not in nodes or nodes[e["node"]]["final"] for e in expansions):
            raise RuntimeError(f"search policy {policy.name!r} tried to expand a finished or unknown node")
        if not expansions:
            return update | _finish(state, nodes, "search finished")
        return update | _expand(state, ctx, nodes, expansions, limits)

    async def reward(task: _RewardTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = context_of(runtime)
        node = task["node"]
        text = node["prefix"]
        usage: Ledger = {}
        if task["lookahead"] > 0:  # roll out greedily, score the end of the roll-out
            rolled = await step(
                {"question": task["question"], "prefix": text, "n": 1, "parent": node["id"], "seed": task["seed"],
                 "temperature": 0.0, "max_steps": task["lookahead"]},
                runtime,
            )  # fmt: skip
            text += rolled["steps"][0]["text"]
            usage = add_ledgers(usage, {"lookahead": rolled["ledger"]["step"]})
        last = getattr(prm, "score_last", None)
        scored = await (last(task["question"], text, ctx) if last else prm.score(task["question"], text, ctx))
        value = scored.steps[-1] if scored.steps else None
        return {"rewards": [{"node": node["id"], "reward": value}], "ledger": add_ledgers(usage, scored.usage)}

    def reward_failed(task: _RewardTask, error: NodeError) -> dict[str, Any]:
        index = task["node"]["id"]
        return {"rewards": [{"node": index, "reward": None}], "failures": [failure("reward", [index], error)]}

    async def select(state: _SearchState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        nodes = [n for _, n in sorted((int(k), v) for k, v in (state.get("tree") or {}).items())]
        finished = [n for n in nodes if n["final"] and not n["truncated"] and n["answer"] is not None]
        candidates = _candidates(finished)
        view = SearchView(MappingProxyType({n["id"]: n for n in nodes}), _round(state), context_of(runtime).seed)
        decision = dict(decide(finished, view))
        decision["stopped"] = state.get("stopped")
        decision["finished"] = len(finished)
        return decided(state, decision, candidates=candidates, nodes=nodes)

    builder = StateGraph(
        _SearchState, context_schema=RunContext, input_schema=QuestionInput, output_schema=SearchOutput
    )
    add_worker(builder, STEP, retry=retry)
    add_worker(builder, NodeKind("reward", reward, _RewardTask, reward_failed), retry=retry)
    add_final(builder, "select", select)
    add_planner(builder, tally, ["step", "reward"], "select")
    return builder


def check_beam_width(n: int, beam_width: int) -> None:
    """A :class:`~nodes.errors.ConfigError` unless ``beam_width`` is an integer from 1 to ``n``."""
    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or not 1 <= beam_width <= n:
        raise ConfigError(f"beam width must be an integer from 1 to n ({n}), got {beam_width!r}")


def _round(state: _SearchState) -> int:
    """The search round: each is two planner passes (steps, then rewards)."""
    return (state.get("rounds") or 0) // 2


def _dump(nodes: dict[int, Node]) -> dict[str, Node]:
    return {str(k): v for k, v in nodes.items()}


def _allowance(state: _SearchState, ctx: RunContext, want: int, per_task: int) -> int:
    calls = ctx.budget.allowance(state.get("ledger"), want=want * per_task, tokens_per_call=2 * ctx.max_tokens)
    return calls // per_task


def _report(state: _SearchState, ctx: RunContext, what: str) -> BudgetReport:
    spent = ledger_totals(state.get("ledger"))
    return {"exhausted": True, "note": f"budget ({ctx.budget.describe()}) reached while {what} "
            f"({spent['calls']} calls)"}  # fmt: skip


def _expand(
    state: _SearchState, ctx: RunContext, nodes: dict[int, Node], expansions: list[Expansion], limits: _Limits
) -> dict[str, Any]:
    update: dict[str, Any] = {"phase": "expand", "tree": _dump(nodes)}
    want = sum(e["children"] for e in expansions)
    allowed = _allowance(state, ctx, want, per_task=1)
    if allowed < want:
        update["budget"] = _report(state, ctx, "expanding")
        trimmed: list[Expansion] = []
        left = allowed
        for e in expansions:
            if left <= 0:
                break
            trimmed.append({"node": e["node"], "children": min(left, e["children"])})
            left -= trimmed[-1]["children"]
        expansions = trimmed
    tasks: list[StepTask] = []
    for e in expansions:
        node = nodes[e["node"]]
        remaining = e["children"]
        while remaining > 0:  # requests of at most max_n samples each
            n = min(remaining, ctx.llm.endpoint.max_n)
            tasks.append({"question": state.get("question") or "", "prefix": node["prefix"], "n": n,
                          "parent": node["id"], "seed": ctx.seed + 7919 * (state.get("rounds") or 0) + node["id"]
                          + 104729 * len(tasks), "temperature": None, "max_steps": 1})  # fmt: skip
            remaining -= n
    if not tasks:
        return update | _finish(state, nodes, "budget")
    update["plan"] = _plan("step", tasks)
    return update


def _finish(state: _SearchState, nodes: dict[int, Node], why: str) -> dict[str, Any]:
    return {"tree": _dump(nodes), "stopped": why, "plan": _plan("select", [])}
