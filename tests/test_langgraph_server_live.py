"""``langgraph dev`` serving langgraph.json (in-memory runtime, offline) driven through ``langgraph_sdk``,
with each run's endpoint and size in its context, on the real local vLLM (marker ``live``).

The server's environment names no endpoint, so a run that reaches the model proves the run's context
reached the graph."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from graphs.strategies.builtin import BUILTIN
from nodes import Endpoint

pytestmark = pytest.mark.live

ROOT = Path(__file__).parents[1]
QUESTION = "What is 17 + 25?"
STARTUP_TIMEOUT = 90.0
# What `langgraph dev` needs to stay offline: no CLI analytics, no PyPI version check, no LangSmith tracing.
OFFLINE_ENV = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true", "LANGSMITH_TRACING": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if importlib.util.find_spec("langgraph_api") is None:
        pytest.fail("langgraph dev needs langgraph-cli[inmem], a dev dependency: pip install -e '.[dev]'")
    port = free_port()
    # The in-memory runtime keeps its state in ./.langgraph_api: run it in a scratch directory.
    workdir = tmp_path_factory.mktemp("langgraph-dev")
    log = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in ("TTC_BASE_URL", "TTC_MODEL", "TTC_API_KEY")}
    command = [
        sys.executable, "-m", "langgraph_cli", "dev", "--config", str(ROOT / "langgraph.json"),
        "--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload", "--n-jobs-per-worker", "2",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=workdir, env={**env, **OFFLINE_ENV}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev not ready in {STARTUP_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def client(server_url: str) -> AsyncIterator[LangGraphClient]:
    async with get_client(url=server_url) as sdk:
        yield sdk


def endpoint_context(endpoint: Endpoint) -> dict[str, Any]:
    return {"base_url": endpoint.base_url, "model": endpoint.model}


async def test_every_strategy_is_served_with_its_context_schema(client: LangGraphClient) -> None:
    assistants = await client.assistants.search(limit=100)
    assert {a["graph_id"] for a in assistants} >= {spec.name for spec in BUILTIN}
    vote = next(a for a in assistants if a["graph_id"] == "vote")
    context_schema = (await client.assistants.get_schemas(vote["assistant_id"]))["context_schema"]
    assert context_schema is not None
    context = context_schema["properties"]
    assert {"base_url", "model", "k", "options", "temperature", "max_tokens", "seed"} <= set(context)
    assert context["k"]["default"] == 8


async def test_a_vote_run_streams_its_progress_and_ends_with_the_answer_and_usage(
    client: LangGraphClient, live_endpoint: Endpoint
) -> None:
    thread = await client.threads.create()
    parts = [
        part
        async for part in client.runs.stream(
            thread["thread_id"],
            "vote",
            input={"question": QUESTION},
            context={**endpoint_context(live_endpoint), "k": 3, "max_tokens": 64, "seed": 1},
            stream_mode=["custom", "values"],
        )
    ]
    kinds = [part.event for part in parts]
    assert "error" not in kinds, parts
    events = [part.data for part in parts if part.event == "custom"]
    assert events and all(e["event"] == "proposed" for e in events)
    assert sorted(i for e in events for i in e["indices"]) == [0, 1, 2]  # k=3 reached the run
    final = [part.data for part in parts if part.event == "values"][-1]
    assert "answer" in final and final["text"]
    usage = final["usage"]
    assert usage["calls"] == 3 and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    report = final["report"]
    assert report["strategy"] == "vote" and report["k"] == 3 and len(report["samples"]) == 3
    assert [m["type"] for m in final["messages"]] == ["human", "ai"]
    assert final["messages"][-1]["content"] == final["text"]
    values: Any = (await client.threads.get_state(thread["thread_id"]))["values"]
    assert values["usage"] == usage


async def test_a_bad_context_ends_the_run_with_its_config_error(
    client: LangGraphClient, live_endpoint: Endpoint
) -> None:
    parts = [
        part
        async for part in client.runs.stream(
            None,
            "vote",
            input={"question": QUESTION},
            context={**endpoint_context(live_endpoint), "k": 0},
            stream_mode=["custom", "values"],
        )
    ]
    [error] = [part.data for part in parts if part.event == "error"]
    assert error == {
        "error": "ConfigError",
        "message": "vote: bad run context: k: Input should be greater than or equal to 1",
    }


async def test_an_endpoint_failure_ends_the_run_with_its_error_type(
    client: LangGraphClient, live_endpoint: Endpoint
) -> None:
    context: dict[str, Any] = {"base_url": live_endpoint.base_url, "model": "no-such-model", "k": 2}
    parts = [part async for part in client.runs.stream(None, "vote", input={"question": QUESTION}, context=context)]
    [error] = [part.data for part in parts if part.event == "error"]
    # langgraph-api passes on the message of ValueError, TypeError, RuntimeError, TimeoutError and a few
    # more (a ConfigError is a ValueError); of others only the type: the endpoint's answer is in the server's log.
    assert error["error"] == "StrategyFailed"
