"""Benchmark data sets from local files, each knowing how its answers are asked for and checked.

Loaders read the files laid out as in the workplace's shared data folder (a user passes the path
to their own copy, or sets ``TTC_DATA_DIR``): ``gsm8k/test.jsonl``, ``math500/test.jsonl``,
``mmlu/{test,dev,val}/<subject>_<split>.csv``, ``truthfulqa/mc_task.json``,
``arc_challenge/test.jsonl`` and ``humaneval/HumanEval.jsonl``. With no local copy and the
``datasets`` package installed, :func:`load` takes a Hugging Face dataset instead (GSM8K and
MATH-500). ``arithmetic`` needs no files at all. A malformed file fails with one clear error
naming the file and the line, before any LLM call.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphs.evaluation.tasks import graded_arithmetic
from nodes.answers import AnswerFormat, equivalent, extract_answer
from nodes.context import RunContext
from nodes.errors import ConfigError
from nodes.scorers import UnitTests

__all__ = ["DATASETS", "Dataset", "Record", "data_dir", "load"]

LETTERS = "ABCDEFGHIJKLMNOP"  # TruthfulQA MC1 has up to 13 options


@dataclass(frozen=True)
class Record:
    qid: str
    question: str  # what the strategy is asked (options included for multiple choice)
    answer: str  # the reference answer (a letter for multiple choice; the tests for code)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """Records plus how their answers are asked for (``answer_format``) and checked."""

    name: str
    records: list[Record]
    answer_format: AnswerFormat

    def select(self, limit: int | None = None, seed: int = 0) -> Dataset:
        """``limit`` records drawn reproducibly (all, in file order, when ``limit`` is None)."""
        if limit is None or limit >= len(self.records):
            return self
        if limit < 1:
            raise ConfigError(f"limit must be positive, got {limit}")
        chosen = sorted(random.Random(seed).sample(range(len(self.records)), limit))
        return Dataset(self.name, [self.records[i] for i in chosen], self.answer_format)

    def check_answer(self, record: Record, stated: str | None) -> bool:
        """Whether a stated answer is right (not for code: see :meth:`check`)."""
        return stated is not None and equivalent(stated, record.answer)

    async def check(self, record: Record, solution: str, ctx: RunContext) -> bool:
        """Whether a whole solution is right: its stated answer, or its code against the tests."""
        if "tests" in record.info:
            tests = UnitTests(record.info["tests"], record.info["entry_point"], prompt=record.info["prompt"])
            return (await tests.score(record.question, solution, ctx)).steps == [1.0]
        return self.check_answer(record, extract_answer(solution, self.answer_format))


def data_dir(path: str | Path | None = None) -> Path:
    """The data folder: ``path``, else ``$TTC_DATA_DIR``."""
    chosen = path or os.environ.get("TTC_DATA_DIR")
    if not chosen:
        raise ConfigError("no data folder: pass a path (ttc eval --data PATH) or set TTC_DATA_DIR")
    folder = Path(chosen)
    if not folder.is_dir():
        raise ConfigError(f"data folder {folder} does not exist")
    return folder


def _jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise ConfigError(f"data file {path} is missing")
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{number}: expected a JSON object")
            yield number, row


def _field(row: dict[str, Any], key: str, path: Path, number: int) -> Any:
    if key not in row:
        raise ConfigError(f"{path}:{number}: missing field {key!r}")
    return row[key]


def _options(question: str, options: list[str]) -> str:
    lines = [question.strip(), ""] + [f"({LETTERS[i]}) {text}" for i, text in enumerate(options)]
    return "\n".join(lines)


def load_gsm8k(folder: Path, split: str = "test") -> Dataset:
    path = folder / "gsm8k" / f"{split}.jsonl"
    records = []
    for number, row in _jsonl(path):
        solution = str(_field(row, "answer", path, number))
        if "####" not in solution:
            raise ConfigError(f"{path}:{number}: the answer has no '#### <number>' line")
        answer = solution.rsplit("####", 1)[1].strip().replace(",", "")
        records.append(Record(f"gsm8k-{split}-{number - 1}", str(_field(row, "question", path, number)), answer))
    return Dataset("gsm8k", records, "number")


def load_math500(folder: Path) -> Dataset:
    path = folder / "math500" / "test.jsonl"
    records = [
        Record(str(row.get("unique_id") or f"math500-{n - 1}"), str(_field(row, "problem", path, n)),
               str(_field(row, "answer", path, n)), {"level": row.get("level"), "subject": row.get("subject")})
        for n, row in _jsonl(path)
    ]  # fmt: skip
    return Dataset("math500", records, "math")


def load_mmlu(folder: Path, subjects: Iterable[str] | None = None, split: str = "test") -> Dataset:
    base = folder / "mmlu" / split
    if not base.is_dir():
        raise ConfigError(f"data folder {base} is missing")
    available = sorted(p.name.removesuffix(f"_{split}.csv") for p in base.glob(f"*_{split}.csv"))
    chosen = list(subjects) if subjects else available
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise ConfigError(f"unknown MMLU subjects {unknown} (e.g. {', '.join(available[:4])}, ...)")
    records = []
    for subject in chosen:
        path = base / f"{subject}_{split}.csv"
        with path.open(encoding="utf-8", newline="") as f:
            for number, row in enumerate(csv.reader(f), 1):
                if len(row) != 6 or row[5] not in "ABCD" or not row[5]:
                    raise ConfigError(f"{path}:{number}: expected 6 columns ending in the answer letter A-D")
                records.append(Record(f"mmlu-{subject}-{number - 1}", _options(row[0], row[1:5]), row[5],
                                      {"subject": subject}))  # fmt: skip
    return Dataset("mmlu", records, "choice")


def load_truthfulqa(folder: Path, seed: int = 0) -> Dataset:
    """TruthfulQA MC1: the options are shuffled (reproducibly), since the file lists the true one first."""
    path = folder / "truthfulqa" / "mc_task.json"
    if not path.is_file():
        raise ConfigError(f"data file {path} is missing")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    records = []
    for i, row in enumerate(rows):
        targets = row.get("mc1_targets") if isinstance(row, dict) else None
        if not isinstance(targets, dict) or sum(targets.values()) != 1:
            raise ConfigError(f"{path}: record {i} has no mc1_targets with exactly one true option")
        options = list(targets)
        random.Random(f"{seed}-{row['question']}").shuffle(options)
        right = next(o for o in options if targets[o] == 1)
        records.append(Record(f"truthfulqa-{i}", _options(row["question"], options), LETTERS[options.index(right)]))
    return Dataset("truthfulqa", records, "choice")


def load_arc(folder: Path) -> Dataset:
    path = folder / "arc_challenge" / "test.jsonl"
    records = []
    for number, row in _jsonl(path):
        choices = _field(row, "choices", path, number)
        labels, texts = list(choices.get("label", [])), list(choices.get("text", []))
        key = str(_field(row, "answerKey", path, number))
        if key not in labels or len(labels) != len(texts):
            raise ConfigError(f"{path}:{number}: answerKey {key!r} is not one of the labels {labels}")
        # some records label their options 1-4: ask with letters throughout
        records.append(Record(str(row.get("id") or f"arc-{number - 1}"), _options(row["question"], texts),
                              LETTERS[labels.index(key)]))  # fmt: skip
    return Dataset("arc_challenge", records, "choice")


HUMANEVAL_INSTRUCTION = "Complete the following Python function. Reply with the whole function in one ```python block."


def load_humaneval(folder: Path) -> Dataset:
    path = folder / "humaneval" / "HumanEval.jsonl"
    records = []
    for number, row in _jsonl(path):
        prompt = str(_field(row, "prompt", path, number))
        info = {
            "tests": str(_field(row, "test", path, number)),
            "entry_point": str(_field(row, "entry_point", path, number)),
            "prompt": prompt,
        }
        records.append(Record(str(row.get("task_id") or number), f"{HUMANEVAL_INSTRUCTION}\n\n{prompt}", "", info))
    return Dataset("humaneval", records, "auto")


def load_arithmetic(per_level: int = 10, seed: int = 0, levels: list[str] | None = None) -> Dataset:
    records = [Record(q["qid"], q["question"], q["answer"], {"level": q["level"]})
               for q in graded_arithmetic(per_level, levels=levels, seed=seed)]  # fmt: skip
    return Dataset("arithmetic", records, "number")


HF_NAMES = {"gsm8k": ("openai/gsm8k", "main", "test"), "math500": ("HuggingFaceH4/MATH-500", None, "test")}


def _from_hub(name: str) -> Dataset:
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"no local copy of {name}: pass --data PATH (or install `datasets`)") from None
    repo, config, split = HF_NAMES[name]
    rows = datasets.load_dataset(repo, config, split=split)
    if name == "gsm8k":
        answers = [r["answer"].rsplit("####", 1)[1].strip().replace(",", "") for r in rows]
        return Dataset(
            name,
            [Record(f"gsm8k-{i}", r["question"], a) for i, (r, a) in enumerate(zip(rows, answers, strict=True))],
            "number",
        )
    records = [Record(r.get("unique_id", f"math500-{i}"), r["problem"], r["answer"]) for i, r in enumerate(rows)]
    return Dataset(name, records, "math")


DATASETS: dict[str, Callable[..., Dataset]] = {
    "gsm8k": load_gsm8k,
    "math500": load_math500,
    "mmlu": load_mmlu,
    "truthfulqa": load_truthfulqa,
    "arc_challenge": load_arc,
    "humaneval": load_humaneval,
}


def load(name: str, path: str | Path | None = None, **options: Any) -> Dataset:
    """A data set by name: ``arithmetic`` (built in) or one of :data:`DATASETS` from ``path``.

    Example:
        >>> load("arithmetic", per_level=1, levels=["1+1"]).records[0].question
        'What is 8 + 8?'
    """
    if name == "arithmetic":
        return load_arithmetic(**options)
    if name not in DATASETS:
        known = ", ".join(["arithmetic", *DATASETS])
        raise ConfigError(f"unknown data set {name!r} (known: {known})")
    if path is None and not os.environ.get("TTC_DATA_DIR") and name in HF_NAMES:
        return _from_hub(name)
    return DATASETS[name](data_dir(path), **options)
