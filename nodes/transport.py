"""An ``httpx`` transport that keeps a thousand requests in flight as cheaply as sixteen.

httpcore's connection pool (1.0.9) walks all its connections for every request it assigns, and
when it looks for surplus idle connections it counts all of them again for each idle one
(encode/httpcore#1035, open). Its work per request grows with its size: with 1,024 requests in
flight on one pool of 2,048 connections, a request cost 15–40 ms of CPU, nearly all of it in that
bookkeeping, where a whole request costs about 1.5 ms with 16 in flight (``benchmarks/scale.py``).
This transport spreads the connections over small pools, made as they are needed, and gives each
request a pool with a free connection, so no pool ever holds more than a few.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Callable

import httpx

__all__ = ["ShardedTransport"]

SHARD_SIZE = 8
"""Connections per pool. Smaller pools cost a little less a request; 8 is within noise of 4
at 1,024 in flight, and a run with the default 16 in flight needs only a few pools."""


class ShardedTransport(httpx.AsyncBaseTransport):
    """Up to ``max_connections`` HTTP/1.1 connections in pools of ``shard_size``.

    A request takes a free connection's pool (the one freed last, whose connection is warm);
    when all are busy it queues in the least busy pool, as a single pool would queue it. The
    connection is given back when the response is closed, so streamed responses hold it for as
    long as they are read. ``pool`` makes one pool from its limits (tests pass one of
    ``httpx.MockTransport``); by default an ``httpx.AsyncHTTPTransport``.
    """

    def __init__(
        self,
        max_connections: int,
        *,
        shard_size: int = SHARD_SIZE,
        pool: Callable[[httpx.Limits], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self._size = max(1, min(shard_size, max_connections))
        self._most = math.ceil(max_connections / self._size)
        self._make_pool = pool or self._http_pool
        self._ssl: ssl.SSLContext | None = None
        self._pools: list[httpx.AsyncBaseTransport] = []
        self._load: list[int] = []  # requests in flight per pool
        self._free: list[int] = []  # a pool's index once per free connection of it (a stack)
        self._closed = False

    @property
    def pools(self) -> int:
        """How many pools have been made so far."""
        return len(self._pools)

    def _take(self) -> int:
        if self._free:
            i = self._free.pop()
        elif len(self._pools) < self._most:
            i = len(self._pools)
            # keepalive = size: httpcore closes every idle connection once it holds more than
            # max_keepalive_connections connections in all, busy or not
            limits = httpx.Limits(max_connections=self._size, max_keepalive_connections=self._size)
            self._pools.append(self._make_pool(limits))
            self._load.append(0)
            self._free.extend([i] * (self._size - 1))
        else:
            i = min(range(len(self._load)), key=self._load.__getitem__)
        self._load[i] += 1
        return i

    def _http_pool(self, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
        if self._ssl is None:  # one for all pools: each context loads the CA bundle (about 10 ms)
            self._ssl = httpx.create_ssl_context()
        return httpx.AsyncHTTPTransport(verify=self._ssl, limits=limits)

    def _give(self, i: int) -> None:
        if self._closed:  # a response closed after the transport
            return
        self._load[i] -= 1
        if self._load[i] < self._size:
            self._free.append(i)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        i = self._take()
        try:
            response = await self._pools[i].handle_async_request(request)
        except BaseException:
            self._give(i)
            raise
        if response.is_closed:  # read whole already (a mock's response): nothing will close it again
            self._give(i)
        else:
            assert isinstance(response.stream, httpx.AsyncByteStream)
            response.stream = _GiveBackOnClose(response.stream, lambda: self._give(i))
        return response

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._pools:
            await pool.aclose()


class _GiveBackOnClose(httpx.AsyncByteStream):
    """A response body that gives its connection's slot back once, when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, give: Callable[[], None]) -> None:
        self._stream = stream
        self._give: Callable[[], None] | None = give

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            give, self._give = self._give, None
            if give is not None:
                give()
