"""Verifiers and reward models behind one interface: score a solution, or each of its steps.

A :class:`Scorer` returns one score per step (a *process* scorer) or a single score (an
*outcome* scorer) in ``[0, 1]``, together with what scoring cost, for the run's ledger.
:func:`aggregate` turns step scores into one number (``last | min | prod | mean``, as in
search-and-learn). A score of ``None`` means the scorer could not tell (an unparseable judge
reply): it is recorded as such and weighs nothing.

Scorers here:

- :class:`JudgeVerdict` — the filter prompt's verdict: 1 for ``[[correct]]``, 0 for ``[[wrong]]``;
- :class:`JudgeGrade` — an LLM judge's grade from 1 to 10, mapped to ``[0, 1]``;
- :class:`SelfEvalPRM` — the policy model's own probability that each step is correct, read from
  ``logprobs`` (works with any OpenAI-compatible endpoint that returns top logprobs);
- :class:`PoolingPRM` — a process reward model served by vLLM's pooling API, over HTTP;
- :class:`ReferenceMatch` — 1 if the stated answer equals a known answer (for analysis);
- :class:`UnitTests` — 1 if the solution's code passes unit tests in :mod:`nodes.sandbox`.
"""

from __future__ import annotations

import asyncio
import math
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from nodes.answers import equivalent, extract_answer
from nodes.budget import Ledger, add_ledgers, ledger_entry
from nodes.calls import usage_of
from nodes.context import RunContext
from nodes.endpoint import Completion, post, read_json, user
from nodes.errors import BadModelOutput, PermanentEndpointError
from nodes.sandbox import run_python_tests
from nodes.verify import filter_prompt, parse_verdict

__all__ = [
    "GRADE_PROMPT",
    "STEP_PROMPT",
    "Aggregation",
    "JudgeGrade",
    "JudgeVerdict",
    "PoolingPRM",
    "ReferenceMatch",
    "Scored",
    "Scorer",
    "SelfEvalPRM",
    "UnitTests",
    "aggregate",
    "split_steps",
]

Aggregation = Literal["last", "min", "prod", "mean"]


def aggregate(steps: Sequence[float | None], how: Aggregation = "last") -> float | None:
    """One score from step scores; ``None`` if there are none or the needed ones are ``None``.

    Example:
        >>> aggregate([0.9, 0.5, 0.8], "last"), aggregate([0.9, 0.5, 0.8], "min")
        (0.8, 0.5)
        >>> round(aggregate([0.9, 0.5], "prod"), 2), aggregate([0.9, None], "mean")
        (0.45, None)
    """
    if not steps:
        return None
    if how == "last":
        return steps[-1]
    if any(s is None for s in steps):
        return None
    values = [float(s) for s in steps if s is not None]
    if how == "min":
        return min(values)
    if how == "prod":
        return math.prod(values)
    if how == "mean":
        return sum(values) / len(values)
    raise ValueError(f"unknown aggregation {how!r} (last, min, prod, mean)")


def split_steps(solution: str, separator: str = "\n\n") -> list[str]:
    """The solution's steps: non-empty pieces between separators."""
    return [s for s in solution.split(separator) if s.strip()]


@dataclass
class Scored:
    steps: list[float | None]
    usage: Ledger = field(default_factory=dict)
    label: str | None = None  # e.g. the judge's verdict
    text: str | None = None  # the judge's reply, for whoever wants to read why


class Scorer(Protocol):
    """Scores one solution to one question."""

    @property
    def name(self) -> str: ...

    @property
    def process(self) -> bool:
        """True: one score per step."""
        ...

    async def score(self, question: str, solution: str, ctx: RunContext) -> Scored: ...


async def _judge(prompt: str, ctx: RunContext) -> Completion:
    """One judge call with the run's judge settings."""
    return await ctx.llm.chat(
        [user(prompt)], seed=ctx.seed, temperature=ctx.judge_temperature, max_tokens=ctx.judge_max_tokens
    )


@dataclass(frozen=True)
class JudgeVerdict:
    """The filter prompt's verdict as a score (1 correct, 0 wrong, None unparseable)."""

    name: str = "judge-verdict"
    process: bool = False

    async def score(self, question: str, solution: str, ctx: RunContext) -> Scored:
        completion = await _judge(filter_prompt(question, solution), ctx)
        verdict = parse_verdict(completion.texts[0])
        value = {"correct": 1.0, "wrong": 0.0}.get(verdict)
        return Scored([value], usage_of("verify", completion), label=verdict, text=completion.texts[0])


GRADE_PROMPT = (
    "[User Question]:{question}\n"
    "[Answer]:{answer}\n"
    "Instruction: Check the answer step by step. Then grade how likely it is to be correct on a scale from 1 "
    "(certainly wrong) to 10 (certainly correct). Finish with a last line of the form "
    "'Grade: <your grade from 1 to 10>'."
)
"""The graded judge's prompt. It names the form of the grade instead of a placeholder letter:
asked to end with 'Grade: N', Qwen2.5-Coder-0.5B wrote exactly that in 377 of 384 replies."""
_GRADE = re.compile(r"grade\s*\**\s*[:=]?\s*\**\s*(10|[1-9])\b", re.IGNORECASE)  # also **Grade:** 7


@dataclass(frozen=True)
class JudgeGrade:
    """An LLM judge's grade 1..10 as a score ``(g - 1) / 9``; None when no grade is stated."""

    name: str = "judge-grade"
    process: bool = False

    async def score(self, question: str, solution: str, ctx: RunContext) -> Scored:
        completion = await _judge(GRADE_PROMPT.format(question=question, answer=solution), ctx)
        found = _GRADE.findall(completion.texts[0])
        value = (int(found[-1]) - 1) / 9 if found else None
        label = found[-1] if found else "unparseable"
        return Scored([value], usage_of("verify", completion), label=label, text=completion.texts[0])


STEP_PROMPT = (
    "Question: {question}\n\n"
    "Solution so far:\n{steps}\n\n"
    "Is the last step of this solution correct? Answer with one word, Yes or No."
)


@dataclass(frozen=True)
class SelfEvalPRM:
    """A process reward from the policy model itself: for each step, the probability of "Yes"
    against "No" among the top logprobs of a one-token answer to :data:`STEP_PROMPT`.

    Args:
        separator: the step separator.
        top_logprobs: how many alternatives to ask for (20 is OpenAI's maximum).
    """

    separator: str = "\n\n"
    top_logprobs: int = 20
    name: str = "self-eval-prm"
    process: bool = True

    async def _step(self, question: str, steps: list[str], ctx: RunContext) -> tuple[float | None, Ledger]:
        completion = await ctx.llm.chat(
            [user(STEP_PROMPT.format(question=question, steps=self.separator.join(steps)))],
            seed=ctx.seed,
            temperature=0.0,
            max_tokens=1,
            logprobs=True,
            top_logprobs=self.top_logprobs,
        )
        return _yes_probability(completion.logprobs[0] if completion.logprobs else None), usage_of("verify", completion)

    async def score_last(self, question: str, solution: str, ctx: RunContext) -> Scored:
        """Score only the last step (what a step-level search needs: one call per node)."""
        steps = split_steps(solution, self.separator) or [solution]
        value, usage = await self._step(question, steps, ctx)
        return Scored([value], usage)

    async def score(self, question: str, solution: str, ctx: RunContext) -> Scored:
        steps = split_steps(solution, self.separator) or [solution]
        results = await asyncio.gather(*(self._step(question, steps[: i + 1], ctx) for i in range(len(steps))))
        usage: Ledger = {}
        for _, u in results:
            usage = add_ledgers(usage, u)
        return Scored([p for p, _ in results], usage)


def _yes_probability(logprobs: object) -> float | None:
    """P(yes) / (P(yes) + P(no)) from the first token's top logprobs; None if neither appears."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        return None
    first = content[0] if isinstance(content, list) and isinstance(content[0], dict) else {}
    yes = no = 0.0
    for alt in first.get("top_logprobs") or []:
        logprob = _number(alt.get("logprob")) if isinstance(alt, dict) else math.nan
        if math.isnan(logprob):
            continue  # a server's -inf or NaN arrives as JSON null: that alternative says nothing
        token = str(alt.get("token", "")).strip().lower()
        if token in ("yes", "y"):
            yes += math.exp(min(logprob, 0.0))
        elif token in ("no", "n"):
            no += math.exp(min(logprob, 0.0))
    return yes / (yes + no) if yes + no > 0 else None


@dataclass(frozen=True)
class ReferenceMatch:
    """1 if the solution states an answer equivalent to ``reference``, else 0 (for analysis)."""

    reference: str
    name: str = "reference"
    process: bool = False

    async def score(self, question: str, solution: str, ctx: RunContext) -> Scored:
        stated = extract_answer(solution, ctx.answer_format)
        return Scored([1.0 if stated is not None and equivalent(stated, self.reference) else 0.0])


_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class UnitTests:
    """1 if the solution's code passes ``tests`` (HumanEval style: ``check(entry_point)``).

    The code is the last fenced Python block of the solution, or the whole solution without
    one; ``prompt`` (the function header a HumanEval completion continues) is prepended when the
    code does not define ``entry_point`` itself.
    """

    tests: str
    entry_point: str | None = None
    prompt: str = ""
    timeout: float = 10.0
    memory_mb: int = 512
    name: str = "unit-tests"
    process: bool = False

    async def score(self, question: str, solution: str, ctx: RunContext) -> Scored:
        blocks = _FENCE.findall(solution)
        code = blocks[-1] if blocks else solution
        if self.entry_point and f"def {self.entry_point}" not in code:
            code = self.prompt + code
        tests = self.tests + (f"\ncheck({self.entry_point})\n" if self.entry_point else "")
        result = await run_python_tests(code, tests, timeout=self.timeout, memory_mb=self.memory_mb)
        return Scored([1.0 if result.passed else 0.0], label=f"{result.status}: {result.detail}"[:200])


_PRM_CONNECTIONS = 64
"""Most connections from one event loop to one PRM server; more requests wait for a free one."""

# One httpx client per PRM server and event loop, shared by every PoolingPRM of that server: a
# scorer is a frozen value (the CLI builds one per strategy, ``dataclasses.replace`` copies it),
# so the connections cannot live on it, and httpx connections cannot cross event loops.
_prm_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, httpx.AsyncBaseTransport | None], httpx.AsyncClient]
] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class PoolingPRM:
    """A process reward model served by vLLM's pooling API (e.g. Qwen2.5-Math-PRM on a GPU server).

    The question and the steps, each followed by ``step_tag``, go to ``POST /pooling`` with the
    ``token_classify`` task; a step's score is the probability of class ``positive`` at the last
    token of its tag. Token positions come from vLLM's ``/tokenize`` on each step prefix.
    :meth:`score_many` scores several solutions with one ``/pooling`` request.

    Every PoolingPRM of one server shares one ``httpx`` client per event loop, so connections are
    reused across calls and scorers; :meth:`aclose` (or ``async with``) closes it when the run is
    done, and a later call opens a new one.

    Args:
        base_url: the PRM server (``http://host:8000`` or ``.../v1``).
        model: the served PRM name.
        step_tag: text that closes each step in the PRM's input (Qwen2.5-Math-PRM: ``"<extra_0>"``).
        positive: index of the "step is correct" class.
        api_key: bearer token, if the server wants one (never printed).
        timeout: seconds for one HTTP request (waiting for a free connection is not counted).
        transport: the ``httpx`` transport to use (tests pass a ``MockTransport``).
    """

    base_url: str
    model: str
    step_tag: str = "\n\n"
    separator: str = "\n\n"
    positive: int = 1
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 120.0
    transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False, compare=False)  # tests
    name: str = "pooling-prm"
    process: bool = True

    def _root(self) -> str:
        return self.base_url.rstrip("/").removesuffix("/v1")

    def _client(self) -> httpx.AsyncClient:
        """The running event loop's client of this server (made on first use)."""
        clients = _prm_clients.setdefault(asyncio.get_running_loop(), {})
        key = (self._root(), self.transport)
        client = clients.get(key)
        if client is None or client.is_closed:
            limits = httpx.Limits(max_connections=_PRM_CONNECTIONS, max_keepalive_connections=_PRM_CONNECTIONS)
            client = clients[key] = httpx.AsyncClient(transport=self.transport, limits=limits)
        return client

    async def aclose(self) -> None:
        """Close this server's client on the running event loop (the one every PoolingPRM of the
        server shares; the next call opens a new one)."""
        client = _prm_clients.get(asyncio.get_running_loop(), {}).pop((self._root(), self.transport), None)
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> PoolingPRM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _post(self, path: str, body: dict[str, object]) -> dict[str, Any]:
        root = self._root()
        response = await post(
            self._client(),
            root + path,
            base_url=root,
            who="PRM endpoint",
            json=body,
            headers={"Authorization": f"Bearer {self.api_key}"} if self.api_key else None,
            # a request waiting for one of the shared connections is not failed for the wait: the
            # requests holding them time out on their own
            timeout=httpx.Timeout(self.timeout, pool=None),
        )
        data = read_json(response, f"PRM endpoint {root}{path}")
        if not isinstance(data, dict):
            raise BadModelOutput(f"PRM endpoint {root}{path} answered {type(data).__name__}, not an object")
        return data

    def _prefixes(self, question: str, solution: str) -> list[str]:
        """The PRM input up to the end of each step; the last one is the whole input."""
        prefixes = [question.strip() + "\n\n"]
        for s in split_steps(solution, self.separator) or [solution]:
            prefixes.append(prefixes[-1] + s.strip() + self.step_tag)
        return prefixes[1:]

    async def _counts(self, prefixes: list[str]) -> list[int]:
        """The token count of each prefix (vLLM's ``/tokenize`` takes one prompt a request)."""
        tokenized = await asyncio.gather(
            *(self._post("/tokenize", {"model": self.model, "prompt": p}) for p in prefixes)
        )
        try:
            return [int(t["count"]) for t in tokenized]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadModelOutput(f"PRM endpoint {self._root()} answered without per-token scores or counts") from exc

    async def _pool(self, texts: list[str]) -> tuple[list[list[Any]], int]:
        """Each text's per-token class scores from one ``/pooling`` request (a list input when
        there are several), and the request's prompt tokens."""
        body: dict[str, object] = {
            "model": self.model,
            "input": texts[0] if len(texts) == 1 else texts,
            "task": "token_classify",
        }
        pooled = await self._post("/pooling", body)
        entries = pooled.get("data")
        if (
            not isinstance(entries, list)
            or len(entries) != len(texts)
            or not all(isinstance(e, dict) and isinstance(e.get("data"), list) for e in entries)
        ):
            each = f" for each of its {len(texts)} inputs" if len(texts) > 1 else ""
            raise BadModelOutput(f"PRM endpoint {self._root()} answered without per-token scores{each}")
        entries = sorted(entries, key=lambda e: e["index"] if isinstance(e.get("index"), int) else 0)
        return [e["data"] for e in entries], int((pooled.get("usage") or {}).get("prompt_tokens") or 0)

    def _steps(self, rows: list[Any], counts: list[int], where: str) -> list[float | None]:
        scores: list[float | None] = []
        for step, count in enumerate(counts, 1):
            row = rows[count - 1] if 0 < count <= len(rows) else None
            probability = _class_probability(row, self.positive)
            if probability is not None and not math.isfinite(probability):
                raise BadModelOutput(
                    f"PRM endpoint {self._root()} scored step {step}{where} with {row!r:.80}: not finite class "
                    "scores (is the served model's classification head trained?)"
                )
            scores.append(probability)
        return scores

    async def score(self, question: str, solution: str, ctx: RunContext) -> Scored:
        """Score each step of one solution: one ``/pooling`` request, one ``/tokenize`` a step."""
        (scored,) = await self.score_many(question, [solution], ctx)
        return scored

    async def score_many(self, question: str, solutions: Sequence[str], ctx: RunContext) -> list[Scored]:
        """Score several solutions to one question (a wave of candidates), in their order.

        All of them go to the server in one ``/pooling`` request (vLLM's pooling API takes a list
        input). That request's usage is split over the solutions in proportion to their token
        counts, in whole tokens that add up to exactly the server's total (the first solution is
        charged the request itself), so the ledgers of a wave sum to what the server reported. A
        server that rejects a list (HTTP 400 or 422) is sent one ``/pooling`` request per solution
        instead, each charged its own usage; the ``/tokenize`` requests are not repeated. Any
        failure fails the whole call.
        """
        if not solutions:
            return []
        prefixes = [self._prefixes(question, s) for s in solutions]
        texts = [p[-1] for p in prefixes]

        async def together() -> tuple[list[list[Any]], int] | None:
            try:
                return await self._pool(texts)
            except PermanentEndpointError as exc:
                if len(texts) > 1 and exc.status in (400, 422):
                    return None  # the server takes one input a request
                raise

        pooled, counts = await asyncio.gather(together(), asyncio.gather(*(self._counts(p) for p in prefixes)))
        if pooled is None:
            singles = await asyncio.gather(*(self._pool([t]) for t in texts))
            rows = [r[0] for r, _ in singles]
            requests, prompt_tokens = [1] * len(texts), [tokens for _, tokens in singles]
        else:
            rows, total = pooled
            requests = _split(1, [1] * len(texts))
            prompt_tokens = _split(total, [len(r) for r in rows])
        n = len(texts)
        return [
            Scored(
                self._steps(rows[i], counts[i], f" of solution {i + 1} of {n}" if n > 1 else ""),
                ledger_entry("verify", requests=requests[i], calls=1, prompt_tokens=prompt_tokens[i]),
            )
            for i in range(n)
        ]


def _class_probability(row: object, positive: int) -> float | None:
    """The probability of class ``positive`` from a row of class probabilities (or logits).

    ``None`` when there is no such row; NaN when its values are not finite numbers (a server's NaN
    or inf arrives as JSON ``null``).
    """
    if not isinstance(row, list) or len(row) <= positive:
        return None
    values = [_number(v) for v in row]
    if not all(math.isfinite(v) for v in values):
        return math.nan
    if all(0.0 <= v <= 1.0 for v in values) and abs(sum(values) - 1.0) < 1e-3:
        return values[positive]
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return exps[positive] / sum(exps)


def _number(value: object) -> float:
    """A JSON number as a float; NaN for anything else (a server's NaN or inf arrives as ``null``)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _split(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` in whole shares in proportion to ``weights``, adding up to exactly ``total``.

    The largest remainders get the units left over (the earlier one on a tie); equal shares when
    no weight is positive.

    Example:
        >>> _split(10, [1, 1, 1]), _split(1, [1, 1]), _split(7, [0, 0]), _split(100, [30, 0, 71])
        ([4, 3, 3], [1, 0], [4, 3], [30, 0, 70])
    """
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    left = total - sum(shares)
    for i in sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))[:left]:
        shares[i] += 1
    return shares
