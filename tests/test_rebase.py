from __future__ import annotations

import random

import mpmath
import pytest

from graphs.search.rebase import allocate


def reference(rewards: list[float], budget: int, temperature: float) -> list[int]:
    """The loop of the authors' rebase.py, written out directly, in 60-digit arithmetic (in plain
    floats the last ceil can see S a hair below w and hand out one child too many)."""
    mpmath.mp.dps = 60
    order = sorted(range(len(rewards)), key=lambda i: -rewards[i])
    w = {i: mpmath.exp(mpmath.mpf(rewards[i]) / temperature) for i in order}
    s = mpmath.fsum(w.values())
    b = budget
    out = [0] * len(rewards)
    for i in order:
        wj = int(mpmath.ceil(b * w[i] / s - mpmath.mpf(10) ** -40))
        out[i] = wj
        b -= wj
        s -= w[i]
    return out


@pytest.mark.parametrize("seed", range(30))
def test_matches_the_specified_rule_and_sums_to_the_budget(seed: int) -> None:
    rng = random.Random(seed)
    rewards = [round(rng.random(), 3) for _ in range(rng.randint(1, 9))]
    budget = rng.randint(0, 40)
    temperature = rng.choice([0.1, 0.2, 0.5, 1.0])
    got = allocate(rewards, budget, temperature)
    assert sum(got) == budget and min(got) >= 0
    assert got == reference(rewards, budget, temperature)


def test_equal_rewards_split_evenly_in_order() -> None:
    assert allocate([0.5] * 4, 10) == [3, 3, 2, 2]
    assert allocate([0.5] * 3, 2) == [1, 1, 0]


def test_higher_reward_never_gets_fewer_children() -> None:
    got = allocate([0.2, 0.9, 0.6, 0.9], 12, temperature=0.3)
    assert got[1] >= got[2] >= got[0] and got[3] >= got[2]


def test_extreme_rewards_do_not_overflow() -> None:
    assert allocate([500.0, 0.0], 6, temperature=0.01) == [6, 0]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        allocate([0.1], -1)
    with pytest.raises(ValueError):
        allocate([0.1], 3, temperature=0)
    with pytest.raises(ValueError):
        allocate([], 2)
    assert allocate([], 0) == []
