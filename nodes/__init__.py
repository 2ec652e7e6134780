"""The leaf layer of ttc-graphs: the LLM endpoint, the five node kinds, answers and budget.

``nodes`` never imports ``graphs``. The node kinds are small async functions with the
signature ``async def node(state, runtime) -> dict`` (see :mod:`nodes.propose`,
:mod:`nodes.critique`, :mod:`nodes.revise`, :mod:`nodes.verify`, :mod:`nodes.vote`).
"""

from nodes.answers import AnswerFormat, equivalent, extract_answer, group_answers, normalize
from nodes.budget import Budget, Ledger, add_ledgers, ledger_totals
from nodes.context import RunContext
from nodes.critique import critique
from nodes.endpoint import LLM, RETRY_POLICY, Completion, Endpoint, Message, is_transient, user
from nodes.errors import (
    BadModelOutput,
    ConfigError,
    EndpointError,
    PermanentEndpointError,
    ServerError,
    TransientEndpointError,
    TTCError,
)
from nodes.propose import propose
from nodes.revise import revise
from nodes.types import Candidate, Critique, Failure, Verdict
from nodes.verify import FILTER_PROMPT, parse_verdict, verify
from nodes.vote import filter_then_vote, plurality_vote, vote, weighted_vote

__all__ = [
    "FILTER_PROMPT",
    "LLM",
    "RETRY_POLICY",
    "AnswerFormat",
    "BadModelOutput",
    "Budget",
    "Candidate",
    "Completion",
    "ConfigError",
    "Critique",
    "Endpoint",
    "EndpointError",
    "Failure",
    "Ledger",
    "Message",
    "PermanentEndpointError",
    "RunContext",
    "ServerError",
    "TTCError",
    "TransientEndpointError",
    "Verdict",
    "add_ledgers",
    "critique",
    "equivalent",
    "extract_answer",
    "filter_then_vote",
    "group_answers",
    "is_transient",
    "ledger_totals",
    "normalize",
    "parse_verdict",
    "plurality_vote",
    "propose",
    "revise",
    "user",
    "verify",
    "vote",
    "weighted_vote",
]
