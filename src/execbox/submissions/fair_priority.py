"""Per-caller fairness of the cluster's queue, inside procrastinate's model.

procrastinate's workers take the waiting job of highest ``priority`` (then the oldest). Each
submission's job is given a priority when it is deferred, so that taking them in that order
serves callers in turns, whoever deferred them on whichever node:

- Turns are even priorities, 0, -2, -4, ... A caller's jobs take consecutive turns after its
  last waiting job: one caller's 500 submissions take turns 0 to -998.
- A caller with nothing waiting goes in at the head of the queue, between the turn being
  served now and the next (an odd priority: the head's even one + 1), so its submission is
  the next one a worker takes, behind at most the other newcomers that came before it. The
  rest of its batch takes turns from there, interleaved with everyone else's.
- With nothing waiting at all, turns start again at 0.

So a newcomer waits for the jobs already running and at most one turn of each caller, never
for another caller's whole backlog; a caller's own jobs stay in their order. Jobs that are
retried keep their priority (higher than the head's): they go first.

This is start-time fair queueing with the waiting jobs as the clock: nothing else is stored,
and nothing has to be reset. A caller's deferrals are serialized by an advisory lock so two
nodes do not hand out the same turns; two callers deferring at once may tie, which only makes
their order the jobs' ids.
"""

from __future__ import annotations

import psycopg

# Namespace of the per-caller advisory locks (pg_advisory_xact_lock(namespace, key)).
LOCK_NAMESPACE = 0x65786366

# The caller is in the job's arguments; this index finds a caller's last waiting job.
INDEX = """
CREATE INDEX IF NOT EXISTS execbox_jobs_caller_waiting
    ON procrastinate_jobs (queue_name, (args->>'caller'), priority)
    WHERE status = 'todo';
"""


def priorities(head: int | None, tail: int | None, count: int) -> list[int]:
    """The priorities of ``count`` new jobs of one caller, given the highest priority of all
    waiting jobs (``head``) and the lowest of this caller's (``tail``; None: it has none)."""
    if tail is not None:
        # The turns after the caller's last (an odd newcomer's slot is in the turn below it).
        first = tail - 2 if tail % 2 == 0 else tail - 1
        return [first - 2 * i for i in range(count)]
    if head is None:
        return [-2 * i for i in range(count)]
    # Just ahead of the head's turn (or tied with a newcomer already there, after it).
    newcomer = head + 1 if head % 2 == 0 else head
    return [newcomer] + [newcomer - 1 - 2 * i for i in range(count - 1)]


def assign(db: psycopg.Connection, queue: str, caller: str, count: int) -> list[int]:
    """The priorities of a caller's ``count`` new jobs; inside the deferring transaction,
    whose end releases the caller's lock."""
    db.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, caller))
    head, tail = db.execute(
        "SELECT (SELECT max(priority) FROM procrastinate_jobs "
        "        WHERE status = 'todo' AND queue_name = %(queue)s), "
        "       (SELECT min(priority) FROM procrastinate_jobs "
        "        WHERE status = 'todo' AND queue_name = %(queue)s "
        "          AND args->>'caller' = %(caller)s)",
        {"queue": queue, "caller": caller},
    ).fetchone()
    return priorities(head, tail, count)
