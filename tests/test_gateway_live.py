"""Live: ``ttc gateway`` (the command, as a user starts it) in front of the real local vLLM, driven by the
real ``openai`` client: answers and usage against vLLM's own counters, streaming, 64 concurrent clients,
a client that leaves (vLLM stops generating), and an upstream killed mid-request."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from benchmarks.common import free_port
from nodes import Endpoint
from nodes.server import EmbeddedServer
from tests.conftest import LIVE_DTYPE, LIVE_MODEL
from tests.test_deepconf_live import quiet_counters
from tests.test_live import server_counters

pytestmark = pytest.mark.live

QUESTION = "What is 12 + 30? End with: The answer is <number>."
LONG = "Count from 1 to 2000, separated by commas. Write every number."


def start_gateway(endpoint: Endpoint, *flags: str) -> tuple[subprocess.Popen[str], str]:
    """``ttc gateway`` on a free port in front of ``endpoint``; returns the process and its /v1 URL."""
    port = free_port()
    argv = [sys.executable, "-m", "graphs.cli", "gateway", "--base-url", endpoint.base_url, "--model", endpoint.model,
            "--port", str(port), *flags]  # fmt: skip
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115  (read back by stop_gateway)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log = log  # type: ignore[attr-defined]
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"ttc gateway exited: {log.read()}")
        try:
            if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                return proc, f"{root}/v1"
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("ttc gateway did not start within 60 s")
        time.sleep(0.2)


def stop_gateway(proc: subprocess.Popen[str]) -> str:
    """Stop it as Ctrl-C does; returns what it logged."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log = proc.log  # type: ignore[attr-defined]
    log.seek(0)
    text: str = log.read()
    log.close()
    return text


@pytest.fixture(scope="module")
def gateway(live_endpoint: Endpoint) -> Iterator[str]:
    proc, base = start_gateway(live_endpoint, "--max-runs", "16", "--run-timeout", "300", "--max-tokens", "48")
    try:
        yield base
    finally:
        stop_gateway(proc)


def generated(before: dict[str, float], after: dict[str, float]) -> float:
    return after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]


async def test_a_vote_answers_with_the_ledger_as_usage(gateway: str, live_endpoint: Endpoint) -> None:
    before = await quiet_counters(live_endpoint)
    client = openai.OpenAI(base_url=gateway, api_key="none", max_retries=0)
    response = await asyncio.to_thread(
        client.chat.completions.create,
        model=f"vote-4/{live_endpoint.model}",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0.8,
        seed=7,
    )
    after = await quiet_counters(live_endpoint)
    assert response.choices[0].message.content and response.choices[0].finish_reason in ("stop", "length")
    report = response.model_extra["ttc"]  # type: ignore[index]
    assert len(report["samples"]) == 4 and report["usage"]["requests"] == 1
    usage = response.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens == generated(before, after)  # every token the server generated is counted
    # vLLM counts the prompt once per sample of an n-request; the ledger once per request, as billed
    assert 4 * usage.prompt_tokens == after["vllm:prompt_tokens_total"] - before["vllm:prompt_tokens_total"]


async def test_streaming_filter_vote_counts_its_judges(gateway: str, live_endpoint: Endpoint) -> None:
    before = await quiet_counters(live_endpoint)
    async with openai.AsyncOpenAI(base_url=gateway, api_key="none", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=f"filter-vote-3/{live_endpoint.model}",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    after = await quiet_counters(live_endpoint)
    events = [c.model_extra["ttc_event"]["event"] for c in chunks if (c.model_extra or {}).get("ttc_event")]
    assert events[0] == "proposed" and events.count("verified") == 3
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    report = chunks[-2].model_extra["ttc"]  # type: ignore[index]
    assert report["usage"]["calls"] == 6  # 3 samples and 3 judgements
    assert usage.completion_tokens == generated(before, after)


async def test_sixty_four_concurrent_clients_lose_nothing(live_endpoint: Endpoint) -> None:
    """Over the gateway's limit of 8 runs, clients get 429 with Retry-After and the SDK retries: every one of
    64 requests is answered, and the usage they report adds up to what the server generated."""
    proc, base = start_gateway(live_endpoint, "--max-runs", "8", "--max-tokens", "16")
    try:
        before = await quiet_counters(live_endpoint)
        async with openai.AsyncOpenAI(base_url=base, api_key="none", max_retries=50, timeout=300) as client:
            questions = [f"What is {i} + {i}?" for i in range(64)]
            responses = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model=f"vote-2/{live_endpoint.model}", messages=[{"role": "user", "content": q}], seed=i
                    )
                    for i, q in enumerate(questions)
                )
            )
        after = await quiet_counters(live_endpoint)
    finally:
        log = stop_gateway(proc)
    assert len(responses) == 64
    assert all(len(r.model_extra["ttc"]["samples"]) == 2 for r in responses)  # type: ignore[index]
    assert all(r.choices[0].message.content is not None for r in responses)
    assert sum(r.usage.completion_tokens for r in responses if r.usage) == generated(before, after)
    assert log.count("answered") == 64, log


async def test_a_client_that_leaves_stops_the_generation(gateway: str, live_endpoint: Endpoint) -> None:
    before = await quiet_counters(live_endpoint)
    body = {
        "model": f"vote-4/{live_endpoint.model}",
        "messages": [{"role": "user", "content": LONG}],
        "max_tokens": 1500,
        "temperature": 0.2,
    }
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway}/chat/completions", json=body, timeout=httpx.Timeout(30, read=3.0))
    running_when_left = generated(before, server_counters(live_endpoint))
    after = await quiet_counters(live_endpoint)
    # the four samples were being generated when the client left, and stopped soon after: far from 4 x 1500
    assert generated(before, after) < 4 * 1500 / 2, (running_when_left, generated(before, after))
    health = httpx.get(gateway.removesuffix("/v1") + "/health").json()
    assert health["active_runs"] == 0


def test_an_upstream_killed_mid_request_is_a_5xx_not_a_hang() -> None:
    server = EmbeddedServer(LIVE_MODEL, port=free_port(), dtype=LIVE_DTYPE).start()
    proc, base = None, ""
    try:
        proc, base = start_gateway(server.endpoint(), "--run-timeout", "120", "--timeout", "20")
        client = openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=180)
        result: dict[str, object] = {}

        def ask() -> None:
            try:
                client.chat.completions.create(
                    model=f"vote-4/{server.model.served_name}",
                    messages=[{"role": "user", "content": LONG}],
                    max_tokens=1500,
                )
            except openai.APIStatusError as exc:
                result["error"] = exc

        thread = threading.Thread(target=ask)
        thread.start()
        time.sleep(3)  # the samples are being generated
        assert server.pid is not None
        killed = time.monotonic()
        os.killpg(server.pid, signal.SIGKILL)  # the server and its engine die at once
        thread.join(120)
        assert not thread.is_alive(), "the request hung"
        error = result.get("error")
        assert isinstance(error, openai.APIStatusError), result
        assert error.status_code in (502, 503, 504)
        assert "\n" not in error.body["message"]  # type: ignore[index]
        assert time.monotonic() - killed < 120
    finally:
        if proc is not None:
            stop_gateway(proc)
        server.stop()
