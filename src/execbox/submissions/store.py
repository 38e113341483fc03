"""Where submissions live. ``SubmissionStore`` is the interface (a shared store for many
machines can implement it later); ``SQLiteStore`` is the embedded default: one file, no server.

SQLite in WAL mode: a commit survives the process (a crash or a restart); the few statements
here take well under a millisecond, so they run on the event loop's thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Protocol

from execbox.submissions.model import Submission, SubmissionState

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY,
    dialect TEXT NOT NULL,
    caller TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    created_at REAL NOT NULL,
    finished_at REAL,
    callback_url TEXT,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS submissions_state ON submissions (state, created_at);
"""


class SubmissionStore(Protocol):
    def add(self, submissions: list[Submission]) -> None: ...
    def get(self, ids: list[str]) -> dict[str, Submission]: ...
    def set_state(self, id: str, state: SubmissionState) -> None: ...
    def finish(self, id: str, result: dict) -> None: ...
    def unfinished(self) -> list[Submission]: ...
    def count_unfinished(self) -> int: ...
    def expire(self, older_than: float) -> int: ...
    def close(self) -> None: ...


class SQLiteStore:
    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def add(self, submissions: list[Submission]) -> None:
        rows = [
            (
                s.id,
                s.dialect,
                s.caller,
                json.dumps(s.request),
                s.state.value,
                json.dumps(s.result) if s.result is not None else None,
                s.created_at or time.time(),
                s.finished_at,
                s.callback_url,
                json.dumps(s.extra),
            )
            for s in submissions
        ]
        with self._db:  # one transaction: a batch is stored whole or not at all
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO submissions VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def get(self, ids: list[str]) -> dict[str, Submission]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(f"SELECT * FROM submissions WHERE id IN ({marks})", ids)
        return {row[0]: _submission(row) for row in rows}

    def set_state(self, id: str, state: SubmissionState) -> None:
        self._db.execute("UPDATE submissions SET state = ? WHERE id = ?", (state.value, id))

    def finish(self, id: str, result: dict) -> None:
        self._db.execute(
            "UPDATE submissions SET state = ?, result = ?, finished_at = ? WHERE id = ?",
            (SubmissionState.DONE.value, json.dumps(result), time.time(), id),
        )

    def unfinished(self) -> list[Submission]:
        rows = self._db.execute(
            "SELECT * FROM submissions WHERE state != ? ORDER BY created_at",
            (SubmissionState.DONE.value,),
        )
        return [_submission(row) for row in rows]

    def count_unfinished(self) -> int:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM submissions WHERE state != ?", (SubmissionState.DONE.value,)
        ).fetchone()
        return count

    def expire(self, older_than: float) -> int:
        """Forget finished submissions that finished before ``older_than`` (Unix time)."""
        cursor = self._db.execute(
            "DELETE FROM submissions WHERE state = ? AND finished_at < ?",
            (SubmissionState.DONE.value, older_than),
        )
        return cursor.rowcount

    def close(self) -> None:
        self._db.close()


def _submission(row: tuple) -> Submission:
    return Submission(
        id=row[0],
        dialect=row[1],
        caller=row[2],
        request=json.loads(row[3]),
        state=SubmissionState(row[4]),
        result=json.loads(row[5]) if row[5] is not None else None,
        created_at=row[6],
        finished_at=row[7],
        callback_url=row[8],
        extra=json.loads(row[9]),
    )
