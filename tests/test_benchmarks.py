"""The benchmarks' own parts work (their timings are printed by ``make bench``, never asserted here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.common import questions, responder, run_framework, run_plain
from benchmarks.curves import monte_carlo_curve, synthetic_pools
from graphs.lab.pool import pool_curves
from nodes import Endpoint


async def test_the_instant_responder_answers_both_clients_alike() -> None:
    with responder() as url:
        endpoint = Endpoint(base_url=url, model="bench", max_n=2)
        fw = await run_framework(endpoint, questions(5), 3, max_tokens=16)
        plain = await run_plain(endpoint, questions(5), 3, max_tokens=16)
    assert fw.calls == plain.calls == 5 * 3  # the same samples, in requests of at most max_n


def test_the_monte_carlo_baseline_simulates_the_same_curve() -> None:
    pools = synthetic_pools(3, 12)
    exact = pool_curves(pools, [1, 3, 5]).vote
    assert monte_carlo_curve(pools, [1, 3, 5], trials=4000) == pytest.approx(exact, abs=0.04)


def test_the_profile_shows_where_the_framework_spends_its_time(tmp_path: Path) -> None:
    from benchmarks.overhead import profile

    path = tmp_path / "profile.txt"
    profile(str(path), quick=True)
    text = path.read_text()
    assert "propose" in text and "LLM.chat" in text and "langgraph" in text


async def test_the_scale_benchmark_runs_both_sides_over_the_same_requests() -> None:
    from benchmarks.scale import measure, row, slow_responder

    with slow_responder(0.05, 0.5) as url:
        best = await measure(url, (1, 8), count=40, rounds=1)
    for k, (fw, plain) in best.items():
        assert fw.timing.calls == plain.timing.calls == 40 * k
        assert fw.requests == plain.requests == 40  # k = 8: one request with n = 8 a question
        assert min(fw.held, plain.held) >= 40 * 0.05 * (1 - 0.5)  # the responder held each for its delay
        assert row(k, fw, plain, 0.05, 0.5)["met"] in ("goal met", "goal NOT met")


def test_a_client_costing_nothing_keeps_every_slot_busy() -> None:
    from benchmarks.scale import IN_FLIGHT, ideal_seconds

    assert ideal_seconds(3 * IN_FLIGHT, 4.0, 0.0) == 12.0
    assert 8.0 < ideal_seconds(2 * IN_FLIGHT, 4.0, 0.5) < 2 * 4.0 * 1.5
