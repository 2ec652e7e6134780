"""The built-in strategies' registry entries (:mod:`graphs.registry`)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any

from langgraph.graph import StateGraph

from graphs.registry import (
    Option,
    StrategySpec,
    beam_width_within,
    chains_within,
    positive,
    sqrt_chains,
    width_within,
)
from graphs.search import (
    build_beam_search_graph,
    build_dvts_graph,
    build_lookahead_graph,
    build_mcts_graph,
    build_particle_filter_graph,
    build_rebase_graph,
)
from graphs.search.particles import check_sweeps
from graphs.strategies.adaptive_vote import RULES, build_adaptive_vote_graph
from graphs.strategies.best_of_n import build_best_of_n_graph
from graphs.strategies.deepconf import build_deepconf_graph, build_deepconf_online_graph
from graphs.strategies.filter_vote import build_filter_vote_graph
from graphs.strategies.revision import build_mix_graph
from graphs.strategies.vote import build_vote_graph
from nodes.confidence import MEASURES

__all__ = ["BUILTIN"]

AGGREGATION = Option(
    "aggregation",
    "--aggregation",
    default="last",
    choices=("last", "min", "prod", "mean"),
    help="how a process scorer's step scores become one (default last)",
)
BEAM_WIDTH = Option("beam_width", "--beam-width", positive, 4, "beam-search, lookahead, dvts, mcts: M (default 4)")
MAX_ROUNDS = Option("max_rounds", "--max-rounds", positive, None, "searches: round limit (default 40; rebase 25)")
SELECT = Option(
    "select",
    "--select",
    default="vote",
    choices=("vote", "last", "verifier"),
    help="revision / mix: how the answer is chosen (default vote)",
)
MAX_ATTEMPTS = Option("max_attempts", "--max-attempts", positive, 4, "revision / mix: attempts a revision sees")


def _weighted_best_of_n(n: int, **options: Any) -> StateGraph[Any, Any, Any, Any]:
    return build_best_of_n_graph(n, weighted=True, **options)


def _revision(n: int, **options: Any) -> StateGraph[Any, Any, Any, Any]:
    return build_mix_graph(n, 1, **options)


def _number(text: str, kind: type = float) -> Any:
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _probability(text: str) -> float:
    value = _number(text)
    if not 0.5 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability above 0.5, got {value}")
    return float(value)


def _percent(text: str) -> float:
    value = _number(text)
    if not 0.0 < value <= 100.0:
        raise argparse.ArgumentTypeError(f"expected a percentage in (0, 100], got {value}")
    return float(value)


def _logprobs(text: str) -> int:
    value = _number(text, int)
    if not 1 <= value <= 20:
        raise argparse.ArgumentTypeError(f"expected 1 to 20 top logprobs, got {value}")
    return int(value)


MEASURE = Option(
    "measure",
    "--measure",
    default="bottom10",
    choices=MEASURES,
    help="deepconf: trace confidence, lowest/bottom10 group, tail or mean (default bottom10)",
)
KEEP = Option("keep", "--keep", _percent, 10.0, "deepconf: percent of traces kept, most confident first (default 10)")
CONF_WINDOW = Option("window", "--conf-window", positive, None, "deepconf: tokens in a confidence group (default 2048)")
TOP_LOGPROBS = Option("top_logprobs", "--top-logprobs", _logprobs, None, "deepconf: top logprobs a token (default 20)")


def _positive_float(text: str) -> float:
    value = _number(text)
    if not 0.0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return float(value)


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {value}")
    return float(value)


def _non_negative_float(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive number, got {value}")
    return float(value)


def _steps(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more steps, got {value}")
    return int(value)


def _sweeps_within(size: int, options: Mapping[str, Any]) -> None:
    """Particle Gibbs splits the width evenly among its sweeps, 2 particles each at least."""
    check_sweeps(size, options.get("sweeps", 1))


def _warmup_within(k: int, options: dict[str, Any]) -> dict[str, Any]:
    """Online DeepConf at a budget of ``k`` traces: the warm-up is at most ``k``."""
    return {**options, "warmup": min(options.get("warmup") or 16, k)}


BUILTIN = (
    StrategySpec("vote", build_vote_graph, "k samples, the most common answer", pooled="vote"),
    StrategySpec(
        "adaptive-vote",
        build_adaptive_vote_graph,
        "at most k samples, drawn in waves until a stopping rule says the winner is decided",
        (
            Option(
                "stop",
                "--stop",
                default="beta",
                choices=RULES,
                help="adaptive-vote: stopping rule (default beta, Aggarwal et al.)",
            ),
            Option(
                "threshold",
                "--stop-threshold",
                _probability,
                None,
                help="adaptive-vote: the rule's threshold (beta/dirichlet 0.95, supermajority 0.75)",
            ),
            Option("window", "--window", positive, None, help="adaptive-vote: ESC's window (default 8)"),
        ),
        pooled="adaptive-vote",
    ),
    StrategySpec(
        "deepconf",
        build_deepconf_graph,
        "k samples with token logprobs; the most confident keep% vote, weighted by confidence (offline DeepConf)",
        (MEASURE, KEEP, CONF_WINDOW, TOP_LOGPROBS),
        pooled="deepconf",
    ),
    StrategySpec(
        "deepconf-online",
        build_deepconf_online_graph,
        "warm-up traces set a confidence bar; later traces are streamed and stopped when they fall below it, "
        "until consensus or k traces (online DeepConf)",
        (
            Option("warmup", "--warmup", positive, None, "deepconf-online: warm-up traces (default 16, at most k)"),
            KEEP,
            CONF_WINDOW,
            Option("consensus", "--consensus", _probability, None, "deepconf-online: stop at this vote share (0.95)"),
            Option("wave_size", "--wave", positive, None, "deepconf-online: traces streamed at once (default 4)"),
            TOP_LOGPROBS,
        ),
        at_budget=_warmup_within,
    ),
    StrategySpec(
        "filter-vote",
        build_filter_vote_graph,
        "k samples judged by the filter prompt, a vote among the kept",
        pooled="filter-vote",
    ),
    StrategySpec(
        "best-of-n",
        build_best_of_n_graph,
        "n samples, the best-scored one",
        (AGGREGATION,),
        scorer="outcome",
        pooled="best-of-n",
    ),
    StrategySpec(
        "weighted-best-of-n",
        _weighted_best_of_n,
        "n samples, equivalent answers' scores summed",
        (AGGREGATION,),
        scorer="outcome",
        pooled="weighted-best-of-n",
    ),
    StrategySpec(
        "beam-search",
        build_beam_search_graph,
        "step-level beam search with a process scorer",
        (BEAM_WIDTH, MAX_ROUNDS),
        scorer="process",
        at_budget=width_within,
        check=beam_width_within,
    ),
    StrategySpec(
        "lookahead",
        build_lookahead_graph,
        "beam search scoring each step after a greedy roll-out",
        (
            BEAM_WIDTH,
            Option("lookahead", "--lookahead", positive, 3, "lookahead: roll-out steps (default 3)"),
            MAX_ROUNDS,
        ),
        scorer="process",
        at_budget=width_within,
        check=beam_width_within,
    ),
    StrategySpec(
        "dvts",
        build_dvts_graph,
        "diverse verifier tree search: n / M independent subtrees",
        (BEAM_WIDTH, MAX_ROUNDS),
        scorer="process",
        at_budget=width_within,
        check=beam_width_within,
    ),
    StrategySpec(
        "rebase",
        build_rebase_graph,
        "reward-balanced tree search",
        (Option("temperature", "--rebase-temperature", float, 0.2, "rebase: balance temperature T_b"), MAX_ROUNDS),
        scorer="process",
    ),
    StrategySpec(
        "particle-filter",
        build_particle_filter_graph,
        "n particles advance a step a round, resampled by PRM weight when the ESS drops; particle Gibbs with --sweeps",
        (
            Option(
                "temperature",
                "--pf-temperature",
                _positive_float,
                1.0,
                "particle-filter: T of the weights, softmax of the sum of logit(r) / T since resampling (default 1)",
            ),
            Option(
                "ess_threshold",
                "--ess-threshold",
                _fraction,
                0.5,
                "particle-filter: resample when ESS < this x active particles (default 0.5; 1 every round)",
            ),
            Option(
                "resampling",
                "--resampling",
                default="multinomial",
                choices=("multinomial", "systematic"),
                help="particle-filter: resampling scheme (default multinomial)",
            ),
            Option("sweeps", "--sweeps", positive, 1, "particle-filter: particle Gibbs sweeps (default 1)"),
            MAX_ROUNDS,
        ),
        scorer="process",
        check=_sweeps_within,
    ),
    StrategySpec(
        "mcts",
        build_mcts_graph,
        "Monte-Carlo tree search: UCT picks n / M leaves a round, each gets M steps in one request",
        (
            BEAM_WIDTH,
            Option("exploration", "--uct-c", _non_negative_float, None, "mcts: the UCT constant C (default sqrt 2)"),
            Option("rollout", "--rollout", _steps, 0, "mcts: evaluate a node after a greedy roll-out of N steps"),
            Option(
                "answer_by",
                "--answer-by",
                default="visits",
                choices=("visits", "value", "vote"),
                help="mcts: the answer by visit count, value, or a weighted vote (default visits)",
            ),
            MAX_ROUNDS,
        ),
        scorer="process",
        at_budget=width_within,
        check=beam_width_within,
    ),
    StrategySpec(
        "revision",
        _revision,
        "one sequential critique-and-revise chain of n answers",
        (SELECT, MAX_ATTEMPTS, AGGREGATION),
        scorer="outcome",
    ),
    StrategySpec(
        "mix",
        build_mix_graph,
        "n answers in parallel revision chains (about sqrt(n) of them)",
        (
            Option("chains", "--chains", positive, None, "mix: parallel revision chains (default about sqrt(k))"),
            SELECT,
            MAX_ATTEMPTS,
            AGGREGATION,
        ),
        scorer="outcome",
        at_budget=sqrt_chains,
        check=chains_within,
    ),
)
