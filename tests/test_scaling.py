"""The exact theory against independent computations: brute-force enumeration, closed forms
for two answers, and Monte-Carlo simulation."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from graphs.lab.scaling import (
    bilevel_shape,
    bilevel_vote_accuracy,
    binary_vote_accuracy,
    difficulty_filter,
    difficulty_vote,
    exact_turning_point,
    filter_vote_accuracy,
    is_easy,
    monte_carlo_vote_accuracy,
    pass_at_k,
    subset_filter_vote_accuracy,
    subset_vote_accuracy,
    turning_point,
    vote_accuracy,
)
from graphs.lab.scaling_law import fit_item_law, optimal_k, predict_task


def vote_outcome(sample: tuple[str | None, ...], correct: str) -> float:
    """Probability that the correct answer wins one vote, ties broken uniformly at random."""
    counts = Counter(a for a in sample if a is not None)
    if not counts or correct not in counts:
        return 0.0
    top = max(counts.values())
    tied = [a for a, c in counts.items() if c == top]
    return 1.0 / len(tied) if correct in tied else 0.0


def brute_vote(dist: dict[str | None, float], correct: str, k: int) -> float:
    keys = list(dist)
    return sum(
        math.prod(dist[a] for a in seq) * vote_outcome(seq, correct) for seq in itertools.product(keys, repeat=k)
    )


DIST = {"12": 0.35, "13": 0.3, "11": 0.2, None: 0.15}


@pytest.mark.parametrize("k", range(1, 7))
def test_vote_matches_brute_force_enumeration(k: int) -> None:
    assert vote_accuracy(DIST, "12", k) == pytest.approx(brute_vote(DIST, "12", k), abs=1e-12)
    assert vote_accuracy(DIST, "13", k) == pytest.approx(brute_vote(DIST, "13", k), abs=1e-12)


@pytest.mark.parametrize("p", [0.2, 0.45, 0.5, 0.7, 0.93])
def test_two_answers_match_the_binomial_closed_form_with_ties(p: float) -> None:
    for k in range(1, 16):
        wins = sum(math.comb(k, j) * p**j * (1 - p) ** (k - j) for j in range(k // 2 + 1, k + 1))
        ties = 0.5 * math.comb(k, k // 2) * (p * (1 - p)) ** (k // 2) if k % 2 == 0 else 0.0
        assert vote_accuracy({"c": p, "w": 1 - p}, "c", k) == pytest.approx(wins + ties, abs=1e-12)
        assert binary_vote_accuracy(p, k) == pytest.approx(wins + ties, abs=1e-12)
    for m in range(1, 8):  # random tie-breaking makes an even K no better than K-1
        assert vote_accuracy({"c": p, "w": 1 - p}, "c", 2 * m) == pytest.approx(
            vote_accuracy({"c": p, "w": 1 - p}, "c", 2 * m - 1), abs=1e-12
        )


def test_k1_certain_and_absent_answers() -> None:
    assert vote_accuracy(DIST, "11", 1) == pytest.approx(0.2)
    assert vote_accuracy({"c": 1.0}, "c", 7) == 1.0
    assert vote_accuracy({"c": 1.0}, "x", 7) == 0.0
    assert vote_accuracy({"a": 0.5, None: 0.5}, "b", 3) == 0.0


@pytest.mark.parametrize("k", [3, 8, 25, 60])
def test_vote_agrees_with_monte_carlo(k: int) -> None:
    # the correct answer is not the mode here: more calls hurt
    dist = {"w": 0.4, "c": 0.33, "x": 0.17, None: 0.1}
    exact = vote_accuracy(dist, "c", k)
    trials = 200_000
    estimate = monte_carlo_vote_accuracy(dist, "c", k, trials=trials, seed=k)
    assert abs(exact - estimate) < 4 * math.sqrt(max(exact * (1 - exact), 1e-4) / trials)


def test_correct_but_not_mode_decays_and_mode_rises() -> None:
    dist = {"w": 0.4, "c": 0.33, "x": 0.27}
    curve = [vote_accuracy(dist, "c", k) for k in (1, 11, 51, 201, 1001)]
    assert curve == sorted(curve, reverse=True) and curve[-1] < 0.01
    mode_curve = [vote_accuracy(dist, "w", k) for k in (1, 11, 51, 201, 1001)]
    assert mode_curve == sorted(mode_curve) and mode_curve[-1] > 0.99


def test_probabilities_of_all_answers_add_up_for_large_k() -> None:
    dist = {f"a{i}": 0.9 / 24 for i in range(24)} | {"b": 0.05, None: 0.05}
    k = 500
    total = sum(vote_accuracy(dist, a, k) for a in dist if a is not None)
    assert total == pytest.approx(1.0 - 0.05**k, abs=1e-9)


def brute_filter(dist: dict[str | None, float], keep: dict[str | None, float], correct: str, k: int) -> float:
    outcomes = [(a, kept) for a in dist for kept in (True, False)]

    def prob(o: tuple[str | None, bool]) -> float:
        a, kept = o
        q = keep.get(a, 0.0) if a is not None else 0.0
        return dist[a] * (q if kept else 1 - q)

    total = 0.0
    for seq in itertools.product(outcomes, repeat=k):
        p = math.prod(prob(o) for o in seq)
        if p == 0:
            continue
        kept = tuple(a for a, k_ in seq if k_)
        total += p * vote_outcome(kept if kept else tuple(a for a, _ in seq), correct)
    return total


@pytest.mark.parametrize("k", range(1, 5))
def test_filter_vote_matches_brute_force(k: int) -> None:
    dist = {"c": 0.3, "w": 0.5, "x": 0.1, None: 0.1}
    keep = {"c": 0.8, "w": 0.3, "x": 0.5}
    assert filter_vote_accuracy(dist, keep, "c", k) == pytest.approx(brute_filter(dist, keep, "c", k), abs=1e-12)


def test_filter_that_keeps_all_or_nothing_is_a_plain_vote() -> None:
    dist = {"c": 0.3, "w": 0.5, "x": 0.2}
    for k in (1, 4, 9):
        plain = vote_accuracy(dist, "c", k)
        assert filter_vote_accuracy(dist, dict.fromkeys(dist, 1.0), "c", k) == pytest.approx(plain, abs=1e-12)
        assert filter_vote_accuracy(dist, {}, "c", k) == pytest.approx(plain, abs=1e-12)  # always the fallback


def test_difficulty() -> None:
    dist = {"c": 0.3, "w": 0.5, "x": 0.2}
    assert difficulty_vote(dist, "c") == pytest.approx(0.2) and not is_easy(dist, "c")
    assert difficulty_filter(dist, {"c": 0.9, "w": 0.2, "x": 0.2}, "c") < 0  # the judge makes it easy
    assert is_easy({"c": 0.3, "w": 0.25, "x": 0.25, "y": 0.2}, "c")  # easy with p < 1/2


def test_pass_at_k_matches_the_combinatorial_form() -> None:
    for n, c, k in [(10, 3, 1), (10, 3, 4), (20, 0, 5), (20, 20, 5), (7, 2, 6), (7, 2, 7)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)


POOL = {"c": 3, "w": 3, "x": 1}


def brute_subsets(pool: dict[str, int], correct: str, k: int, none: int = 0) -> float:
    items = [a for a, n in pool.items() for _ in range(n)] + [None] * none
    subsets = list(itertools.combinations(range(len(items)), k))
    return sum(vote_outcome(tuple(items[i] for i in s), correct) for s in subsets) / len(subsets)


@pytest.mark.parametrize("k", range(1, 10))
def test_subset_vote_matches_enumeration_of_all_subsets(k: int) -> None:
    assert subset_vote_accuracy(POOL, "c", k, none=2) == pytest.approx(brute_subsets(POOL, "c", k, none=2), abs=1e-12)
    assert subset_vote_accuracy(POOL, "x", k, none=2) == pytest.approx(brute_subsets(POOL, "x", k, none=2), abs=1e-12)


@pytest.mark.parametrize("k", range(1, 8))
def test_subset_filter_vote_matches_enumeration(k: int) -> None:
    # (answer, kept) for 8 samples
    samples = [("c", True), ("c", False), ("w", True), ("w", False), ("w", False), ("x", False), (None, True),
               (None, False)]  # fmt: skip
    subsets = list(itertools.combinations(samples, k))
    brute = 0.0
    for s in subsets:
        kept = tuple(a for a, keep in s if keep and a is not None)
        brute += vote_outcome(kept if kept else tuple(a for a, _ in s), "c")
    brute /= len(subsets)
    exact = subset_filter_vote_accuracy({"c": 1, "w": 1}, {"c": 1, "w": 2, "x": 1}, "c", k, kept_none=1, unkept_none=1)
    assert exact == pytest.approx(brute, abs=1e-12)


def test_subset_vote_of_the_whole_pool_is_deterministic() -> None:
    assert subset_vote_accuracy({"c": 4, "w": 3}, "c", 7) == 1.0
    assert subset_vote_accuracy({"c": 3, "w": 3}, "c", 6) == pytest.approx(0.5, abs=1e-12)


def test_bilevel_reproduces_both_synthetic_cases_of_the_paper() -> None:
    ks = list(range(1, 400, 2))
    rise_fall = [bilevel_vote_accuracy(0.5, 0.85, 0.4, k) for k in ks]
    assert bilevel_shape(0.5, 0.85, 0.4) == "inverse-U"
    peak = int(np.argmax(rise_fall))
    assert 0 < peak < len(ks) - 1 and rise_fall[-1] < rise_fall[peak]
    fall_rise = [bilevel_vote_accuracy(0.5, 0.65, 0.1, k) for k in ks]
    assert bilevel_shape(0.5, 0.65, 0.1) == "U"
    low = int(np.argmin(fall_rise))
    assert 0 < low < len(ks) - 1 and fall_rise[-1] > fall_rise[low]
    assert rise_fall[-1] == pytest.approx(0.5, abs=0.01) and fall_rise[-1] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize(
    ("alpha", "p1", "p2"), [(0.5, 0.85, 0.4), (0.8, 0.85, 0.4), (0.9, 0.6, 0.45), (0.3, 0.65, 0.1)]
)
def test_turning_point_formula_against_the_exact_curve(alpha: float, p1: float, p2: float) -> None:
    ks = list(range(1, 2001, 2))
    curve = np.array([bilevel_vote_accuracy(alpha, p1, p2, k) for k in ks])
    exact = exact_turning_point(alpha, p1, p2)
    shape = bilevel_shape(alpha, p1, p2)
    assert exact is not None
    best = ks[int(np.argmax(curve) if shape == "inverse-U" else np.argmin(curve))]
    assert best == exact
    assert abs(turning_point(alpha, p1, p2) - exact) <= 2.5


def test_scaling_law_fit_recovers_a_known_item_and_the_optimal_k() -> None:
    from graphs.lab.scaling_law import ItemLaw

    truth = ItemLaw(0.01, 0.2, 0.1, mode_correct=True)
    ks = np.array([2, 5, 10, 20, 50, 100])
    fitted = fit_item_law(ks, truth(ks), mode_correct=True)
    grid = np.array([1, 3, 10, 30, 100, 300, 1000])
    assert np.allclose(fitted(grid), truth(grid), atol=2e-3)
    easy, hard = ItemLaw(0.05, 0.3, 0.5, True), ItemLaw(0.002, 0.05, 0.5, False)
    curve = predict_task([easy, hard], np.arange(1, 1001))
    assert optimal_k([easy, hard], np.arange(1, 1001)) == int(np.argmax(curve)) + 1


def test_edge_cases_found_in_review() -> None:
    # a judge that keeps (almost) everything: the fall-back is normalised by what is not kept
    assert filter_vote_accuracy({"A": 0.6, "B": 0.4}, {"A": 1.0, "B": 1 - 1e-12}, "A", 3) == pytest.approx(
        vote_accuracy({"A": 0.6, "B": 0.4}, "A", 3), abs=1e-9
    )
    # p1 + p2 = 1 gives r = 1: a monotone curve, no turning point
    assert bilevel_shape(0.7, 0.7, 0.3) == "increasing" and exact_turning_point(0.7, 0.7, 0.3) is None
    assert bilevel_shape(0.3, 0.7, 0.3) == "decreasing"
    # large pools do not overflow
    big = subset_vote_accuracy({"c": 1100, "w": 1000}, "c", 1500)
    assert 0.99 < big <= 1.0
    assert subset_vote_accuracy({"c": 1000, "w": 1000}, "c", 2000) == pytest.approx(0.5)
