"""Errors raised by ttc-graphs.

The hierarchy::

    TTCError                      base class; the CLI prints any of these as one line
    ├── ConfigError               bad user input (flags, builder arguments, empty question)
    ├── EndpointError             the OpenAI-compatible endpoint failed
    │   ├── TransientEndpointError    worth retrying: connection error, timeout, 408, 409, 425, 429, 5xx but 501, 505
    │   └── PermanentEndpointError    not worth retrying: any other error status (400, 401, 404, 422, ...)
    ├── ServerError               the embedded vLLM server could not be prepared or started
    └── BadModelOutput            a reply that cannot be used (no choices, empty body)

Which HTTP status is which is decided in one place, :func:`transient_status`. Node code
raises the endpoint errors; graphs retry the transient ones with a langgraph ``RetryPolicy``
whose predicate is :func:`nodes.endpoint.is_transient`, and record the rest as failures of
the sample they belong to.
"""

from __future__ import annotations

__all__ = [
    "BadModelOutput",
    "ConfigError",
    "EndpointError",
    "PermanentEndpointError",
    "ServerError",
    "TTCError",
    "TransientEndpointError",
    "transient_status",
]


class TTCError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(TTCError, ValueError):
    """A user-facing mistake: a bad flag, builder argument or input."""


class EndpointError(TTCError, RuntimeError):
    """The OpenAI-compatible endpoint failed to answer a request (a ``RuntimeError`` too, so hosts
    that pass only built-in error kinds on to their clients, like LangGraph Server, show its message).

    Attributes:
        base_url: the endpoint's base URL (never its API key).
        status: the HTTP status code, when there was a response.
    """

    def __init__(self, message: str, *, base_url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.base_url = base_url
        self.status = status


class TransientEndpointError(EndpointError):
    """A failure that may go away on retry: connection, timeout, or a status :func:`transient_status` accepts."""


class PermanentEndpointError(EndpointError):
    """A failure that will not go away on retry: e.g. HTTP 400, 401, 403, 404, 422."""


class ServerError(TTCError):
    """The embedded vLLM server could not be installed, prepared or started."""


class BadModelOutput(TTCError):
    """The endpoint answered, but with nothing usable (e.g. no choices)."""


_TRANSIENT_4XX = frozenset({408, 409, 425, 429})
_PERMANENT_5XX = frozenset({501, 505})


def transient_status(status: int) -> bool:
    """Whether an HTTP error status may go away on retry: the project's one status table.

    Transient: 408 Request Timeout, 409 Conflict, 425 Too Early, 429 Too Many Requests, and every
    5xx but 501 Not Implemented and 505 HTTP Version Not Supported (which answer the same again).
    Every other error status (400, 401, 403, 404, 422, ...) is permanent.

    Example:
        >>> [s for s in (400, 404, 408, 422, 429, 500, 501, 503, 505) if transient_status(s)]
        [408, 429, 500, 503]
    """
    return status in _TRANSIENT_4XX or (status >= 500 and status not in _PERMANENT_5XX)
