from __future__ import annotations

import pytest

from nodes.budget import Budget, add_ledgers, ledger_entry, ledger_totals
from nodes.errors import ConfigError


def test_ledgers_add_per_kind_without_mutating_inputs() -> None:
    a = ledger_entry("propose", requests=1, calls=8, prompt_tokens=40, completion_tokens=400)
    b = add_ledgers(ledger_entry("verify", prompt_tokens=90, completion_tokens=20), a)
    total = add_ledgers(a, b)
    assert total == {
        "propose": {"requests": 2, "calls": 16, "prompt_tokens": 80, "completion_tokens": 800},
        "verify": {"requests": 1, "calls": 1, "prompt_tokens": 90, "completion_tokens": 20},
    }
    assert a["propose"]["calls"] == 8
    assert ledger_totals(total) == {"requests": 3, "calls": 17, "prompt_tokens": 170, "completion_tokens": 820}
    assert add_ledgers(None, None) == {}


def test_allowance_respects_both_caps() -> None:
    spent = ledger_entry("propose", calls=5, prompt_tokens=100, completion_tokens=300)
    assert Budget().allowance(spent, want=8, tokens_per_call=1000) == 8
    assert Budget(max_calls=7).allowance(spent, want=8, tokens_per_call=1) == 2
    assert Budget(max_tokens=1000).allowance(spent, want=8, tokens_per_call=150) == 4
    assert Budget(max_calls=5).allowance(spent, want=8, tokens_per_call=1) == 0
    assert Budget(max_tokens=300).allowance(spent, want=8, tokens_per_call=1) == 0


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_budget_rejects_bad_caps(bad: object) -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        Budget(max_calls=bad)  # type: ignore[arg-type]


# -- FLOPs -----------------------------------------------------------------------------------


def test_an_entry_of_known_size_carries_2_x_parameters_x_tokens() -> None:
    entry = ledger_entry("propose", calls=4, prompt_tokens=120, completion_tokens=880, parameters=494_000_000)
    assert entry["propose"]["flops"] == 2 * 494_000_000 * 1_000
    assert "flops" not in ledger_entry("propose", prompt_tokens=10, completion_tokens=5)["propose"]  # size unknown


def test_flops_add_up_and_a_call_of_unknown_size_makes_the_sum_unknown() -> None:
    small = ledger_entry("propose", prompt_tokens=10, completion_tokens=90, parameters=135_000_000)
    large = ledger_entry("verify", prompt_tokens=50, completion_tokens=50, parameters=1_540_000_000)
    failed = ledger_entry("propose", calls=0)  # a failed request: no tokens, so no compute either
    unknown = ledger_entry("verify", prompt_tokens=7, completion_tokens=1)  # e.g. a reward model of unknown size
    known = add_ledgers(add_ledgers(small, failed), large)
    assert ledger_totals(known)["flops"] == 2 * (135_000_000 * 100 + 1_540_000_000 * 100)
    assert known["propose"]["flops"] == 2 * 135_000_000 * 100
    for order in ([known, unknown], [unknown, known], [unknown, failed, known]):
        total: dict = {}
        for ledger in order:
            total = add_ledgers(total, ledger)
        assert "flops" not in ledger_totals(total)
        assert "flops" not in total["verify"]
        assert ledger_totals(total)["prompt_tokens"] == ledger_totals(known)["prompt_tokens"] + 7


async def test_a_run_on_a_packaged_model_counts_its_flops_from_the_servers_usage() -> None:
    from graphs.strategies.vote import build_vote_graph
    from tests.fakes import FakeServer

    fake = FakeServer(model="Qwen2.5-Coder-0.5B-Instruct")  # a packaged model: its size is known
    graph = build_vote_graph(5).compile()
    out = await graph.ainvoke({"question": "What is 20+22?"}, context=fake.context())
    totals = ledger_totals(out["ledger"])
    assert totals["flops"] == 2 * 494_000_000 * (totals["prompt_tokens"] + totals["completion_tokens"]) > 0

    other = FakeServer(model="my-model")
    unknown = await graph.ainvoke({"question": "What is 20+22?"}, context=other.context())
    assert "flops" not in ledger_totals(unknown["ledger"])
    given = await graph.ainvoke(
        {"question": "What is 20+22?"}, context=other.context(endpoint={"parameters": 7_600_000_000})
    )
    t = ledger_totals(given["ledger"])
    assert t["flops"] == 2 * 7_600_000_000 * (t["prompt_tokens"] + t["completion_tokens"])
