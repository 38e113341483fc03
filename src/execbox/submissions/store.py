"""Where submissions live. ``SubmissionStore`` is the interface (a shared store for many
machines can implement it later); ``SQLiteStore`` is the embedded default: one file, no server.

SQLite in WAL mode: a commit survives the process (a crash or a restart); the few statements
here take well under a millisecond, so they run on the event loop's thread (results are
bounded in size by the runner before they get here).

Each submission counts its attempts: one is counted when it starts running, in the same
statement that marks it running, so a submission that takes the server down with it is seen
as such by the next server (which gives up on it after a few attempts instead of looping).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
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
    extra TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS submissions_state ON submissions (state, created_at);
CREATE INDEX IF NOT EXISTS submissions_caller ON submissions (caller, state);
"""
COLUMNS = (
    "id, dialect, caller, request, state, result, created_at, finished_at, callback_url, extra, "
    "attempts"
)


@dataclass(frozen=True)
class Pending:
    """An unfinished submission, as little of it as queueing needs (its JSON stays unread)."""

    id: str
    caller: str
    state: SubmissionState
    attempts: int


class SubmissionStore(Protocol):
    def add(self, submissions: list[Submission]) -> None: ...
    def get(self, ids: list[str]) -> dict[str, Submission]: ...
    def start_attempt(self, id: str) -> int: ...
    def requeue(self, id: str, *, count_attempt: bool) -> None: ...
    def finish(self, id: str, result: dict) -> None: ...
    def unfinished(self) -> list[Pending]: ...
    def count_unfinished(self, caller: str | None = None) -> int: ...
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
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(submissions)")}
        if "attempts" not in columns:  # a store written before attempts were counted
            self._db.execute(
                "ALTER TABLE submissions ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0"
            )

    def add(self, submissions: list[Submission]) -> None:
        rows = [submission_to_row(s) for s in submissions]
        marks = ",".join("?" * len(COLUMNS.split(",")))
        with self._db:  # one transaction: a batch is stored whole or not at all
            self._db.execute("BEGIN")
            self._db.executemany(f"INSERT INTO submissions ({COLUMNS}) VALUES ({marks})", rows)

    def get(self, ids: list[str]) -> dict[str, Submission]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(f"SELECT {COLUMNS} FROM submissions WHERE id IN ({marks})", ids)
        return {row[0]: row_to_submission(row) for row in rows}

    def start_attempt(self, id: str) -> int:
        """Mark the submission running and count the attempt; how many attempts it has had."""
        (attempts,) = self._db.execute(
            "UPDATE submissions SET state = ?, attempts = attempts + 1 WHERE id = ? "
            "RETURNING attempts",
            (SubmissionState.RUNNING.value, id),
        ).fetchone()
        return attempts

    def requeue(self, id: str, *, count_attempt: bool) -> None:
        """Back to the queue; an attempt that ended through no fault of the submission's (the
        server stopping) is not counted."""
        self._db.execute(
            "UPDATE submissions SET state = ?, attempts = MAX(0, attempts - ?) WHERE id = ?",
            (SubmissionState.QUEUED.value, 0 if count_attempt else 1, id),
        )

    def finish(self, id: str, result: dict) -> None:
        self._db.execute(
            "UPDATE submissions SET state = ?, result = ?, finished_at = ? WHERE id = ?",
            (SubmissionState.DONE.value, json.dumps(result), time.time(), id),
        )

    def unfinished(self) -> list[Pending]:
        rows = self._db.execute(
            "SELECT id, caller, state, attempts FROM submissions WHERE state != ? "
            "ORDER BY created_at",
            (SubmissionState.DONE.value,),
        )
        return [Pending(id, caller, SubmissionState(state), n) for id, caller, state, n in rows]

    def count_unfinished(self, caller: str | None = None) -> int:
        """Unfinished submissions: all of them, or one caller's."""
        query, args = "SELECT COUNT(*) FROM submissions WHERE state != ?", [SubmissionState.DONE]
        if caller is not None:
            query, args = query + " AND caller = ?", [*args, caller]
        (count,) = self._db.execute(query, [str(a) for a in args]).fetchone()
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


def submission_to_row(s: Submission) -> tuple:
    """A submission as the values of ``COLUMNS``."""
    return (
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
        s.attempts,
    )


def row_to_submission(row: tuple) -> Submission:
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
        attempts=row[10],
    )
