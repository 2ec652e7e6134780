"""Live: ``ttc eval`` over a small slice of GSM8K on the real local vLLM, resumed, then the router it fits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from graphs.cli import main
from graphs.evaluation import EvalStore
from nodes import Endpoint
from nodes.endpoint import known_parameters

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not DATA.is_dir(), reason="the shared data folder is not beside the repository"),
]


def test_ttc_eval_runs_resumes_and_fits_a_router(
    live_endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    endpoint = ["--base-url", live_endpoint.base_url, "--model", live_endpoint.model]
    argv = ["eval", "--dataset", "gsm8k", "--data", str(DATA), "--limit", "4", "--question-seed", "3",
            "--strategies", "vote,filter-vote,pass@k", "--budgets", "1,2", "--probe-size", "2",
            "--max-tokens", "96", "--judge-max-tokens", "48", "--out", str(out), *endpoint]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "gsm8k · " in printed.out and "compute-optimal selection" in printed.out
    assert "ttc eval [" in printed.err and "4/4" in printed.err

    with EvalStore(out / "store.sqlite") as store:
        rows = store.dump()
    # 2 pooled samples and 2 held-out probe samples a question; only the pooled ones are judged
    assert len(rows["questions"]) == 4 and len(rows["samples"]) == 4 * (2 + 2) and len(rows["judgements"]) == 4 * 2
    assert all(r[4] > 0 for r in rows["sample_usage"])  # prompt tokens, from the server's usage
    table = list(csv.DictReader((out / "results.csv").read_text().splitlines()))
    assert [(r["strategy"], r["budget"]) for r in table] == [
        ("vote", "1"),
        ("vote", "2"),
        ("filter-vote", "1"),
        ("filter-vote", "2"),
        ("pass@k", "1"),
        ("pass@k", "2"),
    ]
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 and float(r["tokens"]) > 0 for r in table)
    written = {p.name for p in out.iterdir()}
    assert {"accuracy_vs_calls.png", "accuracy_vs_tokens.png", "policies.json", "selection.json",
            "by_difficulty.csv"} <= written  # fmt: skip
    assert ("accuracy_vs_flops.png" in written) == (known_parameters(live_endpoint.model) is not None)
    assert "by difficulty (held-out probe" in printed.out

    # the same command again: everything is stored, so no call is made and the results are the same
    assert main([*argv, "--json"]) == 0
    again = capsys.readouterr()
    assert "holds every result already: no LLM calls" in again.err
    assert json.loads(again.out)["results"] == json.loads((out / "results.json").read_text())["results"]
    with EvalStore(out / "store.sqlite") as store:
        assert store.dump() == rows

    # the fitted policy runs as a router graph: probe, then the chosen strategy
    policy = out / "policies.json"
    assert main(["run", "--strategy", "router", "--policy", str(policy), "--format", "number", "--max-tokens", "64",
                 "--json", *endpoint, "What is 3 + 4?"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["probe"]["route"].split("@")[0] in ("vote", "filter-vote")
    assert result["ledger"]["probe"]["calls"] == 2 and result["ledger"]["propose"]["calls"] >= 1
    assert json.loads(policy.read_text())  # fitted on the held-out probe: the router probes past the pool's seeds
    assert all(p["probe_seed_offset"] == 2 for p in json.loads(policy.read_text()).values())
