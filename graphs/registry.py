"""The one strategy registry: what ``ttc run``, ``ttc eval`` and the router know about a strategy.

A :class:`StrategySpec` owns a strategy's builder, its options (the flags of ``ttc run`` and
``ttc eval``, with defaults and validation) and its evaluation defaults. The built-in strategies
are registered here; a third-party package registers its own through the entry-point group
``ttc_graphs.strategies`` (each entry point names a ``StrategySpec``), or a script calls
:func:`register`. Either way the strategy then appears in ``ttc run --strategy``,
``ttc eval --strategies`` and the router, with nothing in this project edited.

Example:
    >>> spec = get("mix")
    >>> spec.options_at(9, {"select": "vote"})  # mix: about sqrt(budget) chains unless told otherwise
    {'select': 'vote', 'chains': 3}
    >>> {"vote", "filter-vote", "mix"} <= set(strategies())
    True

A pyproject entry of a package that ships a strategy::

    [project.entry-points."ttc_graphs.strategies"]
    critique-vote = "my_package.strategies:CRITIQUE_VOTE"
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from langgraph.graph import StateGraph

from nodes.errors import ConfigError
from nodes.scorers import JudgeGrade, JudgeVerdict, PoolingPRM, Scorer, SelfEvalPRM

__all__ = [
    "ENTRY_POINT_GROUP",
    "SCORERS",
    "Option",
    "PooledMethod",
    "StrategySpec",
    "add_option_flags",
    "get",
    "make_scorer",
    "register",
    "strategies",
]

ENTRY_POINT_GROUP = "ttc_graphs.strategies"

PooledMethod = Literal["vote", "filter-vote", "best-of-n", "weighted-best-of-n", "adaptive-vote", "deepconf"]
"""How ``ttc eval`` computes a strategy from one sample pool per question, exactly over subsets or
sample orders (:mod:`graphs.evaluation`), with the strategy's options (``adaptive-vote``: its
stopping rule; ``deepconf``: its confidence measure); a strategy without one is run as a graph
per question and budget."""

Builder = Callable[..., StateGraph[Any, Any, Any, Any]]
"""``builder(size, **options)``: the strategy's uncompiled graph with ``size`` samples (k or n)."""


@dataclass(frozen=True)
class Option:
    """One builder option of a strategy, and the flag of ``ttc run``/``ttc eval`` that sets it.

    Strategies that share an option (``beam_width``) share its flag; two definitions of one flag
    must agree. ``default`` None means the builder's own default (the option is then not passed).

    Attributes:
        name: the builder's keyword argument.
        flag: the command-line flag, e.g. ``--beam-width``.
        type: parses the flag's text (raise ``argparse.ArgumentTypeError`` or ``ValueError``).
        default: the flag's default.
        help: one line for ``ttc run -h``.
        choices: allowed values, if the option is a choice.
    """

    name: str
    flag: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    choices: Sequence[str] | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class StrategySpec:
    """Everything the command line, the evaluation harness and the router know about a strategy.

    Attributes:
        name: how ``ttc run --strategy`` names it.
        build: ``build(size, **options)``, the uncompiled graph.
        summary: one line for listings.
        options: the builder options it takes from flags.
        scorer: ``"outcome"`` or ``"process"`` if it takes a verifier (``--scorer``, whose default
            is ``judge-grade`` or ``self-eval-prm``); None if it takes none.
        pooled: how ``ttc eval`` computes it from sample pools (None: one graph run per question
            and budget).
        at_budget: the evaluation's (and the router's) options at a budget, from the flags'
            options: e.g. a width clamped to the budget.
        check: raises :class:`~nodes.errors.ConfigError` for options that cannot work at a size.
    """

    name: str
    build: Builder
    summary: str = ""
    options: tuple[Option, ...] = ()
    scorer: Literal["outcome", "process"] | None = None
    pooled: PooledMethod | None = None
    at_budget: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None
    check: Callable[[int, Mapping[str, Any]], None] | None = None

    def options_from(self, values: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
        """The builder options set in ``values`` (parsed flags, or a mapping by flag dest)."""
        get_value = values.get if isinstance(values, Mapping) else lambda key: getattr(values, key, None)
        return {o.name: v for o in self.options if (v := get_value(o.dest)) is not None}

    def parse_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Builder options from a mapping keyed by option name, flag dest or flag (``"beam_width"``,
        ``"--beam-width"``), with values as text or already typed, checked as the flag would be:
        a :class:`~nodes.errors.ConfigError` names an unknown option or a bad value.

        >>> get("adaptive-vote").parse_options({"stop": "beta"})
        {'stop': 'beta'}
        """
        by_key = {key: o for o in self.options for key in (o.name, o.dest, o.flag)}
        out: dict[str, Any] = {}
        for key, value in given.items():
            option = by_key.get(key)
            if option is None:
                known = ", ".join(o.name for o in self.options) or "none"
                raise ConfigError(f"{self.name} has no option {key!r} (its options: {known})")
            if value is None:
                continue
            if option.choices:
                if str(value) not in option.choices:
                    raise ConfigError(f"{self.name}: {option.name} must be one of {', '.join(option.choices)}, "
                                      f"got {value!r}")  # fmt: skip
                out[option.name] = str(value)
                continue
            if isinstance(value, (dict, list)):
                raise ConfigError(f"{self.name}: {option.name} takes one value, got {type(value).__name__}")
            try:
                out[option.name] = option.type(value if isinstance(value, str) else str(value))
            except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
                raise ConfigError(f"{self.name}: {option.name}: {exc}") from None
        return out

    def options_at(self, size: int, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options a run at ``size`` is built with (:attr:`at_budget` applied)."""
        out = dict(options)
        return self.at_budget(size, out) if self.at_budget else out

    def graph(self, size: int, options: Mapping[str, Any] | None = None) -> StateGraph[Any, Any, Any, Any]:
        """The strategy's graph at ``size``, built with :meth:`options_at` of ``options``."""
        built = self.options_at(size, options or {})
        if self.check:
            self.check(size, built)
        return self.build(size, **built)


_registered: dict[str, StrategySpec] = {}
_loaded = False


def register(spec: StrategySpec, *, replace: bool = False) -> StrategySpec:
    """Make ``spec`` known to ``ttc run``, ``ttc eval`` and the router (for this process; a
    package registers through the ``ttc_graphs.strategies`` entry-point group instead)."""
    if not isinstance(spec, StrategySpec):
        raise ConfigError(f"a strategy is registered as a StrategySpec, got {type(spec).__name__}")
    _load()
    if spec.name in _registered and not replace and _registered[spec.name] is not spec:
        raise ConfigError(f"a strategy named {spec.name!r} is registered already")
    if spec.name in ("router",) or not spec.name or "," in spec.name or "/" in spec.name:
        raise ConfigError(f"{spec.name!r} cannot name a strategy")
    _check_flags([*_registered.values(), spec])
    _registered[spec.name] = spec
    return spec


def strategies() -> dict[str, StrategySpec]:
    """Every registered strategy by name: the built-ins, then the entry points' and :func:`register`'s."""
    _load()
    return dict(_registered)


def get(name: str) -> StrategySpec:
    """The strategy named ``name``, or a :class:`~nodes.errors.ConfigError` listing the known ones."""
    found = strategies()
    if name not in found:
        raise ConfigError(f"unknown strategy {name!r} (known: {', '.join(sorted(found))})")
    return found[name]


def add_option_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add every registered strategy's option flags to ``parser`` (a shared flag once)."""
    for option in _unique_options(strategies().values()):
        kwargs: dict[str, Any] = {"dest": option.dest, "default": option.default, "help": option.help}
        if option.choices:
            kwargs["choices"] = list(option.choices)
        else:
            kwargs["type"] = option.type
        parser.add_argument(option.flag, **kwargs)


def _unique_options(specs: Iterable[StrategySpec]) -> list[Option]:
    seen: dict[str, Option] = {}
    for spec in specs:
        for option in spec.options:
            seen.setdefault(option.flag, option)
    return list(seen.values())


def _check_flags(specs: Sequence[StrategySpec]) -> None:
    seen: dict[str, tuple[str, Option]] = {}
    for spec in specs:
        for option in spec.options:
            if option.flag in seen and (first := seen[option.flag])[1] != option:
                raise ConfigError(f"{spec.name}: flag {option.flag} differs from {first[0]}'s definition")
            seen.setdefault(option.flag, (spec.name, option))


def _load() -> None:
    """The built-ins, then every entry point of the group (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from graphs.strategies.builtin import BUILTIN

    for spec in BUILTIN:
        _registered[spec.name] = spec
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
            spec = loaded() if callable(loaded) and not isinstance(loaded, StrategySpec) else loaded
        except Exception as exc:  # a broken plug-in must not take the command down: say which
            raise ConfigError(f"strategy entry point {entry.name!r} ({entry.value}) failed to load: {exc}") from exc
        if not isinstance(spec, StrategySpec) or spec.name != entry.name:
            raise ConfigError(f"strategy entry point {entry.name!r} must name a StrategySpec called {entry.name!r}")
        register(spec)


SCORERS: tuple[str, ...] = ("judge-grade", "judge-verdict", "pooling-prm", "self-eval-prm")
"""The verifiers a strategy that takes one can be given by name (``--scorer``, a request's ``scorer``)."""


def make_scorer(
    name: str | None,
    kind: Literal["outcome", "process"] = "outcome",
    *,
    prm_url: str | None = None,
    prm_model: str | None = None,
    prm_step_tag: str = "\n\n",
    prm_api_key: str | None = None,
) -> Scorer:
    """The scorer called ``name`` (one of :data:`SCORERS`); None picks the default of a strategy
    whose :attr:`StrategySpec.scorer` is ``kind``: ``judge-grade`` (outcome) or ``self-eval-prm``
    (process). ``pooling-prm`` needs ``prm_url`` and ``prm_model``."""
    name = name or ("self-eval-prm" if kind == "process" else "judge-grade")
    if name == "judge-grade":
        return JudgeGrade()
    if name == "judge-verdict":
        return JudgeVerdict()
    if name == "self-eval-prm":
        return SelfEvalPRM()
    if name == "pooling-prm":
        if not (prm_url and prm_model):
            raise ConfigError("the pooling-prm scorer needs a PRM URL and model (--prm-url, --prm-model)")
        return PoolingPRM(prm_url, prm_model, step_tag=prm_step_tag, api_key=prm_api_key)
    raise ConfigError(f"unknown scorer {name!r} (known: {', '.join(SCORERS)})")


# -- option parsers and evaluation defaults the built-ins share ---------------------------------------


def positive(text: str) -> int:
    """A positive integer flag value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def sqrt_chains(size: int, options: dict[str, Any]) -> dict[str, Any]:
    """About ``sqrt(size)`` chains unless the options say how many."""
    options.setdefault("chains", max(1, round(math.sqrt(size))))
    return options


def width_within(size: int, options: dict[str, Any]) -> dict[str, Any]:
    """A beam width above the budget searches with width = budget."""
    if "beam_width" in options:
        options["beam_width"] = min(options["beam_width"], size)
    return options


def beam_width_within(size: int, options: Mapping[str, Any]) -> None:
    """A beam width may not exceed the number of beams."""
    if options.get("beam_width", 0) > size:
        raise ConfigError(f"beam width {options['beam_width']} exceeds the budget {size}")


def chains_within(size: int, options: Mapping[str, Any]) -> None:
    """No more chains than answers."""
    if options.get("chains", 0) > size:
        raise ConfigError(f"{options['chains']} chains exceed the budget {size}")
