"""Admission: at most N executions at once, a bounded FIFO queue behind them, explicit refusals.

A request either gets a slot, waits in line (bounded in length and in time), or is refused at
once with a reason the API turns into 429 or 503 and a Retry-After. Nothing waits forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class Refused(Exception):
    """The request was not run; it may be retried after ``retry_after_s``."""

    status_code = 503
    reason = "refused"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class QueueFull(Refused):
    status_code = 429
    reason = "queue_full"


class QueueTimeout(Refused):
    reason = "queue_timeout"


class ShuttingDown(Refused):
    reason = "shutting_down"


@dataclass
class SchedulerStats:
    running: int
    queued: int
    capacity: int
    queue_size: int


class Scheduler:
    def __init__(self, max_concurrency: int, queue_size: int, queue_timeout_s: float) -> None:
        self.capacity = max(1, max_concurrency)
        self.queue_size = queue_size
        self.queue_timeout_s = queue_timeout_s
        self._running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._recent_run_s = 1.0  # a moving average of how long a slot is held

    def stats(self) -> SchedulerStats:
        return SchedulerStats(self._running, len(self._waiters), self.capacity, self.queue_size)

    @property
    def saturated(self) -> bool:
        return self._running >= self.capacity and len(self._waiters) >= self.queue_size

    def _retry_after(self) -> int:
        """A guess at when a slot frees up: the queue ahead, drained at the recent pace."""
        ahead = len(self._waiters) + 1
        return max(1, round(ahead * self._recent_run_s / self.capacity))

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` in a slot, waiting for one if needed."""
        await self._acquire()
        started = time.monotonic()
        try:
            return await work()
        finally:
            self._recent_run_s = 0.8 * self._recent_run_s + 0.2 * (time.monotonic() - started)
            self._release()

    async def _acquire(self) -> None:
        if self._closed:
            raise ShuttingDown("the server is shutting down", retry_after_s=5)
        if self._running < self.capacity and not self._waiters:
            self._running += 1
            self._idle.clear()
            return
        if len(self._waiters) >= self.queue_size:
            raise QueueFull(
                f"the queue is full ({self.queue_size} waiting); retry later",
                retry_after_s=self._retry_after(),
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.queue_timeout_s)
        except TimeoutError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                return  # granted at the last moment: keep the slot
            self._drop(waiter)
            raise QueueTimeout(
                f"waited {self.queue_timeout_s:g} s in the queue without getting a slot",
                retry_after_s=self._retry_after(),
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release()  # granted, but the caller left: pass the slot on
            else:
                self._drop(waiter)
            raise

    def _drop(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        if not waiter.done():
            waiter.cancel()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            waiter.set_result(None)  # the slot passes straight to the next in line
            return
        self._running -= 1
        if self._running == 0:
            self._idle.set()

    async def drain(self, grace_s: float) -> bool:
        """Stop admitting new work; what runs or already waits in line may finish within grace_s.
        True if everything finished."""
        self._closed = True
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
            return True
        except TimeoutError:
            return False
