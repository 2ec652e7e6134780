"""Overhead per LLM call: the Vote graph against a plain client, both talking to the instant responder.

Goals: at most 1 ms added per call (k = 1: one call per graph run), and at most 10% added at
k = 64 (one request with n = 64 per question).

Rounds alternate between the two and each side keeps its fastest round (as ``timeit`` does): a
shared machine only ever adds time. The client process's CPU time per call is printed too; it
is what the framework itself costs, whatever the responder and the neighbours do.
"""

from __future__ import annotations

import asyncio

from benchmarks.common import Row, Timing, questions, responder, run_framework, run_plain, verdict
from nodes import Endpoint


async def measure(base_url: str, k: int, count: int, rounds: int) -> tuple[Timing, Timing]:
    endpoint = Endpoint(base_url=base_url, model="bench", max_concurrency=16)
    qs = questions(count)
    await run_framework(endpoint, qs[:20], k, max_tokens=64)  # warm up imports, connections, caches
    await run_plain(endpoint, qs[:20], k, max_tokens=64)
    fw: list[Timing] = []
    plain: list[Timing] = []
    for _ in range(rounds):  # interleaved, so both see the same machine
        fw.append(await run_framework(endpoint, qs, k, max_tokens=64))
        plain.append(await run_plain(endpoint, qs, k, max_tokens=64))
    return min(fw, key=lambda t: t.seconds), min(plain, key=lambda t: t.seconds)


async def profile_framework(base_url: str, count: int) -> str:
    """A pyinstrument profile (text) of the framework's side of the k = 1 measure."""
    from pyinstrument import Profiler

    endpoint = Endpoint(base_url=base_url, model="bench", max_concurrency=16)
    qs = questions(count)
    await run_framework(endpoint, qs[:20], 1, max_tokens=64)
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    with profiler:
        await run_framework(endpoint, qs, 1, max_tokens=64)
    return str(profiler.output_text(unicode=True))  # library frames folded, with how many and whose


def profile(path: str, quick: bool = False) -> None:
    """Write where the framework spends its time at k = 1 to ``path`` (``python -m benchmarks --profile``)."""
    with responder() as url:
        text = asyncio.run(profile_framework(url, 200 if quick else 1000))
    with open(path, "w") as f:
        f.write(text)


def run(quick: bool = False) -> list[Row]:
    rows = []
    with responder() as url:
        fw, plain = asyncio.run(measure(url, 1, 200 if quick else 1000, 3 if quick else 7))
        added_ms = (fw.seconds - plain.seconds) / fw.calls * 1000
        cpu_ms = (fw.cpu / fw.calls * 1000, plain.cpu / plain.calls * 1000)
        rows.append({"benchmark": "overhead per call (k=1, instant endpoint)",
                     "result": f"{added_ms:+.3f} ms per call ({fw.seconds / plain.seconds:.2f}× the plain "
                               f"client's time; {fw.calls} calls; client CPU {cpu_ms[0]:.2f} vs "
                               f"{cpu_ms[1]:.2f} ms per call)",
                     "goal": "≤ 1 ms", "met": verdict(added_ms <= 1.0)})  # fmt: skip
        fw, plain = asyncio.run(measure(url, 64, 20 if quick else 100, 3 if quick else 5))
        ratio = fw.seconds / plain.seconds
        rows.append({"benchmark": "overhead at k=64 (n=64 requests, instant endpoint)",
                     "result": f"{(ratio - 1) * 100:+.1f}% time ({fw.calls} samples; client CPU "
                               f"{fw.cpu / plain.cpu:.2f}× the plain client's)", "goal": "≤ +10%",
                     "met": verdict(ratio <= 1.10)})  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
