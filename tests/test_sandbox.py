"""Model-written code runs in a subprocess with time, memory and file limits and cannot touch the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodes.sandbox import run_python_tests

ADD = "def add(a, b):\n    return a + b\n"


async def test_passing_and_failing_programs_are_told_apart() -> None:
    assert (await run_python_tests(ADD, "assert add(2, 3) == 5")).status == "passed"
    wrong = await run_python_tests("def add(a, b):\n    return a - b\n", "assert add(2, 3) == 5, 'add is wrong'")
    assert wrong.status == "failed" and "AssertionError: add is wrong" in wrong.detail
    broken = await run_python_tests("def add(a, b)\n    return a", "assert add(1, 1) == 2")
    assert broken.status == "failed" and "SyntaxError" in broken.detail


async def test_an_endless_loop_is_killed_at_the_timeout() -> None:
    result = await run_python_tests("while True:\n    pass\n", "", timeout=1.0)
    assert result.status in ("timeout", "error")


async def test_memory_is_limited() -> None:
    result = await run_python_tests("x = bytearray(2 * 1024 ** 3)\n", "", memory_mb=256)
    assert result.status == "failed" and "MemoryError" in result.detail


async def test_the_program_cannot_write_the_project_or_see_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTC_API_KEY", "sk-should-not-leak")
    target = Path(__file__).resolve().parents[1] / "pyproject.toml"
    before = target.read_bytes()
    program = (
        "import os\n"
        f"assert 'TTC_API_KEY' not in os.environ, 'environment leaked'\n"
        f"open({str(target)!r}, 'a').write('pwned')\n"
    )
    result = await run_python_tests(program, "")
    assert target.read_bytes() == before
    if os.geteuid() == 0:  # the child ran as nobody: the write was refused
        assert result.status == "failed" and "PermissionError" in result.detail
    assert "environment leaked" not in result.detail


async def test_the_working_directory_is_a_fresh_temporary_one() -> None:
    program = "import os, tempfile\nprint(os.getcwd())\nassert os.listdir('.') == ['solution.py'], os.listdir('.')\n"
    result = await run_python_tests(program, "open('scratch.txt', 'w').write('ok')")
    assert result.status == "passed", result.detail
