"""Scale of the client: the Vote graph against a plain client, each keeping 1,024 requests in flight.

Goal: the framework takes at most 1.10× the plain client's time, so that one process can drive a
large vLLM deployment (many GPUs behind one data-parallel endpoint) without becoming the
bottleneck.

What such a deployment shows its client is many requests in flight, each taking a while. The
responder (``benchmarks/responder.py``, in its own process) stands in for it: each completion
takes ``DELAY`` seconds give or take ``JITTER`` (uniformly; long generations of varying length),
so it serves at most ``1,024 / DELAY`` requests a second, and only a client that keeps 1,024 in
flight gets there. (An instant responder would compare only the two clients' CPU: its replies
come back as soon as the requests leave, so 1,024 are never in flight.) It says how late it
answered, beyond the delays: about 1 ms, so it is not the bottleneck. The time a client costing
nothing would take, with such delays, is printed too: a side near it is not the bottleneck.

Each request costs a Python client CPU: about 2.1–2.6 ms for the plain client and 3.3–3.7 ms
for the framework here (LangGraph's work for a run and its supersteps, httpx's for a request).
One core so saturates at about 270–300 requests/s with the framework, so at 1,024 in flight it
keeps up only while a completion takes more than about 3.5–4 s; on this 2-core machine shared
with other work, it may get less than a core. Where each side would saturate a core (1,000 / its
CPU ms a request) is printed.

The plain client is ``AsyncOpenAI`` on an ``httpx`` client with the framework's small connection
pools (``nodes/transport.py``). On httpx's own pool it took 59 s for what takes 13 s here (35
requests/s, 28 ms of CPU a request, in httpcore's pool bookkeeping); the framework did the same
before it got the small pools. It also runs with the garbage collector's threshold the framework
raises at this scale (``nodes/collector.py``), which saves it about 0.3 ms a request, so the two
differ in their code only.

Rounds alternate between the two and each side keeps its fastest round, as ``overhead.py`` does.
Requests in flight are the mean at the server over the round, ramp and drain included (Little's
law: the seconds the responder held requests over the round's seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import heapq
import math
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx

from benchmarks.common import (
    Row,
    Timing,
    free_port,
    questions,
    run_framework,
    run_plain,
    start_responder,
    stop_process,
    verdict,
)
from nodes import Endpoint
from nodes.collector import THRESHOLD
from nodes.transport import ShardedTransport

IN_FLIGHT = 1024
DELAY = 4.0  # mean seconds a completion takes at the stand-in deployment
JITTER = 0.5  # each takes DELAY × (1 ± up to JITTER)
GOAL = 1.10
MAX_TOKENS = 64


@dataclass
class Round:
    timing: Timing
    requests: int
    held: float  # seconds the responder held the round's requests, in all
    late: float  # ... beyond their delays


@contextlib.contextmanager
def slow_responder(delay: float, jitter: float) -> Iterator[str]:
    port = free_port()
    proc = start_responder(port, delay, jitter)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process(proc)


async def _stats(url: str) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{url}/stats")).json()  # type: ignore[no-any-return]


def ideal_seconds(requests: int, delay: float, jitter: float, seed: int = 0) -> float:
    """How long a client costing nothing takes for ``requests`` with ``IN_FLIGHT`` in flight at the
    responder's delays (drawn alike, not the same draws)."""
    rng = random.Random(seed)
    free = [0.0] * min(IN_FLIGHT, requests)  # when each slot is free again
    end = 0.0
    for _ in range(requests):
        done = heapq.heappop(free) + delay * rng.uniform(1 - jitter, 1 + jitter)
        end = max(end, done)
        heapq.heappush(free, done)
    return end


@contextlib.contextmanager
def collector_threshold(threshold: int) -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(threshold, *saved[1:])
    try:
        yield
    finally:
        gc.set_threshold(*saved)


async def measure(url: str, ks: tuple[int, ...], count: int, rounds: int) -> dict[int, tuple[Round, Round]]:
    """For each ``k``, each side's fastest of ``rounds`` interleaved rounds over ``count`` questions."""
    endpoint = Endpoint(base_url=url, model="bench", max_concurrency=IN_FLIGHT)
    qs = questions(count)

    async def framework(part: list[str], k: int) -> Timing:
        return await run_framework(endpoint, part, k, max_tokens=MAX_TOKENS)

    async def plain(part: list[str], k: int) -> Timing:
        pools = ShardedTransport(max_connections=IN_FLIGHT * 2)
        with collector_threshold(THRESHOLD):
            return await run_plain(endpoint, part, k, max_tokens=MAX_TOKENS, transport=pools)

    async def timed(side: Callable[[list[str], int], Awaitable[Timing]], k: int) -> Round:
        before = await _stats(url)
        timing = await side(qs, k)
        after = await _stats(url)
        held = after["held"] - before["held"]
        return Round(timing, count * math.ceil(k / endpoint.max_n), held, held - (after["delay"] - before["delay"]))

    await asyncio.gather(framework(qs[:32], 1), plain(qs[:32], 1))  # warm up imports and caches: one delay for both
    best = {}
    for k in ks:
        fw: list[Round] = []
        pl: list[Round] = []
        for _ in range(rounds):
            fw.append(await timed(framework, k))
            pl.append(await timed(plain, k))
        best[k] = min(fw, key=lambda r: r.timing.seconds), min(pl, key=lambda r: r.timing.seconds)
    return best


def row(k: int, fw: Round, plain: Round, delay: float, jitter: float) -> Row:
    ratio = fw.timing.seconds / plain.timing.seconds
    rate = [r.requests / r.timing.seconds for r in (fw, plain)]
    in_flight = [r.held / r.timing.seconds for r in (fw, plain)]
    cpu_ms = [r.timing.cpu / r.requests * 1000 for r in (fw, plain)]
    late_ms = max(r.late / r.requests * 1000 for r in (fw, plain))
    what = "requests" if k == 1 else f"requests of n={k}"
    return {
        "benchmark": f"scale: Vote k={k}, {IN_FLIGHT:,} requests in flight, {delay:g} s ± {jitter:.0%} a completion",
        "result": f"{ratio:.2f}× the plain client's time ({fw.timing.seconds:.1f} vs {plain.timing.seconds:.1f} s "
        f"for {fw.requests:,} {what}, {ideal_seconds(fw.requests, delay, jitter):.1f} s for a client costing "
        f"nothing; {rate[0]:.0f} vs {rate[1]:.0f} requests/s, {in_flight[0]:.0f} vs {in_flight[1]:.0f} in flight "
        f"on average, the responder {late_ms:.0f} ms late); client CPU {cpu_ms[0]:.2f} vs {cpu_ms[1]:.2f} ms a "
        f"request: one core would saturate at {1000 / cpu_ms[0]:.0f} vs {1000 / cpu_ms[1]:.0f} requests/s",
        "goal": f"≤ {GOAL:.2f}×",
        "met": verdict(ratio <= GOAL),
    }


def run(quick: bool = False, delay: float = DELAY, jitter: float = JITTER) -> list[Row]:
    count, rounds = (IN_FLIGHT * 3 // 2, 1) if quick else (2 * IN_FLIGHT, 2)
    with slow_responder(delay, jitter) as url:
        best = asyncio.run(measure(url, (1, 8), count, rounds))
    return [row(k, fw, plain, delay, jitter) for k, (fw, plain) in best.items()]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--delay", type=float, default=DELAY, help="mean seconds a completion takes")
    parser.add_argument("--jitter", type=float, default=JITTER, help="each takes DELAY × (1 ± up to JITTER)")
    args = parser.parse_args()
    for r in run(args.quick, args.delay, args.jitter):
        print(f"{r['benchmark']}\n    {r['result']}  [goal {r['goal']}: {r['met']}]", flush=True)


if __name__ == "__main__":
    main()
