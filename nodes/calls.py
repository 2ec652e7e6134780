"""What every LLM-calling node records: the ledger entry of a request, and a failure.

A node kind returns ``{"ledger": usage_of(kind, completion), ...}`` for each request it made, and
its failure handler returns ``{"failures": [failure(kind, indices, error)], ...}`` for a call that
failed for good (after the retries), so a graph goes on with the samples it has.
"""

from __future__ import annotations

from collections.abc import Sequence

from langgraph.errors import NodeError, NodeTimeoutError

from nodes.budget import Ledger, ledger_entry
from nodes.endpoint import Completion, is_transient
from nodes.errors import EndpointError
from nodes.types import Failure

__all__ = ["error_line", "failure", "usage_of"]


def usage_of(kind: str, completion: Completion) -> Ledger:
    """The ledger entry of one request, from the usage the server reported (and its FLOPs, when
    the model's size is known)."""
    return ledger_entry(
        kind,
        requests=1,
        calls=len(completion.texts),
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        parameters=completion.parameters,
    )


def error_line(error: NodeError | BaseException) -> str:
    """One line naming the failed node and the error (never a traceback)."""
    exc = error.error if isinstance(error, NodeError) else error
    where = f"{error.node}: " if isinstance(error, NodeError) else ""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{where}{type(exc).__name__}: {text}"[:400]


def failure(node: str, indices: Sequence[int], error: NodeError | BaseException | str) -> Failure:
    """The record of a call that failed for good: structured, so nothing parses its text.

    ``error`` is what went wrong: the exception (as a node's error handler gets it, wrapped in a
    ``NodeError``) or, for a failure that raised nothing, a sentence.

    Example:
        >>> from nodes.errors import PermanentEndpointError
        >>> f = failure("propose", [0, 1], PermanentEndpointError("endpoint x answered HTTP 401: no", status=401))
        >>> f["status"], f["transient"], f["message"]
        (401, False, 'endpoint x answered HTTP 401: no')
    """
    if isinstance(error, str):
        message = " ".join(error.split())
        return {"node": node, "indices": list(indices), "error": message, "message": message, "status": None,
                "transient": False}  # fmt: skip
    exc = error.error if isinstance(error, NodeError) else error
    status = exc.status if isinstance(exc, EndpointError) else getattr(exc, "status_code", None)
    return {
        "node": node,
        "indices": list(indices),
        "error": error_line(error),
        "message": (" ".join(str(exc).split()) or type(exc).__name__)[:400],
        "status": status if isinstance(status, int) else None,
        "transient": is_transient(exc) or isinstance(exc, NodeTimeoutError),
    }
