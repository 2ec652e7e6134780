"""An eval killed with SIGKILL, or two evals on one store at once, end with exactly the rows of one clean run.

These run ``ttc eval`` as separate processes against a local OpenAI-compatible responder that
answers every prompt the same way (``benchmarks/responder.py``), so the rows of any two runs can
be compared exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import responder
from graphs.evaluation import EvalStore

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
        deadline = time.monotonic() + 60
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
