"""The embedded server starts real vLLM and leaves no process behind (live; runs in CI)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from nodes.machine import CPU, choose_settings
from nodes.server import EmbeddedServer
from tests.conftest import LIVE_DTYPE, LIVE_MODEL

pytestmark = pytest.mark.live


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_serving(port: int) -> list[int]:
    """Pids whose command line names ``--port PORT`` (the API server) or descend from it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in args and str(port).encode() in args and any(b"vllm" in a for a in args):
            found.append(int(entry.name))
    return found


def env_without_endpoint() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TTC_BASE_URL", "TTC_MODEL")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_serve_stops_cleanly_on_ctrl_c() -> None:
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "graphs.cli", "serve", "--model", LIVE_MODEL, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_without_endpoint(),
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stderr is not None
            line = proc.stdout.readline()  # blocks until the server is healthy (or ttc fails)
            assert line.startswith("serving "), proc.stderr.read()
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
            assert processes_serving(port)
            engine_group = os.getpgid(processes_serving(port)[0])

            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=90) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert processes_serving(port) == []
    with pytest.raises(ProcessLookupError):
        os.killpg(engine_group, 0)  # the API server's whole group (its engine process too) is gone


def test_run_starts_and_stops_the_embedded_server_when_no_endpoint_is_set() -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "graphs.cli", "run", "--server-model", LIVE_MODEL, "--strategy", "vote", "-k", "2",
         "--max-tokens", "16", "--server-dtype", "float32", "--server-bind", "vllm", "--json", "What is 1+1?"],
        capture_output=True, text=True, env=env_without_endpoint(), timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    base_url = result["endpoint"]["base_url"]
    assert base_url.startswith("http://127.0.0.1:") and result["tokens"]["calls"] == 2
    assert "starting vLLM" in proc.stderr and "ready" in proc.stderr
    # The overrides are said in the start line and reach vLLM (its log names the dtype and binding it used).
    assert "fp32: as asked; threads: vLLM's binding, as asked" in proc.stderr
    log = Path(proc.stderr.split("log: ", 1)[1].split(")", 1)[0]).read_text()
    assert "dtype=torch.float32" in log and "VLLM_CPU_OMP_THREADS_BIND='auto'" in log
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    assert processes_serving(port) == []
    assert time.monotonic() - started < 600


def test_the_embedded_server_runs_with_the_settings_it_chose(live_server: EmbeddedServer | None) -> None:
    if live_server is None:
        pytest.skip("TTC_TEST_BASE_URL names another server")
    chosen = choose_settings(dtype=LIVE_DTYPE, cpu=CPU.read(), free_memory=1 << 40)  # binding as for this machine
    assert live_server.settings.dtype == chosen.dtype and live_server.settings.bind == chosen.bind
    assert live_server.log_path is not None
    log = live_server.log_path.read_text()
    assert f"dtype=torch.{chosen.dtype}" in log
    assert f"VLLM_CPU_OMP_THREADS_BIND={chosen.bind!r}" in log
    assert f"'kv_cache_memory_bytes': {live_server.settings.kv_cache_bytes}" in log
    if chosen.bind != "auto":  # every usable CPU computes, none is reserved
        assert "reserved_cpus=[]" in log
    # vLLM warns when Intel's OpenMP is not preloaded; with it chosen, it does not.
    assert ("libiomp is not found in LD_PRELOAD" in log) == (chosen.openmp is None)
