"""The public composition layer: everything a strategy graph is built from.

- the shared schemas: :class:`QuestionInput`, :class:`StrategyState`, :class:`StrategyOutput`,
  :class:`BudgetReport`, :class:`Plan`, and the final :func:`decided` update;
- :func:`add_worker`: a node kind (:mod:`nodes.kinds`) with its retry policy and failure handling,
  in one call;
- :func:`add_final`: the final vote or selection, ending with no answer (and the failure recorded)
  should it raise;
- :func:`add_planner`: the planner that returns the next wave of tasks (:func:`wave`) or the
  final node (:func:`finish`), with the barrier semantics built in;
- waves trimmed to the budget and to ``max_n``: :func:`plan_proposals`, :func:`plan_judging`,
  and a ready planner for propose-then-judge strategies, :func:`propose_then_judge`.

A whole strategy (Vote, as built in :mod:`graphs.strategies.vote`)::

    from langgraph.graph import StateGraph
    from graphs.compose import (QuestionInput, StrategyOutput, StrategyState, add_final, add_planner,
                                add_worker, decided, finish, plan_proposals, wave)
    from nodes import PROPOSE, RunContext, plurality_vote

    async def plan(state, runtime):
        tasks, report = plan_proposals(state, runtime.context, k=8)
        extra = {"budget": report} if report else {}
        return wave("propose", tasks, **extra) if tasks else finish("vote", **extra)

    async def vote(state):
        return decided(state, plurality_vote(state.get("candidates") or []))

    builder = StateGraph(StrategyState, context_schema=RunContext, input_schema=QuestionInput,
                         output_schema=StrategyOutput)
    add_worker(builder, PROPOSE)
    add_final(builder, "vote", vote)
    add_planner(builder, plan, ["propose"], "vote", first="propose")
"""

from graphs.compose.planner import (
    PLANNER,
    RECURSION_LIMIT,
    Planner,
    add_final,
    add_planner,
    add_worker,
    finish,
    plan_judging,
    plan_proposals,
    proposals_issued,
    propose_then_judge,
    wave,
    worst_case_tokens,
)
from graphs.compose.state import (
    BudgetReport,
    Plan,
    QuestionInput,
    StrategyOutput,
    StrategyState,
    check_count,
    decided,
    question_of,
)

__all__ = [
    "PLANNER",
    "RECURSION_LIMIT",
    "BudgetReport",
    "Plan",
    "Planner",
    "QuestionInput",
    "StrategyOutput",
    "StrategyState",
    "add_final",
    "add_planner",
    "add_worker",
    "check_count",
    "decided",
    "finish",
    "plan_judging",
    "plan_proposals",
    "proposals_issued",
    "propose_then_judge",
    "question_of",
    "wave",
    "worst_case_tokens",
]
