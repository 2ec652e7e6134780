"""The node kinds as values: each LLM-calling kind with its task schema and its failure handler.

A :class:`NodeKind` is everything a graph needs to add a node of that kind: the async node
function ``(task, runtime) -> update``, the ``TypedDict`` of the ``Send`` payload it takes, and the
error handler that turns a call that failed for good into a recorded :class:`~nodes.types.Failure`
(so one failed call never aborts the run). :func:`graphs.compose.add_worker` adds one to a graph in
one call. A node kind of your own is a ``NodeKind`` too:

Example:
    >>> from typing import TypedDict
    >>> from nodes.calls import failure
    >>> class EchoTask(TypedDict):
    ...     question: str
    >>> async def echo(task: EchoTask, runtime) -> dict:  # a real node would call runtime.context.llm
    ...     return {}
    >>> ECHO = NodeKind("echo", echo, EchoTask, lambda task, error: {"failures": [failure("echo", [], error)]})
    >>> ECHO.name, PROPOSE.task.__name__, sorted(k.name for k in BUILTIN_KINDS)
    ('echo', 'ProposeTask', ['critique', 'propose', 'revise', 'step', 'verify'])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from langgraph.errors import NodeError
from langgraph.runtime import Runtime

from nodes.context import RunContext
from nodes.critique import CritiqueTask, critique, critique_failed
from nodes.propose import ProposeTask, StreamTask, propose, propose_failed, propose_streamed, propose_streamed_failed
from nodes.revise import ReviseTask, revise, revise_failed
from nodes.score import ScoreTask, ScoreWaveNode, ScoreWaveTask, score_failed, score_node, score_wave_failed
from nodes.scorers import Aggregation, Scorer
from nodes.step import StepTask, step, step_failed
from nodes.verify import VerifyTask, verify, verify_failed

__all__ = [
    "BUILTIN_KINDS",
    "CRITIQUE",
    "PROPOSE",
    "PROPOSE_STREAMED",
    "REVISE",
    "STEP",
    "VERIFY",
    "NodeKind",
    "Worker",
    "scoring",
    "wave_scoring",
]

TaskT = TypeVar("TaskT", bound=Mapping[str, Any])
TaskT_contra = TypeVar("TaskT_contra", bound=Mapping[str, Any], contravariant=True)


class Worker(Protocol[TaskT_contra]):
    """A node function: one task (a ``Send`` payload) and the run's runtime in, a state update out."""

    def __call__(self, task: TaskT_contra, runtime: Runtime[RunContext], /) -> Awaitable[dict[str, Any]]: ...


FailureHandler = Callable[[TaskT, NodeError], dict[str, Any]]
"""An error handler: the task that failed for good and langgraph's ``NodeError`` in, the update
that records the failure out (e.g. ``{"failures": [failure(...)]}``)."""


@dataclass(frozen=True)
class NodeKind(Generic[TaskT]):
    """A kind of node: its default name, its function, its task schema and its failure handler."""

    name: str
    run: Worker[TaskT]
    task: type[TaskT]
    on_failure: Callable[[TaskT, NodeError], dict[str, Any]]


PROPOSE: NodeKind[ProposeTask] = NodeKind("propose", propose, ProposeTask, propose_failed)
"""Sample candidates: ``n`` per request (:mod:`nodes.propose`)."""
PROPOSE_STREAMED: NodeKind[StreamTask] = NodeKind("propose", propose_streamed, StreamTask, propose_streamed_failed)
"""Stream a wave of samples with token logprobs, stopping the unconfident ones (DeepConf online,
:func:`nodes.propose.propose_streamed`); its samples are proposals like :data:`PROPOSE`'s."""
CRITIQUE: NodeKind[CritiqueTask] = NodeKind("critique", critique, CritiqueTask, critique_failed)
"""Written feedback on one candidate (:mod:`nodes.critique`)."""
REVISE: NodeKind[ReviseTask] = NodeKind("revise", revise, ReviseTask, revise_failed)
"""A new candidate from earlier attempts and their critiques (:mod:`nodes.revise`)."""
VERIFY: NodeKind[VerifyTask] = NodeKind("verify", verify, VerifyTask, verify_failed)
"""The filter judge's verdict on one candidate (:mod:`nodes.verify`)."""
STEP: NodeKind[StepTask] = NodeKind("step", step, StepTask, step_failed)
"""The next reasoning step(s) of a partial solution (:mod:`nodes.step`)."""
BUILTIN_KINDS = (PROPOSE, CRITIQUE, REVISE, VERIFY, STEP)


def scoring(scorer: Scorer, aggregation: Aggregation = "last", *, name: str = "score") -> NodeKind[ScoreTask]:
    """The score kind of one scorer (a verifier or reward model is part of the graph's structure):
    one task per candidate."""
    return NodeKind(name, score_node(scorer, aggregation), ScoreTask, score_failed)


def wave_scoring(scorer: Scorer, aggregation: Aggregation = "last", *, name: str = "score") -> NodeKind[ScoreWaveTask]:
    """The score kind of a scorer that takes a wave at once (``score_many``, e.g.
    :class:`nodes.scorers.PoolingPRM`): one task (``{"question", "candidates"}``) per wave."""
    return NodeKind(name, ScoreWaveNode(scorer, aggregation), ScoreWaveTask, score_wave_failed)
