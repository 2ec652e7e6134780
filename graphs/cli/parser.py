"""The flags of ``ttc run``, ``ttc eval`` and ``ttc serve``, and what they make: the strategy's
options (from the registry), its scorer."""

from __future__ import annotations

import argparse
import os
from typing import Any, NoReturn

from graphs.evaluation import (
    known,
)
from graphs.evaluation.datasets import DATASETS
from graphs.registry import SCORERS, add_option_flags, get, make_scorer, positive, strategies
from nodes.errors import ConfigError
from nodes.machine import DTYPES
from nodes.server import DEFAULT_MODEL, PACKAGED_MODELS

__all__ = ["build_parser", "strategy_options"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the usage is one `ttc run -h` away.
        self.exit(2, f"ttc: error: {message} (see `{self.prog} -h`)\n")


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"expected a temperature between 0 and 2, got {value}")
    return value


def parameter_count(text: str) -> int:
    """A model size: a number of weights, plain or with a suffix (``494000000``, ``494M``, ``7.6B``, ``7.6e9``)."""
    scale = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}.get(text.strip()[-1:].lower(), 1.0)
    number = text.strip()[:-1] if scale != 1.0 else text.strip()
    message = f"expected a number of weights such as 494M or 7.6B, got {text!r}"
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(message) from None
    if not 1 <= value < 1e16:
        raise argparse.ArgumentTypeError(message)
    return round(value)


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return names


def _budgets(text: str) -> list[int]:
    return sorted({positive(n) for n in _names(text)})


def _strategy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scorer",
        choices=sorted(SCORERS),
        help="verifier: default judge-grade for best-of-n, revision and mix; self-eval-prm for searches",
    )
    p.add_argument("--prm-url", help="pooling-prm: the PRM server (vLLM pooling API), e.g. http://gpu:8001")
    p.add_argument("--prm-model", help="pooling-prm: the served PRM's name")
    p.add_argument(
        "--prm-step-tag",
        default="\n\n",
        help="pooling-prm: text closing each step in the PRM input (default a blank line; Qwen2.5-Math-PRM: <extra_0>)",
    )
    add_option_flags(p)  # every registered strategy's options (a shared flag once)


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=_unit_float, default=0.7)
    p.add_argument("--judge-temperature", type=_unit_float, default=0.1)
    p.add_argument("--max-tokens", type=positive, default=384, help="completion limit per proposal")
    p.add_argument("--judge-max-tokens", type=positive, default=384, help="completion limit per judge call")
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``ttc run``, ``ttc eval`` and ``ttc serve`` (every registered strategy's options as flags)."""
    parser = _Parser(prog="ttc", description="Test-time-compute strategies as LangGraph graphs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="answer a question with a strategy")
    run.add_argument("question", help="the question to answer")
    run.add_argument("--strategy", "-s", choices=sorted([*strategies(), "router"]), default="filter-vote",
                     help="a strategy, or `router` with --policy (from ttc eval)")  # fmt: skip
    run.add_argument("-k", "-n", type=positive, default=8, help="number of proposals (default 8)")
    run.add_argument("--policy", help="router: a routing policy file written by `ttc eval` (policies.json)")
    run.add_argument("--policy-budget", help="router: which of the file's token budgets (default the largest)")
    _strategy_args(run)
    run.add_argument("--format", dest="answer_format", choices=["auto", "number", "math", "choice"],
                     help="how the answer is asked for and read (default auto; router: its policy's)")  # fmt: skip
    _sampling_args(run)
    run.add_argument("--max-calls", type=positive, help="budget cap: most LLM calls")
    run.add_argument("--max-total-tokens", type=positive, help="budget cap: most prompt+completion tokens")
    _endpoint_args(run)
    run.add_argument("--json", action="store_true", help="print the whole result as JSON")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")

    ev = sub.add_parser("eval", help="run strategies over a data set at a grid of budgets (resumable)")
    ev.add_argument("--dataset", "-d", choices=["arithmetic", *DATASETS], default="arithmetic")
    ev.add_argument("--data", help="data folder laid out like ../shared/data (or TTC_DATA_DIR)")
    ev.add_argument("--subject", action="append", help="mmlu: a subject (repeatable; default all)")
    ev.add_argument("--per-level", type=positive, default=4, help="arithmetic: questions per level (default 4)")
    ev.add_argument("--levels", type=_names, help="arithmetic: comma-separated levels (default all)")
    ev.add_argument("--limit", type=positive, help="evaluate this many questions, drawn with --question-seed")
    ev.add_argument("--question-seed", type=int, default=0, help="which questions --limit draws (default 0)")
    ev.add_argument("--strategies", type=_names, default=["vote", "filter-vote"],
                    help=f"comma-separated, from {', '.join(known())} (default vote,filter-vote)")  # fmt: skip
    ev.add_argument("--budgets", type=_budgets, default=[1, 2, 4, 8],
                    help="comma-separated samples per question, k or n of each strategy (default 1,2,4,8)")  # fmt: skip
    ev.add_argument("--direct-budgets", type=_budgets, metavar="BUDGETS",
                    help="budgets of the strategies run as graphs (searches, revision, mix), each a run per "
                         "question (default: --budgets)")  # fmt: skip
    ev.add_argument("--out", "-o", help="output folder: store.sqlite, results, plots (default ttc-eval/DATASET)")
    _strategy_args(ev)
    ev.add_argument("--format", dest="answer_format", choices=["auto", "number", "math", "choice"],
                    help="how answers are asked for and read (default: the data set's)")  # fmt: skip
    _sampling_args(ev)
    ev.add_argument("--concurrency", type=positive, default=4, help="questions in flight at once (default 4)")
    ev.add_argument("--probe", choices=["agreement", "oracle"], default="agreement",
                    help="difficulty (compute-optimal selection, by_difficulty.csv): the probe samples' agreement, or "
                         "the share of them that is right (oracle)")  # fmt: skip
    ev.add_argument("--probe-size", type=positive, default=4,
                    help="held-out samples per question drawn beyond the largest budget for the difficulty probe "
                         "(default 4)")  # fmt: skip
    ev.add_argument("--bins", type=positive, default=3, help="compute-optimal: difficulty bins (default 3)")
    ev.add_argument("--folds", type=positive, default=2, help="compute-optimal: cross-validation folds (default 2)")
    ev.add_argument("--logprobs", type=int, default=None, metavar="K",
                    help="top logprobs each pool sample keeps as token confidences, 0-20 (default: 20 when a "
                         "planned strategy weighs confidence, like deepconf, else 0)")  # fmt: skip
    ev.add_argument("--subsets", type=positive, default=2000,
                    help="best-of-n: most subsets per budget enumerated (beyond: that many drawn)")  # fmt: skip
    _endpoint_args(ev)
    ev.add_argument("--json", action="store_true", help="print the results as JSON")
    ev.add_argument("--quiet", "-q", action="store_true", help="no progress line on stderr")

    gw = sub.add_parser("gateway", help="serve every strategy behind an OpenAI-compatible API until Ctrl-C")
    gw.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    gw.add_argument("--port", type=positive, default=8080, help="port to listen on (default 8080)")
    gw.add_argument("--max-runs", type=positive, default=16,
                    help="strategy runs at once; more get HTTP 429 with Retry-After (default 16)")  # fmt: skip
    gw.add_argument("--run-timeout", type=float, default=600.0,
                    help="seconds a strategy run may take before it is cancelled: HTTP 504 (default 600)")  # fmt: skip
    gw.add_argument("--api-key-env", default="TTC_GATEWAY_API_KEY", metavar="VAR",
                    help="environment variable holding the key clients must send (default TTC_GATEWAY_API_KEY; "
                         "unset: no key)")  # fmt: skip
    gw.add_argument("--format", dest="answer_format", choices=["auto", "number", "math", "choice"], default="auto",
                    help="how answers are asked for and read, unless a request's ttc.answer_format says")  # fmt: skip
    gw.add_argument("--max-tokens", type=positive, default=512,
                    help="completion limit per proposal unless a request sets max_tokens (default 512)")  # fmt: skip
    _endpoint_args(gw)
    gw.add_argument("--quiet", "-q", action="store_true", help="no line per request on stderr")

    serve = sub.add_parser("serve", help="run the embedded vLLM server until Ctrl-C")
    serve.add_argument("--model", choices=sorted(PACKAGED_MODELS), default=DEFAULT_MODEL)
    serve.add_argument("--port", type=positive, default=8000)
    _server_args(serve, prefix="")
    return parser


def _server_args(p: argparse.ArgumentParser | argparse._ArgumentGroup, prefix: str) -> None:
    """Overrides of the embedded server's machine-chosen settings (``nodes.machine.choose_settings``)."""
    p.add_argument(f"--{prefix}dtype", choices=("auto", *DTYPES), default="auto",
                   help="embedded server dtype (auto: bf16 where the CPU has native bf16, else fp32)")  # fmt: skip
    p.add_argument(f"--{prefix}bind", default="auto", metavar="auto|all|vllm|CPUS",
                   help="embedded server threads: all CPUs compute, vLLM's binding (reserves a core), or a list "
                        "such as 0-3 (auto: all on a machine of at most 4 CPUs)")  # fmt: skip
    p.add_argument(f"--{prefix}kv-cache", default="auto", metavar="SIZE",
                   help="embedded server KV cache, e.g. 2G (auto: a quarter of free memory, 512M to 4G)")  # fmt: skip
    p.add_argument(f"--{prefix}openmp", choices=("auto", "intel", "gnu"), default="auto",
                   help="embedded server OpenMP runtime (auto: Intel's where intel-openmp is installed)")  # fmt: skip


def _endpoint_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint (default: the embedded vLLM server)")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://gpu:8000/v1 (or TTC_BASE_URL)")
    g.add_argument("--model", help="model name at that endpoint (or TTC_MODEL); API key from TTC_API_KEY")
    g.add_argument("--server-model", choices=sorted(PACKAGED_MODELS), default=DEFAULT_MODEL,
                   help=f"packaged model of the embedded server (default {DEFAULT_MODEL})")  # fmt: skip
    _server_args(g, prefix="server-")
    g.add_argument("--max-concurrency", type=positive, default=16, help="requests in flight at once")
    g.add_argument("--max-n", type=positive, default=64, help="most samples per request (1: server lacks n)")
    g.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    g.add_argument("--params", type=parameter_count, metavar="N",
                   help="the endpoint model's weights, e.g. 7.6B, for FLOPs (known for packaged models)")  # fmt: skip


def strategy_options(args: argparse.Namespace, strategy: str) -> dict[str, Any]:
    """The builder keyword arguments a strategy takes from the flags (its size comes apart)."""
    spec = get(strategy)
    options = spec.options_from(args)
    if spec.scorer is None:
        return options
    if args.scorer == "pooling-prm" and not (args.prm_url and args.prm_model):
        raise ConfigError("--scorer pooling-prm needs --prm-url and --prm-model")
    scorer = make_scorer(
        args.scorer, spec.scorer, prm_url=args.prm_url, prm_model=args.prm_model, prm_step_tag=args.prm_step_tag,
        prm_api_key=os.environ.get("TTC_PRM_API_KEY") or os.environ.get("TTC_API_KEY"),
    )  # fmt: skip
    return {"scorer": scorer, **options}
