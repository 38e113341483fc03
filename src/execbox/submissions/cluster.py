"""Submissions in cluster mode: stored in PostgreSQL and dispatched through procrastinate.

Any node accepts submissions (stored and queued in one transaction, see ``PostgresStore``);
nodes that run sandboxes also run a procrastinate worker that takes the jobs, so whichever
worker is free runs the next one. A worker heartbeats into the database; every worker looks
for the jobs of workers whose heartbeat is older than ``cluster_stalled_after_s`` (killed,
frozen, cut off) and has procrastinate run them again. An attempt stores its result only while
it still owns the submission, so a submission ends with exactly one result however many times
it was started. Whoever waits for a submission, on any node, hears of its end through
LISTEN/NOTIFY.

Callbacks are jobs of their own (``CALLBACK_QUEUE``), deferred in the transaction that stores
the result, and sent by the nodes that serve HTTP (``execbox serve``, with or without
``--no-worker``), never by ``execbox worker``: worker Pods run untrusted code and reach only
DNS and the database. The API nodes' callback workers heartbeat too, and each API node looks
for callback jobs whose sender stopped heartbeating: one that dies before it sent one leaves
the job to another (stalled-job recovery, as workers do for submissions), so a callback is
delivered at least once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import procrastinate
import procrastinate.worker
import psycopg
from procrastinate.job_context import JobContext

from execbox.config import Settings
from execbox.engine import ExecutionRequest
from execbox.executor import Executor
from execbox.scheduler import ShuttingDown
from execbox.submissions import codec, lifecycle
from execbox.submissions.callbacks import CallbackSender, Delivery
from execbox.submissions.lifecycle import MAX_ATTEMPTS
from execbox.submissions.model import NewSubmission, Submission, SubmissionState
from execbox.submissions.postgres import (
    CALLBACK_QUEUE,
    CALLBACK_TASK,
    FINISHED_CHANNEL,
    QUEUE,
    TASK,
    PostgresStore,
)
from execbox.submissions.queue_depth import QueueDepth
from execbox.submissions.waiters import Waiters

log = logging.getLogger("execbox.cluster")

RECONNECT_S = 1.0
DISPATCHED = "dispatched"  # the dialect of a synchronous execution run for an API-only node
EXPIRY_EVERY_S = 60.0
CALLBACK_SENDERS = 4  # callbacks one API node sends at once (each try has a deadline)
CALLBACK_POLL_S = 1.0  # how soon a callback due for another try is seen
# Names this node in procrastinate's worker table and logs: every container listens on the same
# host and port, so those would not tell the nodes apart.
NODE = f"{socket.gethostname()}-{os.getpid()}"


class CallbackNotDelivered(Exception):
    """The receiver did not answer 2xx; procrastinate tries again later (any API node)."""


class ClusterRunner:
    """The SubmissionRunner of cluster mode (same methods for the API); ``worker`` says
    whether this node also runs submissions, and ``callbacks`` is the sender of a node that
    sends callbacks (one serving HTTP), None on an ``execbox worker``."""

    def __init__(
        self,
        store: PostgresStore,
        executor: Executor,
        settings: Settings,
        callbacks: CallbackSender | None = None,
        render_callback: dict[str, Callable[[Submission], dict]] | None = None,
        *,
        worker: bool = True,
    ) -> None:
        self.store = store
        self.executor = executor
        self.settings = settings
        self.callbacks = callbacks
        self.render_callback = render_callback or {}
        self.worker = worker
        self._waiters = Waiters()
        self._tasks: set[asyncio.Task] = set()
        self._closing = False
        self._taking = True
        self._worker: procrastinate.worker.Worker | None = None
        self._queue_open = False
        self._queue = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=settings.database_url,
                kwargs={"connect_timeout": 2},
                # A pool that cannot connect must fail, not wait for the database forever.
                timeout=5,
            )
        )
        self._queue.task(
            name=TASK,
            queue=QUEUE,
            pass_context=False,
            retry=procrastinate.RetryStrategy(
                max_attempts=MAX_ATTEMPTS, retry_exceptions={ShuttingDown}
            ),
        )(self._run_one)
        self._queue.task(
            name=CALLBACK_TASK,
            queue=CALLBACK_QUEUE,
            pass_context=True,
            retry=procrastinate.RetryStrategy(
                wait=1, linear_wait=1, retry_exceptions={CallbackNotDelivered}
            ),
        )(self._send_callback)
        self.queue_depth = QueueDepth(settings.database_url)

    async def start(self) -> None:
        await asyncio.to_thread(self.store.migrate)
        self._supervise(self._listen, "finished-submission listener")
        self._supervise(self.queue_depth.watch, "shared queue depth")
        self.executor.metrics.watch_cluster_queue(self.queue_depth.snapshot, QUEUE, CALLBACK_QUEUE)
        served: list[str] = []  # the queues this node takes jobs from, and recovers
        if self.worker:
            served.append(QUEUE)
        if self.callbacks is not None:
            served.append(CALLBACK_QUEUE)
        if not served:
            return
        await self._queue.open_async()
        self._queue_open = True
        if self.worker:
            self._supervise(self._work, "procrastinate worker")
            self._supervise(self._expire, "submission expiry")
        if self.callbacks is not None:
            self._supervise(partial(self._send_callbacks, self.callbacks), "callback sender")
        if self.settings.cluster_stalled_retry:
            self._supervise(partial(self._recover_stalled, served), "stalled-job recovery")

    async def close(self) -> None:
        """Stop; a job this worker had not finished is run again by another (its heartbeat
        stops) or by this node when it comes back."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._queue_open:
            await self._queue.close_async()
        if self.callbacks is not None:
            await self.callbacks.close()
        self.store.close()

    def _supervise(self, loop: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """Run ``loop``, started again after a pause whenever it ends (the database went
        away, say) while the node is not stopping."""

        async def forever() -> None:
            while not self._closing:
                try:
                    await loop()
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    log.warning("%s stopped (%s); starting again", name, err)
                await asyncio.sleep(RECONNECT_S)

        task = asyncio.create_task(forever(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Accepting and reading: any node.

    def submit(self, dialect: str, caller: str, items: list[NewSubmission]) -> list[Submission]:
        submissions = lifecycle.new_submissions(
            self.executor.engine, self.store, self.settings, dialect, caller, items
        )
        self.store.add(submissions)
        return submissions

    def get(self, ids: list[str]) -> dict[str, Submission]:
        return self.store.get(ids)

    async def wait(self, id: str, timeout_s: float) -> Submission | None:
        return await self._waiters.wait(id, timeout_s, lambda i: self.store.get([i]).get(i))

    async def run_elsewhere(
        self, request: ExecutionRequest, caller: str, timeout_s: float
    ) -> dict | None:
        """Have a worker run an execution now (for an API-only node's synchronous routes):
        stored as a submission, queued, awaited; its result, or None past the timeout."""
        submission = Submission(
            id=str(uuid.uuid4()),
            dialect=DISPATCHED,
            caller=caller,
            request=codec.request_to_json(request),
            created_at=time.time(),
        )
        await asyncio.to_thread(self.store.add, [submission])
        done = await self.wait(submission.id, timeout_s)
        return done.result if done is not None else None

    def pending(self) -> int:
        """Unfinished submissions in the whole cluster."""
        return self.store.count_unfinished()

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.settings.database_url, autocommit=True, connect_timeout=2
        ) as db:
            await db.execute(f"LISTEN {FINISHED_CHANNEL}")
            # Finishes while no one listened were missed: waiters read their submission again.
            self._waiters.wake_all()
            async for notice in db.notifies():
                self._waiters.finished(notice.payload)

    # Recovery: every node that takes jobs.

    async def _recover_stalled(self, queues: list[str]) -> None:
        """Jobs of ``queues`` held by a worker that stopped heartbeating go back to the queue
        (each node recovers the queues it takes jobs from)."""
        while True:
            for queue in queues:
                stalled = await self._queue.job_manager.get_stalled_jobs(
                    queue=queue, seconds_since_heartbeat=self.settings.cluster_stalled_after_s
                )
                for job in stalled:
                    log.warning(
                        "job %s (%s) lost its worker; running it again", job.id, job.task_kwargs
                    )
                    await self._queue.job_manager.retry_job(job)
            await asyncio.sleep(self.settings.cluster_heartbeat_s)

    # Running: worker nodes.

    def stop_taking(self) -> None:
        """Take no more jobs (the node is stopping); those running go on."""
        self._taking = False
        if self._worker is not None:
            self._worker.stop()

    async def _work(self) -> None:
        if not self._taking:
            await asyncio.Future()  # parked until the node closes
        self._worker = procrastinate.worker.Worker(
            app=self._queue,
            queues=[QUEUE],
            concurrency=max(1, self.settings.max_concurrency),
            name=f"execbox-{NODE}",
            install_signal_handlers=False,
            update_heartbeat_interval=self.settings.cluster_heartbeat_s,
            stalled_worker_timeout=self.settings.cluster_stalled_after_s,
            fetch_job_polling_interval=5.0,
            delete_jobs="successful",
            shutdown_graceful_timeout=self.settings.shutdown_grace_s,
        )
        await self._worker.run()

    async def _run_one(self, id: str, caller: str = "") -> None:
        """Run one submission (``caller`` orders the queue, see ``fair_priority``)."""
        submission = self.store.get([id]).get(id)
        if submission is None or submission.state is SubmissionState.DONE:
            return
        attempt = self.store.start_attempt(id)
        if not attempt:
            return
        if attempt > MAX_ATTEMPTS:
            self._finish(submission, lifecycle.given_up(id, attempt - 1), attempt)
            return
        try:
            result = await lifecycle.execute(
                self.executor, submission, self.settings.max_result_bytes
            )
        except ShuttingDown:
            # This node is draining: it takes no more, and another worker (or this one when
            # it is back) runs the submission (the task retries on ShuttingDown).
            self.stop_taking()
            self.store.requeue(id, count_attempt=False)
            raise
        except Exception as err:
            log.exception("submission %s failed (attempt %d)", id, attempt)
            result = codec.failure(f"internal error: {err}")
        self._finish(submission, result, attempt)

    def _finish(self, submission: Submission, result: dict, attempt: int) -> None:
        callback = bool(submission.callback_url) and submission.dialect in self.render_callback
        if not self.store.finish(submission.id, result, attempt, callback=callback):
            log.info(
                "submission %s: attempt %d was superseded; result dropped", submission.id, attempt
            )

    async def _expire(self) -> None:
        ttl = self.settings.submission_ttl_s
        while True:
            removed = self.store.expire(time.time() - ttl)
            if removed:
                log.info("%d finished submissions expired", removed)
            await asyncio.sleep(min(EXPIRY_EVERY_S, max(0.5, ttl / 2)))

    # Sending callbacks: nodes that serve HTTP.

    async def _send_callbacks(self, sender: CallbackSender) -> None:
        worker = procrastinate.worker.Worker(
            app=self._queue,
            queues=[CALLBACK_QUEUE],
            concurrency=CALLBACK_SENDERS,
            name=f"execbox-callbacks-{NODE}",
            install_signal_handlers=False,
            update_heartbeat_interval=self.settings.cluster_heartbeat_s,
            stalled_worker_timeout=self.settings.cluster_stalled_after_s,
            fetch_job_polling_interval=CALLBACK_POLL_S,
            delete_jobs="successful",
            shutdown_graceful_timeout=sender.timeout_s,  # a try's deadline
        )
        await worker.run()

    async def _send_callback(self, context: JobContext, id: str) -> None:
        """One try at a submission's callback; another (on any API node, after a pause) while
        fewer than ``callback_max_tries`` were made."""
        submission = await asyncio.to_thread(lambda: self.store.get([id]).get(id))
        if submission is None or not submission.callback_url or self.callbacks is None:
            return  # expired meanwhile
        body = lifecycle.callback_body(submission, self.render_callback)
        if body is None:
            return
        delivery = await self.callbacks.deliver_once(submission.callback_url, body)
        if delivery is not Delivery.FAILED:
            return
        tries = (context.job.attempts if context.job else 0) + 1
        if tries < self.settings.callback_max_tries:
            raise CallbackNotDelivered(f"callback of submission {id}: try {tries} failed")
        log.warning(
            "callback of submission %s to %s given up after %d tries",
            id,
            submission.callback_url,
            tries,
        )
