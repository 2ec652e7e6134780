"""Memory: the peak RSS of an eval with k = 8 against the instant responder, for 100 and for 1,000
questions, each in a fresh process. Results stream to the SQLite store as they come, so the peak
should not grow with the number of questions."""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import Row, questions, responder, verdict
from graphs.evaluation import EvalPlan, EvalStore, evaluate
from graphs.evaluation.datasets import Dataset, Record
from nodes import LLM, Endpoint, RunContext


async def _eval(url: str, count: int, store_path: Path) -> None:
    dataset = Dataset("bench", [Record(f"q{i}", q, str(30 + 4 * i)) for i, q in enumerate(questions(count))], "number")
    async with LLM(Endpoint(base_url=url, model="bench", max_concurrency=16)) as llm:
        with EvalStore(store_path) as store:
            ctx = RunContext(llm=llm, max_tokens=64, answer_format="number")
            await evaluate(store, dataset, EvalPlan(("vote",), (8,)), ctx, concurrency=16)


def peak_rss_mib(url: str, count: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", "--url", url, "--questions", str(count),
             "--store", str(Path(tmp) / "store.sqlite")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[Row]:
    small, large = (50, 500) if quick else (100, 1000)
    with responder() as url:
        a, b = peak_rss_mib(url, small), peak_rss_mib(url, large)
    return [{"benchmark": f"peak RSS of an eval, k=8: {small} vs {large} questions",
             "result": f"{a:.0f} MiB vs {b:.0f} MiB: {b / a:.2f}× for {large // small}× the questions",
             "goal": "flat (≤ 1.10×)", "met": verdict(b / a <= 1.10)}]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--questions", type=int, required=True)
    parser.add_argument("--store", required=True)
    args = parser.parse_args()
    asyncio.run(_eval(args.url, args.questions, Path(args.store)))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main()
    else:
        for row in run():
            print(row)
