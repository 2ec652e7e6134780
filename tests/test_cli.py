"""Bad input ends with one clear line on stderr and a non-zero exit, before any LLM call."""

from __future__ import annotations

import json
import socket
from pathlib import Path

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
        (["eval", "--strategies", "vote,tree"], 2, "ttc: error: unknown strategies ['tree']"),
        (["eval", "--budgets", "1,0"], 2, "ttc: error: argument --budgets: expected a positive integer, got 0"),
        (["eval", "--budgets", ","], 2, "ttc: error: argument --budgets: expected a comma-separated list"),
        (["eval", "--dataset", "squad"], 2, "ttc: error: argument --dataset/-d: invalid choice: 'squad'"),
        (["eval", "--dataset", "gsm8k", "--data", "/nonexistent"], 2, "ttc: error: data folder /nonexistent does"),
        (["eval", "--subject", "anatomy"], 2, "ttc: error: --subject is for --dataset mmlu"),
        (["eval", "--levels", "9x9"], 2, "ttc: error: unknown levels ['9x9']"),
        (["eval", "--strategies", "mix", "--chains", "3", "--budgets", "2"], 2, "ttc: error: mix: 3 chains exceed"),
        (["run", "--strategy", "router", "q"], 2, "ttc: error: --strategy router needs --policy"),
        (["run", "--strategy", "router", "--policy", "/nonexistent.json", "q"], 2, "ttc: error: cannot read policy"),
        (["run", "--policy", "p.json", "q"], 2, "ttc: error: --policy is for --strategy router"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.delenv("TTC_BASE_URL", raising=False)
    monkeypatch.delenv("TTC_MODEL", raising=False)
    if argv[0] == "eval":  # were the error missed, the run would fail on a closed port, not start a server
        argv = [*argv, "--base-url", f"http://127.0.0.1:{closed_port()}/v1", "--model", "m", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err
    assert info.value.code == code
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_eval_on_code_refuses_a_vote_before_any_call(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "humaneval"
    data.mkdir()
    (data / "HumanEval.jsonl").write_text(
        json.dumps({"task_id": "t/0", "prompt": "def f():\n", "test": "", "entry_point": "f"}) + "\n"
    )
    port = closed_port()  # nothing listens: reaching for the endpoint would be another error
    code = main(["eval", "--dataset", "humaneval", "--data", str(tmp_path), "--strategies", "vote", "--out",
                 str(tmp_path / "out"), "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err == "ttc: error: humaneval is code: ttc eval runs only best-of-n, pass@k on it\n"


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
        "tokens": {"requests": 5, "calls": 8, "prompt_tokens": 300, "completion_tokens": 500, "flops": 790400000000},
        "failures": [{"indices": [3], "error": "propose: boom"}],
        "budget": {"exhausted": True, "note": "budget (max_calls=8) reached"},
    }
    assert format_result(result) == "\n".join([
        "answer: 42",
        "votes: 42 ×2, 41 ×1, (no answer) ×1",
        "verdicts: correct 2, unparseable 1, wrong 1",
        "filter: kept samples [0, 2]",
        "tokens: 300 prompt + 500 completion = 800 in 8 calls (5 requests), 0.79 TFLOPs",
        "failed: samples [3]: propose: boom",
        "budget: budget (max_calls=8) reached",
    ])  # fmt: skip


@pytest.mark.parametrize(
    ("strategy", "lines", "calls"),
    [
        ("vote", ["answer: 7", "votes: 7 ×3"], "3 calls (1 requests)"),
        ("filter-vote", ["answer: 7", "votes: 7 ×3", "verdicts: unparseable 3",
                         "filter: no candidate kept, voted among all"], "6 calls (4 requests)"),
    ],
)  # fmt: skip
def test_run_reports_what_the_strategy_returns(strategy: str, lines: list[str], calls: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # a real HTTP endpoint (the benchmarks' responder: every reply says "The answer is <sum>.")
    from benchmarks.common import responder

    with responder() as url:
        code = main(["run", "--base-url", url, "--model", "bench", "-k", "3", "--strategy", strategy, "--quiet",
                     "What is 3 + 4?"])  # fmt: skip
        assert code == 0
        report = capsys.readouterr().out.splitlines()
        assert report[: len(lines)] == lines
        assert not any(line.startswith("scores:") for line in report)  # a vote has no scores to show
        assert report[len(lines)].startswith("tokens: ")
        assert report[len(lines)].endswith(f" in {calls}, FLOPs unknown (--params gives the model's size)")
        code = main(["run", "--base-url", url, "--model", "bench", "-k", "3", "--strategy", strategy, "--quiet",
                     "--params", "1B", "What is 3 + 4?"])  # fmt: skip
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("tokens: "))
        tokens = int(line.split(" = ")[1].split()[0])
        assert line.endswith(f" in {calls}, {2e9 * tokens / 1e12:.3g} TFLOPs")
        code = main(["run", "--base-url", url, "--model", "bench", "-k", "3", "--strategy", strategy, "--json",
                     "What is 3 + 4?"])  # fmt: skip
        assert code == 0
        out = json.loads(capsys.readouterr().out)
        assert out["answer"] == "7" and "rounds" not in out and "question_id" not in out
        assert ("verdicts" in out) == (strategy == "filter-vote") and "scores" not in out


@pytest.mark.parametrize(
    ("route", "shown", "hidden"),
    [
        ("filter-vote", ["verdicts: unparseable 3", "filter: no candidate kept, voted among all"], ["scores:"]),
        ("vote", [], ["verdicts:", "filter:", "scores:"]),
    ],
)
def test_a_routed_run_reports_what_its_strategy_returns(
    route: str, shown: list[str], hidden: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from benchmarks.common import responder
    from graphs.evaluation.selection import Policy, Route

    policy = tmp_path / "policy.json"
    policy.write_text(Policy("agreement", 2, [], [Route(route, 3)], answer_format="number").to_json())
    with responder() as url:
        code = main(["run", "--base-url", url, "--model", "bench", "--strategy", "router", "--policy", str(policy),
                     "--quiet", "What is 3 + 4?"])  # fmt: skip
    assert code == 0
    report = capsys.readouterr().out.splitlines()
    assert report[:2] == ["answer: 7", f"probe: agreement 1.00 of 2 samples: {route}@3"]
    assert all(line in report for line in shown)
    assert not any(line.startswith(tuple(hidden)) for line in report)


@pytest.mark.parametrize(("text", "value"), [("494000000", 494_000_000), ("494M", 494_000_000), ("7.6B", 7_600_000_000),
                                             ("7.6e9", 7_600_000_000), ("1.5b", 1_500_000_000)])  # fmt: skip
def test_params_flag_reads_a_model_size(text: str, value: int) -> None:
    from graphs.cli.parser import parameter_count

    assert parameter_count(text) == value


@pytest.mark.parametrize("bad", ["seven", "3X", "0", "0.4", "B"])
def test_params_flag_refuses_what_is_not_a_size(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--params", bad, "What is 2+2?"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ttc: error: argument --params: expected a number of weights such as 494M or 7.6B, got {bad!r} "
                   "(see `ttc run -h`)"]  # fmt: skip
