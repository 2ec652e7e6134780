"""Errors raised by ttc-graphs.

The hierarchy::

    TTCError                      base class; the CLI prints any of these as one line
    ├── ConfigError               bad user input (flags, builder arguments, empty question)
    ├── EndpointError             the OpenAI-compatible endpoint failed
    │   ├── TransientEndpointError    worth retrying: connection error, timeout, 429, 5xx
    │   └── PermanentEndpointError    not worth retrying: 400, 401, 403, 404, 422
    ├── ServerError               the embedded vLLM server could not be prepared or started
    └── BadModelOutput            a reply that cannot be used (no choices, empty body)

Node code raises the endpoint errors; graphs retry the transient ones with a langgraph
``RetryPolicy`` whose predicate is :func:`nodes.endpoint.is_transient`, and record the rest
as failures of the sample they belong to.
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
]


class TTCError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(TTCError, ValueError):
    """A user-facing mistake: a bad flag, builder argument or input."""


class EndpointError(TTCError):
    """The OpenAI-compatible endpoint failed to answer a request.

    Attributes:
        base_url: the endpoint's base URL (never its API key).
        status: the HTTP status code, when there was a response.
    """

    def __init__(self, message: str, *, base_url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.base_url = base_url
        self.status = status


class TransientEndpointError(EndpointError):
    """A failure that may go away on retry (connection, timeout, 429, 5xx)."""


class PermanentEndpointError(EndpointError):
    """A failure that will not go away on retry (400, 401, 403, 404, 422)."""


class ServerError(TTCError):
    """The embedded vLLM server could not be installed, prepared or started."""


class BadModelOutput(TTCError):
    """The endpoint answered, but with nothing usable (e.g. no choices)."""
