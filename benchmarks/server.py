"""Benchmarks on the embedded vLLM server (SmolLM2-135M, the fast packaged model).

1. Throughput against the physical limit: the Vote graph with k = 16 over 40 questions against a
   plain ``AsyncOpenAI`` client sending the same requests (same ``n``, seeds, limits, concurrency),
   the two alternating every 20 questions. Goal: at least 0.95 of the plain client's completed
   samples per second.
2. Batching: k samples as one request with ``n = k`` against k separate requests, in completion
   tokens per second, and which one the framework uses by default.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.common import Row, Timing, questions, run_framework, run_plain, verdict
from graphs.strategies.vote import build_vote_graph
from nodes import LLM, Endpoint, RunContext
from nodes.budget import ledger_totals
from nodes.server import EmbeddedServer

MAX_TOKENS = 48


async def throughput(endpoint: Endpoint, count: int, rounds: int, block: int = 20) -> tuple[Timing, Timing]:
    """Both sides over the same questions, alternating every ``block`` questions so that a slow
    spell of the shared machine falls on both alike; each side's totals over all blocks."""
    qs = questions(count)
    await run_framework(endpoint, qs[:2], 16, max_tokens=MAX_TOKENS, seed=999)  # warm up
    fw, plain = Timing(0.0, 0), Timing(0.0, 0)
    for r in range(rounds):  # a different seed each round and side, so no run replays a cached answer
        for first in range(0, count, block):
            part = qs[first : first + block]
            for total, side, seed in ((fw, run_framework, 100 * r), (plain, run_plain, 100 * r + 50)):
                timing = await side(endpoint, part, 16, max_tokens=MAX_TOKENS, seed=seed)
                total.seconds += timing.seconds
                total.calls += timing.calls
    return fw, plain


async def tokens_per_second(endpoint: Endpoint, count: int, k: int, seed: int) -> tuple[float, int]:
    graph = build_vote_graph(k).compile()
    async with LLM(endpoint) as llm:
        ctx = RunContext(llm=llm, max_tokens=MAX_TOKENS, seed=seed, answer_format="number")
        start = time.perf_counter()
        outs = await asyncio.gather(*(graph.ainvoke({"question": q}, context=ctx) for q in questions(count)))
        seconds = time.perf_counter() - start
    tokens = sum(ledger_totals(o["ledger"])["completion_tokens"] for o in outs)
    requests = sum(ledger_totals(o["ledger"])["requests"] for o in outs)
    return tokens / seconds, requests


def run(quick: bool = False) -> list[Row]:
    rows = []
    with EmbeddedServer("smollm2-135m", log=None) as server:
        endpoint = server.endpoint(max_concurrency=16)
        count = 10 if quick else 40
        fw, plain = asyncio.run(throughput(endpoint, count, 1 if quick else 2))
        ratio = (fw.calls / fw.seconds) / (plain.calls / plain.seconds)
        rows.append({"benchmark": f"throughput on vLLM: vote k=16 over {count} questions vs plain client",
                     "result": f"{fw.calls / fw.seconds:.1f} vs {plain.calls / plain.seconds:.1f} samples/s: "
                               f"{ratio:.3f}",
                     "goal": "≥ 0.95", "met": verdict(ratio >= 0.95)})  # fmt: skip
        batch_q = 4 if quick else 8
        one = server.endpoint(max_concurrency=16)  # the default: max_n = 64
        separate = server.endpoint(max_concurrency=16, max_n=1)
        n_rate, n_requests = asyncio.run(tokens_per_second(one, batch_q, 16, seed=7))
        s_rate, s_requests = asyncio.run(tokens_per_second(separate, batch_q, 16, seed=7))
        rows.append({"benchmark": f"batching on vLLM: k=16, {batch_q} questions, n=16 vs 16 requests",
                     "result": f"{n_rate:.0f} vs {s_rate:.0f} completion tokens/s ({n_rate / s_rate:.2f}×; "
                               f"{n_requests} vs {s_requests} requests); default max_n={one.max_n} sends n=16",
                     "goal": "default is the faster",
                     "met": verdict(n_rate >= s_rate and one.max_n >= 16)})  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
