"""Run untrusted, model-written Python against unit tests, in a subprocess that cannot do harm.

The program runs with ``python -I`` (no user site, no environment paths) in a fresh temporary
directory that is its working directory and only writable place, with an empty environment, in a
session of its own, under limits on CPU time, address space, file size and open files, and is
killed with its whole process group at the wall-clock timeout. When this process runs as root the
child also drops to the ``nobody`` user, so it cannot write the project's files even by absolute
path; otherwise it has the calling user's rights (the limits and the temporary directory still
hold).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from typing import Literal

__all__ = ["SandboxResult", "run_python_tests"]

_NOBODY = 65534


@dataclass(frozen=True)
class SandboxResult:
    status: Literal["passed", "failed", "timeout", "error"]
    detail: str  # the last line of the program's stderr, or why it was stopped

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _limits(cpu_seconds: int, memory_bytes: int, drop_root: bool) -> None:
    # Runs in the child between fork and exec.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if drop_root:
        os.setgroups([])
        os.setgid(_NOBODY)
        os.setuid(_NOBODY)


def _interpreter(drop_root: bool) -> str:
    # The nobody user may not be able to reach this process's interpreter (e.g. one under /root);
    # the tests need only the standard library, so the system's Python serves.
    if drop_root and os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return sys.executable


async def run_python_tests(
    program: str, tests: str, *, timeout: float = 10.0, memory_mb: int = 512, python: str | None = None
) -> SandboxResult:
    """Run ``program`` followed by ``tests`` (which raise on failure); ``passed`` iff exit 0.

    Example:
        >>> import asyncio
        >>> asyncio.run(run_python_tests("def add(a, b):\\n    return a + b", "assert add(2, 3) == 5")).status
        'passed'
    """
    workdir = tempfile.mkdtemp(prefix="ttc-sandbox-")
    drop_root = os.geteuid() == 0
    try:
        path = os.path.join(workdir, "solution.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(program + "\n\n" + tests + "\n")
        if drop_root:
            os.chown(workdir, _NOBODY, _NOBODY)
            os.chown(path, _NOBODY, _NOBODY)
        proc = await asyncio.create_subprocess_exec(
            python or _interpreter(drop_root), "-I", "-B", path,
            cwd=workdir,
            env={"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "PYTHONHASHSEED": "0"},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: _limits(max(1, int(timeout) + 1), memory_mb << 20, drop_root),
        )  # fmt: skip
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return SandboxResult("timeout", f"killed after {timeout:g} s")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # nothing the program started outlives it
        lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
        detail = lines[-1][:300] if lines else ""
        if proc.returncode == 0:
            return SandboxResult("passed", detail)
        if proc.returncode is not None and proc.returncode < 0:
            return SandboxResult("error", f"killed by signal {-proc.returncode} (limit reached?)")
        return SandboxResult("failed", detail or f"exit status {proc.returncode}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
