"""Exact theory of Vote and Filter-Vote accuracy against the number of LLM calls.

Definitions follow Chen et al., "Are More LM Calls All You Need?" (shared/specs/algorithms.md §1):
``K`` independent samples of one question are drawn from its answer distribution and the most
common answer wins; ties are broken uniformly at random among the tied answers (what the
first-seen rule of :mod:`nodes.vote` gives for exchangeable samples). The mass of the key
``None`` is "no stated answer": such samples do not vote, and if no sample votes the vote has no
answer (it is wrong).

Everything here is exact up to floating point, not Monte-Carlo:

- :func:`vote_accuracy` — Vote@K from an answer distribution (multinomial samples);
- :func:`filter_vote_accuracy` — Filter-Vote with ``k`` generations and ``k`` judge calls, given
  the probability that the judge keeps each answer, with the fall-back to all answers when none
  is kept;
- :func:`subset_vote_accuracy` — Vote@K over a uniformly random ``K``-subset of a finite pool
  of samples (multivariate hypergeometric), used for curves from real sample pools;
- :func:`pass_at_k` — the unbiased coverage estimator (Brown et al., Eq. 1);
- difficulty ``d_V`` / ``d_F``, the bi-level population model and its turning point, and the
  per-item scaling law of the paper's ``analysis.py`` with the optimal ``K`` it predicts
  (:mod:`graphs.lab.scaling_law`).

Example:
    >>> round(vote_accuracy({"42": 0.5, "41": 0.3, "40": 0.2}, correct="42", k=9), 4)
    0.6982
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = [
    "Shape",
    "bilevel_shape",
    "bilevel_vote_accuracy",
    "binary_vote_accuracy",
    "difficulty_filter",
    "difficulty_vote",
    "exact_turning_point",
    "filter_vote_accuracy",
    "is_easy",
    "monte_carlo_vote_accuracy",
    "pass_at_k",
    "subset_filter_vote_accuracy",
    "subset_vote_accuracy",
    "turning_point",
    "vote_accuracy",
]

Dist = Mapping[str | None, float]
_EPS = 1e-18  # probability mass below which an event is ignored


def _check_dist(dist: Dist) -> None:
    if any(p < 0 for p in dist.values()):
        raise ValueError("answer probabilities must be non-negative")
    total = math.fsum(dist.values())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"answer probabilities must sum to 1, got {total!r}")


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _log_binom_pmf(n: int, p: float) -> np.ndarray:
    """log P(Bin(n, p) = x) for x = 0..n, for 0 < p < 1."""
    x = np.arange(n + 1, dtype=float)
    log_fact = _log_factorials(n)
    out: np.ndarray = log_fact[n] - log_fact - log_fact[::-1] + x * math.log(p) + (n - x) * math.log1p(-p)
    return out


def _poisson_pmf(lam: float, n: int, log_fact: np.ndarray) -> np.ndarray:
    """P(Pois(lam) = y) for y = 0..n; ``log_fact[i] = log i!`` for i up to at least n."""
    if lam <= 0:
        out = np.zeros(n + 1)
        out[0] = 1.0
        return out
    y = np.arange(n + 1, dtype=float)
    pmf: np.ndarray = np.exp(y * math.log(lam) - lam - log_fact[: n + 1])
    return pmf


def _reaches(lam: float, x: int, log_fact: np.ndarray) -> bool:
    """Whether P(Pois(lam) >= x) is above the negligible level."""
    if x <= lam:
        return True
    if x > lam + 12 * math.sqrt(lam) + 40:  # far beyond any tail that matters
        return False
    return 1.0 - float(_poisson_pmf(lam, x - 1, log_fact).sum()) > _EPS


def _log_factorials(n: int) -> np.ndarray:
    return np.array([math.lgamma(i + 1) for i in range(n + 1)])


def _tie_weighted(capped: list[tuple[np.ndarray, float]], free: np.ndarray, x: int, n: int) -> float:
    """``∫₀¹ [zⁿ] free(z) · Π_j (base_j(z) + u·tie_j·zˣ) du``.

    ``base_j`` holds answer j's weights for counts below ``x``, ``tie_j`` its weight for
    exactly ``x`` (a tie with the correct answer, which then wins with probability 1/(1+T)
    when T answers tie: ∫ u^T du = 1/(1+T)). The integrand is a polynomial of degree
    ``len(capped)`` in u, so Gauss-Legendre with ``len(capped)//2 + 1`` nodes is exact; the
    products are done with FFTs of a length that leaves no wrap-around at index ``n``.
    """
    if not capped:
        return float(free[n]) if n < len(free) else 0.0
    degree = len(free) - 1 + sum(min(x, n) for _ in capped)
    length = 1 << max(4, (degree + 1).bit_length())
    f_free = np.fft.rfft(free, length)
    f_base = np.fft.rfft(np.stack([b for b, _ in capped]), length)
    phase = np.exp(-2j * np.pi * np.arange(length // 2 + 1) * x / length)
    ties = np.array([t for _, t in capped])[:, None] * phase[None, :]
    nodes, weights = np.polynomial.legendre.leggauss(len(capped) // 2 + 1)
    u = (nodes + 1) / 2
    spectra = np.prod(f_base[None, :, :] + u[:, None, None] * ties[None, :, :], axis=1) * f_free[None, :]
    values = np.fft.irfft(spectra, length)[:, n]
    return float(np.dot(weights / 2, values))


def vote_accuracy(dist: Dist, correct: str, k: int) -> float:
    """Exact probability that Vote with ``k`` i.i.d. samples returns ``correct``.

    Args:
        dist: answer -> probability (summing to 1); the key ``None`` is "no stated answer".
        correct: the correct answer (a key of ``dist``; absent means probability 0).
        k: number of samples (LLM calls).

    Ties are broken uniformly at random among the tied answers. Conditioned on the correct
    answer's count ``x``, the other answers' counts are multinomial; their joint law is
    computed as a Poisson product conditioned on its sum, so the cost is a few FFTs per ``x``
    and grows about linearly with ``k`` (``k`` in the thousands with dozens of answers is fine).

    Example:
        >>> vote_accuracy({"A": 0.6, "B": 0.4}, "A", k=1)
        0.6
        >>> round(vote_accuracy({"A": 0.6, "B": 0.4}, "A", k=2), 6)  # ties split: same as k=1
        0.6
    """
    _check_dist(dist)
    _check_k(k)
    p = float(dist.get(correct, 0.0))
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    rest = 1.0 - p
    others = [float(q) / rest for a, q in dist.items() if a != correct and a is not None and q > 0]
    none = float(dist.get(None, 0.0)) / rest
    log_px = _log_binom_pmf(k, p)
    log_fact = _log_factorials(k)
    total = 0.0
    for x in range(1, k + 1):
        if log_px[x] < math.log(_EPS):
            continue
        n = k - x
        if n == 0:
            total += math.exp(log_px[x])
            continue
        # Answers that cannot reach x (negligibly) join the free mass, with the non-answers.
        capped, free_lam = [], n * none
        for q in others:
            lam = n * q
            if not _reaches(lam, x, log_fact):
                free_lam += lam
            else:
                pmf = _poisson_pmf(lam, min(x, n), log_fact)
                tie = float(pmf[x]) if x <= n else 0.0
                base = np.zeros(n + 1)
                base[: min(x, n + 1)] = pmf[: min(x, n + 1)]
                capped.append((base, tie))
        free = _poisson_pmf(free_lam, n, log_fact)
        norm = math.exp(n * math.log(n) - n - log_fact[n])  # P(Pois(n) = n)
        total += math.exp(log_px[x]) * _tie_weighted(capped, free, x, n) / norm
    return min(1.0, max(0.0, total))


def filter_vote_accuracy(dist: Dist, keep: Mapping[str | None, float], correct: str, k: int) -> float:
    """Exact accuracy of Filter-Vote with ``k`` generations and ``k`` judge calls (``2k`` LLM calls).

    Args:
        dist: answer -> probability of a generation (``None``: no stated answer).
        keep: answer -> probability that the judge keeps a generation with that answer
            (missing answers are never kept).
        correct: the correct answer.
        k: number of generations; each is judged once.

    The vote is among the kept generations; when none is kept it is among all of them:
    ``P = Vote_k(kept, with unkept as non-votes) + P(none kept) · Vote_k(answers | not kept)``.

    Example:
        >>> d = {"A": 0.4, "B": 0.6}
        >>> round(filter_vote_accuracy(d, {"A": 0.9, "B": 0.2}, "A", k=5), 4) > round(vote_accuracy(d, "A", 5), 4)
        True
    """
    _check_dist(dist)
    _check_k(k)
    if any(not 0.0 <= v <= 1.0 for v in keep.values()):
        raise ValueError("keep probabilities must be in [0, 1]")
    kept: dict[str | None, float] = {a: p * keep.get(a, 0.0) for a, p in dist.items() if a is not None}
    kept_mass = math.fsum(kept.values())
    unkept = {a: p * (1.0 - (keep.get(a, 0.0) if a is not None else 0.0)) for a, p in dist.items()}
    unkept_mass = 1.0 - kept_mass
    accuracy = 0.0
    if kept_mass > 0:
        accuracy += vote_accuracy({**kept, None: kept.get(None, 0.0) + max(unkept_mass, 0.0)}, correct, k)
    unkept_total = math.fsum(unkept.values())
    if unkept_total > _EPS:
        fallback = {a: v / unkept_total for a, v in unkept.items() if v > 0}
        accuracy += unkept_total**k * vote_accuracy(fallback, correct, k)
    return min(1.0, max(0.0, accuracy))


def monte_carlo_vote_accuracy(dist: Dist, correct: str, k: int, trials: int = 100_000, seed: int = 0) -> float:
    """Monte-Carlo estimate of :func:`vote_accuracy` (random tie-breaking), for checks and benchmarks."""
    _check_dist(dist)
    rng = np.random.default_rng(seed)
    keys = list(dist)
    probs = np.array([dist[a] for a in keys], dtype=float)
    counts = rng.multinomial(k, probs / probs.sum(), size=trials)
    voting = np.array([a is not None for a in keys])
    counts = np.where(voting[None, :], counts, -1)
    if correct not in keys:
        return 0.0
    c = keys.index(correct)
    top = counts.max(axis=1)
    ties = (counts == top[:, None]).sum(axis=1)
    wins = (counts[:, c] == top) & (top > 0)
    return float(np.mean(np.where(wins, 1.0 / ties, 0.0)))


# --- finite pools: exact expectation over K-subsets -------------------------------------------


def _log_comb(n: int, r: int) -> float:
    if r < 0 or r > n:
        return -math.inf
    return math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)


def subset_vote_accuracy(counts: Mapping[str, int], correct: str, k: int, none: int = 0) -> float:
    """Exact Vote accuracy over a uniformly random ``k``-subset of a pool of samples.

    Args:
        counts: answer -> number of samples in the pool with that answer.
        correct: the correct answer.
        k: subset size (must not exceed the pool size).
        none: samples in the pool that state no answer.

    This is what "Vote@k from a pool of M samples" means without re-sampling: the average over
    all ``C(M, k)`` subsets, computed by a tie-tracking convolution over the answers that can
    reach the correct answer's count (the others and the non-answers factor as one binomial).

    Example:
        >>> round(subset_vote_accuracy({"A": 2, "B": 1}, "A", k=2), 12)  # AA wins, AB ties twice: (1 + 2*0.5)/3
        0.666666666667
    """
    _check_k(k)
    m_total = sum(counts.values()) + none
    if k > m_total:
        raise ValueError(f"k={k} exceeds the pool's {m_total} samples")
    n_c = int(counts.get(correct, 0))
    others = [int(v) for a, v in counts.items() if a != correct and v > 0]
    rest = m_total - n_c
    log_all = _log_comb(m_total, k)
    total = 0.0
    for x in range(1, min(n_c, k) + 1):
        n = k - x
        if n > rest:
            continue
        log_px = _log_comb(n_c, x) + _log_comb(rest, n) - log_all
        capped = [v for v in others if v >= x]
        free = rest - sum(capped)
        # state[t][j]: weight of choosing j samples among the processed answers with t ties
        state = np.exp([[_log_comb(free, j) - _log_comb(rest, n) for j in range(n + 1)]])
        log_scale = 0.0  # each answer's weights are divided by their largest, to stay finite
        for v in capped:
            logs = [_log_comb(v, y) for y in range(min(x, n + 1))] + ([_log_comb(v, x)] if x <= n else [])
            top = max(logs)
            log_scale += top
            below = np.exp(np.array(logs[: min(x, n + 1)]) - top)
            tie = math.exp(_log_comb(v, x) - top) if x <= n else 0.0
            new = np.zeros((state.shape[0] + 1, n + 1))
            for t in range(state.shape[0]):
                new[t] += np.convolve(state[t], below)[: n + 1]
                if tie:
                    new[t + 1, x:] += tie * state[t, : n + 1 - x]
            state = new
        inner = sum(float(state[t, n]) / (t + 1) for t in range(state.shape[0]))
        if inner > 0:
            total += math.exp(log_px + log_scale + math.log(inner))
    return min(1.0, max(0.0, total))


def subset_filter_vote_accuracy(
    kept: Mapping[str, int], unkept: Mapping[str, int], correct: str, k: int, kept_none: int = 0, unkept_none: int = 0
) -> float:
    """Exact Filter-Vote accuracy over a random ``k``-subset of a judged pool.

    Args:
        kept / unkept: answer -> number of pool samples the judge kept / did not keep.
        kept_none / unkept_none: samples without a stated answer, kept / not kept. A kept
            sample without an answer cannot vote, so it counts as not kept (as in
            :func:`nodes.vote.filter_then_vote`).
        k: subset size (generations; the run also makes ``k`` judge calls).
    """
    unkept_none += kept_none
    n_kept = sum(kept.values())
    n_unkept = sum(unkept.values()) + unkept_none
    accuracy = 0.0
    if n_kept:
        accuracy += subset_vote_accuracy(kept, correct, k, none=n_unkept)
    if k <= n_unkept:
        p_none_kept = math.exp(_log_comb(n_unkept, k) - _log_comb(n_kept + n_unkept, k))
        accuracy += p_none_kept * subset_vote_accuracy(unkept, correct, k, none=unkept_none)
    return min(1.0, max(0.0, accuracy))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct among ``n`` samples: ``1 - C(n-c, k) / C(n, k)``.

    Uses the stable product form ``1 - Π_{j<k} (n-c-j)/(n-j)``.

    Example:
        >>> round(pass_at_k(10, 1, 1), 12), pass_at_k(10, 1, 10), pass_at_k(10, 0, 5)
        (0.1, 1.0, 0.0)
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for j in range(k):
        prod *= (n - c - j) / (n - j)
    return 1.0 - prod


# --- difficulty and the bi-level model --------------------------------------------------------


def difficulty_vote(dist: Dist, correct: str) -> float:
    """``d_V = max_{a≠y*} P(a) − P(y*)`` over stated answers; easy iff negative."""
    best_wrong = max((p for a, p in dist.items() if a is not None and a != correct), default=0.0)
    return float(best_wrong - dist.get(correct, 0.0))


def difficulty_filter(dist: Dist, keep: Mapping[str | None, float], correct: str) -> float:
    """``d_F``: ``d_V`` of the post-filter distribution ``P(a)·keep(a)`` (renormalised)."""
    kept = {a: p * keep.get(a, 0.0) for a, p in dist.items() if a is not None}
    mass = math.fsum(kept.values())
    if mass <= 0:
        return difficulty_vote(dist, correct)  # nothing is ever kept: the fall-back decides
    return difficulty_vote({a: v / mass for a, v in kept.items()}, correct)


def is_easy(dist: Dist, correct: str) -> bool:
    """Easy: infinitely many calls make Vote right (``d_V < 0``)."""
    return difficulty_vote(dist, correct) < 0


def binary_vote_accuracy(p: float, k: int) -> float:
    """``A_p(K)``: Vote accuracy with two answers, the correct one of probability ``p``
    (closed form: the binomial upper tail plus half the tie at ``K/2``)."""
    _check_k(k)
    if p <= 0 or p >= 1:
        return float(p >= 1)
    pmf = np.exp(_log_binom_pmf(k, p))
    tie = 0.5 * pmf[k // 2] if k % 2 == 0 else 0.0
    return float(min(1.0, pmf[k // 2 + 1 :].sum() + tie))


def bilevel_vote_accuracy(alpha: float, p1: float, p2: float, k: int) -> float:
    """Task accuracy ``F(K) = α·A_{p1}(K) + (1−α)·A_{p2}(K)`` of the bi-level model."""
    return alpha * binary_vote_accuracy(p1, k) + (1 - alpha) * binary_vote_accuracy(p2, k)


Shape = str  # "inverse-U" | "U" | "increasing" | "decreasing"


def _t_r(alpha: float, p1: float, p2: float) -> tuple[float, float]:
    if not (0 < alpha < 1 and 0.5 < p1 < 1 and 0 < p2 < 0.5):
        raise ValueError("the bi-level model needs 0 < alpha < 1, 1/2 < p1 < 1 (easy) and 0 < p2 < 1/2 (hard)")
    t = alpha * (2 * p1 - 1) / ((1 - alpha) * (1 - 2 * p2))
    r = p2 * (1 - p2) / (p1 * (1 - p1))
    return t, r


def bilevel_shape(alpha: float, p1: float, p2: float) -> Shape:
    """The shape of ``F(K)`` over odd ``K``: ``sign F(K+2) − F(K) = sign(t − r^m)``, ``m=(K+1)/2``."""
    t, r = _t_r(alpha, p1, p2)
    if math.isclose(r, 1.0, rel_tol=1e-12):  # p1 + p2 = 1: every step has the sign of t - 1
        return "increasing" if t >= 1 else "decreasing"
    if r > 1:
        return "inverse-U" if t > r else "decreasing"
    return "U" if t < r else "increasing"


def turning_point(alpha: float, p1: float, p2: float) -> float:
    """The approximate turning point ``K* ≈ 2 ln t / ln r`` (where ``t = r^m``)."""
    t, r = _t_r(alpha, p1, p2)
    return 2 * math.log(t) / math.log(r)


def exact_turning_point(alpha: float, p1: float, p2: float, k_max: int = 100_001) -> int | None:
    """The odd ``K`` where ``F`` peaks (inverse-U) or bottoms out (U), from the exact sign rule;
    None for a monotone curve (or beyond ``k_max``)."""
    shape = bilevel_shape(alpha, p1, p2)
    if shape in ("increasing", "decreasing"):
        return None
    t, r = _t_r(alpha, p1, p2)  # r != 1 here
    rising_first = shape == "inverse-U"
    k = 1
    while k <= k_max:
        m = (k + 1) / 2
        rises = t > r**m
        if rises != rising_first:
            return k
        k += 2
    return None
