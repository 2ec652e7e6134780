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
