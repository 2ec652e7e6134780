"""What an evaluation runs: the strategies (from the registry), the budgets, the scorers, and the keys
under which the store files samples, judgements and runs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from graphs.evaluation.datasets import Dataset
from graphs.evaluation.store import EvalStore
from graphs.registry import get, strategies
from nodes.errors import ConfigError
from nodes.propose import ANSWER_INSTRUCTIONS, PROPOSE_PROMPT
from nodes.scorers import GRADE_PROMPT, STEP_PROMPT, Aggregation, JudgeVerdict, Scorer
from nodes.verify import FILTER_PROMPT, filter_prompt

__all__ = [
    "CODE_METHODS",
    "CONFIDENCE_METHODS",
    "FILTER_SCORER",
    "ORACLES",
    "EvalPlan",
    "known",
    "method_of",
    "options_key",
    "pending",
    "prompts_fingerprint",
    "scorer_key",
    "store_settings",
]

ORACLES = ("pass@k",)
"""Computed from the pools beside the strategies: ``pass@k`` counts a question solved when any of
``k`` samples is right."""
CODE_METHODS = ("best-of-n", "pass@k")  # code has no answer to vote on
CONFIDENCE_METHODS = ("deepconf",)  # pooled methods that weigh the samples' token confidences


def known() -> list[str]:
    """Every name ``ttc eval --strategies`` takes: the registered strategies and the oracles."""
    return [*strategies(), *ORACLES]


def method_of(strategy: str) -> str | None:
    """How a strategy is computed from pools (``vote``, ``filter-vote``, ``best-of-n``,
    ``weighted-best-of-n``, ``pass@k``), or None when it runs as a graph per question and budget."""
    return strategy if strategy in ORACLES else get(strategy).pooled


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def prompts_fingerprint() -> str:
    """A hash of the propose prompt, so a store never mixes samples asked for with other wording."""
    return _hash(PROPOSE_PROMPT + json.dumps(ANSWER_INSTRUCTIONS, sort_keys=True))


SCORER_PROMPTS = {"judge-verdict": filter_prompt("{question}", "{answer}"), "judge-grade": GRADE_PROMPT,
                  "self-eval-prm": STEP_PROMPT}  # fmt: skip


def scorer_key(scorer: Scorer) -> str:
    """How a scorer's judgements are filed: its name and a hash of its prompt (or, for a reward
    model, of its settings: server, model, step tag), so a reworded or different judge judges
    again (into its own rows) while the samples and the other judges' rows stay valid."""
    prompt = SCORER_PROMPTS.get(scorer.name)
    if prompt is None:
        fields: dict[str, Any] = (
            {f.name: getattr(scorer, f.name) for f in dataclasses.fields(scorer)}
            if dataclasses.is_dataclass(scorer)
            else {}
        )
        prompt = json.dumps({k: v for k, v in fields.items() if k not in ("api_key", "transport")}, default=repr,
                            sort_keys=True)  # fmt: skip
    return f"{scorer.name}#{_hash(prompt)}"


def options_key(options: dict[str, Any]) -> str:
    """A direct run's builder options as stored with it (scorers by :func:`scorer_key`), so a run
    with other options is a different run."""
    described = {k: scorer_key(v) if k == "scorer" else v for k, v in sorted(options.items())}
    return json.dumps(described, default=repr, sort_keys=True)


FILTER_SCORER = f"verify#{_hash(FILTER_PROMPT + ' seed=run seed+sample index')}"
"""Filter-Vote's judgements: the graphs' ``verify`` node (its prompt and its seed rule, so pooled and
direct runs agree call for call). Stores made before this rule (``judge-verdict#...``, judged with
the run's seed) are judged again into these rows."""


# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalPlan:
    """What to evaluate.

    Attributes:
        strategies: registered strategies (:func:`graphs.registry.strategies`) and :data:`ORACLES`.
        budgets: samples per question (``k`` or ``n`` of each strategy), e.g. ``(1, 2, 4, 8)``.
        scorer: the verifier of the Best-of-N family and of the direct strategies that use one.
        aggregation: how a process scorer's step scores become one.
        options: structural keyword arguments of the direct strategies' builders, by strategy.
        subsets: the most subsets enumerated per budget for Best-of-N and DeepConf; beyond it,
            that many are drawn with a fixed seed.
        logprobs: top logprobs a pool sample asks for, kept as its token confidences (None: 20
            when a pooled method weighs confidence, else 0); see :attr:`top_logprobs`.
        direct_budgets: the budgets of the strategies that run as graphs (searches, revision), which
            cost a run each; empty: ``budgets``.
        probe: samples per question drawn beyond the largest budget for the difficulty probe
            (:mod:`graphs.evaluation.selection`). They are held out: never judged, never in a pooled
            result, so a question's difficulty bin is not read from the samples it is scored on.
    """

    strategies: tuple[str, ...]
    budgets: tuple[int, ...]
    scorer: Scorer | None = None
    aggregation: Aggregation = "last"
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    subsets: int = 2000
    logprobs: int | None = None
    probe: int = 0
    direct_budgets: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.strategies:
            raise ConfigError("no strategies to evaluate")
        unknown = [s for s in self.strategies if s not in known()]
        if unknown:
            raise ConfigError(f"unknown strategies {unknown} (known: {', '.join(known())})")
        if len(set(self.strategies)) != len(self.strategies):
            raise ConfigError("a strategy is listed twice")
        if not self.budgets or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.budgets):
            raise ConfigError(f"budgets must be positive integers, got {list(self.budgets)}")
        if len(set(self.budgets)) != len(self.budgets):
            raise ConfigError("a budget is listed twice")
        if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.direct_budgets):
            raise ConfigError(f"direct budgets must be positive integers, got {list(self.direct_budgets)}")
        if len(set(self.direct_budgets)) != len(self.direct_budgets):
            raise ConfigError("a direct budget is listed twice")
        if self.aggregation not in ("last", "min", "prod", "mean"):
            raise ConfigError(f"unknown aggregation {self.aggregation!r} (last, min, prod, mean)")
        if self.needs_scorer and self.scorer is None:
            raise ConfigError("best-of-n and weighted-best-of-n need a scorer")
        if self.subsets < 1:
            raise ConfigError("subsets must be positive")
        if isinstance(self.probe, bool) or not isinstance(self.probe, int) or self.probe < 0:
            raise ConfigError(f"probe samples must be a non-negative integer, got {self.probe!r}")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise ConfigError(f"logprobs is between 0 and 20, got {self.logprobs}")
        if self.logprobs == 0 and any(method_of(s) in CONFIDENCE_METHODS for s in self.strategies):
            raise ConfigError("deepconf weighs token confidences: its pool needs logprobs (--logprobs 1-20)")

    @property
    def pooled(self) -> list[str]:
        return [s for s in self.strategies if method_of(s)]

    @property
    def direct(self) -> list[str]:
        return [s for s in self.strategies if not method_of(s)]

    def budgets_of(self, strategy: str) -> tuple[int, ...]:
        """The budgets ``strategy`` is evaluated at: ``direct_budgets`` for a graph run, if given."""
        return self.direct_budgets if self.direct_budgets and not method_of(strategy) else self.budgets

    @property
    def pool_size(self) -> int:
        """Samples per question in the pool: the largest budget and the held-out probe (0 without
        pooled strategies)."""
        return max(self.budgets) + self.probe if self.pooled else 0

    @property
    def scored_size(self) -> int:
        """Samples per question the pooled results are computed from (and judged): the largest budget."""
        return max(self.budgets) if self.pooled else 0

    def for_store(self, store: EvalStore) -> EvalPlan:
        """This plan, taking the store's logprobs setting when it leaves them to be chosen (a
        vote-only run on a store drawn with logprobs keeps drawing them)."""
        stored = store.settings().get("top_logprobs")
        return dataclasses.replace(self, logprobs=stored) if self.logprobs is None and stored else self

    @property
    def top_logprobs(self) -> int:
        """Top logprobs the pool's proposals ask for (0: none)."""
        if self.logprobs is not None:
            return self.logprobs
        return 20 if any(method_of(s) in CONFIDENCE_METHODS for s in self.pooled) else 0

    @property
    def needs_scorer(self) -> bool:
        return any(method_of(s) in ("best-of-n", "weighted-best-of-n") for s in self.strategies)

    def scorers(self) -> dict[str, Scorer]:
        """The scorers every pooled sample is judged by, by name."""
        out: dict[str, Scorer] = {}
        if any(method_of(s) == "filter-vote" for s in self.strategies):
            out[FILTER_SCORER] = JudgeVerdict()
        if self.needs_scorer and self.scorer is not None:
            out[scorer_key(self.scorer)] = self.scorer
        return out

    def run_options(self, strategy: str, budget: int) -> dict[str, Any]:
        """The builder options of a strategy at a budget (what its graph is built with)."""
        method = method_of(strategy)
        if method in ("vote", "filter-vote", "pass@k"):
            return {}
        spec = get(strategy)
        options = dict(self.options.get(strategy, {}))
        if self.scorer is not None and spec.scorer is not None:
            options.setdefault("scorer", self.scorer)
        if method in ("best-of-n", "weighted-best-of-n"):
            options.setdefault("aggregation", self.aggregation)
        return spec.options_at(budget, options)

    def check_dataset(self, dataset: Dataset) -> None:
        """Whether the plan can run on ``dataset`` (checked before any call is made)."""
        if dataset.answer_format == "auto" and any(method_of(s) not in CODE_METHODS for s in self.strategies):
            code = [s for s in known() if method_of(s) in CODE_METHODS]
            raise ConfigError(f"{dataset.name} is code: ttc eval runs only {', '.join(code)} on it")
        for strategy in self.direct:  # the strategy's own check, at every budget
            spec = get(strategy)
            for budget in self.budgets_of(strategy) if spec.check else ():
                try:
                    spec.check(budget, self.run_options(strategy, budget))  # type: ignore[misc]
                except ConfigError as exc:
                    raise ConfigError(f"{strategy}: {exc}") from None


def store_settings(dataset: Dataset, model: str, sampling: Any) -> dict[str, Any]:
    """What a store's samples depend on: the data set, the model, the sampling settings (read
    from ``sampling``, a :class:`RunContext` or anything with its attributes) and the prompts.
    Budgets and strategies may grow between runs of one store; these may not change."""
    keys = ("temperature", "max_tokens", "judge_temperature", "judge_max_tokens", "seed", "answer_format")
    return {"dataset": dataset.name, "model": model, **{k: getattr(sampling, k) for k in keys},
            "top_logprobs": getattr(sampling, "top_logprobs", 0), "prompts": prompts_fingerprint()}  # fmt: skip


def pending(store: EvalStore, dataset: Dataset, plan: EvalPlan) -> int:
    """How many (question, stage) tasks of ``plan`` the store does not hold yet."""
    m, scored, scorers, left = plan.pool_size, plan.scored_size, plan.scorers(), 0
    for r in dataset.records:
        if m and (
            store.sample_count(r.qid) < m
            or any(len([i for i in store.judged(r.qid, s) if i < scored]) < scored for s in scorers)
        ):
            left += 1
        left += sum(
            not store.has_run(s, b, options_key(plan.run_options(s, b)), r.qid)
            for s in plan.direct
            for b in plan.budgets_of(s)
        )
    return left
