"""The SQLite file behind a sample pool and an evaluation store (private)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Self

__all__ = ["SqliteFile"]


class SqliteFile:
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
