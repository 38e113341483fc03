"""Runs stored submissions through the same scheduler and engine as synchronous requests.

Accepted submissions are written to the store before the client hears their ids; workers take
them in order and run each through the scheduler (so they share the machine fairly with
synchronous requests), then store the result, wake whoever waits, and send the callback.
On start, whatever a previous server left queued or running is queued again: a submission
is never lost to a restart (one that was running is run again from the start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from execbox.config import Settings
from execbox.engine import Engine, ExecutionError
from execbox.scheduler import QueueFull, QueueTimeout, Scheduler, ShuttingDown
from execbox.submissions import codec
from execbox.submissions.callbacks import CallbackSender
from execbox.submissions.model import NewSubmission, Submission, SubmissionState
from execbox.submissions.store import SubmissionStore

log = logging.getLogger("execbox.submissions")

RETRY_S = 0.5  # a worker refused by a full scheduler queue tries again after this
EXPIRY_EVERY_S = 60.0


class TooManySubmissions(ExecutionError):
    status_code = 429


class SubmissionRunner:
    def __init__(
        self,
        store: SubmissionStore,
        engine: Engine,
        scheduler: Scheduler,
        settings: Settings,
        callbacks: CallbackSender | None = None,
        render_callback: dict[str, Callable[[Submission], dict]] | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.scheduler = scheduler
        self.settings = settings
        self.callbacks = callbacks
        self.render_callback = render_callback or {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._finished: dict[str, asyncio.Event] = {}
        self._waiters: dict[str, int] = {}
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        recovered = self.store.unfinished()
        for submission in recovered:
            if submission.state is SubmissionState.RUNNING:
                self.store.set_state(submission.id, SubmissionState.QUEUED)
            self._queue.put_nowait(submission.id)
        if recovered:
            log.info("%d unfinished submissions of the last server queued again", len(recovered))
        for _ in range(max(1, self.settings.max_concurrency)):
            self._spawn(self._worker())
        self._spawn(self._expire())

    async def close(self) -> None:
        """Stop the workers; what is unfinished stays in the store for the next start."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.callbacks is not None:
            await self.callbacks.close()
        self.store.close()

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Accepting.

    def submit(self, dialect: str, caller: str, items: list[NewSubmission]) -> list[Submission]:
        """Validate (raises ExecutionError), store and queue executions, all or none; their
        submissions."""
        for item in items:
            self.engine.prepare(item.execution)  # bad input fails here, before anything is stored
        pending = self.store.count_unfinished()
        if pending + len(items) > self.settings.max_pending_submissions:
            raise TooManySubmissions(
                f"{pending} submissions are waiting, the most this server keeps is "
                f"{self.settings.max_pending_submissions}; retry later"
            )
        now = time.time()
        submissions = [
            Submission(
                id=str(uuid.uuid4()),
                dialect=dialect,
                caller=caller,
                request=codec.request_to_json(item.execution),
                created_at=now,
                callback_url=item.callback_url,
                extra=item.extra,
            )
            for item in items
        ]
        self.store.add(submissions)
        for submission in submissions:
            self._queue.put_nowait(submission.id)
        return submissions

    def get(self, ids: list[str]) -> dict[str, Submission]:
        return self.store.get(ids)

    async def wait(self, id: str, timeout_s: float) -> Submission | None:
        """The submission once finished (or as it is when the timeout passes)."""
        event = self._finished.setdefault(id, asyncio.Event())
        self._waiters[id] = self._waiters.get(id, 0) + 1
        try:
            found = self.store.get([id]).get(id)
            if found is not None and found.state is not SubmissionState.DONE:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout_s)
                found = self.store.get([id]).get(id)
            return found
        finally:
            # The event goes with its last waiter: another may still be waiting on it.
            self._waiters[id] -= 1
            if not self._waiters[id]:
                del self._waiters[id]
                self._finished.pop(id, None)

    # Running.

    async def _worker(self) -> None:
        while True:
            id = await self._queue.get()
            submission = self.store.get([id]).get(id)
            if submission is None or submission.state is SubmissionState.DONE:
                continue
            try:
                result = await self._run(submission)
            except ShuttingDown:
                return  # stays queued in the store: the next server runs it
            except Exception as err:
                log.exception("submission %s failed", id)
                result = codec.failure(f"internal error: {err}")
            self.store.finish(id, result)
            submission.state, submission.result = SubmissionState.DONE, result
            if (event := self._finished.get(id)) is not None:
                event.set()
            if submission.callback_url and self.callbacks is not None:
                render = self.render_callback.get(submission.dialect)
                if render is not None:
                    self._spawn(self.callbacks.send(submission.callback_url, render(submission)))

    async def _run(self, submission: Submission) -> dict:
        try:
            job = self.engine.prepare(codec.request_from_json(submission.request))
        except ExecutionError as err:
            return codec.failure(str(err))
        self.store.set_state(submission.id, SubmissionState.RUNNING)
        with self.engine.expecting(job):
            while True:
                try:
                    result = await self.scheduler.run(
                        lambda: self.engine.execute(job), submission.caller, job.memory_bytes
                    )
                    return codec.result_to_json(result)
                except (QueueFull, QueueTimeout):
                    await asyncio.sleep(RETRY_S)

    async def _expire(self) -> None:
        ttl = self.settings.submission_ttl_s
        while True:
            removed = self.store.expire(time.time() - ttl)
            if removed:
                log.info("%d finished submissions expired", removed)
            await asyncio.sleep(min(EXPIRY_EVERY_S, max(0.5, ttl / 2)))
