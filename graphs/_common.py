"""State, input and output schemas and the wave planner shared by the vote-family graphs."""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, NotRequired, TypedDict

from langgraph.errors import NodeError
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime, get_runtime
from langgraph.types import Command, RetryPolicy, Send

from nodes.budget import Ledger, add_ledgers, ledger_totals
from nodes.context import RunContext
from nodes.errors import ConfigError
from nodes.propose import ProposeTask, propose, propose_failed, propose_prompt
from nodes.types import Candidate, Failure, Score, Verdict

__all__ = [
    "BudgetReport",
    "Plan",
    "QuestionInput",
    "VoteOutput",
    "VoteState",
    "add_propose_node",
    "add_tally",
    "check_k",
    "decided",
    "guard_rounds",
    "plan_judging",
    "plan_proposals",
    "plan_propose_then_judge",
    "recover_to",
    "worst_case_tokens",
]


class QuestionInput(TypedDict):
    """What a strategy graph takes: a question and, optionally, an id used in messages."""

    question: str
    question_id: NotRequired[str]


class BudgetReport(TypedDict):
    exhausted: bool  # a cap stopped the graph before it made every call it planned
    note: str | None


class VoteOutput(TypedDict):
    """What the vote-family graphs return."""

    question: str
    answer: str | None
    decision: dict[str, Any]
    candidates: list[Candidate]
    failures: list[Failure]
    ledger: Ledger
    budget: BudgetReport


class Plan(TypedDict):
    """What a tally decided, as plain data (so it checkpoints): ``node`` to run next, with one
    ``Send`` per task (none: go to ``node``)."""

    node: str
    tasks: list[dict[str, Any]]


class VoteState(TypedDict, total=False):
    question: str
    question_id: str
    candidates: Annotated[list[Candidate], operator.add]
    verdicts: Annotated[list[Verdict], operator.add]
    scores: Annotated[list[Score], operator.add]
    failures: Annotated[list[Failure], operator.add]
    ledger: Annotated[Ledger, add_ledgers]
    rounds: Annotated[int, operator.add]  # tally runs: bounds the wave loop
    plan: Plan  # what the tally decided: the next wave of calls, or the final node
    budget: BudgetReport
    answer: str | None
    decision: dict[str, Any]


def decided(state: Any, decision: Mapping[str, Any], **more: Any) -> dict[str, Any]:
    """The final node's update: the answer, the decision behind it and the budget report."""
    return {
        "answer": decision["answer"],
        "decision": dict(decision),
        "budget": state.get("budget") or {"exhausted": False, "note": None},
        **more,
    }


def check_k(k: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"{name} must be a positive integer, got {k!r}")
    return k


def label(state: VoteState) -> str:
    qid = state.get("question_id")
    return f"question {qid!r}" if qid else "the question"


def check_question(state: VoteState) -> str:
    question = state.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{label(state)} is empty: give a question to answer")
    return question


def worst_case_tokens(ledger: Ledger | None, kind: str, prompt: str, completion_limit: int) -> int:
    """An estimate of one more call's tokens: the average prompt per request seen so far for
    this node kind (or the prompt's length in characters, an overestimate, before any call)
    plus the completion limit."""
    usage = (ledger or {}).get(kind)
    prompt_tokens = -(-usage["prompt_tokens"] // usage["requests"]) if usage and usage["requests"] else len(prompt)
    return prompt_tokens + completion_limit


def plan_proposals(
    state: VoteState, ctx: RunContext, k: int, *, calls_per_sample: int = 1, owed: int = 0
) -> tuple[list[ProposeTask], BudgetReport | None]:
    """The next wave of propose requests toward ``k`` samples, trimmed to the budget.

    ``calls_per_sample`` reserves budget for the calls each sample will need later (a
    Filter-Vote sample is also judged), and ``owed`` for the later calls of samples already
    drawn, so a cap never leaves samples that cannot be judged.
    Returns the tasks (empty when done) and a budget report when a cap stopped the proposals.
    """
    question = check_question(state)
    issued = len(state.get("candidates") or []) + sum(
        len(f["indices"]) for f in state.get("failures") or [] if f["node"] == "propose"
    )
    want = k - issued
    if want <= 0:
        return [], None
    per_call = worst_case_tokens(
        state.get("ledger"), "propose", propose_prompt(question, ctx.answer_format), ctx.max_tokens
    )
    fits = ctx.budget.allowance(state.get("ledger"), want=want * calls_per_sample + owed, tokens_per_call=per_call)
    allowed = max(fits - owed, 0) // max(calls_per_sample, 1)
    if allowed <= 0:
        spent = ledger_totals(state.get("ledger"))
        note = (
            f"budget ({ctx.budget.describe()}) reached after {issued} of {k} proposals "
            f"({spent['calls']} calls, {spent['prompt_tokens'] + spent['completion_tokens']} tokens)"
        )
        return [], {"exhausted": True, "note": note}
    tasks: list[ProposeTask] = []
    first = issued
    while first < issued + allowed:
        n = min(ctx.llm.endpoint.max_n, issued + allowed - first)
        tasks.append({"question": question, "first_index": first, "n": n})
        first += n
    return tasks, None


def recover_to(handler: Callable[[Any, NodeError], dict[str, Any]], node: str) -> Callable[..., Command[str]]:
    """Wrap a node kind's error handler so the graph goes on to ``node`` after a failure.

    A handler that returns a plain update ends the run when every task of its superstep failed
    (nothing triggers the failed node's outgoing edge), so it must say where to go next.
    """

    def on_error(task: dict[str, Any], error: NodeError) -> Command[str]:
        return Command(update=handler(task, error), goto=node)

    return on_error


def plan_propose_then_judge(
    state: VoteState,
    ctx: RunContext,
    k: int,
    *,
    judged: str,
    judge_node: str,
    final_node: str,
    prompt: Callable[[Candidate], str],
    calls: Callable[[Candidate], int] = lambda c: 1,
) -> dict[str, Any]:
    """The tally of the propose-then-judge strategies (Filter-Vote, Best-of-N): first ``k``
    proposals (keeping a judge call in reserve for each), then one judge task per candidate not
    yet in ``state[judged]``, then ``final_node``."""
    update: dict[str, Any] = {"rounds": 1}
    records: list[Any] = list(state.get(judged) or [])  # type: ignore[call-overload]
    owed = len(state.get("candidates") or []) - len(records)
    proposals, report = plan_proposals(state, ctx, k, calls_per_sample=2, owed=owed)
    if proposals:
        update["plan"] = {"node": "propose", "tasks": proposals}
        return update
    done = {r["index"] for r in records}
    chosen, report = plan_judging(state, ctx, done, prompt, report, kind="verify", calls=calls)
    if report:
        update["budget"] = report
    tasks = [{"question": state["question"], "candidate": c} for c in chosen]
    update["plan"] = {"node": judge_node if tasks else final_node, "tasks": tasks}
    return update


# langgraph's node protocols do not match an async (state, runtime) function for mypy.
PROPOSE_NODE: Any = propose


def plan_judging(
    state: VoteState,
    ctx: RunContext,
    done: set[int],
    prompt: Callable[[Candidate], str],
    report: BudgetReport | None,
    *,
    kind: str,
    calls: Callable[[Candidate], int] = lambda c: 1,
) -> tuple[list[Candidate], BudgetReport | None]:
    """The candidates to judge or score next (those not in ``done``), trimmed to the budget.

    ``calls`` says how many LLM calls judging a candidate takes (a process reward model makes
    one per step). When nothing more fits, the budget report says how many are left unjudged.
    """
    pending = sorted((c for c in state.get("candidates") or [] if c["index"] not in done), key=lambda c: c["index"])
    if not pending:
        return [], report
    longest = max(pending, key=lambda c: len(c["text"]))
    per_call = worst_case_tokens(state.get("ledger"), kind, prompt(longest), ctx.judge_max_tokens)
    want = sum(calls(c) for c in pending)
    allowed = ctx.budget.allowance(state.get("ledger"), want=want, tokens_per_call=per_call)
    chosen, used = [], 0
    for c in pending:
        if used + calls(c) > allowed:
            break
        chosen.append(c)
        used += calls(c)
    if not chosen:  # a trimmed wave is not the end: the next tally plans the rest if it fits
        spent = ledger_totals(state.get("ledger"))
        report = {
            "exhausted": True,
            "note": f"budget ({ctx.budget.describe()}) reached with {len(pending) - len(chosen)} of "
            f"{len(state.get('candidates') or [])} candidates unjudged ({spent['calls']} calls)",
        }
    return chosen, report


def add_propose_node(builder: StateGraph[Any, Any, Any, Any], retry: RetryPolicy) -> None:
    builder.add_node(
        "propose",
        PROPOSE_NODE,
        input_schema=ProposeTask,
        retry_policy=retry,
        error_handler=recover_to(propose_failed, "tally"),
    )


Tally = Callable[[Any, Runtime[RunContext]], Awaitable[dict[str, Any]]]
"""A strategy's tally: ``(state, runtime) -> update``, the update holding a ``plan``."""


def add_tally(
    builder: StateGraph[Any, Any, Any, Any],
    tally: Tally,
    workers: Sequence[str],
    final: str,
    *,
    first: str | None = None,
) -> None:
    """Add ``tally``, the node where a strategy graph decides, and the edges out of it and START.

    ``tally`` returns its state update with a :class:`Plan`: the next wave of ``workers``
    calls, or ``final``. The plan is state (so a checkpoint, or a state edit at an interrupt
    with ``update_state(..., as_node="tally")``, carries it out again), and a conditional edge
    sends it (one ``Send`` per task). The workers lead back to ``tally``, so one tally a
    superstep sees every reply and failure.

    With ``first`` (the vote family's ``propose``), START sends the first wave to it itself
    whenever planning that wave changes nothing in the state but the round count, and otherwise
    leads to ``tally``: a pass through ``tally`` costs LangGraph about 0.15 ms a run, which at
    k = 1 is a sixth of the framework's cost per call (``benchmarks/``). So to stop a run before
    any call, interrupt before ``first``, not before ``tally``.
    """

    async def start(state: Any) -> list[Send] | str:
        runtime = _current_runtime()
        if runtime is None:  # a state edit (update_state) has no run context: tally plans on resume
            return "tally"
        update = await tally(state, runtime)
        plan = update.pop("plan")
        if plan["tasks"] and plan["node"] == first and set(update) <= {"rounds"}:
            return _goto(plan)
        return "tally"

    node: Any = tally  # langgraph's node protocols do not match an async (state, runtime) function for mypy
    builder.add_node("tally", node)
    builder.add_conditional_edges("tally", _route, [*workers, final])
    if first is None:
        builder.add_edge(START, "tally")
    else:
        builder.add_conditional_edges(START, start, [first, "tally"])
    for worker in workers:
        builder.add_edge(worker, "tally")


class _Planned(TypedDict):
    plan: Plan


def _goto(plan: Plan) -> list[Send] | str:
    """Where a plan goes: one ``Send`` per task, or its node when it has none."""
    return [Send(plan["node"], task) for task in plan["tasks"]] or plan["node"]


async def _route(state: _Planned) -> list[Send] | str:  # async: a sync edge would run in a thread
    return _goto(state["plan"])


def _current_runtime() -> Runtime[RunContext] | None:
    try:
        runtime = get_runtime(RunContext)
    except RuntimeError:  # outside a run
        return None
    return runtime if runtime is not None and isinstance(runtime.context, RunContext) else None


def guard_rounds(state: VoteState, limit: int) -> None:
    if (state.get("rounds") or 0) >= limit:
        raise RuntimeError(f"tally: {label(state)} made no progress after {limit} rounds")
