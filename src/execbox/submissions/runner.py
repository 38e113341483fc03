"""Runs stored submissions through the same scheduler and engine as synchronous requests.

Accepted submissions are written to the store before the client hears their ids; workers take
them round-robin by caller and run each through the scheduler (so they share the machine
fairly with synchronous requests), then store the result, wake whoever waits, and send the
callback. On start, whatever a previous server left queued or running is queued again: a
submission is never lost to a restart (one that was running is run again from the start).

Workers do not die: whatever goes wrong with one submission ends it as an internal error, and
a worker task that ends anyway is logged and replaced. A submission that was running each of
the last ``MAX_ATTEMPTS`` times a server stopped without finishing it is failed, not run again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from execbox.config import Settings
from execbox.executor import Executor
from execbox.scheduler import ShuttingDown
from execbox.submissions import codec, lifecycle
from execbox.submissions.callbacks import CallbackSender
from execbox.submissions.fair_queue import FairQueue
from execbox.submissions.lifecycle import MAX_ATTEMPTS, TooManySubmissions
from execbox.submissions.model import NewSubmission, Submission, SubmissionState
from execbox.submissions.store import SubmissionStore
from execbox.submissions.waiters import Waiters

log = logging.getLogger("execbox.submissions")

RETRY_S = 0.5  # a submission whose processing failed is queued again after this
EXPIRY_EVERY_S = 60.0

__all__ = ["MAX_ATTEMPTS", "SubmissionRunner", "TooManySubmissions"]


class SubmissionRunner:
    def __init__(
        self,
        store: SubmissionStore,
        executor: Executor,
        settings: Settings,
        callbacks: CallbackSender | None = None,
        render_callback: dict[str, Callable[[Submission], dict]] | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.settings = settings
        self.callbacks = callbacks
        self.render_callback = render_callback or {}
        self._queue = FairQueue()
        self._waiters = Waiters()
        self._tasks: set[asyncio.Task] = set()
        self._closing = False

    async def start(self) -> None:
        recovered = self.store.unfinished()
        for pending in recovered:
            if pending.attempts >= MAX_ATTEMPTS:
                self._give_up(pending.id, pending.attempts)
                continue
            if pending.state is SubmissionState.RUNNING:
                self.store.requeue(pending.id, count_attempt=True)
            self._queue.put(pending.caller, pending.id)
        if recovered:
            log.info("%d unfinished submissions of the last server queued again", len(recovered))
        for number in range(max(1, self.settings.max_concurrency)):
            self._supervise(self._worker, f"submission worker {number}")
        self._supervise(self._expire, "submission expiry")

    async def close(self) -> None:
        """Stop the workers; what is unfinished stays in the store for the next start."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.callbacks is not None:
            await self.callbacks.close()
        self.store.close()

    def _supervise(self, loop: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """Run ``loop`` as a task that is started again, and logged, whenever it ends while
        the server is not stopping."""

        def ended(task: asyncio.Task) -> None:
            self._tasks.discard(task)
            draining = self.executor.scheduler.stats().draining
            if self._closing or task.cancelled() or draining:
                return
            error = task.exception()
            log.error("%s ended unexpectedly; started again", name, exc_info=error)
            self._supervise(loop, name)

        task = asyncio.create_task(loop(), name=name)
        self._tasks.add(task)
        task.add_done_callback(ended)

    def _background(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Accepting.

    def submit(self, dialect: str, caller: str, items: list[NewSubmission]) -> list[Submission]:
        """Validate (raises ExecutionError), store and queue executions, all or none; their
        submissions."""
        submissions = lifecycle.new_submissions(
            self.executor.engine, self.store, self.settings, dialect, caller, items
        )
        self.store.add(submissions)
        for submission in submissions:
            self._queue.put(caller, submission.id)
        return submissions

    def get(self, ids: list[str]) -> dict[str, Submission]:
        return self.store.get(ids)

    async def wait(self, id: str, timeout_s: float) -> Submission | None:
        """The submission once finished (or as it is when the timeout passes)."""
        return await self._waiters.wait(id, timeout_s, lambda i: self.store.get([i]).get(i))

    # Running.

    async def _worker(self) -> None:
        while True:
            caller, id = await self._queue.get()
            try:
                if not await self._process(id):
                    return  # the server is stopping: the submission stays queued in the store
            except Exception:
                # Even storing its failure failed (the store itself is in trouble): the
                # submission is tried again, a bounded number of times in all.
                log.exception("submission %s could not be processed", id)
                self._retry_later(caller, id)

    async def _process(self, id: str) -> bool:
        """Run one submission and store how it ended; False when the server is stopping."""
        submission = self.store.get([id]).get(id)
        if submission is None or submission.state is SubmissionState.DONE:
            return True
        attempts = self.store.start_attempt(id)
        try:
            result = await self._run(submission)
        except ShuttingDown:
            self.store.requeue(id, count_attempt=False)
            return False
        except asyncio.CancelledError:
            self.store.requeue(id, count_attempt=False)
            raise
        except Exception as err:
            log.exception("submission %s failed (attempt %d)", id, attempts)
            result = codec.failure(f"internal error: {err}")
        self._finish(submission, result)
        return True

    def _finish(self, submission: Submission, result: dict) -> None:
        try:
            self.store.finish(submission.id, result)
        except Exception as err:
            log.exception("the result of submission %s could not be stored", submission.id)
            result = codec.failure(f"internal error: the result could not be stored: {err}")
            self.store.finish(submission.id, result)
        submission.state, submission.result = SubmissionState.DONE, result
        self._waiters.finished(submission.id)
        body = lifecycle.callback_body(submission, self.render_callback)
        if body is not None and self.callbacks is not None:
            self._background(self.callbacks.send(submission.callback_url, body))

    def _retry_later(self, caller: str, id: str) -> None:
        try:
            found = self.store.get([id]).get(id)
            if found is None or found.state is SubmissionState.DONE:
                return
            if found.attempts >= MAX_ATTEMPTS:
                self._give_up(id, found.attempts)
                return
            self.store.requeue(id, count_attempt=True)
        except Exception:
            log.exception("submission %s is left to the next server start", id)
            return
        self._background(self._requeue_after(RETRY_S, caller, id))

    async def _requeue_after(self, delay_s: float, caller: str, id: str) -> None:
        await asyncio.sleep(delay_s)
        self._queue.put(caller, id)

    def _give_up(self, id: str, attempts: int) -> None:
        self.store.finish(id, lifecycle.given_up(id, attempts))
        self._waiters.finished(id)

    async def _run(self, submission: Submission) -> dict:
        return await lifecycle.execute(self.executor, submission, self.settings.max_result_bytes)

    async def _expire(self) -> None:
        ttl = self.settings.submission_ttl_s
        while True:
            try:
                removed = self.store.expire(time.time() - ttl)
                if removed:
                    log.info("%d finished submissions expired", removed)
            except Exception:
                log.exception("expiring finished submissions failed; trying again later")
            await asyncio.sleep(min(EXPIRY_EVERY_S, max(0.5, ttl / 2)))
