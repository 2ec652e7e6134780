"""Live: the real local vLLM behind a proxy that fails 20% of requests (429, 500, resets, timeouts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.common import free_port
from graphs import build_filter_vote_graph
from graphs.evaluation import FILTER_SCORER, EvalPlan, EvalStore, pending, results
from graphs.evaluation.datasets import load
from nodes import LLM, Endpoint, RunContext
from nodes.server import EmbeddedServer
from tests.conftest import LIVE_DTYPE, LIVE_MODEL
from tests.faults import FaultProxy

pytestmark = pytest.mark.live

QUESTIONS = ["What is 2 + 3?", "What is 7 + 8?", "What is 12 + 30?", "What is 9 + 9?"]


async def run(endpoint: Endpoint) -> list[dict[str, object]]:
    graph = build_filter_vote_graph(4).compile()
    async with LLM(endpoint) as llm:
        ctx = RunContext(llm=llm, max_tokens=48, judge_max_tokens=24, seed=5, answer_format="number")
        return [await graph.ainvoke({"question": q}, context=ctx) for q in QUESTIONS]


async def test_transient_faults_are_retried_and_change_nothing(live_endpoint: Endpoint) -> None:
    clean = await run(live_endpoint)
    # The client's timeout must be shorter than a hang, and long enough that a real reply on a loaded
    # machine never reaches it (at 15 s one did, was sent again, and got through twice).
    proxy = FaultProxy(live_endpoint.base_url.removesuffix("/v1"), rate=0.2, seed=3, hang=90.0)
    with proxy.running() as url:
        faulty = await run(live_endpoint.model_copy(update={"base_url": f"{url}/v1", "request_timeout": 60.0}))
    assert sum(proxy.counts[f] for f in ("429", "500", "reset", "timeout")) >= 3, proxy.counts
    for a, b in zip(clean, faulty, strict=True):
        assert b["failures"] == []  # every fault was retried away
        assert [c["text"] for c in b["candidates"]] == [c["text"] for c in a["candidates"]]  # seeded: same samples
        assert b["answer"] == a["answer"] and b["ledger"] == a["ledger"]  # failed attempts cost nothing
    requests = sum(u["requests"] for out in clean for u in out["ledger"].values())
    assert proxy.counts["forwarded"] == requests  # each call got through exactly once
    assert sum(proxy.counts.values()) <= 4 * requests  # at most 4 attempts each


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_a_permanent_error_fails_fast_naming_the_endpoint(live_endpoint: Endpoint, status: int) -> None:
    proxy = FaultProxy(live_endpoint.base_url.removesuffix("/v1"), permanent=status)
    with proxy.running() as url:
        graph = build_filter_vote_graph(4).compile()
        async with LLM(live_endpoint.model_copy(update={"base_url": f"{url}/v1"})) as llm:
            out = await graph.ainvoke({"question": QUESTIONS[0]}, context=RunContext(llm=llm))
    assert proxy.counts[str(status)] == 1  # one request for the 4 samples, not retried
    (failure,) = out["failures"]
    assert f"endpoint {url}/v1 answered HTTP {status}" in failure["error"] and "\n" not in failure["error"]
    assert out["answer"] is None


def test_an_eval_whose_vllm_is_killed_and_restarted_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """The real vLLM is killed with SIGKILL mid-eval: the run ends with what it could store, and the same
    command against the restarted server finishes every question with exactly its samples and judgements."""
    port = free_port()
    out = tmp_path / "eval"
    plan = EvalPlan(("vote", "filter-vote"), (1, 4), probe=4)  # as the command plans it: 4 held-out probe samples
    dataset = load("arithmetic", per_level=3, levels=["1+1", "2+2"])
    server = EmbeddedServer(LIVE_MODEL, port=port, dtype=LIVE_DTYPE).start()
    argv = [sys.executable, "-m", "graphs.cli", "eval", "--per-level", "3", "--levels", "1+1,2+2",
            "--strategies", "vote,filter-vote", "--budgets", "1,4", "--max-tokens", "48", "--judge-max-tokens", "24",
            "--concurrency", "2", "--base-url", server.base_url, "--model", server.model.served_name,
            "--out", str(out), "--quiet"]  # fmt: skip
    try:
        run = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if (out / "store.sqlite").exists():
                with EvalStore(out / "store.sqlite") as store:
                    if store.dump()["judgements"]:
                        break
            time.sleep(0.2)
        assert server.pid is not None
        os.killpg(server.pid, signal.SIGKILL)  # the server and its engine die at once
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err  # the eval ends: what failed is left for the next run
        server.stop()
        with EvalStore(out / "store.sqlite") as store:
            assert pending(store, dataset, plan) > 0
        server = EmbeddedServer(LIVE_MODEL, port=port, dtype=LIVE_DTYPE).start()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    finally:
        server.stop()
    with EvalStore(out / "store.sqlite") as store:
        assert pending(store, dataset, plan) == 0
        for record in dataset.records:
            assert [s["index"] for s in store.samples(record.qid)] == list(range(8))  # 4 pooled, 4 for the probe
            assert [j["index"] for j in store.judgements(record.qid, FILTER_SCORER)] == [0, 1, 2, 3]
        assert results(store, plan, dataset.records).incomplete == []
