"""Bad input ends with one clear line on stderr and a non-zero exit, before any LLM call."""

from __future__ import annotations

import socket

import pytest

from graphs.cli import format_result, main


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when we return: nothing listens there


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["run", "-k", "0", "q"], 2, "ttc: error: argument -k/-n: expected a positive integer, got 0"),
        (["run", "-k", "many", "q"], 2, "ttc: error: argument -k/-n: expected a positive integer, got 'many'"),
        (["run", "--strategy", "tree", "q"], 2, "ttc: error: argument --strategy/-s: invalid choice: 'tree'"),
        (["run", "   "], 2, "ttc: error: the question is empty"),
        (["run", "--temperature", "5", "q"], 2, "ttc: error: argument --temperature: expected a temperature"),
        (["run", "--base-url", "gpu:8000", "--model", "m", "q"], 2, "ttc: error: base_url: Value error, base URL"),
        (["run", "--base-url", "http://127.0.0.1:8000/v1", "q"], 2, "ttc: error: an endpoint at"),
        (["frobnicate"], 2, "ttc: error: argument command: invalid choice"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("TTC_BASE_URL", raising=False)
    monkeypatch.delenv("TTC_MODEL", raising=False)
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err
    assert info.value.code == code
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unreachable_endpoint_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    code = main(["run", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m", "What is 2+2?"])
    err = capsys.readouterr().err
    assert code == 1
    assert err == f"ttc: error: endpoint http://127.0.0.1:{port}/v1 could not be reached\n"


def test_report_shows_answer_votes_verdicts_and_tokens() -> None:
    result = {
        "answer": "42",
        "decision": {"votes": {"42": 2.0, "41": 1.0}, "tie": False, "kept": [0, 2], "fallback": False},
        "candidates": [{"answer": "42"}, {"answer": "41"}, {"answer": "42"}, {"answer": None}],
        "verdicts": [{"verdict": "correct"}, {"verdict": "wrong"}, {"verdict": "correct"}, {"verdict": "unparseable"}],
        "tokens": {"requests": 5, "calls": 8, "prompt_tokens": 300, "completion_tokens": 500},
        "failures": [{"indices": [3], "error": "propose: boom"}],
        "budget": {"exhausted": True, "note": "budget (max_calls=8) reached"},
    }
    assert format_result(result) == "\n".join([
        "answer: 42",
        "votes: 42 ×2, 41 ×1, (no answer) ×1",
        "verdicts: correct 2, unparseable 1, wrong 1",
        "filter: kept samples [0, 2]",
        "tokens: 300 prompt + 500 completion = 800 in 8 calls (5 requests)",
        "failed: samples [3]: propose: boom",
        "budget: budget (max_calls=8) reached",
    ])  # fmt: skip
