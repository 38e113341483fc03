"""Admission: a bounded number of executions at once, a bounded fair queue, explicit refusals.

A request either gets a slot, waits in line (bounded in length and in time), or is refused at
once with a reason (a class of refusal) and a Retry-After. Nothing waits forever.

Each execution also reserves its memory limit against a budget for the whole service, so that
many big-memory runs cannot overcommit the host. Callers (API keys, or client addresses) are
served round-robin and each may hold only a share of the queue, so one caller's flood cannot
starve another.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

# The caller whose work runs in this task, while it runs: what the work reports may depend on
# who asked (the compile cache tells only the caller who compiled that it hit).
current_caller: ContextVar[str] = ContextVar("current_caller", default="")


class Refused(Exception):
    """The request was not run; it may be retried after ``retry_after_s``. Each kind of
    refusal is a class of its own with a ``reason``."""

    reason = "refused"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class QueueFull(Refused):
    reason = "queue_full"


class CallerQueueFull(QueueFull):
    reason = "caller_queue_full"


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
    memory_reserved: int
    memory_budget: int
    draining: bool


@dataclass
class _Ticket:
    caller: str
    memory: int
    granted: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Scheduler:
    def __init__(
        self,
        max_concurrency: int,
        queue_size: int,
        queue_timeout_s: float,
        memory_budget: int = 0,
        caller_share: float = 1.0,
    ) -> None:
        self.capacity = max(1, max_concurrency)
        self.queue_size = queue_size
        self.queue_timeout_s = queue_timeout_s
        self.memory_budget = memory_budget  # bytes; 0 = no budget
        self.per_caller = max(1, int(queue_size * caller_share))
        self._running = 0
        self._reserved = 0
        self._queues: OrderedDict[str, deque[_Ticket]] = OrderedDict()
        self._queued = 0
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._recent_run_s = 1.0  # a moving average of how long a slot is held

    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            running=self._running,
            queued=self._queued,
            capacity=self.capacity,
            queue_size=self.queue_size,
            memory_reserved=self._reserved,
            memory_budget=self.memory_budget,
            draining=self._draining,
        )

    def _retry_after(self) -> int:
        """A guess at when a slot frees up: the queue ahead, drained at the recent pace."""
        return max(1, round((self._queued + 1) * self._recent_run_s / self.capacity))

    async def run(
        self,
        work: Callable[[], Awaitable[T]],
        caller: str = "",
        memory: int = 0,
        on_admitted: Callable[[float], None] | None = None,
    ) -> T:
        """Run ``work`` in a slot, waiting in line for one if needed."""
        asked = time.monotonic()
        ticket = await self._admit(caller, memory)
        started = time.monotonic()
        if on_admitted is not None:
            on_admitted(started - asked)
        token = current_caller.set(caller)
        try:
            return await work()
        finally:
            current_caller.reset(token)
            self._recent_run_s = 0.8 * self._recent_run_s + 0.2 * (time.monotonic() - started)
            self._release(ticket)

    def _fits(self, memory: int) -> bool:
        if self._running >= self.capacity:
            return False
        # A run bigger than the whole budget still runs, alone.
        return (
            not self.memory_budget
            or self._running == 0
            or (self._reserved + memory <= self.memory_budget)
        )

    def _grant(self, ticket: _Ticket) -> None:
        self._running += 1
        self._reserved += ticket.memory
        self._idle.clear()
        ticket.granted.set_result(None)

    async def _admit(self, caller: str, memory: int) -> _Ticket:
        if self._draining:
            raise ShuttingDown("the server is shutting down; retry elsewhere or later", 5)
        ticket = _Ticket(caller, memory)
        if not self._queues and self._fits(memory):
            self._grant(ticket)
            return ticket
        if self._queued >= self.queue_size:
            raise QueueFull(
                f"the queue is full ({self.queue_size} waiting); retry later", self._retry_after()
            )
        mine = self._queues.get(caller)
        if mine is not None and len(mine) >= self.per_caller:
            raise CallerQueueFull(
                f"you already have {len(mine)} requests waiting (at most {self.per_caller})",
                self._retry_after(),
            )
        self._queues.setdefault(caller, deque()).append(ticket)
        self._queued += 1
        try:
            await asyncio.wait_for(asyncio.shield(ticket.granted), self.queue_timeout_s)
            return ticket
        except TimeoutError:
            if self._granted(ticket):
                return ticket  # granted at the last moment: keep the slot
            self._leave(ticket)
            raise QueueTimeout(
                f"waited {self.queue_timeout_s:g} s in the queue without getting a slot",
                self._retry_after(),
            ) from None
        except asyncio.CancelledError:
            if self._granted(ticket):
                self._release(ticket)  # granted, but the caller left: pass the slot on
            else:
                self._leave(ticket)
            raise

    @staticmethod
    def _granted(ticket: _Ticket) -> bool:
        return ticket.granted.done() and not ticket.granted.cancelled()

    def _leave(self, ticket: _Ticket) -> None:
        queue = self._queues.get(ticket.caller)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(ticket)
                self._queued -= 1
            if not queue:
                del self._queues[ticket.caller]
        if not ticket.granted.done():
            ticket.granted.cancel()
        self._dispatch()

    def _release(self, ticket: _Ticket) -> None:
        self._running -= 1
        self._reserved -= ticket.memory
        self._dispatch()
        if self._running == 0 and not self._queued:
            self._idle.set()

    def _dispatch(self) -> None:
        """Hand free slots to waiting callers in turn; the head of the line waits for memory
        rather than being overtaken (so that big runs are not starved by small ones)."""
        while self._queues:
            caller, queue = next(iter(self._queues.items()))
            ticket = queue[0]
            if not self._fits(ticket.memory):
                return
            queue.popleft()
            self._queued -= 1
            if queue:
                self._queues.move_to_end(caller)
            else:
                del self._queues[caller]
            self._grant(ticket)

    def stop_admitting(self) -> None:
        """New work is refused from now on; what runs or waits in line goes on."""
        self._draining = True

    async def drain(self, grace_s: float) -> bool:
        """Stop admitting and wait, up to grace_s, for running and queued work to finish."""
        self.stop_admitting()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
            return True
        except TimeoutError:
            return False
