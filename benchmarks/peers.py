"""Peers side by side: this project's strategies against its_hub 1.2.0 and optillm 0.4.0 on the same vLLM.

Every side answers the same GSM8K questions (a seeded subset) on the same embedded vLLM server,
with the same user message (:func:`nodes.propose.propose_prompt`), the same ``k`` samples, the
same sampling temperature and completion limit, and the same number of questions in flight.

=====================================  ===============================================================
this project                           peer
=====================================  ===============================================================
``vote`` (k samples, plurality vote)   its_hub ``SelfConsistency`` (regex projection on the answer)
``vote``                               its_hub ``AdaptiveSelfConsistency`` (2, 4, 8 samples; stops at
                                       75% agreement)
``vote``                               optillm ``majority_voting`` (proxy; k samples in one request)
``best-of-n`` + ``JudgeGrade``         its_hub ``BestOfN`` + ``LLMJudge`` (0-10 score as JSON)
``best-of-n`` + ``JudgeGrade``, T=1    optillm ``bon`` (proxy; its generation temperature is fixed at
                                       1.0, so this pair samples at 1.0 on both sides)
``particle-filter`` (4 particles,      its_hub ``ParticleFiltering`` (4 particles, ``StepGeneration`` on
``SelfEvalPRM``; ESS threshold 1.0,    blank lines, stopping at "The answer is", at most 20 steps) with
i.e. resampling every step as its_hub  the same self-evaluation PRM written against its_hub's PRM
does, and the default 0.5)             interface (``peer_drivers/its_hub_driver.py``)
=====================================  ===============================================================

``JudgeGrade`` (a 1-10 grade per sample, the best one wins) is this project's scorer closest to both
peers' judges (a 0-10 score per sample, the best one wins). Judges sample at T = 0.1 with the same
completion limit on every side.

Where the pairs still differ (read from the peers' source): this project seeds its samples, sends
``n = k`` in one request and lets a sample without a stated answer not vote. its_hub sends ``k``
separate unseeded requests; its vote counts an unparseable sample as the answer ``None``; its
``LLMJudge`` asks for JSON through vLLM's structured output (``json_schema``), which a 0.5B model
fills with endless digits up to the limit, and its usage leaves the judge's calls out.
optillm adds an empty system message (replacing the chat template's default one), votes on the
text after "answer:" or on the whole reply when there is none, generates ``bon`` samples at T = 1.0,
rates them one after another with a prompt of its own (reply "only a number", else 0), and reports
completion tokens only.

The peers live in a venv of their own (``$TTC_CACHE_DIR/bench/peers-venv``, made and pinned here,
never a dependency of the project) and run as scripts from ``benchmarks/peer_drivers/``, talking
JSON over stdin/stdout. The sides take turns chunk by chunk (the starting side rotates), so a slow
spell of the shared machine falls on all of them. The server runs one side at a time, so the
difference of its Prometheus counters (``/metrics``) before and after a chunk is that side's work:
prompt and generated tokens, sequences, requests, engine steps. One checker
(:meth:`graphs.evaluation.datasets.Dataset.check_answer` on the final answer's text) scores every side.

Goal per pair: the framework's generated tokens per second at least the peer's, and accuracy at
least the peer's (with 8-24 questions the 95% interval is wide: read it as a sanity check).

``python -m benchmarks.peers [--quick] [--model NAME] [--questions N]``; the suite ``peers`` of
``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import Row, free_port, verdict
from graphs.compose import RECURSION_LIMIT
from graphs.evaluation.datasets import Dataset, Record, load
from graphs.search import build_particle_filter_graph
from graphs.strategies.best_of_n import build_best_of_n_graph
from graphs.strategies.vote import build_vote_graph
from nodes import LLM, Endpoint, RunContext
from nodes.answers import extract_answer
from nodes.budget import ledger_totals
from nodes.propose import ANSWER_INSTRUCTIONS, propose_prompt
from nodes.scorers import STEP_PROMPT, JudgeGrade, SelfEvalPRM
from nodes.server import DEFAULT_MODEL, EmbeddedServer, cache_dir
from nodes.step import STEP_INSTRUCTION

K = 8
TEMPERATURE = 0.7
JUDGE_TEMPERATURE = 0.1
JUDGE_MAX_TOKENS = 256  # optillm's rating calls use 256; every judge here gets the same
IN_FLIGHT = 4  # questions in flight at once, on every side
QUESTION_SEED = 12
FULL_QUESTIONS = 8  # measured: one chunk of 4 questions takes about 11 minutes for all pairs on Qwen 0.5B
FULL_MAX_TOKENS = 320
PF_K = 4  # particles on both sides of the particle-filter pair (its_hub's headline budget)
PF_MAX_STEPS = 20  # steps a particle may take, on both sides
DRIVERS = Path(__file__).parent / "peer_drivers"
# its_hub's regex projection: the number of the last \boxed{} or "answer is" (what the prompt asks
# for; Qwen mostly boxes), as this project's checker reads it. Its projection takes the first match,
# so the greedy ``.*`` makes that the last one; LaTeX and "$" between "is" and the number are skipped.
ANSWER_PATTERN = r".*(?:\\boxed\{|answer is[^\d-]{0,24}?)\s*(-?\d(?:[\d,]*\d)?(?:\.\d+)?)"

# The peers' venv: pip steps in order. optillm declares heavy dependencies (torch, transformers,
# spacy, ...) that its proxy mode never imports, so it goes in with --no-deps and then exactly what
# the proxy imports (cerebras-cloud-sdk too: its server imports it at the top).
PEER_INSTALL: tuple[tuple[str, ...], ...] = (
    ("its-hub[lm]==1.2.0", "flask==3.1.3", "openai==3.63.0", "litellm==1.110.2", "networkx==3.6.1",
     "numpy==2.4.6", "z3-solver==4.15.4.0", "sympy==1.14.0", "math-verify==0.9.0", "aiohttp==3.14.5",
     "pyyaml==6.0.4", "httpx==0.29.0", "cerebras-cloud-sdk==1.91.0"),
    ("--no-deps", "optillm==0.4.0"),
)  # fmt: skip


def peer_python(log: Callable[[str], None] = print) -> Path:
    """The peers' venv python, (re)made when it is missing or its pins changed."""
    root = cache_dir() / "bench" / "peers-venv"
    python, stamp = root / "bin" / "python", root / ".ttc-peers-pins"
    wanted = json.dumps({"python": list(sys.version_info[:2]), "install": PEER_INSTALL})
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"peers: making the peers' venv in {root} (once per pin change)")
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    for step in PEER_INSTALL:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *step], check=True)
    stamp.write_text(wanted)
    return python


# --- the server's own counters -------------------------------------------------------------------

_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

COUNTERS: dict[str, tuple[str, dict[str, str]]] = {
    "prompt_tokens": ("vllm:prompt_tokens_total", {}),  # prefilled, once per sequence (n=8: 8 times)
    "cached_tokens": ("vllm:prefix_cache_hits_total", {}),
    "generation_tokens": ("vllm:generation_tokens_total", {}),
    "sequences": ("vllm:request_success_total", {}),  # finished sequences (n=8: 8)
    "truncated": ("vllm:request_success_total", {"finished_reason": "length"}),
    "requests": ("vllm:request_params_n_count", {}),  # API requests, whatever their n
    "steps": ("vllm:iteration_tokens_total_count", {}),  # engine steps
    "server_cpu": ("process_cpu_seconds_total", {}),  # the API server process (not the engine core)
}


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text format as ``(name, labels, value)`` samples (comments skipped)."""
    samples = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and not line.startswith("#"):
            with contextlib.suppress(ValueError):
                samples.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return samples


def counters(text: str) -> dict[str, float]:
    """The :data:`COUNTERS` of one scrape, each summed over the series that carry its labels."""
    samples = parse_metrics(text)
    return {
        key: math.fsum(v for n, ls, v in samples if n == name and all(ls.get(a) == b for a, b in labels.items()))
        for key, (name, labels) in COUNTERS.items()
    }


def scrape(root: str) -> dict[str, float]:
    return counters(httpx.get(f"{root}/metrics", timeout=30.0).text)


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# --- one side's turn over a chunk of questions -----------------------------------------------------


@dataclass
class Turn:
    """What a side reports for one chunk: final answer texts (one per question), wall and client
    CPU seconds of the work, its own token counts and how many questions failed."""

    texts: list[str]
    seconds: float
    cpu: float
    reported: Counter[str]
    errors: int = 0


@dataclass
class Settings:
    model: str  # the served model name
    base_url: str  # vLLM's /v1
    max_tokens: int
    temperature: float = TEMPERATURE


def graph_side(
    graph: Any, samples: int, text: Callable[[dict[str, Any]], str] | None = None
) -> Callable[[Settings, list[Record]], Turn]:
    """A compiled graph of this project over a chunk, ``IN_FLIGHT`` questions at once, its usage from
    the ledgers; ``text`` gives the reply a question is scored on (default :func:`final_text`)."""

    async def turn(settings: Settings, chunk: list[Record]) -> Turn:
        # Requests in flight are bounded by the questions in flight, as on the peers' side.
        endpoint = Endpoint(base_url=settings.base_url, model=settings.model, max_concurrency=IN_FLIGHT * samples)
        async with LLM(endpoint) as llm:
            ctx = RunContext(
                llm=llm, temperature=settings.temperature, max_tokens=settings.max_tokens, answer_format="number",
                judge_temperature=JUDGE_TEMPERATURE, judge_max_tokens=JUDGE_MAX_TOKENS,
            )  # fmt: skip
            start, cpu = time.perf_counter(), time.process_time()
            config: Any = {"max_concurrency": IN_FLIGHT, "recursion_limit": RECURSION_LIMIT}
            outs = await graph.abatch([{"question": r.question} for r in chunk], config, context=ctx)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        reported: Counter[str] = Counter()
        for out in outs:
            reported.update(ledger_totals(out["ledger"]))
        texts = [(text or final_text)(o) for o in outs]
        return Turn(texts, seconds, cpu, reported, sum(bool(o.get("failures")) for o in outs))

    return lambda settings, chunk: asyncio.run(turn(settings, chunk))


def framework_side(strategy: str) -> Callable[[Settings, list[Record]], Turn]:
    """This project's vote or best-of-n (judge grade) with ``K`` samples."""
    graph = build_vote_graph(K) if strategy == "vote" else build_best_of_n_graph(K, scorer=JudgeGrade())
    return graph_side(graph.compile(), K)


def final_text(out: dict[str, Any]) -> str:
    """The text of the sample a graph's decision rests on ("" when no sample stated an answer)."""
    decision = out["decision"]
    chosen = decision.get("chosen")
    if chosen is None and decision.get("supporters"):
        chosen = decision["supporters"][0]
    return next((c["text"] for c in out["candidates"] if c["index"] == chosen), "")


def run_driver(python: Path, script: str, request: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [str(python), str(DRIVERS / script)], input=json.dumps(request), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"{script} printed no report (stdout {proc.stdout[:200]!r}; stderr "
                           f"{proc.stderr.strip()[-800:]!r})") from None  # fmt: skip
    return report


def peer_turn(report: dict[str, Any], extra_cpu: float = 0.0) -> Turn:
    reported: Counter[str] = Counter()
    for usage in [r.get("usage") or {} for r in report["results"]] + [report.get("prm_usage") or {}]:
        reported.update({k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens", "calls")})
    texts = [r["text"] for r in report["results"]]
    errors = sum(r["error"] is not None for r in report["results"])
    return Turn(texts, report["seconds"], report["cpu_seconds"] + extra_cpu, reported, errors)


def its_hub_side(python: Path, algorithm: str, k: int = K) -> Callable[[Settings, list[Record]], Turn]:
    def turn(settings: Settings, chunk: list[Record]) -> Turn:
        request = {
            "base_url": settings.base_url, "model": settings.model, "algorithm": algorithm,
            "prompts": [propose_prompt(r.question, "number") for r in chunk], "k": k,
            "temperature": settings.temperature, "max_tokens": settings.max_tokens, "concurrency": IN_FLIGHT,
            "judge_temperature": JUDGE_TEMPERATURE, "judge_max_tokens": JUDGE_MAX_TOKENS,
            "answer_pattern": ANSWER_PATTERN,
        }  # fmt: skip
        if algorithm == "particle-filtering":  # steps and the self-evaluation PRM, worded as this project's
            request |= {
                "prompts": [step_prompt(r.question) for r in chunk], "questions": [r.question for r in chunk],
                "prm_prompt": STEP_PROMPT, "max_steps": PF_MAX_STEPS, "step_token": "\n\n",
                "stop_token": "The answer is",
            }  # fmt: skip
        return peer_turn(run_driver(python, "its_hub_driver.py", request))

    return turn


def step_prompt(question: str) -> str:
    """The user message of this project's step generation (``nodes.step.step_messages``) for a number."""
    return f"{question.strip()}\n\n{STEP_INSTRUCTION} {ANSWER_INSTRUCTIONS['number']}"


def particle_side(ess_threshold: float, k: int = PF_K) -> Callable[[Settings, list[Record]], Turn]:
    """This project's particle filter with the self-evaluation PRM."""
    graph = build_particle_filter_graph(k, ess_threshold=ess_threshold, scorer=SelfEvalPRM(), max_rounds=PF_MAX_STEPS)
    return graph_side(graph.compile(), k)


def process_cpu(pid: int) -> float:
    """A process's CPU seconds (all its threads), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def http_service(
    name: str,
    cmd: list[str],
    port: int,
    log_path: Path,
    *,
    stop: signal.Signals = signal.SIGTERM,
    **popen: Any,
) -> Iterator[tuple[str, int]]:
    """``cmd`` as a process serving HTTP on ``port`` (its output in ``log_path``), once its ``/health``
    answers; yields its ``/v1`` base URL and pid, and stops it with ``stop`` (then kills it)."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **popen)
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode} (log: {log_path})")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer /health within 120 s (log: {log_path})")
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}/v1", proc.pid
        finally:
            proc.send_signal(stop)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def optillm_proxy(python: Path, base_url: str, model: str, log_path: Path) -> Iterator[tuple[str, int]]:
    """optillm's proxy in front of ``base_url``; yields its base URL and pid.

    ``OPENAI_API_KEY`` makes it use an OpenAI client for ``--base-url`` (``OPTILLM_API_KEY`` would
    switch it to local inference instead); ``--best-of-n`` is ``bon``'s n, which optillm reads only
    from its own configuration. Run in an empty folder so it finds no local plugins.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTILLM_")} | {"OPENAI_API_KEY": "none"}
    cmd = [str(python), str(python.parent / "optillm"), "--base-url", base_url, "--host", "127.0.0.1",
           "--port", str(port), "--best-of-n", str(K), "--model", model]  # fmt: skip
    with (
        tempfile.TemporaryDirectory() as folder,
        http_service("optillm", cmd, port, log_path, cwd=folder, env=env) as served,
    ):
        yield served


def optillm_side(python: Path, proxy: tuple[str, int], approach: str) -> Callable[[Settings, list[Record]], Turn]:
    url, pid = proxy

    def turn(settings: Settings, chunk: list[Record]) -> Turn:
        request = {
            "base_url": url, "model": f"{approach}-{settings.model}",
            "prompts": [propose_prompt(r.question, "number") for r in chunk],
            "temperature": settings.temperature, "max_tokens": settings.max_tokens, "concurrency": IN_FLIGHT,
            "extra_body": {"k": K} if approach == "majority_voting" else {},
        }  # fmt: skip
        before = process_cpu(pid)
        report = run_driver(python, "optillm_driver.py", request)
        return peer_turn(report, extra_cpu=process_cpu(pid) - before)  # the proxy is the peer's client

    return turn


@contextlib.contextmanager
def ttc_gateway(base_url: str, model: str, log_path: Path) -> Iterator[tuple[str, int]]:
    """``ttc gateway`` in front of ``base_url`` (answers read as numbers, as GSM8K's are); yields its base
    URL and pid. It is this project's door for the same clients optillm's proxy serves."""
    port = free_port()
    cmd = [sys.executable, "-m", "graphs.cli", "gateway", "--base-url", base_url, "--model", model,
           "--port", str(port), "--format", "number", "--max-runs", str(4 * IN_FLIGHT), "--quiet"]  # fmt: skip
    with http_service("ttc gateway", cmd, port, log_path, stop=signal.SIGINT) as served:
        yield served


def gateway_side(python: Path, proxy: tuple[str, int], strategy: str) -> Callable[[Settings, list[Record]], Turn]:
    """Questions through ``ttc gateway`` by the same OpenAI-client driver as optillm's proxy gets
    (``optillm_driver.py`` is a plain OpenAI client): the strategy by model name, the bare question as
    the message (the gateway asks for the answer format itself), usage from the reply."""
    url, pid = proxy

    def turn(settings: Settings, chunk: list[Record]) -> Turn:
        judges = {"ttc": {"judge_temperature": JUDGE_TEMPERATURE, "judge_max_tokens": JUDGE_MAX_TOKENS}}
        request = {
            "base_url": url, "model": f"{strategy}-{K}/{settings.model}", "prompts": [r.question for r in chunk],
            "temperature": settings.temperature, "max_tokens": settings.max_tokens, "concurrency": IN_FLIGHT,
            "extra_body": judges if strategy == "best-of-n" else {},
        }  # fmt: skip
        before = process_cpu(pid)
        report = run_driver(python, "optillm_driver.py", request)
        return peer_turn(report, extra_cpu=process_cpu(pid) - before)  # the gateway is the side's server

    return turn


def usage_row(tally: Tally, what: str) -> Row:
    """How a door's own usage report compares with what the server counted: completion tokens against
    generated tokens (exact for an honest ledger), prompt tokens against the server's prompt count
    (which counts a prompt once per sample of an n-request, where usage counts it once per request)."""
    generated, prompt = tally.server["generation_tokens"], tally.server["prompt_tokens"]
    own = Counter(tally.reported)
    ratio = own["completion_tokens"] / generated if generated else math.nan
    return {"benchmark": f"peers: usage {tally.name} reports ({what})",
            "result": f"completion {own['completion_tokens']} of {generated:.0f} generated ({ratio:.2f}×); prompt "
                      f"{own['prompt_tokens']} (server counted {prompt:.0f}, {tally.server['requests']:.0f} requests)",
            "goal": "completion tokens reported = generated (1.00×), prompt tokens reported > 0",
            "met": verdict(own["completion_tokens"] == generated and own["prompt_tokens"] > 0)}  # fmt: skip


# --- taking turns, and the report ------------------------------------------------------------------


@dataclass
class Tally:
    """A side's totals over all its chunks."""

    name: str
    seconds: float = 0.0
    cpu: float = 0.0
    server: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0.0))
    reported: Counter[str] = field(default_factory=Counter)
    questions: int = 0
    correct: int = 0
    no_answer: int = 0
    errors: int = 0
    answers: list[dict[str, Any]] = field(default_factory=list)  # per question, for the JSON dump

    def add(self, turn: Turn, server: dict[str, float], dataset: Dataset, chunk: list[Record]) -> None:
        self.seconds += turn.seconds
        self.cpu += turn.cpu
        for key, value in server.items():
            self.server[key] += value
        self.reported.update(turn.reported)
        self.errors += turn.errors
        for record, text in zip(chunk, turn.texts, strict=True):
            stated = extract_answer(text, dataset.answer_format)
            right = dataset.check_answer(record, stated)
            self.questions += 1
            self.correct += right
            self.no_answer += stated is None
            self.answers.append({"qid": record.qid, "reference": record.answer, "stated": stated, "correct": right,
                                 "text": text})  # fmt: skip

    def summary(self) -> dict[str, Any]:
        fields = ("seconds", "cpu", "questions", "correct", "no_answer", "errors", "answers")
        return {f: getattr(self, f) for f in fields} | {
            "rate": self.rate,
            "server": self.server,
            "reported": dict(self.reported),
        }

    @property
    def rate(self) -> float:
        return self.server["generation_tokens"] / self.seconds if self.seconds else 0.0


Side = tuple[str, Callable[[Settings, list[Record]], Turn]]


def take_turns(
    sides: list[Side],
    settings: Settings,
    dataset: Dataset,
    chunk: int,
    log: Callable[[str], None],
    on_chunk: Callable[[list[Tally]], None] | None = None,
) -> list[Tally]:
    """Every side over every chunk of questions, in turns whose first side rotates; ``on_chunk`` gets
    the tallies so far after each chunk (so a long run that fails later keeps what it measured)."""
    root = settings.base_url.removesuffix("/v1")
    tallies = {name: Tally(name) for name, _ in sides}
    records = dataset.records
    for c, first in enumerate(range(0, len(records), chunk)):
        part = records[first : first + chunk]
        for name, side in sides[c % len(sides) :] + sides[: c % len(sides)]:
            before = scrape(root)
            turn = side(settings, part)
            after = scrape(root)
            tallies[name].add(turn, {k: after[k] - before[k] for k in after}, dataset, part)
            log(f"peers:   {name}: questions {first}..{first + len(part) - 1} in {turn.seconds:.0f} s")
        if on_chunk is not None:
            on_chunk([tallies[name] for name, _ in sides])
    return [tallies[name] for name, _ in sides]


COLUMNS: tuple[tuple[str, int, Callable[[Tally], str]], ...] = (
    ("side", 34, lambda t: t.name),
    ("wall s", 7, lambda t: f"{t.seconds:.0f}"),
    ("gen tok/s", 9, lambda t: f"{t.rate:.1f}"),
    ("gen tok", 8, lambda t: f"{t.server['generation_tokens']:.0f}"),
    ("prompt tok", 10, lambda t: f"{t.server['prompt_tokens']:.0f}"),
    ("cached", 7, lambda t: f"{t.server['cached_tokens']:.0f}"),
    ("seqs", 5, lambda t: f"{t.server['sequences']:.0f}"),
    ("trunc", 5, lambda t: f"{t.server['truncated']:.0f}"),
    ("reqs", 5, lambda t: f"{t.server['requests']:.0f}"),
    ("steps", 6, lambda t: f"{t.server['steps']:.0f}"),
    ("tok/step", 8, lambda t: f"{t.server['generation_tokens'] / max(t.server['steps'], 1):.1f}"),
    ("ms/step", 7, lambda t: f"{1000 * t.seconds / max(t.server['steps'], 1):.0f}"),
    ("srv CPU", 7, lambda t: f"{t.server['server_cpu']:.1f}"),
    ("cli CPU", 7, lambda t: f"{t.cpu:.1f}"),
    ("accuracy (95%)", 20, lambda t: f"{t.correct}/{t.questions} ({wilson(t.correct, t.questions)[0]:.2f}-"
                                     f"{wilson(t.correct, t.questions)[1]:.2f})"),
    ("no ans", 6, lambda t: str(t.no_answer)),
    ("errs", 4, lambda t: str(t.errors)),
    ("own count: prompt/gen/calls", 27, lambda t: "{prompt_tokens}/{completion_tokens}/{calls}".format_map(
        Counter(t.reported)) if t.reported else "none"),
)  # fmt: skip
"""The details table: server counters are /metrics differences; "own count" is what the side itself
reports (this project's ledger; its_hub's usage; optillm's reply ``usage``)."""


def table(tallies: list[Tally]) -> str:
    lines = ["  ".join(f"{h:>{w}}" if i else f"{h:<{w}}" for i, (h, w, _) in enumerate(COLUMNS))]
    for t in tallies:
        lines.append("  ".join(f"{f(t):>{w}}" if i else f"{f(t):<{w}}" for i, (_, w, f) in enumerate(COLUMNS)))
    return "\n".join(lines)


def pair_row(fw: Tally, peer: Tally, what: str) -> Row:
    ratio = fw.rate / peer.rate if peer.rate else math.inf
    return {"benchmark": f"peers: {fw.name} vs {peer.name} ({what})",
            "result": f"{fw.rate:.1f} vs {peer.rate:.1f} generated tokens/s ({ratio:.2f}×; wall {fw.seconds:.0f} vs "
                      f"{peer.seconds:.0f} s); accuracy {fw.correct}/{fw.questions} vs {peer.correct}/{peer.questions} "
                      f"(95% intervals are wide at this size); no answer won {fw.no_answer} vs {peer.no_answer}",
            "goal": "≥ 1.0× tokens/s, accuracy ≥ peer's",
            "met": verdict(ratio >= 1.0 and fw.correct >= peer.correct)}  # fmt: skip


def data_path() -> Path:
    return Path(os.environ.get("TTC_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def compare(
    model: str,
    questions: int,
    max_tokens: int,
    *,
    only: Sequence[str] | None = None,
    chunk: int = IN_FLIGHT,
    log: Callable[[str], None] = print,
) -> list[Row]:
    """Every pair over ``questions`` GSM8K questions on the packaged ``model``; ``only`` picks groups
    (``vote``, ``best-of-n``, ``best-of-n-t1``). Per-question answers go to ``$TTC_CACHE_DIR/bench/``."""
    python = peer_python(log)
    dataset = load("gsm8k", data_path()).select(questions, seed=QUESTION_SEED)
    base_what = f"{len(dataset.records)} GSM8K questions, k={K}, {IN_FLIGHT} in flight, max_tokens={max_tokens}"
    rows: list[Row] = []
    dump: dict[str, Any] = {"model": model, "questions": len(dataset.records), "max_tokens": max_tokens, "sides": {}}
    with EmbeddedServer(model, log=sys.stderr) as server:
        served = server.model.served_name
        logs = cache_dir() / "logs"
        with optillm_proxy(python, server.base_url, served, logs / f"optillm-{server.port}.log") as proxy:
            groups: list[tuple[str, float, list[Side]]] = [
                ("vote", TEMPERATURE, [
                    ("vote", framework_side("vote")),
                    ("its_hub SelfConsistency", its_hub_side(python, "self-consistency")),
                    ("its_hub AdaptiveSelfConsistency", its_hub_side(python, "adaptive-self-consistency")),
                    ("optillm majority_voting", optillm_side(python, proxy, "majority_voting")),
                ]),
                ("best-of-n", TEMPERATURE, [
                    ("best-of-n judge-grade", framework_side("best-of-n")),
                    ("its_hub BestOfN LLMJudge", its_hub_side(python, "best-of-n")),
                ]),
                ("best-of-n-t1", 1.0, [
                    ("best-of-n judge-grade T=1", framework_side("best-of-n")),
                    ("optillm bon", optillm_side(python, proxy, "bon")),
                ]),
            ]  # fmt: skip
            groups.append(("particle-filter", TEMPERATURE, [
                ("particle-filter ESS 1.0", particle_side(1.0)),
                ("its_hub ParticleFiltering", its_hub_side(python, "particle-filtering", k=PF_K)),
                ("particle-filter ESS 0.5", particle_side(0.5)),
            ]))  # fmt: skip
            stack = contextlib.ExitStack()
            if not only or "gateway" in only:
                gateway = stack.enter_context(ttc_gateway(server.base_url, served, logs / f"gateway-{server.port}.log"))
                groups.append(("gateway", TEMPERATURE, [
                    ("ttc gateway vote", gateway_side(python, gateway, "vote")),
                    ("optillm majority_voting", optillm_side(python, proxy, "majority_voting")),
                    ("vote in-process", framework_side("vote")),
                ]))  # fmt: skip
                groups.append(("gateway-judged", TEMPERATURE, [
                    ("ttc gateway best-of-n judge-grade", gateway_side(python, gateway, "best-of-n")),
                    ("optillm bon", optillm_side(python, proxy, "bon")),
                ]))  # fmt: skip
            warm, short, warmed = dataset.records[:1], Settings(served, server.base_url, 16), set()
            for title, temperature, sides in groups:
                if only and title not in only and not (title.startswith("gateway") and "gateway" in only):
                    continue
                for name, side in sides:  # first-call costs (imports, connections, the proxy's plugins) fall here
                    if (client := name.split()[0] if name.startswith(("its_hub", "optillm")) else "") not in warmed:
                        warmed.add(client)
                        side(short, warm)
                what = base_what.replace(f"k={K}", f"k={PF_K} particles") if title == "particle-filter" else base_what
                log(f"peers: {title} ({what}, T={temperature})")
                start = time.perf_counter()
                tallies = take_turns(sides, Settings(served, server.base_url, max_tokens, temperature), dataset,
                                     chunk, log)  # fmt: skip
                print(f"\n{title}, T={temperature} ({what}; {time.perf_counter() - start:.0f} s)\n{table(tallies)}\n",
                      flush=True)  # fmt: skip
                if title.startswith("gateway"):
                    rows += [usage_row(t, what) for t in tallies]
                else:
                    rows += [pair_row(tallies[0], peer, what) for peer in tallies[1:]]
                dump["sides"] |= {t.name: t.summary() for t in tallies}
            stack.close()
    path = cache_dir() / "bench" / f"peers-{model}.json"
    path.write_text(json.dumps(dump, indent=1))
    log(f"peers: per-question answers in {path}")
    return rows


def run(quick: bool = False) -> list[Row]:
    """Quick: SmolLM2-135M, 8 questions, short replies (a smoke run of the plumbing, about 7 minutes).
    Full: the default model (Qwen2.5-Coder-0.5B), 8 questions: about 22 minutes on 2 CPU cores (each
    chunk of 4 questions costs about 11 minutes for all five pairs; ``--questions 16`` takes about 45)."""
    if quick:
        return compare("smollm2-135m", questions=8, max_tokens=128)
    return compare(DEFAULT_MODEL, questions=FULL_QUESTIONS, max_tokens=FULL_MAX_TOKENS)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", help="a packaged model (default: the suite's choice)")
    parser.add_argument("--questions", type=int)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument(
        "--only",
        help="comma-separated groups: vote, best-of-n, best-of-n-t1, particle-filter (k=4 particles, the "
        "self-evaluation PRM on both sides), gateway (with gateway-judged: ttc gateway and optillm's proxy, "
        "usage against the server's counters)",
    )
    args = parser.parse_args()
    if args.model or args.questions or args.max_tokens or args.only:
        only = args.only.split(",") if args.only else None
        rows = compare(args.model or DEFAULT_MODEL, args.questions or FULL_QUESTIONS,
                       args.max_tokens or FULL_MAX_TOKENS, only=only)  # fmt: skip
    else:
        rows = run(quick=args.quick)
    for row in rows:
        print(f"{row['benchmark']}\n    {row['result']}  [goal {row['goal']}: {row['met']}]")


if __name__ == "__main__":
    main()
