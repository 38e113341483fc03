"""The submissions store of cluster mode: PostgreSQL, shared by every node.

It keeps the SQLite store's shape (``SubmissionStore``) and adds what a cluster needs: a batch
of submissions is stored and its procrastinate jobs deferred in one transaction (none stored
without being queued, none queued without being stored); a result is stored only by the
attempt that still owns the submission, so a run that was superseded (its worker presumed dead
and the job run again elsewhere) cannot store a second result; storing a result notifies
``FINISHED_CHANNEL`` so that every node's waiters wake; and the workers publish the runtimes
they offer, for API-only nodes that run no sandbox.

Calls are synchronous like SQLiteStore's (the API calls the store without awaiting), with
short connect and statement timeouts: the database going away costs a request a few seconds
at most and ends as ``DatabaseUnavailable`` (503 with Retry-After), never a hang.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import procrastinate
import psycopg
from procrastinate import exceptions as queue_errors
from procrastinate.jobs import Job

from execbox.scheduler import Refused
from execbox.submissions import fair_priority
from execbox.submissions.model import Submission, SubmissionState
from execbox.submissions.store import (
    COLUMNS,
    Pending,
    row_to_submission,
    submission_to_row,
)

QUEUE = "execbox"
TASK = "execbox.run_submission"
# Callbacks are jobs too, deferred with the result they carry: any API node alive sends them.
CALLBACK_QUEUE = "execbox_callbacks"
CALLBACK_TASK = "execbox.send_callback"
FINISHED_CHANNEL = "execbox_finished"
CONNECT_TIMEOUT_S = 2
STATEMENT_TIMEOUT_MS = 10_000
RETRY_AFTER_S = 5
# Nodes starting at once must not create the schema twice.
SCHEMA_LOCK = 0x65786563

SCHEMA = """
CREATE TABLE IF NOT EXISTS execbox_submissions (
    id TEXT PRIMARY KEY,
    dialect TEXT NOT NULL,
    caller TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    callback_url TEXT,
    extra TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS execbox_submissions_state ON execbox_submissions (state, caller);
CREATE INDEX IF NOT EXISTS execbox_submissions_finished ON execbox_submissions (finished_at);
CREATE TABLE IF NOT EXISTS execbox_runtimes (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    unavailable_reason TEXT,
    published_at DOUBLE PRECISION NOT NULL
);
"""


class DatabaseUnavailable(Refused):
    """The shared database does not answer; the request may be retried."""

    reason = "database_unavailable"


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: psycopg.Connection | None = None
        self._lock = threading.Lock()
        # Only its job manager is used, on this store's own connection (never opened).
        self._queue = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=url))

    @contextmanager
    def _db(self) -> Iterator[psycopg.Connection]:
        """The connection, (re)opened on demand; a database that went away becomes
        DatabaseUnavailable and the next call connects again."""
        with self._lock:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = psycopg.connect(
                        self.url,
                        autocommit=True,
                        connect_timeout=CONNECT_TIMEOUT_S,
                        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                    )
                yield self._connection
            except (psycopg.OperationalError, queue_errors.ConnectorException) as err:
                if self._connection is not None:
                    self._connection.close()
                self._connection = None
                raise DatabaseUnavailable(
                    f"the submissions database does not answer ({type(err).__name__}); retry later",
                    RETRY_AFTER_S,
                ) from err

    def migrate(self) -> None:
        """Create procrastinate's schema and execbox's tables where they are missing."""
        with self._db() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            (present,) = db.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if present is None:
                db.execute(procrastinate.schema.SchemaManager.get_schema())
            db.execute(SCHEMA)
            db.execute(fair_priority.INDEX)

    def add(self, submissions: list[Submission]) -> None:
        """Store the submissions and queue their jobs, in one transaction; each job's
        priority gives its caller a fair turn (see ``fair_priority``)."""
        rows = [submission_to_row(s) for s in submissions]
        marks = ",".join(["%s"] * len(COLUMNS.split(",")))
        by_caller: dict[str, list[Submission]] = {}
        for submission in submissions:
            by_caller.setdefault(submission.caller, []).append(submission)
        with self._db() as db, db.transaction():
            with db.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO execbox_submissions ({COLUMNS}) VALUES ({marks})", rows
                )
            jobs = []
            for caller, theirs in by_caller.items():
                turns = fair_priority.assign(db, QUEUE, caller, len(theirs))
                jobs += [
                    Job(
                        queue=QUEUE,
                        task_name=TASK,
                        priority=priority,
                        lock=None,
                        queueing_lock=None,
                        task_kwargs={"id": s.id, "caller": caller},
                    )
                    for s, priority in zip(theirs, turns, strict=True)
                ]
            self._queue.job_manager.batch_defer_jobs(jobs, connection=db)

    def get(self, ids: list[str]) -> dict[str, Submission]:
        if not ids:
            return {}
        with self._db() as db:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM execbox_submissions WHERE id = ANY(%s)", (ids,)
            ).fetchall()
        return {row[0]: row_to_submission(row) for row in rows}

    def start_attempt(self, id: str) -> int:
        """Mark the submission running and count the attempt: its number, which the result
        must come back with; 0 when it is finished already."""
        with self._db() as db:
            row = db.execute(
                "UPDATE execbox_submissions SET state = %s, attempts = attempts + 1 "
                "WHERE id = %s AND state != %s RETURNING attempts",
                (SubmissionState.RUNNING.value, id, SubmissionState.DONE.value),
            ).fetchone()
        return row[0] if row else 0

    def requeue(self, id: str, *, count_attempt: bool) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE execbox_submissions SET state = %s, attempts = GREATEST(0, attempts - %s) "
                "WHERE id = %s AND state != %s",
                (
                    SubmissionState.QUEUED.value,
                    0 if count_attempt else 1,
                    id,
                    SubmissionState.DONE.value,
                ),
            )

    def finish(
        self, id: str, result: dict, attempt: int | None = None, *, callback: bool = False
    ) -> bool:
        """Store the result, unless the submission is finished or (given ``attempt``) a later
        attempt owns it; whether it was stored. Waiters on every node hear of it; with
        ``callback``, its callback is queued in the same transaction (sent by any API node)."""
        query = (
            "UPDATE execbox_submissions SET state = %s, result = %s, finished_at = %s "
            "WHERE id = %s AND state != %s"
        )
        args: list = [
            SubmissionState.DONE.value,
            json.dumps(result),
            time.time(),
            id,
            SubmissionState.DONE.value,
        ]
        if attempt is not None:
            query, args = query + " AND attempts = %s", [*args, attempt]
        with self._db() as db, db.transaction():
            stored = db.execute(query, args).rowcount == 1
            if stored:
                db.execute("SELECT pg_notify(%s, %s)", (FINISHED_CHANNEL, id))
            if stored and callback:
                job = Job(
                    queue=CALLBACK_QUEUE,
                    task_name=CALLBACK_TASK,
                    lock=None,
                    queueing_lock=None,
                    task_kwargs={"id": id},
                )
                self._queue.job_manager.batch_defer_jobs([job], connection=db)
        return stored

    def unfinished(self) -> list[Pending]:
        with self._db() as db:
            rows = db.execute(
                "SELECT id, caller, state, attempts FROM execbox_submissions WHERE state != %s "
                "ORDER BY created_at",
                (SubmissionState.DONE.value,),
            ).fetchall()
        return [Pending(id, caller, SubmissionState(state), n) for id, caller, state, n in rows]

    def count_unfinished(self, caller: str | None = None) -> int:
        query = "SELECT COUNT(*) FROM execbox_submissions WHERE state != %s"
        args = [SubmissionState.DONE.value]
        if caller is not None:
            query, args = query + " AND caller = %s", [*args, caller]
        with self._db() as db:
            (count,) = db.execute(query, args).fetchone()
        return count

    def expire(self, older_than: float) -> int:
        with self._db() as db:
            return db.execute(
                "DELETE FROM execbox_submissions WHERE state = %s AND finished_at < %s",
                (SubmissionState.DONE.value, older_than),
            ).rowcount

    def publish_runtimes(self, runtimes: dict[str, tuple[str, str | None]]) -> None:
        """What this worker offers: each language's version, or why it is unavailable."""
        now = time.time()
        with self._db() as db, db.transaction(), db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO execbox_runtimes (name, version, unavailable_reason, published_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                "version = EXCLUDED.version, unavailable_reason = EXCLUDED.unavailable_reason, "
                "published_at = EXCLUDED.published_at",
                [(name, v, reason, now) for name, (v, reason) in runtimes.items()],
            )

    def runtimes(self) -> dict[str, tuple[str, str | None]]:
        """The languages the workers offer, as they last published them."""
        with self._db() as db:
            rows = db.execute(
                "SELECT name, version, unavailable_reason FROM execbox_runtimes"
            ).fetchall()
        return {name: (version, reason) for name, version, reason in rows}

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
