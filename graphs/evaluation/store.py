"""The evaluation's SQLite store: its settings, questions and every call's result.

Every sample, judgement and strategy run goes in as soon as it exists, so an interrupted
evaluation resumes where it stopped: a question's samples are written in one transaction, each
judgement and each strategy run in its own, and primary keys make a duplicate row impossible.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from graphs.evaluation.datasets import Record
from nodes.budget import Ledger, ledger_totals
from nodes.errors import ConfigError
from nodes.types import Candidate

__all__ = ["EvalStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    qid TEXT PRIMARY KEY, position INTEGER NOT NULL, question TEXT NOT NULL, reference TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS samples (
    qid TEXT NOT NULL, idx INTEGER NOT NULL, text TEXT NOT NULL, answer TEXT, finish_reason TEXT,
    seed INTEGER, correct INTEGER NOT NULL, tokens INTEGER, confidences TEXT, PRIMARY KEY (qid, idx)
);
CREATE TABLE IF NOT EXISTS sample_usage (
    qid TEXT NOT NULL, first_idx INTEGER NOT NULL, requests INTEGER NOT NULL, calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, PRIMARY KEY (qid, first_idx)
);
CREATE TABLE IF NOT EXISTS judgements (
    qid TEXT NOT NULL, idx INTEGER NOT NULL, scorer TEXT NOT NULL, score REAL, steps TEXT NOT NULL,
    label TEXT, text TEXT, error TEXT, requests INTEGER NOT NULL, calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, PRIMARY KEY (qid, idx, scorer)
);
CREATE TABLE IF NOT EXISTS runs (
    strategy TEXT NOT NULL, budget INTEGER NOT NULL, options TEXT NOT NULL, qid TEXT NOT NULL, answer TEXT,
    correct INTEGER NOT NULL, requests INTEGER NOT NULL, calls INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, output TEXT NOT NULL, PRIMARY KEY (strategy, budget, options, qid)
);
"""


class _SqliteFile:
    """An SQLite file made with ``schema`` (plus a ``settings`` table), in WAL mode so readers never
    block the writer; a writer waits up to a minute for another one."""

    def __init__(self, path: str | Path, schema: str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);")
        self._db.executescript(schema)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _settings_conflict(self, settings: dict[str, Any]) -> tuple[str, str, str] | None:
        """Record settings seen for the first time; the first ``(key, stored, given)`` that differs."""
        with self._db:
            for key, value in settings.items():
                text = json.dumps(value, sort_keys=True)
                row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
                if row is None:
                    self._db.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)", (key, text))
                elif row[0] != text:
                    return key, row[0], text
        return None


class EvalStore(_SqliteFile):
    """The SQLite file of one evaluation: its settings, questions and every call's result.

    Example:
        >>> store = EvalStore(":memory:")
        >>> store.check_settings({"model": "m"})
        >>> store.check_settings({"model": "other"})
        Traceback (most recent call last):
        ...
        nodes.errors.ConfigError: store :memory: was made with model="m", not "other": use another --out
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, _SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(samples)")}
        with self._db:  # a store made before samples kept their tokens and confidences
            for column, kind in (("tokens", "INTEGER"), ("confidences", "TEXT")):
                if column not in columns:
                    self._db.execute(f"ALTER TABLE samples ADD COLUMN {column} {kind}")

    # -- settings and questions ----------------------------------------------------------------

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Record the settings on first use; refuse a later run with different ones."""
        if conflict := self._settings_conflict(settings):
            key, stored, given = conflict
            raise ConfigError(f"store {self.path} was made with {key}={stored}, not {given}: use another --out")

    def settings(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM settings")}

    def add_questions(self, records: Sequence[Record]) -> None:
        with self._db:
            for position, r in enumerate(records):
                row = self._db.execute("SELECT question, reference FROM questions WHERE qid = ?", (r.qid,)).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT OR IGNORE INTO questions VALUES (?, ?, ?, ?, ?)",
                        (r.qid, position, r.question, r.answer, json.dumps(r.info)),
                    )
                elif row != (r.question, r.answer):
                    raise ConfigError(f"store {self.path}: question {r.qid!r} is stored with another text or answer")

    def record(self, qid: str) -> Record:
        """One stored question (``KeyError`` if the store does not hold it)."""
        row = self._db.execute("SELECT question, reference, info FROM questions WHERE qid = ?", (qid,)).fetchone()
        if row is None:
            raise KeyError(qid)
        return Record(qid, row[0], row[1], json.loads(row[2]))

    def records(self) -> list[Record]:
        rows = self._db.execute("SELECT qid, question, reference, info FROM questions ORDER BY position, qid")
        return [Record(qid, q, ref, json.loads(info)) for qid, q, ref, info in rows]

    # -- samples -----------------------------------------------------------------------------

    def sample_count(self, qid: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM samples WHERE qid = ?", (qid,)).fetchone()[0])

    def samples(self, qid: str) -> list[dict[str, Any]]:
        """A question's samples in order: ``index, text, answer, finish_reason, seed, correct``, and
        ``tokens`` and ``confidences`` (each token's, see :mod:`nodes.confidence`) when the samples
        were drawn with logprobs, else None."""
        rows = self._db.execute(
            "SELECT idx, text, answer, finish_reason, seed, correct, tokens, confidences FROM samples"
            " WHERE qid = ? ORDER BY idx",
            (qid,),
        )
        keys = ("index", "text", "answer", "finish_reason", "seed", "correct", "tokens")
        return [
            {**dict(zip(keys, row[:7], strict=True)), "confidences": json.loads(row[7]) if row[7] else None}
            for row in rows
        ]

    def store_samples(
        self, qid: str, first: int, samples: Sequence[tuple[Candidate, bool]], usage: Ledger, failed_requests: int = 0
    ) -> None:
        """One propose run's samples (numbered from ``first``) and its usage, in one transaction;
        ``requests`` counts the requests that returned (a failed one carries no tokens)."""
        total = ledger_totals(usage)
        total["requests"] -= failed_requests
        with self._db:
            for c, correct in samples:
                confidences = c.get("confidences")
                self._db.execute(
                    "INSERT OR IGNORE INTO samples (qid, idx, text, answer, finish_reason, seed, correct, tokens,"
                    " confidences) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (qid, first + c["index"], c["text"], c["answer"], c["finish_reason"], c["seed"], int(correct),
                     c.get("tokens"), json.dumps(confidences) if confidences is not None else None),
                )  # fmt: skip
            self._db.execute(
                "INSERT OR IGNORE INTO sample_usage VALUES (?, ?, ?, ?, ?, ?)",
                (qid, first, total["requests"], total["calls"], total["prompt_tokens"], total["completion_tokens"]),
            )

    # -- judgements --------------------------------------------------------------------------

    def judged(self, qid: str, scorer: str) -> set[int]:
        rows = self._db.execute("SELECT idx FROM judgements WHERE qid = ? AND scorer = ?", (qid, scorer))
        return {r[0] for r in rows}

    def store_judgement(
        self, qid: str, idx: int, scorer: str, steps: list[float | None], score: float | None,
        label: str | None, text: str | None, error: str | None, usage: Ledger,
    ) -> None:  # fmt: skip
        t = ledger_totals(usage)
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO judgements (qid, idx, scorer, score, steps, label, text, error, requests, calls,"
                " prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (qid, idx, scorer, score, json.dumps(steps), label, text, error, t["requests"], t["calls"],
                 t["prompt_tokens"], t["completion_tokens"]),
            )  # fmt: skip

    def judgements(self, qid: str, scorer: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT idx, score, steps, label, calls, prompt_tokens, completion_tokens FROM judgements"
            " WHERE qid = ? AND scorer = ? ORDER BY idx",
            (qid, scorer),
        )
        keys = ("index", "score", "steps", "label", "calls", "prompt_tokens", "completion_tokens")
        return [{**dict(zip(keys, row, strict=True)), "steps": json.loads(row[2])} for row in rows]

    # -- direct runs -------------------------------------------------------------------------

    def has_run(self, strategy: str, budget: int, options: str, qid: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM runs WHERE strategy = ? AND budget = ? AND options = ? AND qid = ?",
            (strategy, budget, options, qid),
        ).fetchone()
        return row is not None

    def store_run(self, strategy: str, budget: int, options: str, qid: str, out: dict[str, Any], correct: bool) -> None:
        t = ledger_totals(out.get("ledger"))
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO runs (strategy, budget, options, qid, answer, correct, requests, calls,"
                " prompt_tokens, completion_tokens, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (strategy, budget, options, qid, out.get("answer"), int(correct), t["requests"], t["calls"],
                 t["prompt_tokens"], t["completion_tokens"], json.dumps(out, default=str)),
            )  # fmt: skip

    def runs(self, strategy: str, budget: int, options: str, *, outputs: bool = False) -> list[dict[str, Any]]:
        """The stored runs of a configuration; with ``outputs``, each run's whole graph output too."""
        rows = self._db.execute(
            "SELECT qid, answer, correct, calls, prompt_tokens, completion_tokens, output FROM runs"
            " WHERE strategy = ? AND budget = ? AND options = ?",
            (strategy, budget, options),
        )
        keys = ("qid", "answer", "correct", "calls", "prompt_tokens", "completion_tokens")
        return [
            {**dict(zip(keys, row[:6], strict=True)), **({"output": json.loads(row[6])} if outputs else {})}
            for row in rows
        ]

    def usage(self, qid: str) -> dict[str, int]:
        row = self._db.execute(
            "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(calls), 0), COALESCE(SUM(prompt_tokens), 0),"
            " COALESCE(SUM(completion_tokens), 0) FROM sample_usage WHERE qid = ?",
            (qid,),
        ).fetchone()
        return dict(zip(("requests", "calls", "prompt_tokens", "completion_tokens"), row, strict=True))

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, sorted (to compare two stores)."""
        tables = ("settings", "questions", "samples", "sample_usage", "judgements", "runs")
        return {t: sorted(self._db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
