"""What the benchmarks share: starting the instant responder, timing, and the plain client baseline."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from openai import AsyncOpenAI

from graphs.strategies.vote import build_vote_graph
from nodes import LLM, Endpoint, RunContext, server
from nodes.propose import propose_prompt


def free_port() -> int:
    return server.free_port("127.0.0.1")


def start_responder(port: int, delay: float = 0.0, jitter: float = 0.0) -> subprocess.Popen[str]:
    """The responder in its own process on ``port``, once it is ready."""
    command = [sys.executable, "-m", "benchmarks.responder", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--delay", str(delay), "--jitter", str(jitter)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if "ready" not in proc.stdout.readline():
        stop_process(proc)
        raise RuntimeError("the responder did not start")
    return proc


def stop_process(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def responder(delay: float = 0.0) -> Iterator[str]:
    """The instant responder (or one that waits ``delay`` seconds a completion) in its own process;
    yields its base URL."""
    port = free_port()
    proc = start_responder(port, delay)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process(proc)


@dataclass
class Timing:
    seconds: float  # wall clock
    calls: int
    cpu: float = 0.0  # this process's CPU seconds (the client side's own work, whatever the server does)


async def run_framework(endpoint: Endpoint, questions: list[str], k: int, *, max_tokens: int, seed: int = 0) -> Timing:
    """The Vote graph over the questions, ``endpoint.max_concurrency`` of them in flight at once
    (LangChain's ``abatch``), as the plain client keeps that many requests in flight.

    Starting every question at once would also work, but a thousand live graph states make
    Python's garbage collector scan them again and again (about 1 ms a question here);
    ``ttc eval`` bounds questions in flight for the same reason.
    """
    graph = build_vote_graph(k).compile()
    async with LLM(endpoint) as llm:
        ctx = RunContext(llm=llm, temperature=0.7, max_tokens=max_tokens, seed=seed, answer_format="number")
        inputs = [{"question": q} for q in questions]
        start, cpu = time.perf_counter(), time.process_time()
        outs = await graph.abatch(inputs, {"max_concurrency": endpoint.max_concurrency}, context=ctx)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Timing(seconds, sum(len(o["candidates"]) for o in outs), cpu)


async def run_plain(
    endpoint: Endpoint,
    questions: list[str],
    k: int,
    *,
    max_tokens: int,
    seed: int = 0,
    max_n: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Timing:
    """The same requests from a plain ``AsyncOpenAI`` client at the same concurrency and ``n``
    (on ``httpx``'s own connection pool unless a ``transport`` is given)."""
    most = max_n or endpoint.max_n
    limit = asyncio.Semaphore(endpoint.max_concurrency)
    async with httpx.AsyncClient(
        timeout=endpoint.request_timeout,
        limits=httpx.Limits(max_connections=endpoint.max_concurrency * 2),
        transport=transport,
    ) as http:
        client = AsyncOpenAI(base_url=endpoint.base_url, api_key="none", max_retries=0, http_client=http)

        async def one(question: str, first: int, n: int) -> int:
            async with limit:
                reply = await client.chat.completions.create(
                    model=endpoint.model,
                    messages=[{"role": "user", "content": propose_prompt(question, "number")}],
                    n=n,
                    seed=seed + first,
                    temperature=0.7,
                    max_completion_tokens=max_tokens,
                )
            return len(reply.choices)

        start, cpu = time.perf_counter(), time.process_time()
        counts = await asyncio.gather(
            *(one(q, first, min(most, k - first)) for q in questions for first in range(0, k, most))
        )
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Timing(seconds, sum(counts), cpu)


def questions(count: int) -> list[str]:
    return [f"What is {10 + i} + {20 + 3 * i}?" for i in range(count)]


def verdict(ok: bool) -> str:
    return "goal met" if ok else "goal NOT met"


Row = dict[str, Any]
