"""A fault-injecting HTTP proxy to put in front of a real OpenAI-compatible server (the local vLLM).

Each ``POST`` is either forwarded untouched or, with probability ``rate`` (a seeded draw per
request, so a test is reproducible), answered with one fault: HTTP 429, HTTP 500, a connection
reset with no reply, or silence longer than the client's timeout. ``GET`` requests (``/models``,
``/health``) always pass, so a client can check the endpoint first. ``permanent`` makes every
``POST`` fail with that status instead (400/401/404: not worth retrying).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

FAULTS = ("429", "500", "reset", "timeout")


@dataclass
class FaultProxy:
    upstream: str  # e.g. http://127.0.0.1:8000 (no /v1)
    rate: float = 0.2
    seed: int = 0
    hang: float = 5.0  # seconds a "timeout" fault keeps the client waiting before closing
    permanent: int | None = None
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._writers: set[asyncio.StreamWriter] = set()
        self._upstream: httpx.AsyncClient

    def _draw(self) -> str | None:
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            return self._rng.choice(FAULTS)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
                body = await reader.readexactly(length) if length else b""
                fault = None
                if method == "POST":
                    fault = f"{self.permanent}" if self.permanent else self._draw()
                self.counts[fault or "forwarded"] += 1
                if fault == "reset":
                    writer.transport.abort()
                    return
                if fault == "timeout":
                    await asyncio.sleep(self.hang)
                    writer.transport.abort()
                    return
                if fault is not None:
                    payload = f'{{"error": {{"message": "injected HTTP {fault}"}}}}'.encode()
                    self._reply(writer, int(fault), payload)
                else:
                    sent = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
                    r = await self._upstream.request(method, path, content=body, headers=sent)
                    self._reply(writer, r.status_code, r.content)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError, asyncio.CancelledError):
            pass  # the client went away, or the proxy is shutting down
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, status: int, payload: bytes) -> None:
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
            + payload
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        """Serve on a free port in a background thread; yields the proxy's root URL."""
        ready = threading.Event()
        box: dict[str, Any] = {}

        async def main() -> None:
            box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
            async with httpx.AsyncClient(base_url=self.upstream, timeout=600) as upstream:
                self._upstream = upstream
                server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
                box["port"] = server.sockets[0].getsockname()[1]
                ready.set()
                await box["stop"].wait()
                server.close()
                for writer in list(self._writers):  # open connections end their handlers by closing
                    writer.transport.abort()
                pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in pending:  # e.g. one sleeping through a "timeout" fault
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await server.wait_closed()
                await asyncio.sleep(0.05)  # let the aborted transports release their sockets

        thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        try:
            yield f"http://127.0.0.1:{box['port']}"
        finally:
            box["loop"].call_soon_threadsafe(box["stop"].set)
            thread.join(timeout=30)
