"""The leaf layer of ttc-graphs: the LLM endpoint, the node kinds, answers and budget.

``nodes`` never imports ``graphs``. The LLM-calling node kinds are small async functions with the
signature ``async def node(task, runtime) -> dict``, each with a task schema and a failure handler,
bundled as :class:`NodeKind` values (:data:`PROPOSE`, :data:`CRITIQUE`, :data:`REVISE`,
:data:`VERIFY`, :data:`STEP`, and :func:`scoring` for a verifier or reward model); the votes are
plain functions (:mod:`nodes.vote`). :func:`failure` and :func:`usage_of` are what a node of
your own records.
"""

from nodes.answers import AnswerFormat, equivalent, extract_answer, group_answers, normalize
from nodes.budget import Budget, Ledger, add_ledgers, flops, ledger_entry, ledger_totals
from nodes.calls import error_line, failure, usage_of
from nodes.context import RunContext
from nodes.critique import CRITIQUE_PROMPT, CritiqueTask, critique, critique_failed
from nodes.endpoint import LLM, RETRY_POLICY, Completion, Endpoint, Message, is_transient, user
from nodes.errors import (
    BadModelOutput,
    ConfigError,
    EndpointError,
    PermanentEndpointError,
    ServerError,
    TransientEndpointError,
    TTCError,
    transient_status,
)
from nodes.kinds import (
    BUILTIN_KINDS,
    CRITIQUE,
    PROPOSE,
    PROPOSE_STREAMED,
    REVISE,
    STEP,
    VERIFY,
    NodeKind,
    Worker,
    scoring,
)
from nodes.propose import ProposeTask, StreamTask, propose, propose_failed, propose_prompt, propose_streamed
from nodes.revise import Attempt, ReviseTask, revise, revise_failed
from nodes.score import ScoreTask, score_failed, score_node
from nodes.scorers import Scored, Scorer
from nodes.step import StepTask, step, step_failed
from nodes.types import Candidate, Critique, Failure, Score, Verdict
from nodes.verify import FILTER_PROMPT, VerifyTask, filter_prompt, parse_verdict, verify, verify_failed
from nodes.vote import filter_then_vote, plurality_vote, vote, weighted_vote

__all__ = [
    "BUILTIN_KINDS",
    "CRITIQUE",
    "CRITIQUE_PROMPT",
    "FILTER_PROMPT",
    "LLM",
    "PROPOSE",
    "PROPOSE_STREAMED",
    "RETRY_POLICY",
    "REVISE",
    "STEP",
    "VERIFY",
    "AnswerFormat",
    "Attempt",
    "BadModelOutput",
    "Budget",
    "Candidate",
    "Completion",
    "ConfigError",
    "Critique",
    "CritiqueTask",
    "Endpoint",
    "EndpointError",
    "Failure",
    "Ledger",
    "Message",
    "NodeKind",
    "PermanentEndpointError",
    "ProposeTask",
    "ReviseTask",
    "RunContext",
    "Score",
    "ScoreTask",
    "Scored",
    "Scorer",
    "ServerError",
    "StepTask",
    "StreamTask",
    "TTCError",
    "TransientEndpointError",
    "Verdict",
    "VerifyTask",
    "Worker",
    "add_ledgers",
    "critique",
    "critique_failed",
    "equivalent",
    "error_line",
    "extract_answer",
    "failure",
    "filter_prompt",
    "filter_then_vote",
    "flops",
    "group_answers",
    "is_transient",
    "ledger_entry",
    "ledger_totals",
    "normalize",
    "parse_verdict",
    "plurality_vote",
    "propose",
    "propose_failed",
    "propose_prompt",
    "propose_streamed",
    "revise",
    "revise_failed",
    "score_failed",
    "score_node",
    "scoring",
    "step",
    "step_failed",
    "transient_status",
    "usage_of",
    "user",
    "verify",
    "verify_failed",
    "vote",
    "weighted_vote",
]
