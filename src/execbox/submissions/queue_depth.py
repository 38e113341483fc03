"""The cluster's shared queue, as every node's ``/metrics`` shows it.

A background loop counts procrastinate's waiting and running jobs every couple of seconds
(one grouped count over a partial index); a scrape only reads the last count, so it never
waits for the database. A count older than ``STALE_AFTER_S`` (the database went away) is not
shown at all: an absent series says "unknown", a stale one would lie.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import psycopg

from execbox.submissions.postgres import CALLBACK_QUEUE, CONNECT_TIMEOUT_S, QUEUE

EVERY_S = 2.0
STALE_AFTER_S = 10.0
STATEMENT_TIMEOUT_MS = 2_000
STATES = ("todo", "doing")


@dataclass
class QueueDepth:
    """The last count of the shared queue's jobs, by queue and state."""

    url: str
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    counted_at: float | None = None  # time.monotonic() of the last count

    def snapshot(self) -> dict[tuple[str, str], int] | None:
        """(queue, state) -> jobs, or None when there is no recent count."""
        if self.counted_at is None or time.monotonic() - self.counted_at > STALE_AFTER_S:
            return None
        return dict(self.counts)

    async def watch(self) -> None:
        """Count forever; raises when the database goes away (the caller starts it again)."""
        async with await psycopg.AsyncConnection.connect(
            self.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        ) as db:
            while True:
                rows = await (
                    await db.execute(
                        "SELECT queue_name, status::text, count(*) FROM procrastinate_jobs "
                        "WHERE queue_name = ANY(%s) AND status IN ('todo', 'doing') "
                        "GROUP BY queue_name, status",
                        ([QUEUE, CALLBACK_QUEUE],),
                    )
                ).fetchall()
                counts = {(q, s): 0 for q in (QUEUE, CALLBACK_QUEUE) for s in STATES}
                counts.update({(q, s): n for q, s, n in rows})
                self.counts, self.counted_at = counts, time.monotonic()
                await asyncio.sleep(EVERY_S)
