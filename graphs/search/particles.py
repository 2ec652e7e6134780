"""Particle filtering over reasoning steps (Puri et al., arXiv 2502.01618), and particle Gibbs.

``N`` particles (partial solutions) advance one step per round; each new step is scored by the
process scorer, and a particle's weight is ``softmax(logit(r) / T)`` over the population, ``r``
being the score of its newest step (the paper's and its_hub's rule: the PRM's probability read
as log-odds; ``T`` is exposed). When the *effective sample size* ``1 / Σ w²`` of the active
particles falls below ``ess_threshold × (their number)``, the active particles are resampled
(multinomial or systematic): a particle drawn ``m`` times gets ``m`` next steps in one request,
one drawn 0 times is dropped. Otherwise every active particle gets one next step.

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
its_hub resamples at every step (its ESS threshold only drives entropic annealing), resamples
finished particles together with active ones (so a finished particle can be copied into several
slots or dropped), and answers with the single particle of largest weight; here resampling waits
for the ESS to drop, finished particles are frozen, and the answer is a weighted vote. A
weight's temperature is the same idea as its_hub's entropic annealing temperature, but fixed.
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
        >>> particle_weights([0.9, 0.5], temperature=1e9) == [0.5, 0.5]  # hot: uniform
        True
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    if not rewards:
        return []
    logits = []
    for r in rewards:
        p = min(max(r if r is not None else 0.0, _CLIP), 1 - _CLIP)
        logits.append(math.log(p / (1 - p)) / temperature)
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = math.fsum(exps)
    return [e / total for e in exps]


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
        for i in rng.choices(range(len(weights)), weights=weights, k=k):
            counts[i] += 1
        return counts
    if method != "systematic":
        raise ValueError(f"resampling must be multinomial or systematic, got {method!r}")
    u = rng.random()
    cumulative = 0.0
    j = 0
    total = math.fsum(weights)
    for i, w in enumerate(weights):
        cumulative += w / total
        upper = k if i == len(weights) - 1 else cumulative * k  # the last bin closes at k exactly
        while j < k and j + u < upper:
            counts[i] += 1
            j += 1
    return counts


@dataclass(frozen=True)
class ParticlePolicy:
    """Particle filtering (``sweeps = 1``) or particle Gibbs as a search :class:`~graphs.search.Policy`.

    Attributes:
        temperature: ``T`` of the weights ``softmax(logit(r) / T)``.
        ess_threshold: resample when ESS < this × the active particles (0: never; 1: unless the
            weights are all equal).
        resampling: ``multinomial`` or ``systematic``.
        sweeps: particle Gibbs sweeps (1: plain particle filtering); the width is split evenly.
    """

    temperature: float = 1.0
    ess_threshold: float = 0.5
    resampling: Resampling = "multinomial"
    sweeps: int = 1
    name: str = "particle-filter"

    def particles(self, width: int) -> int:
        return max(1, width // self.sweeps)

    def first(self, width: int) -> int:
        return self.particles(width)

    def weights(self, nodes: Sequence[Node]) -> list[float]:
        return particle_weights([n["reward"] for n in nodes], self.temperature)

    def expand(self, fresh: list[Node], completed: list[Node], width: int, view: SearchView) -> list[Expansion]:
        sweep = _sweeps(view)
        start = sweep[-1]
        reference = self.reference(view, len(sweep) - 1)
        slots = self.particles(width) - (1 if reference is not None else 0)
        finished = [n for n in view.tree.values() if n["final"] and n["round"] >= start]
        active = sorted((n for n in fresh if not n["final"]), key=lambda n: n["id"])
        if active:
            population = list(active)
            if reference is not None:  # the reference's prefix of this depth competes for the slots
                depth = active[0]["depth"]
                ref = _path(view.tree, reference)
                if depth < len(ref) and not ref[depth]["final"]:
                    population.append(ref[depth])
            left = slots - len(finished)
            weights = self.weights(population)
            if effective_sample_size(weights) < self.ess_threshold * len(population):
                rng = random.Random(f"{view.seed}:resample:{view.round}")
                counts = resample(weights, left, self.resampling, rng)
            else:
                counts = [1 if n["round"] >= start else 0 for n in population]  # the reference goes on by itself
            return [{"node": n["id"], "children": c} for n, c in zip(population, counts, strict=True) if c]
        if len(sweep) < self.sweeps:  # a sweep ended: particle Gibbs starts the next one
            chosen = self.reference(view, len(sweep))
            return [{"node": 0, "children": self.particles(width) - (1 if chosen is not None else 0)}]
        return []

    def reference(self, view: SearchView, sweep: int) -> int | None:
        """The reference particle (a finished node's id) of sweep ``sweep`` (0-based; sweep 0 has none),
        drawn by weight from the previous sweep's final population with a generator fixed by the seed."""
        starts = _sweeps(view)
        if sweep == 0 or sweep > len(starts):
            return None
        lo = starts[sweep - 1]
        hi = starts[sweep] if sweep < len(starts) else math.inf
        population = [n for n in view.tree.values() if n["final"] and lo <= n["round"] < hi]
        previous = self.reference(view, sweep - 1)
        if previous is not None:
            population.append(_path(view.tree, previous)[-1])
        population = sorted((n for n in population if not n["truncated"] and n["answer"] is not None),
                            key=lambda n: n["id"])  # fmt: skip
        if not population:
            return None
        rng = random.Random(f"{view.seed}:reference:{sweep}")
        return rng.choices(population, weights=self.weights(population))[0]["id"]

    def decide(self, finished: list[Node], view: SearchView) -> Mapping[str, Any]:
        """The weighted vote over the last sweep's finished particles (and its reference)."""
        starts = _sweeps(view)
        last = [n for n in finished if n["round"] >= starts[-1]]
        reference = self.reference(view, len(starts) - 1)
        if reference is not None:
            last.append(view.tree[reference])
        everyone = [n for n in view.tree.values() if n["final"] and n["round"] >= starts[-1]]
        if reference is not None:
            everyone.append(view.tree[reference])
        weights = dict(zip((n["id"] for n in everyone), self.weights(everyone), strict=True))
        candidates = _candidates(sorted(last, key=lambda n: n["id"]))
        decision = dict(weighted_vote(candidates, weights) if weights else plurality_vote(candidates))
        decision["weights"] = {str(n["id"]): weights[n["id"]] for n in last}
        decision["sweeps"] = len(starts)
        return decision


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
        max_rounds: the round limit of each sweep.

    Example:
        >>> graph = build_particle_filter_graph(n=8, ess_threshold=0.5).compile()
    """
    if not temperature > 0:
        raise ConfigError(f"particle temperature must be positive, got {temperature!r}")
    if not 0.0 <= ess_threshold <= 1.0:
        raise ConfigError(f"ESS threshold must be from 0 to 1, got {ess_threshold!r}")
    if resampling not in ("multinomial", "systematic"):
        raise ConfigError(f"resampling must be multinomial or systematic, got {resampling!r}")
    if isinstance(sweeps, bool) or not isinstance(sweeps, int) or not 1 <= sweeps <= n:
        raise ConfigError(f"sweeps must be an integer from 1 to n ({n}), got {sweeps!r}")
    policy = ParticlePolicy(temperature, ess_threshold, resampling, sweeps)
    return build_search_graph(
        policy, n, scorer=scorer, max_rounds=max_rounds * sweeps, decide=policy.decide, retry=retry
    )
