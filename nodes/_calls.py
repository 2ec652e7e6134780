"""Helpers shared by the LLM-calling node kinds (private)."""

from __future__ import annotations

from langgraph.errors import NodeError

from nodes.budget import Ledger, ledger_entry
from nodes.endpoint import Completion

__all__ = ["error_line", "usage_of"]


def usage_of(kind: str, completion: Completion) -> Ledger:
    """The ledger entry of one request, from the usage the server reported."""
    return ledger_entry(
        kind,
        requests=1,
        calls=len(completion.texts),
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
    )


def error_line(error: NodeError | BaseException) -> str:
    """One line naming the failed node and the error (never a traceback)."""
    exc = error.error if isinstance(error, NodeError) else error
    where = f"{error.node}: " if isinstance(error, NodeError) else ""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{where}{type(exc).__name__}: {text}"[:400]
