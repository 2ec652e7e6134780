"""Curves from pools: the whole accuracy-vs-K curve computed exactly from each question's pool
(:func:`graphs.lab.pool.pool_curves`) against re-simulating it by Monte-Carlo (random K-subsets, a
plurality vote with random tie-breaks), on a synthetic pool. Prints the time ratio and how far
apart the two curves are (the Monte-Carlo error shrinks as 1/sqrt(trials))."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import Row, verdict
from graphs.lab.pool import QuestionPool, pool_curves


def synthetic_pools(questions: int, m: int, seed: int = 0) -> list[QuestionPool]:
    rng = np.random.default_rng(seed)
    pools = []
    for i in range(questions):
        p_right = rng.uniform(0.1, 0.9)
        wrong = rng.dirichlet(np.ones(4)) * (1 - p_right)
        probs = np.concatenate([[p_right], wrong])
        answers = [str(a) for a in rng.choice(5, size=m, p=probs / probs.sum())]
        pools.append(QuestionPool(f"q{i}", "q", "0", {}, list(answers), [None] * m))
    return pools


def monte_carlo_curve(pools: list[QuestionPool], ks: list[int], trials: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((len(pools), len(ks)))
    for i, pool in enumerate(pools):
        codes = np.array([int(a) for a in pool.answers])  # answers 0..4; "0" is right
        for j, k in enumerate(ks):
            picks = np.argsort(rng.random((trials, len(codes))), axis=1)[:, :k]  # random k-subsets
            counts = np.stack([(codes[picks] == a).sum(axis=1) for a in range(5)], axis=1)
            top = counts.max(axis=1, keepdims=True)
            tied = counts == top
            out[i, j] = np.mean(tied[:, 0] / tied.sum(axis=1))  # a random tie-break: the share of the tie
    return out


def run(quick: bool = False) -> list[Row]:
    questions, m, trials = (50, 32, 400) if quick else (200, 64, 2000)
    pools = synthetic_pools(questions, m)
    ks = list(range(1, m + 1))
    start = time.perf_counter()
    exact = pool_curves(pools, ks).vote.mean(axis=0)
    t_exact = time.perf_counter() - start
    start = time.perf_counter()
    simulated = monte_carlo_curve(pools, ks, trials).mean(axis=0)
    t_mc = time.perf_counter() - start
    gap = float(np.max(np.abs(exact - simulated)))
    return [{"benchmark": f"curve from pools ({questions} questions × {m} samples, every K ≤ {m})",
             "result": f"exact {t_exact:.2f} s vs Monte-Carlo ({trials} trials per K) {t_mc:.2f} s: "
                       f"{t_mc / t_exact:.1f}× faster; largest gap {gap:.4f}",
             "goal": "exact, and faster", "met": verdict(t_exact < t_mc and gap < 0.02)}]  # fmt: skip


if __name__ == "__main__":
    for row in run():
        print(row)
