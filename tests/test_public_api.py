"""The public surface, pinned (as httpx pins its exports): what a strategy author imports.

Changing a package's exports is a deliberate act that changes this file. And nothing outside a
package imports its private modules or names: ``graphs`` builds on ``nodes``' public API only,
benchmarks and notebooks on both packages' public APIs.
"""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

EXPORTS = {
    "graphs.compose": [
        "PLANNER", "RECURSION_LIMIT", "BudgetReport", "Plan", "Planner", "QuestionInput", "StrategyOutput",
        "StrategyState", "add_final",
        "add_planner",
        "add_worker", "check_count", "decided", "finish", "plan_judging", "plan_proposals", "proposals_issued",
        "propose_then_judge", "question_of", "wave", "worst_case_tokens",
    ],
    "graphs.registry": [
        "ENTRY_POINT_GROUP", "SCORERS", "Option", "PooledMethod", "StrategySpec", "add_option_flags", "get",
        "make_scorer", "register", "strategies",
    ],
    "graphs.search": [
        "BeamPolicy", "DVTSPolicy", "Decide", "Expansion", "MCTSPolicy", "Node", "ParticlePolicy", "Policy",
        "RebasePolicy", "SearchOutput", "SearchView", "Statistics", "allocate", "build_beam_search_graph",
        "build_dvts_graph", "build_lookahead_graph", "build_mcts_graph", "build_particle_filter_graph",
        "build_rebase_graph", "build_search_graph", "check_beam_width", "effective_sample_size", "particle_weights",
        "resample", "reward_of", "tree_statistics", "uct_select", "weighted_by_reward",
    ],
    "graphs.serving": [
        "OpenLLM", "PlatformInput", "PlatformOutput", "PlatformState", "ServerContext", "build_platform_graph",
        "platform_graph", "StrategyChatModel", "StrategyConfig", "StrategyEvent", "StrategyFailed", "StrategyResult",
        "StrategyRunner",
        "describe_event", "failure_status", "question_of", "result_of",
    ],
    "graphs": [
        "Option", "StrategySpec", "best_of_n_graph", "build_beam_search_graph", "build_best_of_n_graph",
        "build_dvts_graph", "build_filter_vote_graph", "build_lookahead_graph", "build_mix_graph", "build_rebase_graph",
        "build_revision_graph", "build_search_graph", "build_vote_graph", "filter_vote_graph", "get", "register",
        "strategies", "vote_graph",
    ],
    "nodes.kinds": [
        "BUILTIN_KINDS", "CRITIQUE", "PROPOSE", "PROPOSE_STREAMED", "REVISE", "STEP", "VERIFY", "NodeKind", "Worker",
        "scoring", "wave_scoring",
    ],
    "nodes.calls": ["error_line", "failure", "usage_of"],
    "nodes": [
        "AnswerFormat", "Attempt", "BUILTIN_KINDS", "BadModelOutput", "Budget", "CRITIQUE", "CRITIQUE_PROMPT",
        "Candidate", "Completion", "ConfigError", "Critique", "CritiqueTask", "Endpoint", "EndpointError",
        "FILTER_PROMPT", "Failure", "LLM", "Ledger", "Message", "NodeKind", "PROPOSE", "PROPOSE_STREAMED",
        "PermanentEndpointError", "ProposeTask", "RETRY_POLICY", "REVISE", "ReviseTask", "RunContext", "STEP",
        "Score", "ScoreTask", "Scored", "Scorer", "ServerError", "StepTask", "StreamTask", "TTCError",
        "TransientEndpointError", "VERIFY", "Verdict", "VerifyTask", "Worker", "add_ledgers", "critique",
        "critique_failed", "equivalent", "error_line", "extract_answer", "failure", "filter_prompt",
        "filter_then_vote", "flops", "group_answers", "is_transient", "ledger_entry", "ledger_totals", "normalize",
        "parse_verdict", "plurality_vote", "propose", "propose_failed", "propose_prompt", "propose_streamed",
        "revise", "revise_failed", "score_failed", "score_node", "scoring", "step", "step_failed",
        "transient_status", "usage_of", "user", "verify", "verify_failed", "vote", "weighted_vote",
    ],
}  # fmt: skip

PACKAGES = ["nodes", "graphs", "graphs.compose", "graphs.search", "graphs.strategies", "graphs.evaluation",
            "graphs.lab", "graphs.cli", "graphs.serving"]  # fmt: skip


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_exports_are_pinned(module: str) -> None:
    assert sorted(importlib.import_module(module).__all__) == sorted(EXPORTS[module])


@pytest.mark.parametrize("module", PACKAGES)
def test_every_export_exists_and_is_documented(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__doc__
    exported = getattr(mod, "__all__", [])
    assert len(exported) == len(set(exported))
    for name in exported:
        value = getattr(mod, name)  # raises if missing
        if (
            callable(value)
            and not isinstance(value, type(json))
            and getattr(value, "__module__", "").startswith(("graphs", "nodes"))
        ):
            assert value.__doc__, f"{module}.{name} has no docstring"


def _imports(path: Path, source: str) -> list[tuple[str, str | None]]:
    """(module, name) pairs imported by ``source``."""
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.module, a.name) for a in node.names]
    return out


def _private(module: str, name: str | None) -> bool:
    parts = module.split(".")
    return any(p.startswith("_") and p != "__future__" for p in parts) or bool(name and name.startswith("_"))


def _sources() -> list[tuple[Path, str]]:
    files = [p for folder in ("graphs", "nodes", "benchmarks") for p in (ROOT / folder).rglob("*.py")]
    out = [(p, p.read_text()) for p in files]
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        out.append(
            (notebook, "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))))
        )
    return out


def test_nothing_imports_another_packages_private_modules() -> None:
    own = {"graphs", "nodes", "benchmarks"}
    found = []
    for path, source in _sources():
        package = path.relative_to(ROOT).parts[0]
        for module, name in _imports(path, source):
            top = module.split(".")[0]
            if top in own and top != package and _private(module, name):
                found.append(f"{path.relative_to(ROOT)}: {module}.{name or ''}")
            elif top not in own and _private(module, name) and top not in ("__future__",):
                found.append(f"{path.relative_to(ROOT)}: {module}.{name or ''} (another project's private module)")
    assert found == []


def test_nodes_never_imports_graphs() -> None:
    for path in (ROOT / "nodes").rglob("*.py"):
        assert not [m for m, _ in _imports(path, path.read_text()) if m.split(".")[0] == "graphs"], path


def test_a_strategy_registered_through_an_entry_point_appears_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third-party package's strategy (an installed distribution with an entry point in the
    ``ttc_graphs.strategies`` group) shows up in ``ttc run``, ``ttc eval`` and the router."""
    package = tmp_path / "my_strategies"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from graphs import StrategySpec, build_vote_graph\n"
        "TWICE = StrategySpec('vote-twice', lambda k, **o: build_vote_graph(2 * k), 'a vote over 2k samples')\n"
    )
    info = tmp_path / "my_strategies-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-strategies\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ttc_graphs.strategies]\nvote-twice = my_strategies:TWICE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from graphs import registry
    from graphs.cli import build_parser
    from graphs.evaluation import EvalPlan
    from graphs.evaluation.selection import Policy, Route
    from graphs.strategies.router import build_router_graph

    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_loaded", False)
    assert registry.get("vote-twice").summary == "a vote over 2k samples"
    args = build_parser().parse_args(["run", "--strategy", "vote-twice", "q"])
    assert args.strategy == "vote-twice"
    assert EvalPlan(("vote", "vote-twice"), (1, 2)).direct == ["vote-twice"]
    policy = Policy("agreement", 2, [0.5], [Route("vote", 1), Route("vote-twice", 2)])
    assert "vote-twice-at-2" in build_router_graph(policy).compile().get_graph().nodes


def test_a_broken_entry_point_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ttc_graphs.strategies]\nnope = no_such_module:SPEC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from graphs import registry
    from nodes import ConfigError

    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_loaded", False)
    with pytest.raises(ConfigError, match=r"strategy entry point 'nope' .* failed to load"):
        registry.strategies()
