"""Particle filtering, particle Gibbs and MCTS against references computed here, on fake models
whose steps and step rewards are known (the rewards come from a table, not from the library)."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from langgraph.types import RetryPolicy
from scipy.stats import binomtest, chi2, chisquare

from graphs.registry import get as get_strategy
from graphs.search import (
    MCTSPolicy,
    SearchView,
    build_mcts_graph,
    build_particle_filter_graph,
    effective_sample_size,
    particle_weights,
    resample,
)
from graphs.search.graph import Node
from nodes import ConfigError, RunContext, is_transient
from nodes.scorers import Scored, SelfEvalPRM
from nodes.step import STEP_INSTRUCTION
from tests.fakes import FakeServer, Request, tokens
from tests.test_graph_search import children_of

FAST_RETRY = RetryPolicy(
    initial_interval=0.001, max_interval=0.001, max_attempts=2, jitter=False, retry_on=is_transient
)
KINDS = ("alpha", "beta", "gamma", "delta")
TABLE = {"alpha": 0.9, "beta": 0.7, "gamma": 0.5, "delta": 0.2, "answer": 0.6}


@dataclass(frozen=True)
class TableScorer:
    """A process scorer that reads the last step's kind from the table (no LLM call)."""

    table: dict[str, float]
    name: str = "table"
    process: bool = True

    async def score(self, question: str, solution: str, ctx: RunContext) -> Scored:
        last = [s for s in solution.split("\n\n") if s.strip()][-1]
        return Scored(steps=[next(r for k, r in self.table.items() if k in last)])


def kinds_stepper(finish_at: int = 99, finish_kind: str | None = None) -> Any:
    """Choice ``i`` of a request is step kind ``KINDS[i % 4]``; a solution ends with an answer at
    depth ``finish_at``, or right after a step of ``finish_kind``."""

    def reply(req: Request) -> str:
        prefix = req.prompt.split(STEP_INSTRUCTION, 1)[1]
        done = prefix.count("Step ")
        if done >= finish_at or (finish_kind is not None and finish_kind in prefix.rsplit("Step ", 1)[-1]):
            return "Final step. The answer is 42."
        return f"Step {done + 1}: {KINDS[req.choice % len(KINDS)]} move.\n\n"

    return reply


def depth_stepper(kinds_at: dict[int, tuple[str, ...]], finish_at: int) -> Any:
    """Choice ``i`` of a request at depth ``d`` is step kind ``kinds_at[d][i]`` (default alpha)."""

    def reply(req: Request) -> str:
        prefix = req.prompt.split(STEP_INSTRUCTION, 1)[1]
        done = prefix.count("Step ")
        if done >= finish_at:
            return "Final step. The answer is 42."
        kinds = kinds_at.get(done + 1, ("alpha",))
        return f"Step {done + 1}: {kinds[req.choice % len(kinds)]} move.\n\n"

    return reply


def kind(node: dict[str, Any]) -> str:
    return next(k for k in (*KINDS, "answer") if k in node["prefix"].rsplit("Step ", 1)[-1])


async def run(graph: Any, fake: FakeServer, seed: int = 0, **settings: Any) -> dict[str, Any]:
    ctx = fake.context(max_tokens=64, seed=seed, **settings)
    return await graph.ainvoke({"question": "What is 20+22?"}, context=ctx)


# -- the pure functions --------------------------------------------------------------------------


def test_particle_weights_are_a_softmax_of_log_odds() -> None:
    rewards = [0.9, 0.7, 0.5, 0.2]
    odds = [r / (1 - r) for r in rewards]  # softmax(logit(r)) = odds / sum of odds
    assert particle_weights(rewards) == pytest.approx([o / sum(odds) for o in odds])
    hot = [o**0.5 for o in odds]  # T = 2: odds^(1/T)
    assert particle_weights(rewards, 2.0) == pytest.approx([h / sum(hot) for h in hot])
    assert effective_sample_size([0.5, 0.5]) == 2.0
    with pytest.raises(ValueError):
        particle_weights([0.5], 0.0)


def test_multinomial_resampling_matches_its_distribution() -> None:
    weights = particle_weights([0.9, 0.7, 0.5, 0.2])
    totals = [0] * 4
    for seed in range(2000):
        for i, c in enumerate(resample(weights, 4, "multinomial", random.Random(seed))):
            totals[i] += c
    assert sum(totals) == 8000
    assert chisquare(totals, [8000 * w for w in weights]).pvalue > 0.001


class _Grid:
    """A stand-in generator whose uniform draws sweep a fine grid over [0, 1)."""

    def __init__(self, points: int) -> None:
        self.points, self.i = points, 0

    def random(self) -> float:
        self.i += 1
        return (self.i - 0.5) / self.points


def test_systematic_resampling_is_exact_in_expectation() -> None:
    weights = particle_weights([0.9, 0.7, 0.5, 0.2])
    grid = _Grid(10_000)
    totals = [0] * 4
    for _ in range(10_000):
        counts = resample(weights, 4, "systematic", grid)  # type: ignore[arg-type]
        assert sum(counts) == 4
        for i, (c, w) in enumerate(zip(counts, weights, strict=True)):
            assert math.floor(4 * w) <= c <= math.ceil(4 * w)  # the low-variance property
            totals[i] += c
    # over a uniform grid of u the mean count is k·w up to the grid's resolution
    assert [t / 10_000 for t in totals] == pytest.approx([4 * w for w in weights], abs=1e-3)


def test_resample_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        resample([1.0], -1, "multinomial", random.Random(0))
    with pytest.raises(ValueError):
        resample([1.0], 2, "stratified", random.Random(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        resample([], 2, "multinomial", random.Random(0))


# -- particle filtering through the graph ------------------------------------------------------


@pytest.mark.parametrize("method", ["multinomial", "systematic"])
async def test_resampling_in_the_graph_follows_the_weights(method: str) -> None:
    """Round 0 always yields one particle of each kind (choices 0..3), so each run's round-1
    children are one draw of 4 from the known weights; over 150 seeded runs the counts per kind
    must pass a chi-square test (multinomial) or stay within floor/ceil of 4w (systematic)."""
    fake = FakeServer(reply=kinds_stepper())
    graph = build_particle_filter_graph(
        4,
        ess_threshold=1.0,
        resampling=method,
        scorer=TableScorer(TABLE),
        max_rounds=2,
        retry=FAST_RETRY,  # type: ignore[arg-type]
    ).compile()
    expected = particle_weights([TABLE[k] for k in KINDS])
    totals: Counter[str] = Counter()
    runs = 150
    for seed in range(runs):
        out = await run(graph, fake, seed)
        kids = children_of(out["nodes"])
        first = [n for n in out["nodes"] if n["depth"] == 1]
        assert sorted(kind(n) for n in first) == sorted(KINDS)
        counts = {kind(n): len(kids[n["id"]]) for n in first}
        assert sum(counts.values()) == 4
        if method == "systematic":
            assert all(math.floor(4 * w) <= counts[k] <= math.ceil(4 * w) for k, w in zip(KINDS, expected, strict=True))
        totals.update(counts)
    observed = [totals[k] for k in KINDS]
    statistic = sum((o - 4 * runs * w) ** 2 / (4 * runs * w) for o, w in zip(observed, expected, strict=True))
    assert statistic < chi2.ppf(0.999, df=3)


async def test_resampling_waits_for_the_effective_sample_size_to_drop() -> None:
    """Equal weights never trigger resampling; skewed ones do, exactly when 1/Σw² < threshold·N."""
    flat = {k: 0.5 for k in KINDS} | {"answer": 0.5}
    fake = FakeServer(reply=kinds_stepper(finish_at=3))
    graph = build_particle_filter_graph(4, ess_threshold=0.99, scorer=TableScorer(flat), retry=FAST_RETRY).compile()
    out = await run(graph, fake)
    kids = children_of(out["nodes"])
    assert all(len(kids[n["id"]]) == 1 for n in out["nodes"] if n["parent"] is not None and not n["final"])

    for threshold in (0.3, 0.6, 0.9):
        graph = build_particle_filter_graph(
            4, ess_threshold=threshold, scorer=TableScorer(TABLE), max_rounds=2, retry=FAST_RETRY
        ).compile()
        odds = [TABLE[k] / (1 - TABLE[k]) for k in KINDS]
        ess = sum(odds) ** 2 / sum(o * o for o in odds)  # 1/Σw² with w = odds / Σ odds: 2.43 of 4
        for seed in range(5):
            out = await run(graph, fake, seed)
            kids = children_of(out["nodes"])
            counts = [len(kids[n["id"]]) for n in out["nodes"] if n["depth"] == 1]
            if ess < threshold * 4:
                assert sum(counts) == 4
            else:
                assert counts == [1, 1, 1, 1]


async def test_finished_particles_keep_their_slot_and_never_grow() -> None:
    """A gamma step ends its solution next round; finished particles are never extended, copied
    or dropped, and the active particles always fill exactly the slots left."""
    fake = FakeServer(reply=kinds_stepper(finish_at=4, finish_kind="gamma"))
    graph = build_particle_filter_graph(8, ess_threshold=1.0, scorer=TableScorer(TABLE), retry=FAST_RETRY).compile()
    for seed in range(10):
        out = await run(graph, fake, seed)
        nodes = out["nodes"]
        kids = children_of(nodes)
        assert all(not kids[n["id"]] for n in nodes if n["final"])
        rounds = max(n["round"] for n in nodes)
        for r in range(rounds + 1):
            finished_before = sum(1 for n in nodes if n["final"] and 0 <= n["round"] < r)
            made = [n for n in nodes if n["round"] == r]
            assert len(made) == 8 - finished_before
        assert all(n["final"] for n in nodes if n["round"] == rounds)
        # the answer is the weighted vote over the finished particles, weights from their own scores
        finished = [n for n in nodes if n["final"]]
        weights = particle_weights([n["reward"] for n in finished])
        assert out["decision"]["weights"] == {
            str(n["id"]): pytest.approx(w) for n, w in zip(finished, weights, strict=True)
        }
        assert out["answer"] == "42"


async def test_particle_gibbs_keeps_a_reference_from_the_last_sweep() -> None:
    fake = FakeServer(reply=kinds_stepper(finish_at=3))
    graph = build_particle_filter_graph(
        6, sweeps=2, ess_threshold=1.0, scorer=TableScorer(TABLE), retry=FAST_RETRY
    ).compile()
    for seed in range(5):
        out = await run(graph, fake, seed)
        nodes = {n["id"]: n for n in out["nodes"]}
        kids = children_of(out["nodes"])
        starts = sorted({n["round"] for n in nodes.values() if n["parent"] == 0})
        assert len(starts) == 2 and len(kids[0]) == 3 + 2  # 3 particles, then 2 free ones and the reference
        assert out["decision"]["sweeps"] == 2
        second = [n for n in nodes.values() if n["round"] >= starts[1]]
        # sweep 2's particles come from the root or branch off a finished sweep-1 particle's path
        for n in second:
            parent = nodes[n["parent"]]
            assert parent["id"] == 0 or parent["round"] >= starts[1] or not parent["final"]
        voted = {int(i) for i in out["decision"]["weights"]}
        reference = voted - {n["id"] for n in second}
        assert len(reference) == 1 and nodes[reference.pop()]["round"] < starts[1]
        assert all(not kids[n["id"]] for n in nodes.values() if n["final"])


async def test_particle_filter_budget_is_exact_in_the_ledger() -> None:
    """With the self-evaluation PRM on the fake server, every step sample and every PRM call is
    in the ledger, and a call cap stops the search within it."""

    def reply(req: Request) -> str:
        if "Is the last step of this solution correct?" in req.prompt:
            return (
                "Yes" if "alpha" in req.prompt.rsplit("Solution so far:", 1)[-1].split("Is the last")[0][-40:] else "No"
            )
        return kinds_stepper(finish_at=3)(req)

    fake = FakeServer(reply=reply)
    graph = build_particle_filter_graph(4, scorer=SelfEvalPRM(), retry=FAST_RETRY).compile()
    out = await run(graph, fake)
    made = [n for n in out["nodes"] if n["parent"] is not None]
    assert out["ledger"]["step"]["calls"] == len(made)
    assert out["ledger"]["step"]["completion_tokens"] == sum(
        tokens(n["prefix"][len(p["prefix"]) :]) for n in made for p in out["nodes"] if p["id"] == n["parent"]
    )
    prm = [b for b in fake.requests if "Is the last step" in str(b["messages"])]
    assert out["ledger"]["verify"]["calls"] == len(prm) == len(made)
    steps = sum(1 for b in fake.requests if "Is the last step" not in str(b["messages"]))
    assert out["ledger"]["step"]["requests"] == steps

    from nodes import Budget

    capped = await run(graph, fake, budget=Budget(max_calls=10))
    assert capped["budget"]["exhausted"]
    assert sum(u["calls"] for u in capped["ledger"].values()) <= 10


def test_particle_filter_refuses_bad_settings() -> None:
    for bad in ({"temperature": 0.0}, {"ess_threshold": 1.5}, {"resampling": "residual"}, {"sweeps": 5},
                {"sweeps": 3}, {"sweeps": 4}):  # fmt: skip
        with pytest.raises(ConfigError):
            build_particle_filter_graph(4, **bad)  # type: ignore[arg-type]
    build_particle_filter_graph(4, sweeps=2)  # two sweeps of two particles: a reference and a free one


# -- MCTS ---------------------------------------------------------------------------------------


def good_bad_stepper(req: Request) -> str:
    """Choice 0 is a good step, choice 1 a bad one; solutions end with an answer at depth 4."""
    prefix = req.prompt.split(STEP_INSTRUCTION, 1)[1]
    done = prefix.count("Step ")
    if done >= 4:
        return f"The answer is {42 if prefix.count('good') >= 3 else 41}."
    return f"Step {done + 1}: {'good' if req.choice % 2 == 0 else 'bad'} move.\n\n"


GOOD_BAD = {"good": 0.8, "bad": 0.3, "answer": 0.6}


async def test_uct_choice_sequence_matches_a_hand_computation() -> None:
    """Sequential UCT (n = M = 2, C = 1), rewards good 0.8 and bad 0.3. By hand:
    round 0: the root gets G (0.8) and B (0.3).
    round 1: N(root)=2; UCT(G) = 0.8 + sqrt(ln 2) = 1.633 > UCT(B) = 1.133: expand G -> GG, GB.
    round 2: N(root)=4, G: N=3 W=1.9; UCT(G) = 0.633 + sqrt(ln 4 / 3) = 1.313,
             UCT(B) = 0.3 + sqrt(ln 4) = 1.477: expand B -> BG, BB.
    round 3: N(root)=6, G: N=3 Q=0.633, B: N=3 W=1.4 Q=0.467; UCT(G) = 0.633 + sqrt(ln 6 / 3) = 1.404
             > UCT(B) = 1.238: go to G (N=3); UCT(GG) = 0.8 + sqrt(ln 3) = 1.848 > UCT(GB) = 1.348: expand GG.
    round 4: N(root)=8, G: N=5 W=1.9+1.1=3.0 Q=0.6, B: N=3 Q=0.467;
             UCT(G) = 0.6 + sqrt(ln 8 / 5) = 1.245, UCT(B) = 0.467 + sqrt(ln 8 / 3) = 1.300: expand in B;
             B (N=3): UCT(BG) = 0.8 + sqrt(ln 3) = 1.848 > UCT(BB): expand BG."""
    fake = FakeServer(reply=good_bad_stepper)
    graph = build_mcts_graph(
        2, 2, exploration=1.0, scorer=TableScorer(GOOD_BAD), max_rounds=5, retry=FAST_RETRY
    ).compile()
    out = await run(graph, fake)
    nodes = {n["id"]: n for n in out["nodes"]}
    kids = children_of(out["nodes"])

    def name(n: dict[str, Any]) -> str:
        return "".join("G" if "good" in s else "B" for s in n["prefix"].split("\n\n") if s.startswith("Step"))

    expanded = {r: {name(nodes[c["parent"]]) for c in nodes.values() if c["round"] == r} for r in range(5)}
    assert expanded == {0: {""}, 1: {"G"}, 2: {"B"}, 3: {"GG"}, 4: {"BG"}}
    assert all(len(kids[i]) in (0, 2) for i in nodes)


def textbook_uct(width: int, m: int, c: float, rounds: int, depth: int = 4) -> list[set[str]]:
    """A plain reference: explicit nodes, visits and values back-propagated along paths, a
    virtual loss added and removed per round, and a node whose children have all finished expanded
    again; returns the names of the nodes expanded each round."""
    tree: dict[int, dict[str, Any]] = {0: {"name": "", "parent": None, "kids": [], "n": 0, "w": 0.0, "final": False}}

    def add(parent: int, good: bool) -> None:
        name = tree[parent]["name"] + ("G" if good else "B")
        final = len(name) > depth
        reward = GOOD_BAD["answer"] if final else GOOD_BAD["good" if good else "bad"]
        i = len(tree)
        tree[i] = {"name": name, "parent": parent, "kids": [], "n": 0, "w": 0.0, "final": final}
        tree[parent]["kids"].append(i)
        j: int | None = i
        while j is not None:  # back-propagation
            tree[j]["n"] += 1
            tree[j]["w"] += reward
            j = tree[j]["parent"]

    def expand(leaf: int) -> list[tuple[int, bool]]:
        ends = len(tree[leaf]["name"]) >= depth
        return [(leaf, True), (leaf, True)] if ends else [(leaf, False), (leaf, True)]  # "bad" < "good"

    def pick(taken: set[int]) -> int | None:
        def available(i: int) -> bool:
            t = tree[i]
            if t["final"]:
                return False
            if not t["kids"] or all(tree[k]["final"] for k in t["kids"]):
                return i not in taken  # a leaf, or a node whose children all finished
            return any(available(k) for k in t["kids"])

        if not available(0):
            return None
        i = 0
        while True:
            options = [k for k in tree[i]["kids"] if available(k)]
            if not options:
                return i
            log_n = math.log(max(tree[i]["n"], 1))
            i = max(
                options, key=lambda k: (round(tree[k]["w"] / tree[k]["n"] + c * math.sqrt(log_n / tree[k]["n"]), 9), -k)
            )

    out = [{""}]
    for child in expand(0):
        add(*child)
    for _ in range(1, rounds):
        finished = sum(1 for t in tree.values() if t["final"])
        if finished >= width:
            break
        taken: list[int] = []
        for _ in range(max(1, width // m)):
            leaf = pick(set(taken))
            if leaf is None:
                break
            taken.append(leaf)
            j: int | None = leaf
            while j is not None:  # virtual loss
                tree[j]["n"] += 1
                j = tree[j]["parent"]
        for leaf in taken:
            j = leaf
            while j is not None:
                tree[j]["n"] -= 1
                j = tree[j]["parent"]
        if not taken:
            break
        out.append({tree[leaf]["name"] for leaf in taken})
        for child in sorted((c for leaf in taken for c in expand(leaf)), key=lambda c: (c[0], c[1])):
            add(*child)
    return out


@pytest.mark.parametrize(
    ("width", "c", "depth"),
    [
        (2, 0.3, 4),
        (2, 1.0, 4),
        (2, 2.5, 4),
        (4, 0.5, 4),
        (4, 1.4, 4),
        (6, 1.0, 4),
        (8, 0.7, 4),
        (8, 1.0, 1),
        (12, 0.5, 2),
    ],
)
async def test_uct_matches_a_textbook_reference(width: int, c: float, depth: int) -> None:
    """Sequential (n = M) and batched (n / M nodes a round, virtual loss) UCT, saturated nodes
    expanded again, against the reference above."""

    def stepper(req: Request) -> str:  # a finished solution after four steps, whatever they were
        prefix = req.prompt.split(STEP_INSTRUCTION, 1)[1]
        done = prefix.count("Step ")
        if done >= depth:
            return "The answer is 42."
        return f"Step {done + 1}: {'good' if req.choice % 2 == 0 else 'bad'} move.\n\n"

    fake = FakeServer(reply=stepper)
    graph = build_mcts_graph(
        width, 2, exploration=c, scorer=TableScorer(GOOD_BAD), max_rounds=12, retry=FAST_RETRY
    ).compile()
    out = await run(graph, fake)
    nodes = {n["id"]: n for n in out["nodes"]}

    def name(n: dict[str, Any]) -> str:
        return "".join("G" if "good" in s else "B" for s in n["prefix"].split("\n\n") if s.startswith("Step"))

    last = max(n["round"] for n in nodes.values())
    expanded = [{name(nodes[c["parent"]]) for c in nodes.values() if c["round"] == r} for r in range(last + 1)]
    assert expanded == textbook_uct(width, 2, c, 12, depth)
    if depth == 1:  # both first steps' children finished early: they were expanded again to reach n solutions
        assert sum(n["final"] for n in nodes.values()) >= width


async def test_mcts_batches_leaves_with_a_virtual_loss_and_answers_by_visits_or_value() -> None:
    fake = FakeServer(reply=good_bad_stepper)
    for answer_by in ("visits", "value"):
        graph = build_mcts_graph(
            4,
            2,
            scorer=TableScorer(GOOD_BAD),
            answer_by=answer_by,
            retry=FAST_RETRY,  # type: ignore[arg-type]
        ).compile()
        out = await run(graph, fake)
        nodes = out["nodes"]
        kids = children_of(nodes)
        for r in range(1, max(n["round"] for n in nodes) + 1):
            parents = {n["parent"] for n in nodes if n["round"] == r}
            assert len(parents) <= 2  # n / M = 2 distinct leaves a round, never one twice
        assert all(not kids[n["id"]] for n in nodes if n["final"])
        finished = [n for n in nodes if n["final"]]
        assert out["decision"]["stopped"] == "search finished" and len(finished) >= 4
        chosen = next(n for n in nodes if n["id"] == out["decision"]["node"])
        assert chosen["final"] and out["answer"] == chosen["answer"]
        if answer_by == "value":
            assert chosen["reward"] == max(n["reward"] for n in finished)


async def test_mcts_rollout_evaluation_is_in_the_ledger() -> None:
    fake = FakeServer(reply=good_bad_stepper)
    graph = build_mcts_graph(2, 2, rollout=2, scorer=TableScorer(GOOD_BAD), max_rounds=3, retry=FAST_RETRY).compile()
    out = await run(graph, fake)
    unfinished = [n for n in out["nodes"] if n["parent"] is not None and not n["final"]]
    assert out["ledger"]["lookahead"]["calls"] == len(unfinished)


def test_mcts_refuses_bad_settings() -> None:
    for bad in ({"exploration": -1.0}, {"rollout": -1}, {"answer_by": "mean"}, {"beam_width": 5}):
        with pytest.raises(ConfigError):
            build_mcts_graph(4, **bad)  # type: ignore[arg-type]


def test_both_are_registered_with_their_flags() -> None:
    pf, mcts = get_strategy("particle-filter"), get_strategy("mcts")
    assert pf.scorer == mcts.scorer == "process"
    assert {o.flag for o in pf.options} >= {"--pf-temperature", "--ess-threshold", "--resampling", "--sweeps"}
    assert {o.flag for o in mcts.options} >= {"--beam-width", "--uct-c", "--rollout", "--answer-by"}


# -- the README's "A new search" ------------------------------------------------------------------


async def test_the_readme_best_first_search_runs_and_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import dataclass as _dataclass

    from graphs import registry
    from graphs.registry import StrategySpec, register, strategies

    monkeypatch.setattr(registry, "_registered", dict(registry.strategies()))  # this test's registrations go
    from graphs.search import Expansion, build_search_graph, reward_of

    @_dataclass(frozen=True)
    class BestFirst:
        """Expand the best-scored open leaf anywhere in the tree, M children at a time."""

        children: int = 2
        name: str = "best-first"

        def first(self, width: int) -> int:
            return self.children

        def expand(self, fresh: list[Node], completed: list[Node], width: int, view: SearchView) -> list[Expansion]:
            if len(completed) >= width:
                return []
            leaves = [n for n in view.tree.values() if n["id"] and not n["final"] and not view.children(n["id"])]
            best = max(leaves, key=lambda n: (reward_of(n), -n["id"]), default=None)
            return [] if best is None else [{"node": best["id"], "children": self.children}]

    spec = register(
        StrategySpec(
            "best-first",
            lambda n, **options: build_search_graph(BestFirst(), n, **options),
            "best-first search over steps",
            scorer="process",
        ),
    )
    assert strategies()["best-first"] is spec
    fake = FakeServer(reply=good_bad_stepper)
    out = await run(spec.build(4, scorer=TableScorer(GOOD_BAD), retry=FAST_RETRY).compile(), fake)
    nodes = out["nodes"]
    # best-first always follows the good step: its first finished solution is all good steps
    assert out["answer"] == "42" and sum(n["final"] for n in nodes) >= 4
    by_id = {n["id"]: n for n in nodes}
    order = [by_id[next(c["parent"] for c in nodes if c["round"] == r)] for r in range(5)]
    assert [n["prefix"].count("good") for n in order] == [0, 1, 2, 3, 4]  # the good path first, to its end
    assert all("bad" not in n["prefix"] for n in order)


# -- the strengthened properties ---------------------------------------------------------------------


async def test_weights_accumulate_over_rounds_without_resampling() -> None:
    """Round 0: three alpha (0.9) and one delta (0.2): ESS 3.05 of 4 >= 2, no resampling. Then every
    particle takes an alpha step and an answer (0.6). Without resampling the log-weights add up, so
    the delta particle keeps its handicap to the end: final weights ∝ odds products 9·9·1.5 against
    0.25·9·1.5 (a rule reading only the newest score would weigh all four equally)."""
    fake = FakeServer(reply=depth_stepper({1: ("alpha", "alpha", "alpha", "delta")}, finish_at=2))
    graph = build_particle_filter_graph(4, ess_threshold=0.5, scorer=TableScorer(TABLE), retry=FAST_RETRY).compile()
    out = await run(graph, fake)
    kids = children_of(out["nodes"])
    assert all(len(kids[n["id"]]) == 1 for n in out["nodes"] if n["depth"] in (1, 2) and not n["final"])
    assert out["decision"]["resampled"] == 0
    products = {}
    for n in out["nodes"]:
        if n["final"]:
            first = next(m for m in out["nodes"] if m["depth"] == 1 and n["prefix"].startswith(m["prefix"]))
            products[str(n["id"])] = (9.0 if kind(first) == "alpha" else 0.25) * 9.0 * 1.5
    total = sum(products.values())
    assert out["decision"]["weights"] == {i: pytest.approx(p / total) for i, p in products.items()}


async def test_a_hot_temperature_or_equal_weights_never_trigger_resampling() -> None:
    fake = FakeServer(reply=kinds_stepper())
    hot = build_particle_filter_graph(
        4, temperature=1e9, ess_threshold=0.99, scorer=TableScorer(TABLE), max_rounds=2, retry=FAST_RETRY
    ).compile()
    cold = build_particle_filter_graph(
        4, temperature=1.0, ess_threshold=0.99, scorer=TableScorer(TABLE), max_rounds=2, retry=FAST_RETRY
    ).compile()
    moved = 0
    for seed in range(10):
        out = await run(hot, fake, seed)
        kids = children_of(out["nodes"])
        assert [len(kids[n["id"]]) for n in out["nodes"] if n["depth"] == 1] == [1, 1, 1, 1]
        out = await run(cold, fake, seed)
        kids = children_of(out["nodes"])
        moved += [len(kids[n["id"]]) for n in out["nodes"] if n["depth"] == 1] != [1, 1, 1, 1]
    assert moved >= 5  # at T = 1 the same population is resampled, and the counts move
    flat = TableScorer({k: 0.5 for k in (*KINDS, "answer")})
    for n in (5, 10, 20):  # ESS of equal weights rounds to just under N for these sizes
        graph = build_particle_filter_graph(n, ess_threshold=1.0, scorer=flat, max_rounds=2, retry=FAST_RETRY)
        out = await run(graph.compile(), fake)
        kids = children_of(out["nodes"])
        assert all(len(kids[m["id"]]) == 1 for m in out["nodes"] if m["depth"] == 1)


async def test_particle_gibbs_draws_its_reference_by_weight_and_branches_off_it() -> None:
    """Sweep 1 has an alpha (0.9) and a beta (0.7) particle, each ending with an answer (0.6) and
    never resampled: the reference is the alpha one with probability 9 / (9 + 7/3) = 0.794."""
    fake = FakeServer(reply=depth_stepper({1: ("alpha", "beta")}, finish_at=2))
    graph = build_particle_filter_graph(
        4, sweeps=2, ess_threshold=0.0, scorer=TableScorer(TABLE), retry=FAST_RETRY
    ).compile()
    alpha = runs = 0
    for seed in range(200):
        out = await run(graph, fake, seed)
        nodes = {n["id"]: n for n in out["nodes"]}
        starts = sorted({n["round"] for n in nodes.values() if n["parent"] == 0})
        second = {n["id"] for n in nodes.values() if n["round"] >= starts[1]}
        (reference,) = {int(i) for i in out["decision"]["weights"]} - second
        path = nodes[reference]["prefix"]
        first = next(m for m in nodes.values() if m["depth"] == 1 and path.startswith(m["prefix"]))
        alpha += kind(first) == "alpha"
        runs += 1
    assert binomtest(alpha, runs, 9 / (9 + 7 / 3)).pvalue > 0.001

    branching = FakeServer(reply=depth_stepper({1: ("alpha", "delta", "delta", "delta")}, finish_at=3))
    graph = build_particle_filter_graph(
        8, sweeps=2, ess_threshold=1.0, scorer=TableScorer(TABLE), retry=FAST_RETRY
    ).compile()
    branched = 0
    for seed in range(10):
        out = await run(graph, branching, seed)
        nodes = {n["id"]: n for n in out["nodes"]}
        starts = sorted({n["round"] for n in nodes.values() if n["parent"] == 0})
        branched += any(
            n["round"] >= starts[1] and n["parent"] != 0 and nodes[n["parent"]]["round"] < starts[1]
            for n in nodes.values()
        )
    assert branched >= 5  # the reference's prefix wins draws: fresh particles grow from it


def test_answer_by_visits_and_by_value_disagree_where_they_should() -> None:
    """A is visited most (a big subtree of middling values), B holds the single best solution."""

    def node(i: int, parent: int | None, depth: int, reward: float | None, final: bool = False,
             answer: str | None = None) -> Node:  # fmt: skip
        return {"id": i, "parent": parent, "prefix": "", "depth": depth, "subtree": 0, "round": depth - 1,
                "reward": reward, "final": final, "truncated": False, "answer": answer}  # fmt: skip

    tree = {0: node(0, None, 0, None), 1: node(1, 0, 1, 0.5), 2: node(2, 0, 1, 0.6),
            3: node(3, 1, 2, 0.5), 4: node(4, 1, 2, 0.4), 5: node(5, 3, 3, 0.5, True, "7"),
            6: node(6, 4, 3, 0.4, True, "8"), 7: node(7, 2, 2, 0.95, True, "9")}  # fmt: skip
    view = SearchView(tree, 4, 0)
    finished = [n for n in tree.values() if n["final"]]
    by_visits = MCTSPolicy(2, 1.0, "visits").decide(finished, view)
    by_value = MCTSPolicy(2, 1.0, "value").decide(finished, view)
    assert (by_visits["answer"], by_visits["node"]) == ("7", 5)  # root -> A (5 visits) -> 3 (2 visits) -> 5
    assert (by_value["answer"], by_value["node"]) == ("9", 7)
    by_vote = MCTSPolicy(2, 1.0, "vote").decide(finished, view)  # weights 0.5, 0.4, 0.95 by answer
    assert by_vote["answer"] == "9" and by_vote["votes"] == {"7": 0.5, "8": 0.4, "9": 0.95}
