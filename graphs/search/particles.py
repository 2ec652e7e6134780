"""Particle filtering over reasoning steps (Puri et al., arXiv 2502.01618), and particle Gibbs.

``N`` particles (partial solutions) advance one step per round; each new step is scored by the
process scorer, whose probability ``r`` is read as log-odds: a particle's log-weight is
``Σ logit(r) / T`` over its steps since its lineage was last resampled, and its weight the
softmax of that over the population (``T`` exposed). When the *effective sample size*
``1 / Σ w²`` of the active particles falls below ``ess_threshold × (their number)``, they are
resampled (multinomial or systematic): a particle drawn ``m`` times gets ``m`` next steps in one
request, one drawn 0 times is dropped, and the log-weights start again from the next step.
Otherwise every active particle gets one next step and its log-weight keeps adding up (the paper's
state-space model, where each step's reward is an observation). Resampling at every round
(``ess_threshold = 1``) makes the weight the newest step's ``softmax(logit(r) / T)``, the paper's
and its_hub's rule.

Finished particles are *absorbing*: they keep their weight and their slot, are never extended,
copied or dropped, and only the ``N − finished`` active slots are resampled (its_hub#208). The
search ends when no particle is active (or at the round limit or a budget cap); the answer is
the weighted vote over the finished particles, with the same weights.

Particle Gibbs (``sweeps > 1``) runs the filter again with ``N − 1`` fresh particles plus a
*reference* particle drawn (by weight) from the previous sweep's finished particles. The
reference is not regenerated: at each round its prefix of that depth joins the resampling
population with its own weight, and a draw of it branches a fresh particle off the reference's
prefix (conditional SMC). The answer comes from the last sweep's population.

Where this differs from its_hub 1.2.0 (``its_hub/core/algorithms/particle_gibbs.py``):

- its_hub resamples at every step (its ESS threshold only drives entropic annealing), and its
  ``ParticleFiltering`` is always multinomial (it does not pass ``resampling_method`` on);
- it resamples finished particles together with active ones, so a finished particle can be copied
  into several slots or dropped;
- it answers with the single particle of largest weight, including particles stopped at
  ``max_steps`` without an answer; here the answer is a weighted vote, and particles still active
  at the round limit never vote;
- its weight is its PRM's score of the whole prefix (however that PRM aggregates steps); here the
  scorer scores the newest step given the prefix;
- its particle Gibbs reference competes at every step with its *final* weight, and a draw of it
  after it finished copies a finished particle; here the reference's prefix of the current depth
  competes with its own weight, until the reference ends;
- its budget must divide by the number of sweeps (here too), and a temperature comes only with
  entropic annealing, where here it is fixed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langgraph.graph import StateGraph
from langgraph.types import RetryPolicy

from graphs.compose import QuestionInput
from graphs.search.graph import (
    Expansion,
    Node,
    SearchOutput,
    SearchView,
    _candidates,
    build_search_graph,
)
from nodes.context import RunContext
from nodes.endpoint import RETRY_POLICY
from nodes.errors import ConfigError
from nodes.scorers import Scorer
from nodes.vote import plurality_vote, weighted_vote

__all__ = [
    "ParticlePolicy",
    "Resampling",
    "build_particle_filter_graph",
    "check_sweeps",
    "effective_sample_size",
    "particle_weights",
    "resample",
]

Resampling = Literal["multinomial", "systematic"]
_CLIP = 1e-7


def particle_weights(rewards: Sequence[float | None], temperature: float = 1.0) -> list[float]:
    """Normalised particle weights ``softmax(logit(r) / T)`` (a missing score counts as ``r ≈ 0``).

    Example:
        >>> [round(w, 3) for w in particle_weights([0.9, 0.5, 0.5])]
        [0.818, 0.091, 0.091]
        >>> [round(w, 6) for w in particle_weights([0.9, 0.5], temperature=1e9)]  # hot: uniform
        [0.5, 0.5]
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    return _softmax([_log_odds(r, temperature) for r in rewards])


def _log_odds(reward: float | None, temperature: float) -> float:
    """``logit(r) / T``, ``r`` clipped away from 0 and 1 (a missing or NaN score counts as ``r ≈ 0``)."""
    p = min(max(reward if reward is not None and not math.isnan(reward) else 0.0, _CLIP), 1 - _CLIP)
    return math.log(p / (1 - p)) / temperature


def effective_sample_size(weights: Sequence[float]) -> float:
    """``1 / Σ w²`` of normalised weights: ``N`` when they are equal, 1 when one has them all.

    Example:
        >>> effective_sample_size([0.25] * 4), effective_sample_size([1.0, 0.0, 0.0])
        (4.0, 1.0)
    """
    return 1.0 / math.fsum(w * w for w in weights) if weights else 0.0


def resample(weights: Sequence[float], k: int, method: Resampling, rng: random.Random) -> list[int]:
    """How many of ``k`` draws each particle gets, in the order of ``weights`` (which sum to 1).

    ``multinomial``: ``k`` independent draws by weight. ``systematic``: one uniform ``u``, draws at
    ``(i + u) / k``; each particle gets ``floor(k·w)`` or ``ceil(k·w)`` draws, ``k·w`` on average.

    Example:
        >>> resample([0.5, 0.25, 0.25], 4, "systematic", random.Random(0))
        [2, 1, 1]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    counts = [0] * len(weights)
    if k == 0:
        return counts
    if not weights:
        raise ValueError(f"cannot draw {k} particles from none")
    if method == "multinomial":
        if not math.fsum(weights) > 0:
            raise ValueError(f"weights must have a positive sum, got {math.fsum(weights)!r}")
        for i in rng.choices(range(len(weights)), weights=weights, k=k):
            counts[i] += 1
        return counts
    if method != "systematic":
        raise ValueError(f"resampling must be multinomial or systematic, got {method!r}")
    total = math.fsum(weights)
    if not total > 0:
        raise ValueError(f"weights must have a positive sum, got {total!r}")
    u = rng.random()
    cumulative = 0.0
    j = 0
    for i, w in enumerate(weights):
        cumulative += w / total
        upper = k if i == len(weights) - 1 else cumulative * k  # the last bin closes at k exactly
        while j < k and j + u < upper:
            counts[i] += 1
            j += 1
    return counts


@dataclass
class _Replay:
    """One sweep's particles replayed round by round: log-weights, resampling decisions, the reference."""

    start: int  # the sweep's first round
    rounds: list[int]  # its rounds so far, in order
    log_weight: dict[int, float]  # node id -> accumulated log-weight (this sweep's particles and reference path)
    population: dict[int, list[Node]]  # round -> the active particles then (the reference's prefix included)
    resampled: dict[int, bool]  # round -> whether the active particles made then were resampled
    reference: list[Node]  # the reference's path from the root ([] without one)
    finished: list[Node]  # the sweep's finished particles, the reference's end included


@dataclass(frozen=True)
class ParticlePolicy:
    """Particle filtering (``sweeps = 1``) or particle Gibbs as a search :class:`~graphs.search.Policy`.

    A particle's log-weight is ``Σ logit(r) / T`` over its steps since its lineage was last
    resampled (so with resampling at every round it is the newest step's ``logit(r) / T``, as in
    the paper); the weights are its softmax over the population. The policy keeps no state of its
    own: every round it replays the sweep from the tree, so a resumed checkpoint decides the same.

    Attributes:
        temperature: ``T`` of the weights.
        ess_threshold: resample when ESS < this × the active particles (0: never; 1: unless the
            weights are all equal).
        resampling: ``multinomial`` or ``systematic``.
        sweeps: particle Gibbs sweeps (1: plain particle filtering); the width is split evenly.
        max_rounds: the round limit of each sweep; a sweep's particles still active at it never vote.
    """

    temperature: float = 1.0
    ess_threshold: float = 0.5
    resampling: Resampling = "multinomial"
    sweeps: int = 1
    max_rounds: int = 40
    name: str = "particle-filter"

    def particles(self, width: int) -> int:
        return max(1, width // self.sweeps)

    def first(self, width: int) -> int:
        return self.particles(width)

    def _resamples(self, log_weights: Sequence[float]) -> bool:
        weights = _softmax(log_weights)
        # the tolerance keeps equal weights (ESS = N up to rounding) from counting as a drop
        return effective_sample_size(weights) < self.ess_threshold * len(weights) * (1 - 1e-9)

    def replay(self, view: SearchView, sweep: int) -> _Replay:
        """Sweep ``sweep`` (0-based) as the tree has it: its log-weights and resampling decisions."""
        starts = _sweeps(view)
        start = starts[sweep]
        end = starts[sweep + 1] if sweep + 1 < len(starts) else math.inf
        chosen = self.reference(view, sweep)
        path = _path(view.tree, chosen) if chosen is not None else []
        made: dict[int, list[Node]] = {}
        for n in view.tree.values():
            if n["parent"] is not None and start <= n["round"] < end:
                made.setdefault(n["round"], []).append(n)
        out = _Replay(start, sorted(made), {}, {}, {}, path, [])
        last = max(made, default=start)
        for r in range(start, max(last, start + len(path) - 2) + 1):
            depth = r - start + 1
            nodes = sorted(made.get(r, []), key=lambda n: n["id"])
            if depth < len(path):
                nodes.append(path[depth])  # the reference's prefix of this depth
            carry = r > start and not out.resampled.get(r - 1, False)
            for n in nodes:
                inherited = out.log_weight.get(n["parent"], 0.0) if carry and n["parent"] is not None else 0.0
                out.log_weight[n["id"]] = _log_odds(n["reward"], self.temperature) + inherited
            active = [n for n in nodes if not n["final"]]
            out.population[r] = active
            free = [n for n in active if n["round"] >= start]
            out.resampled[r] = r <= last and bool(free) and self._resamples([out.log_weight[n["id"]] for n in active])
        out.finished = sorted((n for ns in made.values() for n in ns if n["final"]), key=lambda n: n["id"])
        if path:
            out.finished.append(path[-1])
        return out

    def expand(self, fresh: list[Node], completed: list[Node], width: int, view: SearchView) -> list[Expansion]:
        starts = _sweeps(view)
        sweep = len(starts) - 1
        state = self.replay(view, sweep)
        now = max(state.rounds, default=state.start)
        free = [n for n in state.population.get(now, []) if n["round"] >= state.start]
        if free and now - state.start + 1 < self.max_rounds:
            population = state.population[now]
            if state.resampled[now]:
                left = self.particles(width) - (1 if state.reference else 0)
                left -= sum(1 for n in state.finished if n["round"] >= state.start)
                weights = _softmax([state.log_weight[n["id"]] for n in population])
                counts = resample(weights, left, self.resampling, random.Random(f"{view.seed}:resample:{view.round}"))
            else:
                counts = [1 if n["round"] >= state.start else 0 for n in population]  # the reference goes on itself
            return [{"node": n["id"], "children": c} for n, c in zip(population, counts, strict=True) if c]
        if len(starts) < self.sweeps:  # the sweep ended: particle Gibbs starts the next one
            chosen = self.reference(view, len(starts))
            return [{"node": 0, "children": self.particles(width) - (1 if chosen is not None else 0)}]
        return []

    def reference(self, view: SearchView, sweep: int) -> int | None:
        """The reference particle (a finished node's id) of sweep ``sweep`` (0-based; sweep 0 has none):
        drawn by weight from the previous sweep's finished particles that state an answer (its
        reference's end included), with a generator fixed by the seed and the sweep."""
        if sweep == 0 or sweep > len(_sweeps(view)):
            return None
        before = self.replay(view, sweep - 1)
        population = [n for n in before.finished if not n["truncated"] and n["answer"] is not None]
        if not population:
            return None
        weights = _softmax([before.log_weight[n["id"]] for n in population])
        return random.Random(f"{view.seed}:reference:{sweep}").choices(population, weights=weights)[0]["id"]

    def decide(self, finished: list[Node], view: SearchView) -> Mapping[str, Any]:
        """The weighted vote over the last sweep's finished particles (and its reference's end)."""
        starts = _sweeps(view)
        state = self.replay(view, len(starts) - 1)
        weights = dict(
            zip(
                (n["id"] for n in state.finished),
                _softmax([state.log_weight[n["id"]] for n in state.finished]),
                strict=True,
            )
        )
        answering = {n["id"] for n in finished}
        voters = [n for n in state.finished if n["id"] in answering]
        candidates = _candidates(voters)
        decision = dict(weighted_vote(candidates, weights) if weights else plurality_vote(candidates))
        decision["weights"] = {str(n["id"]): weights[n["id"]] for n in voters}
        decision["sweeps"] = len(starts)
        decision["resampled"] = sum(state.resampled.values())
        return decision


def _softmax(log_weights: Sequence[float]) -> list[float]:
    if not log_weights:
        return []
    top = max(log_weights)
    exps = [math.exp(v - top) for v in log_weights]
    total = math.fsum(exps)
    return [e / total for e in exps]


def _sweeps(view: SearchView) -> list[int]:
    """The first round of each sweep so far (the rounds in which the root got children)."""
    return sorted({n["round"] for n in view.tree.values() if n["parent"] == 0}) or [0]


def _path(tree: Mapping[int, Node], node: int) -> list[Node]:
    """The nodes from the root (index 0) to ``node`` (index = depth)."""
    out = [tree[node]]
    parent = out[-1]["parent"]
    while parent is not None:
        out.append(tree[parent])
        parent = out[-1]["parent"]
    return out[::-1]


def build_particle_filter_graph(
    n: int = 16,
    *,
    temperature: float = 1.0,
    ess_threshold: float = 0.5,
    resampling: Resampling = "multinomial",
    sweeps: int = 1,
    scorer: Scorer | None = None,
    max_rounds: int = 40,
    retry: RetryPolicy = RETRY_POLICY,
) -> StateGraph[Any, RunContext, QuestionInput, SearchOutput]:
    """Build particle filtering with ``n`` particles (particle Gibbs: ``n / sweeps`` a sweep).

    Args:
        n: particles (the width; with ``sweeps > 1`` the particles of all sweeps together).
        temperature: ``T`` of the weights ``softmax(logit(r) / T)``.
        ess_threshold: resample when the effective sample size is below this fraction of the
            active particles (0 never, 1 at every round unless the weights are equal).
        resampling: ``multinomial`` or ``systematic``.
        sweeps: particle Gibbs sweeps (1: particle filtering).
        scorer: the process reward model (default :class:`nodes.scorers.SelfEvalPRM`).
        max_rounds: the round limit of each sweep (its particles still active then never vote).

    Example:
        >>> graph = build_particle_filter_graph(n=8, ess_threshold=0.5).compile()
    """
    if not temperature > 0:
        raise ConfigError(f"particle temperature must be positive, got {temperature!r}")
    if not 0.0 <= ess_threshold <= 1.0:
        raise ConfigError(f"ESS threshold must be from 0 to 1, got {ess_threshold!r}")
    if resampling not in ("multinomial", "systematic"):
        raise ConfigError(f"resampling must be multinomial or systematic, got {resampling!r}")
    check_sweeps(n, sweeps)
    policy = ParticlePolicy(temperature, ess_threshold, resampling, sweeps, max_rounds)
    return build_search_graph(
        policy, n, scorer=scorer, max_rounds=max_rounds * sweeps, decide=policy.decide, retry=retry
    )


def check_sweeps(n: int, sweeps: int) -> None:
    """A :class:`~nodes.errors.ConfigError` unless ``sweeps`` is 1, or divides ``n`` into sweeps of 2
    particles or more (one reference and at least one free particle)."""
    if isinstance(sweeps, bool) or not isinstance(sweeps, int) or sweeps < 1:
        raise ConfigError(f"sweeps must be a positive integer, got {sweeps!r}")
    if sweeps > 1 and (n % sweeps or n // sweeps < 2):
        raise ConfigError(f"particle Gibbs splits n = {n} evenly into {sweeps} sweeps of 2 particles or more")
