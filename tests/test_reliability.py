"""An eval killed with SIGKILL, or two evals on one store at once, end with exactly the rows of one clean run.

These run ``ttc eval`` as separate processes against a local OpenAI-compatible responder that
answers every prompt the same way (``benchmarks/responder.py``), so the rows of any two runs can
be compared exactly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from benchmarks.common import free_port, responder, start_responder, stop_process
from graphs import build_filter_vote_graph, build_vote_graph
from graphs.cli import main
from graphs.evaluation import EvalStore
from tests.fakes import FakeServer, Request, default_reply
from tests.faults import FaultProxy

SECRET = "sk-ttc-test-secret-4f9a1c"
ARGS = ["eval", "--dataset", "arithmetic", "--per-level", "6", "--levels", "1+1,2+2,3+3",
        "--strategies", "vote,filter-vote,pass@k", "--budgets", "1,4", "--model", "bench", "--quiet"]  # fmt: skip


def ttc(url: str, out: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTC_")}
    return subprocess.Popen([sys.executable, "-m", "graphs.cli", *ARGS, "--base-url", url, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def rows(out: Path) -> dict[str, list[tuple[object, ...]]]:
    with EvalStore(out / "store.sqlite") as store:
        return store.dump()


def finish(proc: subprocess.Popen[str]) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def test_an_eval_killed_with_sigkill_resumes_to_the_rows_of_a_clean_run(tmp_path: Path) -> None:
    with responder(delay=0.02) as url:
        finish(ttc(url, tmp_path / "clean"))
        killed = ttc(url, tmp_path / "killed")
        store = tmp_path / "killed" / "store.sqlite"
        deadline = time.monotonic() + 240  # generous: on a loaded 2-core machine the first rows come late
        while time.monotonic() < deadline:  # kill once some, not all, of the work is stored
            if store.exists() and 0 < len(rows(tmp_path / "killed")["judgements"]) < 18 * 4:
                break
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=30)
        partial = rows(tmp_path / "killed")
        assert 0 < len(partial["judgements"]) < len(rows(tmp_path / "clean")["judgements"])
        finish(ttc(url, tmp_path / "killed"))
    assert rows(tmp_path / "killed") == rows(tmp_path / "clean")


def test_two_evals_on_one_store_at_once_neither_corrupt_nor_duplicate(tmp_path: Path) -> None:
    with responder(delay=0.01) as url:
        finish(ttc(url, tmp_path / "alone"))
        both = [ttc(url, tmp_path / "shared"), ttc(url, tmp_path / "shared")]
        for proc in both:
            finish(proc)
    assert rows(tmp_path / "shared") == rows(tmp_path / "alone")
    with EvalStore(tmp_path / "shared" / "store.sqlite") as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- bad model output: recorded as such, never a crash, never a guess ---------------------------------


def raw_server(body: bytes, status: int = 200) -> FakeServer:
    """A server whose chat replies are these bytes, whatever was asked."""

    class Raw(FakeServer):
        def handler(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/chat/completions"):
                self.requests.append(json.loads(request.content))
                return httpx.Response(status, content=body, headers={"content-type": "application/json"})
            return super().handler(request)

    return Raw()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("", None),  # an empty completion
        ("I would rather not say.", None),  # no stated answer
        ("The answer is N.", None),  # the placeholder copied from the instruction
        ("step " * 20000 + "The answer is 7.", "7"),  # absurdly long, but it does state an answer
    ],
)
async def test_replies_without_an_answer_are_votes_for_nothing(reply: str, expected: str | None) -> None:
    fake = FakeServer(reply=lambda req: reply)
    out = await build_vote_graph(3).compile().ainvoke({"question": "What is 3 + 4?"},
                                                      context=fake.context(answer_format="number"))  # fmt: skip
    assert [c["answer"] for c in out["candidates"]] == [expected] * 3
    assert out["answer"] == expected and out["failures"] == []


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe not utf-8 \x80", b"{not json", b'{"choices": []}', b'{"choices": "many"}', b"[]"],
)
async def test_a_garbled_response_becomes_a_recorded_failure_not_a_crash(body: bytes) -> None:
    server = raw_server(body)
    out = await build_filter_vote_graph(2).compile().ainvoke({"question": "What is 3 + 4?"},
                                                             context=server.context())  # fmt: skip
    (failure,) = out["failures"]
    assert failure["node"] == "propose" and failure["indices"] == [0, 1]
    assert "BadModelOutput: endpoint http://fake.test/v1" in failure["error"]
    assert out["answer"] is None and len(server.requests) == 1  # not retried: it would say the same again


async def test_judge_replies_in_neither_form_are_unparseable_and_do_not_filter() -> None:
    def reply(req: Request) -> str:
        return "Looks fine to me!" if "conclude with either" in req.prompt else "The answer is 7."

    out = await build_filter_vote_graph(3).compile().ainvoke({"question": "What is 3 + 4?"},
                                                             context=FakeServer(reply=reply).context())  # fmt: skip
    assert [v["verdict"] for v in out["verdicts"]] == ["unparseable"] * 3
    assert out["decision"]["fallback"] is True and out["answer"] == "7"  # nothing kept: the vote over all


# -- a graph run resumes from its checkpoint ---------------------------------------------------------


async def test_an_interrupted_graph_run_resumes_from_its_sqlite_checkpoint(tmp_path: Path) -> None:
    task: asyncio.Task[Any] | None = None

    def interrupting(req: Request) -> str:
        if "conclude with either" in req.prompt and task is not None and not task.done():
            task.cancel()  # the run is stopped while its samples are being judged
        return default_reply(req)

    fake = FakeServer(reply=interrupting)
    config: Any = {"configurable": {"thread_id": "run-1"}}
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "checkpoints.sqlite")) as saver:
        graph = build_filter_vote_graph(4).compile(checkpointer=saver)
        ctx = fake.context(endpoint={"api_key": SECRET})
        task = asyncio.create_task(graph.ainvoke({"question": "What is 3 + 4?"}, config, context=ctx))
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fake.calls_for("then end your reply") == 4
        state = await graph.aget_state(config)
        assert len(state.values["candidates"]) == 4  # the samples are in the checkpoint
        task = None
        out = await graph.ainvoke(None, config, context=ctx)  # resume: no new input
    assert fake.calls_for("then end your reply") == 4  # the samples were not drawn again
    assert len(out["candidates"]) == 4 and len(out["verdicts"]) == 4 and out["answer"] == "7"
    assert SECRET.encode() not in (tmp_path / "checkpoints.sqlite").read_bytes()  # the key is context, not state


# -- secrets -----------------------------------------------------------------------------------------


def test_the_api_key_appears_in_no_output_store_or_error(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TTC_")}, "TTC_API_KEY": SECRET}
    with responder() as url:
        cli = [sys.executable, "-m", "graphs.cli"]
        runs = [
            [*cli, "run", "--json", "--base-url", url, "--model", "bench", "-k", "2", "What is 3 + 4?"],
            [*cli, *ARGS, "--json", "--base-url", url, "--out", str(tmp_path / "e")],
            [*cli, "run", "--base-url", url, "--model", "missing", "q"],  # errors, with the key in the environment
            [*cli, "run", "--base-url", url.replace("/v1", "/nothing"), "--model", "m", "q"],
        ]
        outputs = [subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300) for argv in runs]
    assert outputs[0].returncode == 0 and outputs[1].returncode == 0 and outputs[2].returncode != 0
    for done in outputs:
        assert SECRET not in done.stdout and SECRET not in done.stderr
    for path in (tmp_path / "e").iterdir():
        assert SECRET.encode() not in path.read_bytes(), path


def test_an_eval_survives_its_server_being_killed_and_restarted(tmp_path: Path) -> None:
    with responder(delay=0.02) as url:
        finish(ttc(url, tmp_path / "clean"))
    port = free_port()
    server = start_responder(port, 0.02)
    run = ttc(f"http://127.0.0.1:{port}/v1", tmp_path / "outage")
    store = tmp_path / "outage" / "store.sqlite"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (store.exists() and rows(tmp_path / "outage")["judgements"]):
        time.sleep(0.05)
    stop_process(server, signal.SIGKILL)  # the server dies mid-eval, with requests in flight
    time.sleep(0.5)
    server = start_responder(port, 0.02)  # and comes back: the retries carry the eval through
    try:
        finish(run)
    finally:
        stop_process(server)
    assert rows(tmp_path / "outage") == rows(tmp_path / "clean")


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_wrong_key_model_or_url_stops_run_and_eval_with_one_line(
    status: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with responder() as url:
        proxy = FaultProxy(url.removesuffix("/v1"), permanent=status)
        with proxy.running() as root:
            base = ["--base-url", f"{root}/v1", "--model", "bench"]
            code_run = main(["run", *base, "-k", "4", "What is 3 + 4?"])
            err_run = capsys.readouterr().err
            code_eval = main([*ARGS[:-3], "--quiet", *base, "--out", str(tmp_path)])
            err_eval = capsys.readouterr().err
    assert code_run == 1 and code_eval == 1
    for err in (err_run, err_eval):
        assert err.startswith(f"ttc: error: endpoint {root}/v1 answered HTTP {status}") and err.count("\n") == 1
    # run: one request, not retried; eval: stopped after the questions already in flight (4 at a time), not 18
    assert 2 <= proxy.counts[str(status)] <= 1 + 4
