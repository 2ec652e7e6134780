"""Workers, the planner and its waves: how a strategy graph is wired.

A strategy graph is a *planner* node (``tally``) and *worker* nodes (the LLM-calling node kinds).
The planner looks at the state and returns the next wave of tasks (one ``Send`` per task) or the
final node; every worker leads back to the planner. The plan is state, not a return value, so a
checkpoint (or a state edit at an interrupt) carries it out again, and the planner runs once per
superstep however many tasks the wave had (a conditional edge on a node that ran as several
``Send`` tasks would fire once per task: the barrier is built in). Worker failures that survive
the retries become recorded failures and the planner plans on with what it has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

from langgraph.errors import NodeError
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime, get_runtime
from langgraph.types import Command, RetryPolicy, Send

from graphs.compose.state import BudgetReport, Plan, StrategyState, label, question_of
from nodes.budget import Ledger, ledger_totals
from nodes.context import RunContext, context_of
from nodes.endpoint import RETRY_POLICY
from nodes.kinds import NodeKind
from nodes.propose import ProposeTask, propose_prompt
from nodes.types import Candidate
from nodes.vote import vote_failed

__all__ = [
    "PLANNER",
    "RECURSION_LIMIT",
    "Planner",
    "add_final",
    "add_planner",
    "add_worker",
    "finish",
    "plan_judging",
    "plan_proposals",
    "proposals_issued",
    "propose_then_judge",
    "wave",
    "worst_case_tokens",
]

PLANNER = "tally"
"""The planner node's name: workers lead back to it, and ``update_state(..., as_node=PLANNER)`` re-plans."""

TaskT = TypeVar("TaskT", bound=Mapping[str, Any])

Planner = Callable[[Any, Runtime[RunContext]], Awaitable[dict[str, Any]]]
"""A strategy's planner: ``async (state, runtime) -> update``, the update holding a ``plan``
(use :func:`wave` and :func:`finish`)."""


RECURSION_LIMIT = 10_000
"""The ``recursion_limit`` to run a planner graph with (``config={"recursion_limit": RECURSION_LIMIT}``
or ``compiled.with_config(...)``): each round is two LangGraph supersteps (the wave, the planner), so
LangGraph's default of 25 cuts a long run short (an adaptive vote of sixteen one-sample waves takes
34), while :func:`add_planner`'s ``max_rounds`` is the graph's own guard against a loop."""


def wave(node: str, tasks: Iterable[Mapping[str, Any]], **update: Any) -> dict[str, Any]:
    """A planner's update sending one task to ``node`` per item of ``tasks`` (``update`` goes along).

    Example:
        >>> wave("verify", [{"question": "q", "candidate": {"index": 0}}])["plan"]["node"]
        'verify'
    """
    return {**update, "plan": {"node": node, "tasks": [dict(t) for t in tasks]}}


def finish(node: str, **update: Any) -> dict[str, Any]:
    """A planner's update handing over to ``node`` (the final vote or selection), once."""
    return {**update, "plan": {"node": node, "tasks": []}}


def _recover_to(handler: Callable[[Any, NodeError], dict[str, Any]], node: str) -> Callable[..., Command[str]]:
    """An error handler that records the failure and goes on to ``node``. A handler returning a
    plain update would end the run when every task of its superstep failed (nothing triggers the
    failed node's outgoing edge), so it must say where to go."""

    def on_error(task: dict[str, Any], error: NodeError) -> Command[str]:
        return Command(update=handler(task, error), goto=node)

    return on_error


def add_worker(
    builder: StateGraph[Any, Any, Any, Any],
    kind: NodeKind[TaskT],
    *,
    name: str | None = None,
    retry: RetryPolicy = RETRY_POLICY,
    then: str = PLANNER,
) -> str:
    """Add a node of ``kind``: its task schema, ``retry`` (transient endpoint errors only, by
    default) and its failure handler, leading to ``then`` (the planner) even when it failed.
    Returns the node's name (``name``, default the kind's).

    Example:
        >>> from nodes.kinds import VERIFY
        >>> builder = StateGraph(StrategyState, context_schema=RunContext)
        >>> add_worker(builder, VERIFY, name="judge")
        'judge'
    """
    node = name or kind.name
    # langgraph's node protocols do not accept a TypedDict task schema for mypy: the one cast is here
    builder.add_node(
        node,
        cast(Any, kind.run),
        input_schema=cast(Any, kind.task),
        retry_policy=retry,
        error_handler=_recover_to(kind.on_failure, then),
    )
    return node


def add_final(
    builder: StateGraph[Any, Any, Any, Any],
    name: str,
    node: Callable[..., Awaitable[dict[str, Any]]],
    *,
    on_failure: Callable[[Any, NodeError], dict[str, Any]] = vote_failed,
) -> str:
    """Add the final node (the vote or selection, which returns :func:`~graphs.compose.decided`)
    leading to END. Should it raise, ``on_failure`` (default: no answer, the failure recorded)
    ends the run with the samples and the ledger in the output instead of an exception."""
    builder.add_node(name, cast(Any, node), error_handler=_recover_to(on_failure, END))
    builder.add_edge(name, END)
    return name


def add_planner(
    builder: StateGraph[Any, Any, Any, Any],
    planner: Planner,
    workers: Sequence[str],
    final: str,
    *,
    first: str | None = None,
    max_rounds: int | None = None,
) -> None:
    """Add ``planner`` as the graph's ``tally`` node, with the edges out of it and out of START.

    ``planner`` returns its state update with a :class:`~graphs.compose.Plan` (:func:`wave` or
    :func:`finish`): the next wave of ``workers`` tasks, or ``final``. Each worker leads back to
    the planner, so one planner run a superstep sees every reply and failure. The planner's runs
    are counted in ``rounds``; past ``max_rounds`` it raises instead of looping for ever.

    With ``first`` (e.g. ``"propose"``), START sends the first wave to it itself whenever
    planning that wave changes nothing in the state but the round count, and otherwise leads to
    the planner: a pass through the planner costs LangGraph about 0.15 ms a run, which at k = 1
    is a sixth of the framework's cost per call (``benchmarks/``). So to stop a run before any
    call, interrupt before ``first``, not before the planner.
    """

    async def tally(state: Any, runtime: Runtime[RunContext]) -> dict[str, Any]:
        if max_rounds is not None and (state.get("rounds") or 0) >= max_rounds:
            raise RuntimeError(f"{PLANNER}: {label(state)} made no progress after {max_rounds} rounds")
        update = await planner(state, runtime)
        update["rounds"] = 1
        return update

    async def start(state: Any) -> list[Send] | str:
        runtime = _current_runtime()
        if runtime is None:  # a state edit (update_state) has no run context: the planner plans on resume
            return PLANNER
        update = await tally(state, runtime)
        plan = update.pop("plan")
        if plan["tasks"] and plan["node"] == first and set(update) <= {"rounds"}:
            return _goto(plan)
        return PLANNER

    builder.add_node(PLANNER, cast(Any, tally))
    builder.add_conditional_edges(PLANNER, _route, [*workers, final])
    if first is None:
        builder.add_edge(START, PLANNER)
    else:
        builder.add_conditional_edges(START, start, [first, PLANNER])
    for worker in workers:
        builder.add_edge(worker, PLANNER)


def _goto(plan: Plan) -> list[Send] | str:
    """Where a plan goes: one ``Send`` per task, or its node when it has none."""
    return [Send(plan["node"], task) for task in plan["tasks"]] or plan["node"]


async def _route(state: Mapping[str, Any]) -> list[Send] | str:  # async: a sync edge would run in a thread
    return _goto(state["plan"])


def _current_runtime() -> Runtime[RunContext] | None:
    try:
        runtime = get_runtime(RunContext)
    except RuntimeError:  # outside a run
        return None
    return runtime if runtime is not None and isinstance(runtime.context, RunContext) else None


# -- waves trimmed to the budget and to max_n -------------------------------------------------------


def worst_case_tokens(ledger: Ledger | None, kind: str, prompt: str, completion_limit: int) -> int:
    """An estimate of one more call's tokens: the average prompt per request seen so far for
    this node kind (or the prompt's length in characters, an overestimate, before any call)
    plus the completion limit."""
    usage = (ledger or {}).get(kind)
    prompt_tokens = -(-usage["prompt_tokens"] // usage["requests"]) if usage and usage["requests"] else len(prompt)
    return prompt_tokens + completion_limit


def proposals_issued(state: StrategyState) -> int:
    """Proposals drawn so far: candidates without a ``parent`` (revisions are not proposals) and
    samples whose propose request failed for good."""
    proposed = sum(1 for c in state.get("candidates") or [] if c["parent"] is None)
    return proposed + sum(len(f["indices"]) for f in state.get("failures") or [] if f["node"] == "propose")


def plan_proposals(
    state: StrategyState, ctx: RunContext, k: int, *, calls_per_sample: int = 1, owed: int = 0
) -> tuple[list[ProposeTask], BudgetReport | None]:
    """The next wave of propose requests toward ``k`` samples, split into requests of at most
    the endpoint's ``max_n`` and trimmed to the budget.

    Samples already drawn (candidates without a ``parent``: revisions are not proposals) and samples
    whose request failed for good count as issued.
    ``calls_per_sample`` reserves budget for the calls each sample will need later (a
    Filter-Vote sample is also judged), and ``owed`` for the later calls of samples already
    drawn, so a cap never leaves samples that cannot be judged.
    Returns the tasks (empty when done) and a budget report when a cap stopped the proposals.
    """
    question = question_of(state)
    issued = proposals_issued(state)
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


def plan_judging(
    state: StrategyState,
    ctx: RunContext,
    done: set[int],
    prompt: Callable[[Candidate], str],
    report: BudgetReport | None,
    *,
    kind: str,
    calls: Callable[[Candidate], int] = lambda c: 1,
    completion_limit: int | None = None,
) -> tuple[list[Candidate], BudgetReport | None]:
    """The candidates to judge or score next (those not in ``done``), trimmed to the budget.

    ``prompt`` gives a candidate's judge prompt (its length estimates the tokens before any
    ``kind`` call was made); ``calls`` how many LLM calls judging a candidate takes (a process
    reward model makes one per step); ``completion_limit`` the calls' completion limit (default the
    run's ``judge_max_tokens``; a critique's is ``max_tokens``). When nothing more fits, the budget
    report says how many are left unjudged.
    """
    pending = sorted((c for c in state.get("candidates") or [] if c["index"] not in done), key=lambda c: c["index"])
    if not pending:
        return [], report
    longest = max(pending, key=lambda c: len(c["text"]))
    limit = ctx.judge_max_tokens if completion_limit is None else completion_limit
    per_call = worst_case_tokens(state.get("ledger"), kind, prompt(longest), limit)
    want = sum(calls(c) for c in pending)
    allowed = ctx.budget.allowance(state.get("ledger"), want=want, tokens_per_call=per_call)
    chosen, used = [], 0
    for c in pending:
        if used + calls(c) > allowed:
            break
        chosen.append(c)
        used += calls(c)
    if not chosen:  # a trimmed wave is not the end: the next planner run plans the rest if it fits
        spent = ledger_totals(state.get("ledger"))
        report = {
            "exhausted": True,
            "note": f"budget ({ctx.budget.describe()}) reached with {len(pending) - len(chosen)} of "
            f"{len(state.get('candidates') or [])} candidates unjudged ({spent['calls']} calls)",
        }
    return chosen, report


def propose_then_judge(
    k: int,
    *,
    judged: str,
    judge: str,
    final: str,
    prompt: Callable[[str, Candidate], str],
    calls: Callable[[Candidate], int] = lambda c: 1,
    propose: str = "propose",
    batch: bool = False,
) -> Planner:
    """The planner of a propose-then-judge strategy (Filter-Vote, Best-of-N): first ``k``
    proposals (keeping a judge call in reserve for each), then one ``judge`` task
    (``{"question", "candidate"}``) per candidate not yet in ``state[judged]``, then ``final``.

    ``prompt(question, candidate)`` is the judge's prompt, for the budget's token estimate. With
    ``batch`` the judge gets one task for the whole wave (``{"question", "candidates"}``, see
    :func:`nodes.kinds.wave_scoring`).
    """

    async def planner(state: StrategyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = context_of(runtime)
        records: list[Any] = list(state.get(judged) or [])  # type: ignore[call-overload]
        owed = len(state.get("candidates") or []) - len(records)
        proposals, report = plan_proposals(state, ctx, k, calls_per_sample=2, owed=owed)
        if proposals:
            return wave(propose, proposals)
        question = state.get("question") or ""
        done = {r["index"] for r in records}
        chosen, report = plan_judging(
            state, ctx, done, lambda c: prompt(question, c), report, kind="verify", calls=calls
        )
        update: dict[str, Any] = {"budget": report} if report else {}
        tasks: list[dict[str, Any]]
        if batch:
            tasks = [{"question": question, "candidates": chosen}] if chosen else []
        else:
            tasks = [{"question": question, "candidate": c} for c in chosen]
        return wave(judge, tasks, **update) if tasks else finish(final, **update)

    return planner
